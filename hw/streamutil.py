"""Small stream helpers the compiler places between layer engines.

Dense layers pass one whole vector per transfer; convolution and pooling layers pass one pixel
(its ``c`` channel values) per transfer, in row-major ``(y, x)`` order, frame after frame.
:class:`VectorToPixels` and :class:`PixelsToVector` convert between the two, and
:class:`SkidBuffer` cuts the combinational ``ready`` path between two blocks.

Latency conventions, shared by every block in ``hw/``: ``latency`` is the number of cycles from
the clock cycle in which an input transfer happens (``valid`` and ``ready`` both high) to the
first cycle in which the output it completes is offered (``valid`` high), with no stalls;
``initiation_interval`` is the number of cycles between the starts of successive inputs
(vectors or frames) at full rate.
"""

from amaranth.hdl import Cat, Module, Mux, Shape, ShapeCastable, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.encoding import ValueEncoding

__all__ = ["SkidBuffer", "VectorToPixels", "PixelsToVector", "queue"]


# --- parameter checks shared by the blocks of hw/ ---------------------------------------------


def check_positive_int(value, what):
    """Return ``value`` if it is a positive ``int``, else raise with the project's message."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


def check_encoding(value, what="Encoding"):
    """Return ``value`` if it is a :class:`~hw.encoding.ValueEncoding`, else raise."""
    if not isinstance(value, ValueEncoding):
        raise TypeError(f"{what} must be a ValueEncoding, not {value!r}")
    return value


def check_shape(value, what="Shape"):
    """Return ``value`` as a shape if it is shape-like, else raise ``TypeError``."""
    if isinstance(value, ShapeCastable):
        return value
    try:
        return Shape.cast(value)
    except TypeError:
        raise TypeError(f"{what} must be a shape, not {value!r}") from None


# --- blocks ------------------------------------------------------------------------------------


class SkidBuffer(wiring.Component):
    """A register slice that registers ``payload``, ``valid`` *and* ``ready``.

    A plain pipeline register passes ``o.ready`` combinationally to ``i.ready``; a chain of such
    blocks makes one long path. The skid buffer holds one extra transfer so that ``i.ready`` is a
    register output, at full throughput.

    It is a two-entry queue: two payload registers written in turn while the queue is not full
    and read in turn through a multiplexer, with its write and read pointers and ``full`` and
    ``valid`` flags. ``o.ready`` reaches only the read pointer and the two flags, never the
    payload registers' enables: as a register and a skid register, whose enables both wait for
    ``o.ready``, the ready chain of digits-mlp's second layer ended in the enables of its
    40-bit slice (20.8 ns on an iCE40 UP5K, 14.9 of it routing). Its transfers are those of the
    register and skid register (``gen.compiler.cycles``).

    Parameters
    ----------
    shape : shape-like
        Payload shape of both streams.

    Members
    -------
    i : ``In(stream.Signature(shape))``
    o : ``Out(stream.Signature(shape))``
        Transfers leave in the order they came, none lost or duplicated.

    Attributes
    ----------
    latency : int
        1 cycle. ``initiation_interval`` is 1.
    """

    def __init__(self, shape):
        shape = check_shape(shape, "Payload shape")
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def latency(self):
        return 1

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        push = Signal()
        full = queue(m, self.i.payload, push, self.o, 2, load_while_free=True)
        m.d.comb += [self.i.ready.eq(~full), push.eq(self.i.valid & ~full)]
        return m


def _select(values, index):
    """``values[index]`` as a tree of 2:1 multiplexers on the bits of ``index``."""
    level = list(values)
    for bit in range(len(index)):
        level += level[-1:] * (len(level) % 2)
        level = [Mux(index[bit], level[j + 1], level[j]) for j in range(0, len(level), 2)]
    return level[0]


def queue(m, payload, push, o, capacity, *, load_while_free=False, name="entry"):
    """A queue of ``capacity`` entries in ``m`` that ``o`` (a stream's producer side) reads.

    ``payload`` enters at an edge with ``push`` high, which the caller raises only while the
    queue is not full, and leaves through ``o`` in order. Entries are written in turn at a
    write pointer and read in turn through a multiplexer at a read pointer; ``o.ready`` reaches
    only the read pointer and the flags, never an entry's enable. With ``load_while_free`` the
    entry at the write pointer loads ``payload`` at every edge the queue is not full (it is
    free), so its enable does not wait for ``push`` either. ``o.valid`` is a register.

    Returns ``full``, a register: every entry holds a transfer not yet taken.
    """
    width = len(Value.cast(payload))  # (a view's len() counts its elements)
    entries = [Signal(width, name=f"{name}_{k}") for k in range(capacity)]
    write = Signal(range(capacity), name=f"{name}_write")
    read = Signal(range(capacity), name=f"{name}_read")
    held = Signal(range(capacity + 1), name=f"{name}_held")
    full = Signal(name=f"{name}_full")
    pop = Signal(name=f"{name}_pop")
    m.d.comb += pop.eq(o.valid & o.ready)
    load = ~full if load_while_free else push
    with m.Switch(write):
        for k, entry in enumerate(entries):
            with m.Case(k):
                with m.If(load):
                    m.d.sync += entry.eq(payload)
    # A tree of 2:1 multiplexers (continuous assignments in Verilog): Icarus Verilog may never
    # evaluate a combinational case statement whose inputs keep their initial values, which left
    # a first result of 0 unresolved.
    m.d.comb += o.payload.eq(_select(entries, read))

    def following(pointer):
        return Mux(pointer == capacity - 1, 0, pointer + 1) if capacity > 1 else pointer

    with m.If(push):
        m.d.sync += write.eq(following(write))
    with m.If(pop):
        m.d.sync += read.eq(following(read))
    with m.If(push & ~pop):
        m.d.sync += [held.eq(held + 1), o.valid.eq(1), full.eq(held == capacity - 1)]
    with m.Elif(pop & ~push):
        m.d.sync += [held.eq(held - 1), o.valid.eq(held != 1), full.eq(0)]
    return full


class VectorToPixels(wiring.Component):
    """Serializer: one vector of ``pixels * channels`` values in, ``pixels`` transfers out.

    The vector is a flattened ``(y, x, c)`` image (row-major, channels last); pixel ``k`` is
    elements ``[k*channels, (k+1)*channels)`` and leaves as the ``k``-th transfer.

    Parameters
    ----------
    shape : shape-like
        Shape of one value, e.g. ``encoding.shape``.
    pixels : int
        Number of pixels per vector (``h * w``).
    channels : int
        Values per pixel (``c``).

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, pixels * channels)))``
    o : ``Out(stream.Signature(data.ArrayLayout(shape, channels)))``

    Attributes
    ----------
    latency : int
        1: the first pixel is offered the cycle after the vector's transfer.
    initiation_interval : int
        ``pixels``: the next vector is accepted in the cycle its predecessor's last pixel leaves.

    Raises
    ------
    TypeError, ValueError
        If ``pixels`` or ``channels`` is not a positive integer.
    """

    def __init__(self, *, shape, pixels, channels):
        shape = check_shape(shape, "Value shape")
        self._pixels = check_positive_int(pixels, "Pixel count")
        self._channels = check_positive_int(channels, "Channel count")
        self._shape = shape
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape, pixels * channels))),
                "o": Out(stream.Signature(data.ArrayLayout(shape, channels))),
            }
        )

    @property
    def latency(self):
        return 1

    @property
    def initiation_interval(self):
        return self._pixels

    def elaborate(self, platform):
        m = Module()
        pixel_bits = Shape.cast(data.ArrayLayout(self._shape, self._channels)).width
        # A shift register: the pixel on offer is always the lowest one, so no wide multiplexer.
        buffer = Signal(pixel_bits * self._pixels)
        count = Signal(range(self._pixels))
        busy = Signal()
        last = count == self._pixels - 1

        m.d.comb += [self.o.valid.eq(busy), self.o.payload.eq(buffer[:pixel_bits])]
        sent = self.o.valid & self.o.ready
        m.d.comb += self.i.ready.eq(~busy | (sent & last))
        with m.If(sent):
            m.d.sync += [buffer.eq(buffer >> pixel_bits), count.eq(count + 1)]
            with m.If(last):
                m.d.sync += [busy.eq(0), count.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buffer.eq(self.i.payload), busy.eq(1), count.eq(0)]
        return m


class PixelsToVector(wiring.Component):
    """Deserializer: ``pixels`` transfers of ``channels`` values in, one vector out.

    The inverse of :class:`VectorToPixels`: the ``k``-th pixel of a frame lands at elements
    ``[k*channels, (k+1)*channels)`` of the output vector.

    Parameters
    ----------
    shape : shape-like
        Shape of one value.
    pixels : int
        Number of pixels per vector.
    channels : int
        Values per pixel.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, channels)))``
    o : ``Out(stream.Signature(data.ArrayLayout(shape, pixels * channels)))``

    Attributes
    ----------
    latency : int
        1: the vector is offered the cycle after the transfer of its last pixel.
    initiation_interval : int
        ``pixels``; the first pixels of the next frame are accepted while the vector waits.

    Raises
    ------
    TypeError, ValueError
        If ``pixels`` or ``channels`` is not a positive integer.
    """

    def __init__(self, *, shape, pixels, channels):
        shape = check_shape(shape, "Value shape")
        self._pixels = check_positive_int(pixels, "Pixel count")
        self._channels = check_positive_int(channels, "Channel count")
        self._shape = shape
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape, channels))),
                "o": Out(stream.Signature(data.ArrayLayout(shape, pixels * channels))),
            }
        )

    @property
    def latency(self):
        return 1

    @property
    def initiation_interval(self):
        return self._pixels

    def elaborate(self, platform):
        m = Module()
        pixel_bits = Shape.cast(data.ArrayLayout(self._shape, self._channels)).width
        # Pixels shift in from the top, so after pixels-1 of them pixel 0 sits at the bottom;
        # the last one goes straight into the output register with them.
        partial = Signal(pixel_bits * (self._pixels - 1))
        count = Signal(range(self._pixels))
        last = count == self._pixels - 1

        m.d.comb += self.i.ready.eq(~last | ~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            pixel = self.i.payload.as_value()
            if self._pixels > 1:
                m.d.sync += partial.eq(Cat(partial[pixel_bits:], pixel))
            m.d.sync += count.eq(count + 1)
            with m.If(last):
                m.d.sync += [
                    self.o.payload.eq(Cat(partial, pixel)),
                    self.o.valid.eq(1),
                    count.eq(0),
                ]
        return m
