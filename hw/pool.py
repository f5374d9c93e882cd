"""Max pooling over a pixel stream, channel by channel.

Values compare as the integers they carry: ``intN``, ``uintN`` and ternary by their shape's
signedness; for ``binary`` (1 = +1, 0 = -1) the maximum is the OR of the bits.

Non-overlapping pooling (``stride == kernel``, the common case) keeps one row of partial maxima,
``ow`` pixels, in a ``lib.memory.Memory``; any other stride goes through a
:class:`~hw.window.SlidingWindow` and a maximum over each window.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.streamutil import check_encoding, check_positive_int
from hw.window import SlidingWindow, check_pair, conv_output_shape

__all__ = ["MaxPool", "elementwise_max"]


def elementwise_max(a, b, encoding):
    """Per-element maximum of two vectors of ``encoding`` values, as raw bits.

    ``a`` and ``b`` are value-likes of equal width (``encoding.layout(n)`` views or their bits).
    """
    a, b = Value.cast(a), Value.cast(b)
    if encoding.kind == "binary":
        return a | b
    layout = encoding.layout(len(a) // encoding.width)
    a, b = layout(a), layout(b)
    return Cat(*[Mux(b[k] > a[k], b[k], a[k]) for k in range(layout.length)])


def _tree_max(m, vectors, encoding):
    """Per-element maximum of several vectors, as a balanced tree of comparisons.

    Each level's results are signals, so that a comparison's operands are not copied into every
    expression that uses them (the simulator would otherwise grow them level by level).
    """
    level = 0
    while len(vectors) > 1:
        paired = []
        for k, (a, b) in enumerate(zip(vectors[0::2], vectors[1::2], strict=False)):
            result = Signal(len(Value.cast(a)), name=f"max_l{level}_{k}")
            m.d.comb += result.eq(elementwise_max(a, b, encoding))
            paired.append(result)
        if len(vectors) % 2:
            paired.append(vectors[-1])
        vectors = paired
        level += 1
    return vectors[0]


class MaxPool(wiring.Component):
    """Max pooling of a stream of ``h x w`` pixels of ``c`` channels, no padding.

    Parameters
    ----------
    encoding : ValueEncoding
        Encoding of the values.
    height, width, channels : int
        Image size; pixels arrive row-major, ``h * w`` per frame, frame after frame.
    kernel : int or (int, int)
        Pooling window ``(kh, kw)``.
    stride : int or (int, int), optional
        Step between windows; default ``kernel``. Rows and columns that no window covers are
        read and dropped.

    Members
    -------
    i : ``In(stream.Signature(encoding.layout(channels)))``
        One pixel per transfer.
    o : ``Out(stream.Signature(encoding.layout(channels)))``
        One pooled pixel per transfer, row-major over ``output_shape``; channel ``ch`` is the
        maximum of channel ``ch`` over the window.

    Attributes
    ----------
    output_shape : (int, int)
        ``(oh, ow) = ((h - kh) // sy + 1, (w - kw) // sx + 1)``.
    latency : int
        Cycles from the transfer of a window's bottom-right pixel to its output's ``valid``:
        1 when ``stride == kernel``, else 2 (a :class:`~hw.window.SlidingWindow`, then a
        register).
    initiation_interval : int
        ``h * w``: cycles per frame at full rate, one pixel per cycle.

    Raises
    ------
    TypeError, ValueError
        For malformed parameters, or a kernel larger than the image.
    """

    def __init__(self, *, encoding, height, width, channels, kernel, stride=None):
        self._encoding = check_encoding(encoding)
        self._height = check_positive_int(height, "Height")
        self._width = check_positive_int(width, "Width")
        self._channels = check_positive_int(channels, "Channel count")
        self._kernel = check_pair(kernel, "Kernel")
        self._stride = self._kernel if stride is None else check_pair(stride, "Stride")
        if self._kernel[0] > height or self._kernel[1] > width:
            raise ValueError(f"Kernel {self._kernel} is larger than the image {(height, width)}")
        layout = encoding.layout(channels)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    @property
    def output_shape(self):
        return conv_output_shape(self._height, self._width, self._kernel, self._stride, (0, 0))

    @property
    def _disjoint(self):
        return self._stride == self._kernel

    @property
    def latency(self):
        # the windowed form adds its maximum register to the sliding window's latency of 1
        return 1 if self._disjoint else 2

    @property
    def initiation_interval(self):
        # one pixel per cycle; without padding the sliding window scans exactly h x w as well
        return self._height * self._width

    def elaborate(self, platform):
        if self._disjoint:
            return self._elaborate_disjoint()
        return self._elaborate_windowed()

    def _elaborate_disjoint(self):
        m = Module()
        kh, kw = self._kernel
        h, w = self._height, self._width
        oh, ow = self.output_shape
        enc = self._encoding
        pixel_bits = enc.width * self._channels

        x = Signal(range(w))
        y = Signal(range(h))
        group = Signal(range(w + 1))  # x // kw: the output column (past ow on dropped columns)
        last_x = x == w - 1

        def table(bits, size, index):
            return Const(sum(1 << k for k in bits), size).bit_select(index, 1)

        starts_group = table(range(0, w, kw), w, x)
        ends_group = table(range(kw - 1, w, kw), w, x)
        ends_window = table(range(kw - 1, ow * kw, kw), w, x)  # a group that makes an output
        first_row = table(range(0, oh * kh, kh), h, y)
        last_row = table(range(kh - 1, oh * kh, kh), h, y)
        next_group = Mux(last_x, 0, Mux(ends_group, group + 1, group))

        emits = ends_window & last_row
        step = self.i.valid & self.i.ready
        # Only a pixel that completes a window needs the output register free.
        m.d.comb += self.i.ready.eq(~emits | ~self.o.valid | self.o.ready)

        pixel = self.i.payload.as_value()
        row_max = Signal(pixel_bits)  # maximum over the current group of kw pixels
        fresh_row_max = Signal(pixel_bits)
        m.d.comb += fresh_row_max.eq(Mux(starts_group, pixel, elementwise_max(row_max, pixel, enc)))

        if kh > 1:
            # Partial maxima over the window rows seen so far, one per output column.
            m.submodules.partial = partial = Memory(shape=unsigned(pixel_bits), depth=ow, init=[])
            write = partial.write_port()
            # Read one step ahead, at the next pixel's output column; transparency covers a
            # read of the word written in the same cycle (ow == 1).
            read = partial.read_port(transparent_for=(write,))
            window_max = Signal(pixel_bits)
            m.d.comb += window_max.eq(
                Mux(first_row, fresh_row_max, elementwise_max(read.data, fresh_row_max, enc))
            )
            m.d.comb += [
                read.addr.eq(next_group),
                read.en.eq(step),
                write.addr.eq(group),
                write.data.eq(window_max),
                write.en.eq(step & ends_window & ~last_row),
            ]
        else:
            window_max = fresh_row_max

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(step):
            m.d.sync += [row_max.eq(fresh_row_max), group.eq(next_group)]
            m.d.sync += x.eq(Mux(last_x, 0, x + 1))
            with m.If(last_x):
                m.d.sync += y.eq(Mux(y == h - 1, 0, y + 1))
            with m.If(emits):
                m.d.sync += [self.o.payload.eq(window_max), self.o.valid.eq(1)]
        return m

    def _elaborate_windowed(self):
        m = Module()
        m.submodules.window = window = SlidingWindow(
            encoding=self._encoding,
            height=self._height,
            width=self._width,
            channels=self._channels,
            kernel=self._kernel,
            stride=self._stride,
        )
        assert window.latency + 1 == self.latency
        assert window.initiation_interval == self.initiation_interval
        wiring.connect(m, wiring.flipped(self.i), window.i)
        kh, kw = self._kernel
        pixel_bits = self._encoding.width * self._channels
        flat = window.o.payload.as_value()
        pixels = [flat[k * pixel_bits : (k + 1) * pixel_bits] for k in range(kh * kw)]
        m.d.comb += window.o.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(window.o.valid & window.o.ready):
            m.d.sync += [
                self.o.payload.eq(_tree_max(m, pixels, self._encoding)),
                self.o.valid.eq(1),
            ]
        return m
