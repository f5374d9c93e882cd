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

Sharing across rows (``share=True``, ternary inputs): pairs of columns that several rows use
with the same relative sign are summed once, ``x[a] + s*x[b]`` in ``[-2, 2]`` (3 bits from 4,
one LUT4 per output bit), and every row using the pair takes its 3 bits instead of the 4 bits
of the two inputs. Pairs are chosen greedily, most used first, while a pair serves at least
:data:`SHARE_MIN_USES` rows. Measured (``bench/area.py``, Yosys 0.23, a 64 -> 16 layer with
685 nonzero weights): sharing takes iCE40 LUT4s from 1,752 to 1,687 (-4%) but Xilinx LUTs from
1,489 to 1,515 (+2%), where a pair's 4-input logic would otherwise fold into the adders' 6-LUTs;
so share on iCE40, and measure before sharing on 6-LUT fabrics. With 16 rows a pair serves few
rows; with more rows each serves more (about 12 on average in a random 64 x 256 layer).
"""

import numpy as np
from amaranth.hdl import Module, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.compressor import (
    BitHeap,
    build_sums,
    check_bit_adders,
    check_carry_in,
    check_stages,
    pipeline_control,
    shape_for_range,
    tree_latency,
)
from hw.encoding import ValueEncoding

__all__ = ["DotProduct", "value_bits", "share_pairs", "SHARE_MIN_USES"]

_FORMS = ("bits", "words")

# A shared pair costs 3 LUTs (one per output bit) and takes one bit out of each row using it,
# about 1.1 LUTs at the measured cost of a tree (bench/area.py); so it pays from about 3 rows on,
# and 4 leaves a margin. The threshold itself is an estimate; sharing on/off is measured.
SHARE_MIN_USES = 4


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


def share_pairs(weights, *, min_uses=SHARE_MIN_USES):
    """Greedy choice of column pairs shared across rows.

    Parameters
    ----------
    weights : array of int, shape (rows, fan_in), values in {-1, 0, +1}
    min_uses : int
        A pair is shared only while it serves at least this many rows.

    Returns
    -------
    pairs : list of (a, b, s)
        Pair ``p`` is ``x[a] + s * x[b]``, ``a < b``.
    terms : list of list of (kind, index, sign)
        Per row, what it adds: ``("x", i, sign)`` for ``sign * x[i]`` or ``("p", p, sign)`` for
        ``sign * pair[p]``; together exactly ``sum_i W[j, i] * x[i]``.
    """
    weights = np.asarray(weights).astype(np.int64)
    n_rows, fan_in = weights.shape
    terms = [[] for _ in range(n_rows)]
    pairs = []
    current = weights.copy()
    if n_rows >= min_uses and fan_in >= 2:
        pos = (current > 0).astype(np.int32)
        neg = (current < 0).astype(np.int32)
        # Rows using each column pair with the same sign, and with opposite signs.
        same = pos.T @ pos + neg.T @ neg
        opposite = pos.T @ neg + neg.T @ pos
        never = np.int32(-(1 << 30))
        np.fill_diagonal(same, never)
        np.fill_diagonal(opposite, never)
        while True:
            a_same = int(np.argmax(same))
            a_opp = int(np.argmax(opposite))
            best_same, best_opp = same.flat[a_same], opposite.flat[a_opp]
            if max(best_same, best_opp) < min_uses:
                break
            if best_same >= best_opp:
                a, b = divmod(a_same, fan_in)
                s = 1
            else:
                a, b = divmod(a_opp, fan_in)
                s = -1
            a, b = min(a, b), max(a, b)
            index = len(pairs)
            pairs.append((a, b, s))
            users = np.flatnonzero((current[:, a] != 0) & (current[:, b] == s * current[:, a]))
            for j in users.tolist():
                terms[j].append(("p", index, int(current[j, a])))
                for col in (a, b):
                    # The row stops using `col`: remove its pairs with the row's other columns.
                    like, unlike = (pos[j], neg[j]) if current[j, col] > 0 else (neg[j], pos[j])
                    same[col] -= like
                    same[:, col] -= like
                    opposite[col] -= unlike
                    opposite[:, col] -= unlike
                    current[j, col] = 0
                    pos[j, col] = neg[j, col] = 0
    for j in range(n_rows):
        for i in np.flatnonzero(current[j]).tolist():
            terms[j].append(("x", i, int(current[j, i])))
    return pairs, terms


class DotProduct(wiring.Component):
    """All rows of a constant-weight layer: ``acc[j] = sum_i weights[j, i] * x[i]``, exactly.

    Parameters
    ----------
    weights : array of int, shape (rows, fan_in)
        Values in {-1, 0, +1}, fixed at generation time.
    encoding : ValueEncoding
        Encoding of the input values (ternary, binary, uintN, intN).
    stages : int
        Pipeline stages of the adder trees; see :attr:`latency`.
    form : str
        ``"bits"`` (bit-plane heaps, the default) or ``"words"`` (each n-bit input enters its
        row's tree as one word; the same as ``"bits"`` for ternary and binary inputs).
    share : bool
        Share column pairs across rows (ternary inputs only; ignored otherwise).
    carry_in : str
        ``"constant"`` (default; fewest cells on iCE40) or ``"repeat"`` (fewest LUTs on 6-LUT
        fabrics); see :func:`hw.compressor.build_sums`. Both are exact.
    bit_adders : str
        ``"logic"`` (default; fewest iCE40 logic cells) or ``"carry"`` (fewest Yosys LUT4s on
        iCE40 and LUTs on Xilinx); see :func:`hw.compressor.build_sums`.

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
        bad = (array != -1) & (array != 0) & (array != 1)
        if np.any(bad):
            raise ValueError(f"Weights must be -1, 0 or +1, not {int(array[bad].flat[0])}")
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
        self._share = share and encoding.kind == "ternary"
        lo, hi = encoding.min, encoding.max
        pos = (self._weights > 0).sum(axis=1)
        neg = (self._weights < 0).sum(axis=1)
        self._row_ranges = [
            (int(p * lo - n * hi), int(p * hi - n * lo)) for p, n in zip(pos, neg, strict=True)
        ]
        low = min(r[0] for r in self._row_ranges)
        high = max(r[1] for r in self._row_ranges)
        width = max(shape_for_range(low, high).width, 1)
        if not shape_for_range(low, high).signed:
            width += 1
        self._acc_shape = signed(width)
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

    def _terms(self):
        if self._share:
            return share_pairs(self._weights)
        rows = [
            [("x", int(i), int(self._weights[j, i])) for i in np.flatnonzero(self._weights[j])]
            for j in range(self.rows)
        ]
        return [], rows

    def elaborate(self, platform):
        m = Module()
        x = [self.i.payload[k] for k in range(self.fan_in)]
        pairs, terms = self._terms()
        ternary = ValueEncoding.ternary()
        pair_values = []
        for n, (a, b, s) in enumerate(pairs):
            # A 4-input function per output bit: LUT logic, not an adder.
            value = Signal(signed(3), name=f"pair_{n}")
            with m.Switch(Value.cast(x[a])[:2]):
                for va in (-1, 0, 1):
                    with m.Case(int(ternary.encode([va])[0])):
                        with m.Switch(Value.cast(x[b])[:2]):
                            for vb in (-1, 0, 1):
                                with m.Case(int(ternary.encode([vb])[0])):
                                    m.d.comb += value.eq(va + s * vb)
            pair_values.append(value)
        pair_encoding = ValueEncoding.int(3)
        words = self._form == "words"
        heaps = []
        for j in range(self.rows):
            heap = BitHeap()
            minus = BitHeap()
            for kind, index, sign in terms[j]:
                if kind == "x":
                    value, encoding = x[index], self._encoding
                else:
                    value, encoding = pair_values[index], pair_encoding
                bits, constant = value_bits(Value.cast(value), encoding)
                heap.add_constant(sign * constant)
                plus_bits = [(bit, e) for bit, e, s in bits if s * sign > 0]
                minus_bits = [(bit, e) for bit, e, s in bits if s * sign < 0]
                for target, chosen in ((heap, plus_bits), (minus, minus_bits)):
                    if words and len(chosen) > 1 and encoding.kind != "ternary":
                        shift = chosen[0][1]
                        # consecutive exponents from `shift` (value_bits lists them so)
                        target.add_word(Value.cast(value)[shift : shift + len(chosen)], shift=shift)
                    else:
                        for bit, e in chosen:
                            target.add_bit(bit, e)
            if minus.max > 0:
                heap.add_heap(minus, negate=True)
            heaps.append(heap)
        advance = pipeline_control(m, self.i, self.o, self._stages)
        sums = build_sums(
            m,
            heaps,
            stages=self._stages,
            ranges=self._row_ranges,
            enable=advance,
            name="acc",
            carry_in=self._carry_in,
            bit_adders=self._bit_adders,
        )
        for j, total in enumerate(sums):
            m.d.comb += self.o.payload[j].eq(total)
        return m
