"""Constant-weight dot products of a whole layer: every row of a ternary weight matrix at once.

``acc[j] = sum_i W[j, i] * x[i]`` with the weights known at generation time, so a product is
wiring: each input value is a signed sum of its bits (:func:`value_bits`), a weight of +1 adds
those bits, -1 adds them with the opposite sign, 0 adds nothing. Each row is then split as
``A - B + c``: ``A`` the heap of the bits that enter with a plus sign, ``B`` those that enter
with a minus sign. Both heaps are compressor trees of plain (non-inverted) bits on carry
chains (:mod:`hw.compressor`), and the only inversion is of the word ``B``, once per row.

For ternary inputs (``x = b0 - 2*b1``, two's complement) a row is thus ``popcount`` of bits in
two columns minus another, which is ``popcount(P) - popcount(N)`` of the (pos, neg) pair form
rewritten so that no bit needs a gate or an inverter. For binary inputs (``x = 2*b - 1``) a row
is ``2*(popcount of b where w = +1) - 2*(popcount of b where w = -1) + n_neg - n_pos``, the
XNOR-popcount identity ``2*popcount(XNOR(b, w)) - n`` without the XNOR. For ``uintN``/``intN``
inputs the default is the bit-plane form (each bit of ``x`` enters its column's heap, so a row
is ``sum_k 2**k * (popcount of plane k)``); ``form="words"`` keeps each input a word and builds a
signed adder tree of ``+x``/``-x`` instead. The bit-plane form is the default because it
measured about three times smaller (``bench/area_forms.py``, Yosys 0.23, a row of fan-in 64
with 42 nonzero weights and ``uint8`` inputs: 346 iCE40 LUT4s and 351 Xilinx LUTs as bit
planes, 1,014 and 1,016 as words): as words, the adders have no single bits to take as
carry-ins. Binary weights are ternary weights without zeros and need nothing else.

Sharing across rows (``share=True``, the default, for ternary and n-bit inputs): the layer is
one graph of shared word adders (:mod:`hw.addergraph`): sums of columns that several rows use
with the same relative signs are built once, level by level, and each row adds the shared sums
and columns it has left. Measured (``bench/area.py``, Yosys 0.23, a random ternary 64 -> 16
layer with 685 nonzero weights): 1,770 iCE40 LUT4s in 1,780 logic cells and 1,235 Xilinx LUTs
as a graph, against 2,128 LUT4s in 2,871 cells and 1,489 Xilinx LUTs as per-row compressor trees
(``share=False``); for the shipped digits-mlp's first layer (20 x 64, ``uint4`` inputs) 2,108
LUT4s in 2,202 cells and 1,508 Xilinx LUTs, against 2,328 LUT4s in 2,750 cells and 1,893 LUTs as
bit-plane compressor trees. A layer of one row, or of rows with little in common, is smaller as
compressor trees: :attr:`DotProduct.graph` picks by estimate. Binary inputs stay with compressor
trees: popcounts of single bits measured as small or smaller (a 64 -> 16 layer: 1,553 cells
against 1,591 as a graph; 24 -> 20: 661 against 740).
"""

import functools
import math

import numpy as np
from amaranth.hdl import Cat, Module, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.addergraph import Leaf, build_graph, graph_cost, plan_graph
from hw.compressor import BitHeap, build_sums, check_bit_adders, check_carry_in
from hw.encoding import ValueEncoding
from hw.pipeline import check_stages, pipeline_control, shape_for_range, tree_latency

__all__ = [
    "DotProduct",
    "digit_planes",
    "digit_matrix",
    "value_bits",
    "default_stages",
    "prefer_graph",
    "GRAPH_CELLS_PER_BIT",
    "HEAP_CELLS_PER_BIT",
]

# iCE40 logic cells (Yosys 0.23 synth_ice40, nextpnr-ice40 --pack-only; bench/area.py, random
# ternary layers) per adder result bit of a shared graph (hw.addergraph.graph_cost): 1.14 to 1.29
# from a row of fan-in 64 to a 256 -> 64 layer; and per input bit entering a per-row compressor
# tree: 1.75 to 1.82 for rows of fan-in 64 to 1024. DotProduct builds whichever is estimated
# smaller.
GRAPH_CELLS_PER_BIT = 1.2
HEAP_CELLS_PER_BIT = 1.8

_FORMS = ("bits", "words")


