"""A narrow-pin wrapper, so that an accelerator with wide streams places on a real package.

A generated accelerator takes one whole input vector per transfer: its ``i`` payload is often
hundreds of bits wide, more than any package has pins. :class:`PinWrapper` puts a deserializer
in front of it and a serializer behind it, so that the outside world sees two narrow streams of
``pin_width`` bits (e.g. 8 data pins plus ``valid`` and ``ready`` each way).

Word order is little-endian, as in the accelerator contract's element packing: word ``k`` of a
transfer carries bits ``[k*pin_width, (k+1)*pin_width)`` of the wide payload; the last word is
padded with zeros on the way out and its spare bits are ignored on the way in.

The accelerator stays a separate module (a submodule named ``accelerator``), so synthesis
reports can tell the wrapper's logic from the accelerator's. For synthesis of an accelerator
that exists only as Verilog, :class:`VerilogAccelerator` stands for it as an instance of the
named module.
"""

from amaranth.hdl import Cat, ClockSignal, Instance, Module, ResetSignal, Shape, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.streamutil import SkidBuffer, VectorToPixels, check_positive_int

__all__ = ["PinWrapper", "VerilogAccelerator", "WordsToVector", "words_per_transfer"]


def words_per_transfer(width, pin_width):
    """The number of ``pin_width``-bit words that carry one ``width``-bit payload."""
    check_positive_int(width, "Payload width")
    check_positive_int(pin_width, "Pin width")
    return -(-width // pin_width)


def _stream_width(component, name):
    member = getattr(component, name, None)
    if not all(hasattr(member, field) for field in ("payload", "valid", "ready")):
        raise TypeError(
            f"Accelerator must be a component with stream interfaces 'i' and 'o', not {component!r}"
        )
    return Shape.cast(member.payload.shape()).width


class VerilogAccelerator(wiring.Component):
    """An accelerator given as Verilog: an instance of module ``module``, as a component.

    Elaborates to nothing but the instance, so that in the emitted Verilog the module appears
    once, under the name of the submodule that holds this component. Yosys then reads the
    accelerator's own Verilog beside the wrapper's.

    Parameters
    ----------
    module : str
        Name of the Verilog module (the metadata's ``top``).
    in_width, out_width : int
        Widths of the ``i`` and ``o`` payloads (the metadata's ``ports.*.width``).
    port_names : dict, optional
        Verilog port names, as in the metadata: ``{"clock": "clk", "reset": "rst", "i":
        {"payload": ..., "valid": ..., "ready": ...}, "o": {...}}``. The contract's names are
        the default.

    Members
    -------
    i : ``In(stream.Signature(in_width))``
    o : ``Out(stream.Signature(out_width))``

    Raises
    ------
    TypeError, ValueError
        If ``module`` is not a non-empty string or a width is not a positive integer.
    """

    def __init__(self, *, module, in_width, out_width, port_names=None):
        if not isinstance(module, str) or not module:
            raise TypeError(f"Module name must be a non-empty string, not {module!r}")
        check_positive_int(in_width, "Input width")
        check_positive_int(out_width, "Output width")
        names = {
            "clock": "clk",
            "reset": "rst",
            "i": {"payload": "i__payload", "valid": "i__valid", "ready": "i__ready"},
            "o": {"payload": "o__payload", "valid": "o__valid", "ready": "o__ready"},
        }
        names.update(port_names or {})
        self._module = module
        self._names = names
        super().__init__(
            {"i": In(stream.Signature(in_width)), "o": Out(stream.Signature(out_width))}
        )

    @property
    def module(self):
        return self._module

    def elaborate(self, platform):
        n = self._names
        return Instance(
            self._module,
            **{
                f"i_{n['clock']}": ClockSignal(),
                f"i_{n['reset']}": ResetSignal(),
                f"i_{n['i']['payload']}": self.i.payload,
                f"i_{n['i']['valid']}": self.i.valid,
                f"o_{n['i']['ready']}": self.i.ready,
                f"o_{n['o']['payload']}": self.o.payload,
                f"o_{n['o']['valid']}": self.o.valid,
                f"i_{n['o']['ready']}": self.o.ready,
            },
        )


class WordsToVector(wiring.Component):
    """Deserializer: ``words`` transfers of ``pin_width`` bits in, one vector out.

    Unlike :class:`hw.streamutil.PixelsToVector`, which fills a second buffer while the
    finished vector waits, the words shift straight into the register that holds the output:
    half the flip-flops, which matters at the pins of a small part whose input vector has
    hundreds of bits. ``i.ready`` comes from a register (no finished vector waiting), so the
    consumer's ``ready`` reaches none of the buffer's hundreds of clock enables; the price is a
    cycle between the finished vector leaving and the next word shifting in (:attr:`interval`).

    Parameters
    ----------
    width : int
        Bits of the output vector; the spare bits of the last word are dropped.
    pin_width : int
        Bits per input word.

    Members
    -------
    i : ``In(stream.Signature(pin_width))``
        Word ``k`` of a vector carries its bits ``[k*pin_width, (k+1)*pin_width)``.
    o : ``Out(stream.Signature(width))``

    Attributes
    ----------
    words : int
    latency : int
        1: the vector is offered the cycle after its last word's transfer.
    interval : int
        ``words + 1``: cycles per vector when both sides never stall.
    """

    def __init__(self, *, width, pin_width):
        self.words = words_per_transfer(width, pin_width)
        self._width, self._pin_width = width, pin_width
        super().__init__({"i": In(stream.Signature(pin_width)), "o": Out(stream.Signature(width))})

    @property
    def latency(self):
        return 1

    @property
    def interval(self):
        return self.words + 1

    def elaborate(self, platform):
        m = Module()
        word = self._pin_width
        buffer = Signal(self.words * word)
        count = Signal(range(self.words))
        last = count == self.words - 1
        m.d.comb += [
            self.o.payload.eq(buffer[: self._width]),
            self.i.ready.eq(~self.o.valid),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            if self.words > 1:
                m.d.sync += buffer.eq(Cat(buffer[word:], self.i.payload))
            else:
                m.d.sync += buffer.eq(self.i.payload)
            m.d.sync += count.eq(count + 1)
            with m.If(last):
                m.d.sync += [count.eq(0), self.o.valid.eq(1)]
        return m


class PinWrapper(wiring.Component):
    """Narrow streams on the pins, an accelerator with wide streams inside.

    A deserializer collects ``ceil(in_width / pin_width)`` words from ``i`` into one transfer
    on the accelerator's ``i``; a serializer sends each transfer of the accelerator's ``o`` as
    ``ceil(out_width / pin_width)`` words on ``o``. Skid buffers register both narrow streams
    at the pins. Every stream honours ``valid``/``ready`` at every word, so either side may
    stall at any time.

    Parameters
    ----------
    accelerator : wiring.Component
        A component with streams ``i`` (input) and ``o`` (output), e.g. a generated
        accelerator or a :class:`VerilogAccelerator`. It becomes the submodule
        ``accelerator``.
    pin_width : int
        Data pins of each narrow stream (default 8).

    Members
    -------
    i : ``In(stream.Signature(pin_width))``
        Input words, little-endian: the first word of a vector carries its lowest bits.
    o : ``Out(stream.Signature(pin_width))``
        Result words, little-endian; the last word's bits above the result are zero.

    Attributes
    ----------
    in_words, out_words : int
        Words per input vector and per result.
    pin_interval : int
        Cycles per inference that the pins allow when neither side stalls: ``in_words + 1``
        (:attr:`WordsToVector.interval`) or ``out_words``, whichever is more.
    latency : int
        Cycles the wrapper adds to the accelerator's own latency, from the transfer of a
        vector's last input word to the first result word being offered: one each for the
        input skid buffer, the deserializer, the serializer and the output skid buffer.

    Raises
    ------
    TypeError
        If ``accelerator`` has no ``i``/``o`` streams.
    TypeError, ValueError
        If ``pin_width`` is not a positive integer.
    """

    def __init__(self, accelerator, *, pin_width=8):
        self._in_width = _stream_width(accelerator, "i")
        self._out_width = _stream_width(accelerator, "o")
        check_positive_int(pin_width, "Pin width")
        self._accelerator = accelerator
        self._pin_width = pin_width
        self.in_words = words_per_transfer(self._in_width, pin_width)
        self.out_words = words_per_transfer(self._out_width, pin_width)
        super().__init__(
            {"i": In(stream.Signature(pin_width)), "o": Out(stream.Signature(pin_width))}
        )

    @property
    def pin_width(self):
        return self._pin_width

    @property
    def pin_interval(self):
        return max(self.in_words + 1, self.out_words)

    @property
    def latency(self):
        return 4

    def elaborate(self, platform):
        m = Module()
        word = unsigned(self._pin_width)
        # Skid buffers at the pins: every output pin (data, valid and ready) is a register
        # output, so that no combinational path runs from pin to pin through the accelerator.
        m.submodules.pins_in = pins_in = SkidBuffer(word)
        m.submodules.deserializer = des = WordsToVector(
            width=self._in_width, pin_width=self._pin_width
        )
        m.submodules.accelerator = acc = self._accelerator
        m.submodules.serializer = ser = VectorToPixels(
            shape=word, pixels=self.out_words, channels=1
        )
        m.submodules.pins_out = pins_out = SkidBuffer(word)

        wiring.connect(m, wiring.flipped(self.i), pins_in.i)
        wiring.connect(m, pins_out.o, wiring.flipped(self.o))
        # Payload widths differ (words of padding), so these streams are joined field by field.
        m.d.comb += [
            des.i.payload.eq(pins_in.o.payload),
            des.i.valid.eq(pins_in.o.valid),
            pins_in.o.ready.eq(des.i.ready),
            acc.i.payload.eq(des.o.payload),
            acc.i.valid.eq(des.o.valid),
            des.o.ready.eq(acc.i.ready),
            ser.i.payload.as_value().eq(acc.o.payload),
            ser.i.valid.eq(acc.o.valid),
            acc.o.ready.eq(ser.i.ready),
            pins_out.i.payload.eq(ser.o.payload.as_value()),
            pins_out.i.valid.eq(ser.o.valid),
            ser.o.ready.eq(pins_out.i.ready),
        ]
        return m
