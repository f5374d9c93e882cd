"""Sliding window: a pixel stream in, one convolution window per output position out.

The unit scans the padded image in row-major order, one position per cycle: a real pixel is
taken from the input stream, a padding position inserts the pad value without consuming input.
Line buffers (one ``lib.memory.Memory`` whose word holds a column of the ``kh - 1`` previous
rows) and a ``kh x kw`` window register turn that scan into windows; a window leaves when the
scan reaches its bottom-right position.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.streamutil import check_encoding, check_positive_int

__all__ = ["SlidingWindow", "check_pair", "conv_output_shape"]


def check_pair(value, what, *, minimum=1):
    """``value`` (an int or a pair of ints, each ``>= minimum``) as a pair ``(y, x)``."""
    kind = "positive" if minimum == 1 else "non-negative"
    message = f"{what} must be a {kind} integer or a pair of them, not {value!r}"
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(message)
    if any(v < minimum for v in items):
        raise ValueError(message)
    return tuple(items)


def conv_output_shape(height, width, kernel, stride, padding):
    """``(oh, ow)`` of a window scan; ``kernel``, ``stride``, ``padding`` are pairs."""
    return tuple(
        (size + 2 * pad - k) // s + 1
        for size, k, s, pad in zip((height, width), kernel, stride, padding, strict=True)
    )


class SlidingWindow(wiring.Component):
    """Convolution windows over a stream of pixels.

    Parameters
    ----------
    encoding : ValueEncoding
        Encoding of the pixel values.
    height, width, channels : int
        Image size ``h x w x c``; pixels arrive row-major, ``h * w`` per frame, frame after frame.
    kernel : int or (int, int)
        Window size ``(kh, kw)``.
    stride : int or (int, int)
        Step between windows, ``(sy, sx)``; default 1.
    padding : int or (int, int)
        Rows (``py``) above and below, columns (``px``) left and right; default 0.
    pad_value : int
        The value padding inserts into every channel; must be a valid value of ``encoding``
        when there is padding (so -1 or +1 for ``binary``). Default 0.

    Members
    -------
    i : ``In(stream.Signature(encoding.layout(channels)))``
        One pixel per transfer.
    o : ``Out(stream.Signature(encoding.layout(kh * kw * channels)))``
        One window per transfer, output positions in row-major order; element
        ``(ky * kw + kx) * channels + ch`` is channel ``ch`` of the padded image's pixel
        ``(oy * sy + ky, ox * sx + kx)`` (the ``ky, kx, c`` order of a conv2d weight row).

    Attributes
    ----------
    output_shape : (int, int)
        ``(oh, ow)``, ``oh = (h + 2 py - kh) // sy + 1`` and likewise ``ow``.
    window_size : int
        ``kh * kw * channels``, the length of an output vector.
    scan_shape : (int, int)
        Positions scanned per frame: all real pixels, leading padding, and trailing padding up to
        the last window (trailing rows/columns no window uses are still read, never emitted).
    initiation_interval : int
        ``scan_shape[0] * scan_shape[1]``: cycles per frame at full rate. The scan moves one
        position per cycle; a real position waits for its pixel, a padding position waits for
        nothing once the frame has started (its first pixel offered on ``i``).
    latency : int
        1: a window is offered the cycle after the scan step at its bottom-right position (for a
        real pixel, the cycle after that pixel's transfer).

    Raises
    ------
    TypeError, ValueError
        For malformed parameters, a pad value not of ``encoding``, or a kernel larger than the
        padded image.
    """

    def __init__(
        self, *, encoding, height, width, channels, kernel, stride=1, padding=0, pad_value=0
    ):
        self._encoding = check_encoding(encoding)
        self._height = check_positive_int(height, "Height")
        self._width = check_positive_int(width, "Width")
        self._channels = check_positive_int(channels, "Channel count")
        self._kernel = check_pair(kernel, "Kernel")
        self._stride = check_pair(stride, "Stride")
        self._padding = check_pair(padding, "Padding", minimum=0)
        if not isinstance(pad_value, int) or isinstance(pad_value, bool):
            raise TypeError(f"Pad value must be an integer, not {pad_value!r}")
        if any(self._padding):
            try:
                encoding.check([pad_value])
            except ValueError:
                raise ValueError(
                    f"Pad value must be a valid {encoding.name} value, not {pad_value!r}"
                ) from None
        self._pad_value = pad_value
        padded = (height + 2 * self._padding[0], width + 2 * self._padding[1])
        if self._kernel[0] > padded[0] or self._kernel[1] > padded[1]:
            raise ValueError(f"Kernel {self._kernel} is larger than the padded image {padded}")
        super().__init__(
            {
                "i": In(stream.Signature(encoding.layout(channels))),
                "o": Out(stream.Signature(encoding.layout(self.window_size))),
            }
        )

    # --- properties -----------------------------------------------------------------------------
    @property
    def output_shape(self):
        return conv_output_shape(
            self._height, self._width, self._kernel, self._stride, self._padding
        )

    @property
    def window_size(self):
        return self._kernel[0] * self._kernel[1] * self._channels

    @property
    def scan_shape(self):
        return tuple(
            max(pad + size, (out - 1) * s + k)
            for size, k, s, pad, out in zip(
                (self._height, self._width),
                self._kernel,
                self._stride,
                self._padding,
                self.output_shape,
                strict=True,
            )
        )

    @property
    def initiation_interval(self):
        rows, cols = self.scan_shape
        return rows * cols

    @property
    def latency(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        kh, kw = self._kernel
        sy, sx = self._stride
        pad_y, pad_x = self._padding
        scan_rows, scan_cols = self.scan_shape
        out_rows, out_cols = self.output_shape
        pixel_bits = self._encoding.width * self._channels

        row = Signal(range(scan_rows))
        col = Signal(range(scan_cols))
        last_col = col == scan_cols - 1
        next_col = Mux(last_col, 0, col + 1)

        # Padding positions: comparisons only on the sides that have padding in the scan.
        at_padding = Const(0, 1)
        sides = ((row, pad_y, self._height, scan_rows), (col, pad_x, self._width, scan_cols))
        for position, pad, size, scan in sides:
            if pad:
                at_padding = at_padding | (position < pad)
            if pad + size < scan:
                at_padding = at_padding | (position >= pad + size)

        # Which scan rows / columns end a window: constant bit tables indexed by the counters.
        row_table = sum(1 << (kh - 1 + sy * oy) for oy in range(out_rows))
        col_table = sum(1 << (kw - 1 + sx * ox) for ox in range(out_cols))
        row_ends = Const(row_table, scan_rows).bit_select(row, 1)
        col_ends = Const(col_table, scan_cols).bit_select(col, 1)
        ends_window = row_ends & col_ends

        # The window register is the output payload, so the scan may only move when the output
        # is free or being taken this cycle.
        advance = ~self.o.valid | self.o.ready
        # A frame's scan starts once its first pixel is offered, so no window (not even one of
        # padding only) leaves before its frame has begun to arrive; after that, padding
        # positions do not wait for input.
        started = Signal()
        step = Signal()
        m.d.comb += [
            step.eq(advance & (self.i.valid | (at_padding & started))),
            self.i.ready.eq(advance & ~at_padding),
        ]
        pad_pixel = Const(0, pixel_bits)
        if any(self._padding):
            pad_pixel = Const(self._encoding.pack([self._pad_value] * self._channels), pixel_bits)
        pixel = Mux(at_padding, pad_pixel, self.i.payload.as_value())

        # Column of the window at this scan column: kh-1 rows from the line buffer, then pixel.
        if kh > 1:
            m.submodules.line_buffer = line_buffer = Memory(
                shape=unsigned((kh - 1) * pixel_bits), depth=scan_cols, init=[]
            )
            write = line_buffer.write_port()
            # Reads run one step ahead (the next column); transparency covers scan_cols == 1.
            read = line_buffer.read_port(transparent_for=(write,))
            m.d.comb += [
                read.addr.eq(next_col),
                read.en.eq(step),
                write.addr.eq(col),
                write.data.eq(Cat(read.data[pixel_bits:], pixel)),
                write.en.eq(step),
            ]
            older = [read.data[r * pixel_bits : (r + 1) * pixel_bits] for r in range(kh - 1)]
        else:
            older = []
        column = older + [pixel]

        window = Signal(kh * kw * pixel_bits)

        def cell(ky, kx):
            start = (ky * kw + kx) * pixel_bits
            return window[start : start + pixel_bits]

        m.d.comb += self.o.payload.eq(window)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(step):
            m.d.sync += self.o.valid.eq(ends_window)
            for ky in range(kh):
                for kx in range(kw - 1):
                    m.d.sync += cell(ky, kx).eq(cell(ky, kx + 1))
                m.d.sync += cell(ky, kw - 1).eq(column[ky])
            m.d.sync += [col.eq(next_col), started.eq(1)]
            with m.If(last_col):
                m.d.sync += row.eq(Mux(row == scan_rows - 1, 0, row + 1))
                with m.If(row == scan_rows - 1):
                    m.d.sync += started.eq(0)
        return m