def prefer_graph(heap_bits, graph_bits):
    """Whether a shared adder graph of ``graph_bits`` adder result bits is estimated smaller than
    per-row compressor trees of ``heap_bits`` input bits (:data:`GRAPH_CELLS_PER_BIT`,
    :data:`HEAP_CELLS_PER_BIT`).

    The one rule both :attr:`DotProduct.graph` (with the planned graph's exact bits) and the
    compiler's resource model (with its estimate of them) decide by.
    """
    return GRAPH_CELLS_PER_BIT * graph_bits < HEAP_CELLS_PER_BIT * heap_bits


def default_stages(weights):
    """Pipeline stages of a layer's sums when none are chosen: a register per ~2 adder levels.

    A row of ``n`` nonzero weights sums in about ``log2(n + 1)`` adder levels (a shared adder
    graph in more: digits-mlp's first layer, 21 nonzero weights a row, is 7 adders deep, behind
    the inputs' negations); at least one stage, so that the layer's result is registered. With
    a register per ~3 levels, that layer's first stage (three carry chains and their routing,
    25.9 ns) held digits-mlp at 36.8 MHz on an iCE40 UP5K; per ~2, 46.6 MHz.
    """
    fan = max(1, int(np.count_nonzero(np.asarray(weights), axis=1).max()))
    return max(1, math.ceil(math.log2(fan + 1) / 2))


#: Largest weight magnitude a constant-weight layer takes (int8 and TTQ weights are far inside).
MAX_WEIGHT = 1 << 15


def digit_planes(weights):
    """Integer weights as signed-digit planes: ``[(exponent, D), ...]``, ``D`` in {-1, 0, +1}.

    ``weights == sum(2**exponent * D)`` exactly, each weight in its non-adjacent form (the
    canonical signed-digit form: no two adjacent nonzero digits, the fewest nonzero digits of
    any signed-digit form). Only planes with a nonzero digit are listed, lowest exponent first;
    a ternary matrix is its own single plane ``[(0, weights)]`` (also when it is all zeros).
    A weight of 3 is ``4 - 1``: two digits, so a row with a 3 adds one input twice, once
    shifted, instead of three times.
    """
    w = np.asarray(weights, dtype=np.int64)
    if np.all((w >= -1) & (w <= 1)):
        return [(0, w.astype(np.int64))]
    planes = []
    exponent = 0
    rest = w.copy()
    while np.any(rest):
        odd = (rest & 1) == 1
        # the digit is +1 or -1 so that what is left is divisible by 4: 2 - (rest mod 4)
        digit = np.where(odd, 2 - (rest & 3), 0)
        if np.any(digit):
            planes.append((exponent, digit.astype(np.int64)))
        rest = (rest - digit) >> 1
        exponent += 1
    return planes


def digit_matrix(weights):
    """The ternary matrix of :func:`digit_planes` side by side: ``(matrix, columns)``.

    Column ``k`` of ``matrix`` is digit plane ``e`` of input ``i`` for ``columns[k] == (i, e)``,
    so that ``weights @ x == matrix @ [2**e * x[i] for (i, e) in columns]``: an integer layer is
    a ternary layer over shifted copies of its inputs, which cost only wiring.
    """
    planes = digit_planes(weights)
    fan_in = np.asarray(weights).shape[1]
    matrix = np.concatenate([d for _, d in planes], axis=1)
    columns = [(i, e) for e, _ in planes for i in range(fan_in)]
    return matrix, columns


def value_bits(value, encoding):
    """The bits of ``value`` with their weights: ``(bits, constant)``.

    ``bits`` is a list of ``(bit, exponent, sign)``, ``sign`` +1 or -1, such that the value is
    ``sum(sign * 2**exponent * bit) + constant``.
    """
    kind, width = encoding.kind, encoding.width
    if kind == "binary":
        return [(value[0], 1, 1)], -1
    if kind == "uint":
        return [(value[k], k, 1) for k in range(width)], 0
    # ternary and int: two's complement
    bits = [(value[k], k, 1) for k in range(width - 1)]
    bits.append((value[width - 1], width - 1, -1))
    return bits, 0


