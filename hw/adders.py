"""Stream blocks around one compressor tree: a popcount and an adder tree of operands."""

from amaranth.hdl import Module, Shape, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.compressor import BitHeap, build_sums, check_bit_adders, check_carry_in
from hw.pipeline import check_stages, pipeline_control, shape_for_range, tree_latency

__all__ = ["Popcount", "AdderTree"]


class Popcount(wiring.Component):
    """The number of set bits of the input, optionally weighted, as a pipelined stream block.

    Parameters
    ----------
    fan_in : int
        Number of input bits.
    weights : list of int, optional
        Bit ``k`` counts ``2**weights[k]`` (a heap of weighted bit columns); default all 0.
    stages : int
        Pipeline stages (see :attr:`latency`).
    carry_in : str
        ``"constant"`` or ``"repeat"``, see :func:`build_sums`.
    bit_adders : str
        ``"logic"`` or ``"carry"``, see :func:`build_sums`.

    Members
    -------
    i : ``In(stream.Signature(unsigned(fan_in)))``
    o : ``Out(stream.Signature(shape))``, ``shape`` the narrowest unsigned shape of the sum.
    """

    def __init__(self, fan_in, *, weights=None, stages=0, carry_in="constant", bit_adders="logic"):
        if not isinstance(fan_in, int) or isinstance(fan_in, bool):
            raise TypeError(f"Fan-in must be a positive integer, not {fan_in!r}")
        if fan_in < 1:
            raise ValueError(f"Fan-in must be a positive integer, not {fan_in!r}")
        if weights is None:
            weights = [0] * fan_in
        weights = list(weights)
        if len(weights) != fan_in or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in weights
        ):
            raise ValueError(f"Weights must be {fan_in} non-negative integers, not {weights!r}")
        check_stages(stages)
        check_carry_in(carry_in)
        check_bit_adders(bit_adders)
        self._carry_in = carry_in
        self._bit_adders = bit_adders
        self._fan_in = fan_in
        self._weights = weights
        self._stages = stages
        top = sum(1 << w for w in weights)
        self._shape = shape_for_range(0, top)
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(fan_in))),
                "o": Out(stream.Signature(self._shape)),
            }
        )

    @property
    def fan_in(self):
        return self._fan_in

    @property
    def stages(self):
        return self._stages

    @property
    def latency(self):
        """Cycles from an accepted input to its result on ``o``, without stalls."""
        return tree_latency(self._stages)

    @property
    def range(self):
        return (0, sum(1 << w for w in self._weights))

    def elaborate(self, platform):
        m = Module()
        heap = BitHeap()
        for k, w in enumerate(self._weights):
            heap.add_bit(self.i.payload[k], w)
        advance = pipeline_control(m, self.i, self.o, self._stages)
        (total,) = build_sums(
            m,
            [heap],
            stages=self._stages,
            enable=advance,
            name="pop",
            carry_in=self._carry_in,
            bit_adders=self._bit_adders,
        )
        m.d.comb += self.o.payload.eq(total)
        return m


class AdderTree(wiring.Component):
    """The exact sum of ``count`` operands, each added or subtracted, as a stream block.

    Parameters
    ----------
    shape : Shape
        Shape of every operand (signed or unsigned).
    count : int
        Number of operands.
    signs : list of int, optional
        ``+1`` to add operand ``k``, ``-1`` to subtract it, ``0`` to ignore it; default all +1.
    stages : int
        Pipeline stages (see :attr:`latency`).
    split : bool
        Enter the operands bit by bit (bit-plane form) instead of as words.
    carry_in : str
        ``"constant"`` or ``"repeat"``, see :func:`build_sums`.
    bit_adders : str
        ``"logic"`` or ``"carry"``, see :func:`build_sums`.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, count)))``
    o : ``Out(stream.Signature(out_shape))``, the narrowest shape of the sum's range.
    """

    def __init__(
        self,
        shape,
        count,
        *,
        signs=None,
        stages=0,
        split=False,
        carry_in="constant",
        bit_adders="logic",
    ):
        try:
            shape = Shape.cast(shape)
        except TypeError:
            raise TypeError(f"Shape must be a shape, not {shape!r}") from None
        if not isinstance(count, int) or isinstance(count, bool):
            raise TypeError(f"Count must be a positive integer, not {count!r}")
        if count < 1:
            raise ValueError(f"Count must be a positive integer, not {count!r}")
        if signs is None:
            signs = [1] * count
        signs = [int(s) if s in (-1, 0, 1) else s for s in signs]
        if len(signs) != count or any(s not in (-1, 0, 1) for s in signs):
            raise ValueError(f"Signs must be {count} values in (-1, 0, 1), not {signs!r}")
        check_stages(stages)
        check_carry_in(carry_in)
        check_bit_adders(bit_adders)
        self._carry_in = carry_in
        self._bit_adders = bit_adders
        self._shape_in = shape
        self._count = count
        self._signs = signs
        self._stages = stages
        self._split = bool(split)
        if shape.signed:
            lo, hi = -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
        else:
            lo, hi = 0, (1 << shape.width) - 1
        self._range = (
            sum(min(s * lo, s * hi) for s in signs),
            sum(max(s * lo, s * hi) for s in signs),
        )
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape, count))),
                "o": Out(stream.Signature(shape_for_range(*self._range))),
            }
        )

    @property
    def stages(self):
        return self._stages

    @property
    def latency(self):
        """Cycles from an accepted input to its result on ``o``, without stalls."""
        return tree_latency(self._stages)

    @property
    def range(self):
        """``(min, max)`` of the sum over all operand values."""
        return self._range

    def elaborate(self, platform):
        m = Module()
        heap = BitHeap()
        for k, s in enumerate(self._signs):
            if s:
                heap.add_operand(self.i.payload[k], negate=s < 0, split=self._split)
        advance = pipeline_control(m, self.i, self.o, self._stages)
        (total,) = build_sums(
            m,
            [heap],
            stages=self._stages,
            ranges=[self._range],
            enable=advance,
            name="add",
            carry_in=self._carry_in,
            bit_adders=self._bit_adders,
        )
        m.d.comb += self.o.payload.eq(total)
        return m