class DotProduct(wiring.Component):
    """All rows of a constant-weight layer: ``acc[j] = sum_i weights[j, i] * x[i]``, exactly.

    Parameters
    ----------
    weights : array of int, shape (rows, fan_in)
        Fixed at generation time: ternary {-1, 0, +1}, or any integers of magnitude at most
        :data:`MAX_WEIGHT` (``intN`` and TTQ layers), which are summed as their signed-digit
        planes (:func:`digit_matrix`): each nonzero digit adds its input, shifted.
    encoding : ValueEncoding
        Encoding of the input values (ternary, binary, uintN, intN).
    stages : int
        Pipeline stages of the adder trees; see :attr:`latency`.
    form : str
        ``"bits"`` (bit-plane heaps, the default) or ``"words"`` (each n-bit input enters its
        row's tree as one word; the same as ``"bits"`` for ternary and binary inputs).
    share : bool
        Build the layer as one graph of shared word adders (:mod:`hw.addergraph`) where that is
        estimated smaller than a compressor tree per row (ignored for binary inputs).
    carry_in : str
        ``"constant"`` (default; fewest cells on iCE40) or ``"repeat"`` (fewest LUTs on 6-LUT
        fabrics) for per-row compressor trees; see :func:`hw.compressor.build_sums`. Both are
        exact.
    bit_adders : str
        ``"logic"`` (default; fewest iCE40 logic cells) or ``"carry"`` (fewest Yosys LUT4s on
        iCE40 and LUTs on Xilinx) for per-row compressor trees; see
        :func:`hw.compressor.build_sums`.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(encoding.shape, fan_in)))``
        One whole input vector per transfer.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(width), rows)))``
        Every row's accumulator per transfer, each sign-extended to the common ``width``
        (:attr:`acc_shape`); row ``j`` alone needs only ``shape_for_range(*row_ranges[j])``.

    Raises
    ------
    TypeError, ValueError
        For parameters of the wrong kind or value.
    """

    def __init__(
        self,
        weights,
        *,
        encoding,
        stages=0,
        form="bits",
        share=True,
        carry_in="constant",
        bit_adders="logic",
    ):
        if not isinstance(weights, (np.ndarray, list, tuple)):
            raise TypeError(f"Weights must be a 2-D array of integers, not {weights!r}")
        array = np.asarray(weights)
        if array.ndim != 2 or not (
            np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
        ):
            raise TypeError(f"Weights must be a 2-D array of integers, not {weights!r}")
        if array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(
                f"Weights must have at least one row and one column, not shape {array.shape}"
            )
        bad = np.abs(array.astype(np.int64)) > MAX_WEIGHT
        if np.any(bad):
            raise ValueError(
                f"Weights must be integers of magnitude at most {MAX_WEIGHT}, "
                f"not {int(array[bad].flat[0])}"
            )
        if not isinstance(encoding, ValueEncoding):
            raise TypeError(f"Encoding must be a ValueEncoding, not {encoding!r}")
        check_stages(stages)
        if form not in _FORMS:
            raise ValueError(f"Form must be one of {_FORMS}, not {form!r}")
        if not isinstance(share, bool):
            raise TypeError(f"Share must be a bool, not {share!r}")
        check_carry_in(carry_in)
        check_bit_adders(bit_adders)
        self._carry_in = carry_in
        self._bit_adders = bit_adders
        self._weights = array.astype(np.int64)
        self._weights.setflags(write=False)
        self._encoding = encoding
        self._stages = stages
        self._form = form
        self._share = share and encoding.kind != "binary"
        self._digits, self._columns = digit_matrix(self._weights)
        self._digits.setflags(write=False)
        lo, hi = encoding.min, encoding.max
        lows = np.minimum(self._weights * lo, self._weights * hi).sum(axis=1)
        highs = np.maximum(self._weights * lo, self._weights * hi).sum(axis=1)
        self._row_ranges = [(int(a), int(b)) for a, b in zip(lows, highs, strict=True)]
        low = min(r[0] for r in self._row_ranges)
        high = max(r[1] for r in self._row_ranges)
        width = max(shape_for_range(low, high).width, 1)
        if not shape_for_range(low, high).signed:
            width += 1
        # At least two bits, as ValueEncoding.for_range gives an int: a range of [-1, 0] fits a
        # signed(1), which no int element of a stream can carry.
        self._acc_shape = signed(max(width, 2))
        super().__init__(
            {
                "i": In(stream.Signature(encoding.layout(array.shape[1]))),
                "o": Out(stream.Signature(data.ArrayLayout(self._acc_shape, array.shape[0]))),
            }
        )

    @property
    def weights(self):
        """The weight matrix (read-only)."""
        return self._weights

    @property
    def rows(self):
        return self._weights.shape[0]

    @property
    def fan_in(self):
        return self._weights.shape[1]

    @property
    def encoding(self):
        return self._encoding

    @property
    def stages(self):
        return self._stages

    @property
    def latency(self):
        """Cycles from an accepted input to its result being valid on ``o``, without stalls."""
        return tree_latency(self._stages)

    @property
    def row_ranges(self):
        """Per row, ``(min, max)`` of its accumulator over all inputs of :attr:`encoding`."""
        return list(self._row_ranges)

    @property
    def acc_shape(self):
        """Shape of each accumulator on ``o``: the narrowest signed shape of every row's range."""
        return self._acc_shape

    @functools.cached_property
    def graph(self):
        """The layer's :class:`hw.addergraph.AdderGraph`, or None for per-row compressor trees.

        With ``share``, the graph is used where its estimated size is the smaller one
        (:func:`prefer_graph`): a layer of one row, or of rows with little in common, is
        smaller as per-row trees.
        """
        if not self._share:
            return None
        graph = plan_graph(self._digits)
        heap_bits = self._encoding.width * int(np.count_nonzero(self._digits))
        cost = graph_cost(graph, self._leaves([None] * self.fan_in))
        return graph if prefer_graph(heap_bits, cost) else None

    @property
    def digits(self):
        """The signed-digit matrix the sums are built from (:func:`digit_matrix`; read-only):
        the weights themselves for a ternary layer."""
        return self._digits

    def _leaves(self, x, m=None):
        """The graph's leaves, one per column of :attr:`digits`, for inputs ``x`` (Nones: ranges
        only, for planning). A shifted column's leaves are its input's, shifted: with ``m``
        each input's negation is built once, as a signal, whichever planes use it."""
        base = self._input_leaves(x)
        if all(e == 0 for _, e in self._columns):
            return base
        negations = {}

        def negated_value(i):
            leaf = base[i].negated
            if m is None or leaf.value is None:
                return leaf.value
            if i not in negations:
                sig = Signal(shape_for_range(leaf.lo, leaf.hi), name=f"x{i}_neg")
                m.d.comb += sig.eq(leaf.value)
                negations[i] = sig
            return negations[i]

        leaves = []
        for i, e in self._columns:
            if e == 0:
                leaves.append(base[i])
                continue
            leaf, neg = base[i], negated_value(i)
            shifted = None if leaf.value is None else leaf.value.shift_left(e)
            shifted_neg = None if neg is None else Value.cast(neg).shift_left(e)
            negated = Leaf(
                shifted_neg,
                leaf.negated.lo << e,
                leaf.negated.hi << e,
                zeros=e,
                depth=leaf.negated.depth,
            )
            leaves.append(Leaf(shifted, leaf.lo << e, leaf.hi << e, negated, zeros=e))
        return leaves

    def _input_leaves(self, x):
        lo, hi = self._encoding.min, self._encoding.max
        leaves = []
        for value in x:
            negated, depth = None, 0
            if self._encoding.kind != "ternary":
                depth = 1  # the negation is an adder
            if value is not None and self._encoding.kind == "ternary":
                # -x: +1 (0b01) <-> -1 (0b11), 0 stays: one LUT, shared by every use.
                negated = Cat(value[0], value[0] & ~value[1]).as_signed()
                value = value.as_signed()
            elif value is not None:
                # -x once per input (an adder), rather than a subtraction per use.
                negated = -value
            leaves.append(Leaf(value, lo, hi, Leaf(negated, -hi, -lo, depth=depth)))
        return leaves

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self._stages)
        x = [Value.cast(self.i.payload[k]) for k in range(self.fan_in)]
        sums = self._shared_sums(m, x, advance) if self.graph else self._row_sums(m, x, advance)
        for j, total in enumerate(sums):
            m.d.comb += self.o.payload[j].eq(total)
        return m

    def _shared_sums(self, m, x, advance):
        leaves = self._leaves(x, m)
        return build_graph(m, self.graph, leaves, stages=self._stages, enable=advance, name="acc")

    def _row_sums(self, m, x, advance):
        words = self._form == "words"
        heaps = []
        for j in range(self.rows):
            heap = BitHeap()
            minus = BitHeap()
            for c in np.flatnonzero(self._digits[j]).tolist():
                i, shift = self._columns[c]
                value, sign = x[i], int(self._digits[j, c])
                bits, constant = value_bits(value, self._encoding)
                heap.add_constant(sign * constant << shift)
                plus_bits = [(bit, e + shift) for bit, e, s in bits if s * sign > 0]
                minus_bits = [(bit, e + shift) for bit, e, s in bits if s * sign < 0]
                for target, chosen in ((heap, plus_bits), (minus, minus_bits)):
                    if words and len(chosen) > 1 and self._encoding.kind != "ternary":
                        low = chosen[0][1] - shift
                        # consecutive exponents from `low` (value_bits lists them so)
                        target.add_word(value[low : low + len(chosen)], shift=low + shift)
                    else:
                        for bit, e in chosen:
                            target.add_bit(bit, e)
            if minus.max > 0:
                heap.add_heap(minus, negate=True)
            heaps.append(heap)
        return build_sums(
            m,
            heaps,
            stages=self._stages,
            ranges=self._row_ranges,
            enable=advance,
            name="acc",
            carry_in=self._carry_in,
            bit_adders=self._bit_adders,
        )
