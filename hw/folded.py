"""Folded matrix-vector engine: a dense layer computed ``pe`` rows by ``simd`` columns per cycle.

This is the matrix-vector-activation unit of FINN: weights live in a ROM, one word per cycle
holding a ``pe x simd`` tile; each of the ``pe`` processing elements accumulates its row over
``cols / simd`` cycles, and the ``rows / pe`` row groups ("row folds") follow one another. The
input vector is buffered once and reused by every row fold; a second buffer accepts the next
vector while the current one is being computed, so a new vector starts every
``(rows / pe) * (cols / simd)`` cycles.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.encoding import ValueEncoding, ternary_split
from hw.streamutil import check_encoding, check_positive_int
from hw.threshold import check_levels, check_thresholds, levels_encoding, threshold_level

__all__ = ["FoldedMatrixVector", "adder_tree", "weight_range_of_rows"]

_WEIGHT_TYPES = ("ternary", "binary")


def check_weights(weights, weight_type):
    """Return ``weights`` as a 2-D int64 array, or raise if a value is not of ``weight_type``."""
    array = np.asarray(weights)
    if array.dtype.kind not in "iu" or array.ndim != 2 or 0 in array.shape:
        raise TypeError(f"Weights must be a non-empty 2-D array of integers, not {weights!r}")
    array = array.astype(np.int64)
    allowed = (-1, 0, 1) if weight_type == "ternary" else (-1, 1)
    bad = ~np.isin(array, allowed)
    if np.any(bad):
        names = "-1, 0 or +1" if weight_type == "ternary" else "-1 or +1"
        raise ValueError(
            f"{weight_type.capitalize()} weights must be {names}, not {int(array[bad][0])}"
        )
    return array


def weight_range_of_rows(weights, encoding):
    """Per-row ``(lo, hi)`` of ``weights @ x`` over every ``x`` in ``encoding``: two arrays.

    Every term's range contains 0 (all encodings here span 0), so every partial sum of a row
    lies within the row's range too: an accumulator sized for the range never overflows while
    it accumulates.
    """
    weights = np.asarray(weights, dtype=np.int64)
    lo_terms = np.minimum(weights * encoding.min, weights * encoding.max)
    hi_terms = np.maximum(weights * encoding.min, weights * encoding.max)
    return lo_terms.sum(axis=1), hi_terms.sum(axis=1)


def adder_tree(m, terms, *, name="sum"):
    """Sum of signed ``terms`` as a balanced tree of two-input additions, combinational.

    PROVISIONAL: the SIMD-wide sum of :class:`FoldedMatrixVector` goes through this function
    (via :meth:`FoldedMatrixVector.simd_sum`) until it is switched to ``hw.compressor``'s
    compressor trees. Amaranth widens each addition by a bit, so no partial sum overflows. Each
    level is a signal, so that the simulator does not copy signed operands into every use.
    """
    terms = list(terms)
    if not terms:
        return Const(0, signed(1))
    level = 0
    while len(terms) > 1:
        paired = []
        for k, (a, b) in enumerate(zip(terms[0::2], terms[1::2], strict=False)):
            total = a + b
            node = Signal(total.shape(), name=f"{name}_l{level}_{k}")
            m.d.comb += node.eq(total)
            paired.append(node)
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
        level += 1
    return terms[0]


def _operand(m, value, kind, name):
    """Split one operand once, into what the products need, as signals.

    Ternary and binary operands become their ``(pos, neg)`` pair; an ``n``-bit input becomes
    ``(x, -x)``. Signals, because each operand feeds ``pe`` (or ``simd``) products.
    """
    if kind == "ternary":
        pos, neg = ternary_split(value)
    elif kind == "binary":
        pos, neg = value[0], ~value[0]
    else:
        pos, neg = value, -value
    pos_signal = Signal(pos.shape(), name=f"{name}_pos")
    neg_signal = Signal(neg.shape(), name=f"{name}_neg")
    m.d.comb += [pos_signal.eq(pos), neg_signal.eq(neg)]
    return pos_signal, neg_signal


def _product(x, w, input_kind, weight_type):
    """Signed value of ``x * w`` from the operands' :func:`_operand` splits."""
    (xp, xn), (wp, wn) = x, w
    if input_kind == "binary" and weight_type == "binary":
        # +1 where the bits agree (XNOR), -1 where they differ
        return Cat(Const(1, 1), xp ^ wp).as_signed()
    if input_kind in ("ternary", "binary"):
        # a ternary product, from the operands' (pos, neg) pairs
        pos = (xp & wp) | (xn & wn)
        neg = (xp & wn) | (xn & wp)
        return Cat(pos | neg, neg).as_signed()
    if weight_type == "ternary":
        return Mux(wn, xn, Mux(wp, xp, 0))
    return Mux(wp, xp, xn)


def _pack(values, width):
    """One integer holding ``values`` (two's complement, ``width`` bits each, element 0 lowest)."""
    word = 0
    mask = (1 << width) - 1
    for k, value in enumerate(values):
        word |= (int(value) & mask) << (k * width)
    return word


class FoldedMatrixVector(wiring.Component):
    """Matrix-vector product with weights in ROM, ``pe`` rows x ``simd`` columns per cycle.

    Computes ``acc = weights @ x`` exactly (integers, no overflow possible) and, if ``levels``
    and ``thresholds`` are given, the threshold activation of each row (:mod:`hw.threshold`).

    Parameters
    ----------
    weights : array-like of int, shape ``(rows, cols)``
        The layer's weights: -1, 0, +1 (ternary) or -1, +1 (binary).
    input_encoding : ValueEncoding
        Encoding of the input values (``ternary``, ``binary``, ``uintN``, ``intN``).
    pe : int
        Rows computed in parallel; must divide ``rows``.
    simd : int
        Columns consumed per cycle; must divide ``cols``.
    weight_type : str
        ``"ternary"`` (2 ROM bits per weight) or ``"binary"`` (1 bit: 1 = +1, 0 = -1).
    levels : sequence of int, optional
        Output levels of the activation; with ``None`` (and ``thresholds`` ``None``) the outputs
        are the raw accumulators.
    thresholds : array-like of int, shape ``(rows, len(levels) - 1)``, optional
        Ascending thresholds per row.

    Members
    -------
    i : ``In(stream.Signature(input_encoding.layout(cols)))``
        One whole input vector per transfer.
    o : ``Out(stream.Signature(output_encoding.layout(rows)))``
        One whole output vector per transfer, element ``j`` from row ``j``.

    Attributes
    ----------
    output_encoding : ValueEncoding
        With an activation, :func:`hw.threshold.levels_encoding` of ``levels``; without, the
        narrowest ``uintN``/``intN`` holding ``acc_range``.
    acc_range : tuple of int
        ``(lo, hi)``: the extreme accumulator values over all rows and all inputs.
    acc_shape : Shape
        Shape of the accumulators (of the outputs, without an activation).
    fold : tuple of int
        ``(rows // pe, cols // simd)``: row folds and column folds.
    initiation_interval : int
        ``rows // pe * cols // simd`` cycles between the starts of successive vectors.
    latency : int
        ``initiation_interval + 3`` cycles from an input transfer (into an idle engine) to its
        output's ``valid``.
    weight_rom_bits, threshold_rom_bits, rom_bits : int
        ROM sizes (resource hint). Thresholds are constants, not ROM, when ``pe == rows``.

    Raises
    ------
    TypeError, ValueError
        For malformed parameters, and if ``pe`` does not divide the rows or ``simd`` the columns.
    """

    def __init__(
        self,
        *,
        weights,
        input_encoding,
        pe,
        simd,
        weight_type="ternary",
        levels=None,
        thresholds=None,
    ):
        if weight_type not in _WEIGHT_TYPES:
            raise ValueError(f"Weight type must be 'ternary' or 'binary', not {weight_type!r}")
        self._weights = check_weights(weights, weight_type)
        self._weight_type = weight_type
        self._input_encoding = check_encoding(input_encoding, "Input encoding")
        self._pe = check_positive_int(pe, "PE")
        self._simd = check_positive_int(simd, "SIMD")
        rows, cols = self._weights.shape
        if rows % pe:
            raise ValueError(f"PE ({pe}) must divide the number of rows ({rows})")
        if cols % simd:
            raise ValueError(f"SIMD ({simd}) must divide the number of columns ({cols})")
        if (levels is None) != (thresholds is None):
            raise ValueError("Levels and thresholds must be given together, or neither")

        row_lo, row_hi = weight_range_of_rows(self._weights, self._input_encoding)
        self._acc_range = (int(row_lo.min()), int(row_hi.max()))
        acc_encoding = ValueEncoding.for_range(*self._acc_range)
        self._acc_shape = acc_encoding.shape

        if levels is None:
            self._levels = None
            self._thresholds = None
            self._output_encoding = acc_encoding
        else:
            self._levels = check_levels(levels)
            thresholds = check_thresholds(thresholds, self._levels)
            if thresholds.shape[0] != rows:
                raise ValueError(
                    f"Thresholds must have one row per weight row ({rows}), "
                    f"not {thresholds.shape[0]}"
                )
            # Beyond the reachable range a threshold is always or never met; clamping it to
            # [lo, hi + 1] keeps that meaning and bounds the ROM width.
            lo, hi = self._acc_range
            self._thresholds = np.clip(thresholds, lo, hi + 1)
            self._output_encoding = levels_encoding(self._levels)

        super().__init__(
            {
                "i": In(stream.Signature(self._input_encoding.layout(cols))),
                "o": Out(stream.Signature(self._output_encoding.layout(rows))),
            }
        )

    # --- properties -----------------------------------------------------------------------------
    @property
    def output_encoding(self):
        return self._output_encoding

    @property
    def acc_range(self):
        return self._acc_range

    @property
    def acc_shape(self):
        return self._acc_shape

    @property
    def fold(self):
        rows, cols = self._weights.shape
        return rows // self._pe, cols // self._simd

    @property
    def initiation_interval(self):
        row_folds, col_folds = self.fold
        return row_folds * col_folds

    @property
    def latency(self):
        # issue cycles + ROM read + accumulate + output register
        return self.initiation_interval + 3

    @property
    def weight_rom_bits(self):
        return self._weights.size * (2 if self._weight_type == "ternary" else 1)

    @property
    def _threshold_shape(self):
        return ValueEncoding.for_range(self._thresholds.min(), self._thresholds.max()).shape

    @property
    def threshold_rom_bits(self):
        if self._thresholds is None or self.fold[0] == 1:
            return 0
        return self._thresholds.size * self._threshold_shape.width

    @property
    def rom_bits(self):
        return self.weight_rom_bits + self.threshold_rom_bits

    # --- the hook for the SIMD-wide sum ---------------------------------------------------------
    def simd_sum(self, m, terms, *, name):
        """Sum of one processing element's ``simd`` products, combinational (override point).

        ``terms`` are signed signals (ternary products are ``signed(2)``); the result must be
        their exact sum, at least as wide as that needs. PROVISIONAL: a plain
        :func:`adder_tree`; to be switched to ``hw.compressor``'s compressor trees.
        """
        return adder_tree(m, terms, name=name)

    # --- ROM contents ---------------------------------------------------------------------------
    def _weight_words(self):
        row_folds, col_folds = self.fold
        pe, simd = self._pe, self._simd
        if self._weight_type == "ternary":
            bits, width = self._weights & 0b11, 2
        else:
            bits, width = (self._weights > 0).astype(np.int64), 1
        # word (nf, sf) holds weights[nf*pe + p, sf*simd + s] at element p*simd + s
        tiles = bits.reshape(row_folds, pe, col_folds, simd).transpose(0, 2, 1, 3)
        return [_pack(tile.ravel().tolist(), width) for tile in tiles.reshape(-1, pe * simd)]

    def elaborate(self, platform):
        m = Module()
        cols = self._weights.shape[1]
        row_folds, col_folds = self.fold
        pe, simd = self._pe, self._simd
        steps = row_folds * col_folds
        in_shape = self._input_encoding.shape
        in_bits = in_shape.width
        out_bits = self._output_encoding.shape.width
        w_shape = signed(2) if self._weight_type == "ternary" else unsigned(1)

        advance = Signal()  # the whole compute pipeline moves together, or stalls together

        # --- input double buffer: x_load accepts while x_work is being computed on -------------
        x_load = Signal(cols * in_bits)
        x_full = Signal()
        x_work = Signal(cols * in_bits)

        # --- stage 0: issue (row fold, column fold) and read the weight tile ------------------
        step0 = Signal(range(steps))
        col0 = Signal(range(col_folds))
        row0 = Signal(range(row_folds))
        active = Signal()  # a vector is part-way through its steps
        issue = active | x_full
        issue_first = ~active & x_full

        m.d.comb += self.i.ready.eq(~x_full | (advance & issue_first))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [x_load.eq(self.i.payload), x_full.eq(1)]
        with m.Elif(advance & issue_first):
            m.d.sync += x_full.eq(0)

        m.submodules.weight_rom = weight_rom = Memory(
            shape=unsigned(pe * simd * w_shape.width), depth=steps, init=self._weight_words()
        )
        weight_port = weight_rom.read_port()
        m.d.comb += [weight_port.addr.eq(step0), weight_port.en.eq(advance)]

        # --- stage 1 registers ------------------------------------------------------------------
        valid1 = Signal()
        first_col1 = Signal()
        last_col1 = Signal()
        last_row1 = Signal()
        row1 = Signal(range(row_folds))

        with m.If(advance):
            m.d.sync += [
                valid1.eq(issue),
                first_col1.eq(col0 == 0),
                last_col1.eq(col0 == col_folds - 1),
                last_row1.eq(row0 == row_folds - 1),
                row1.eq(row0),
            ]
            with m.If(issue):
                with m.If(step0 == steps - 1):
                    m.d.sync += [step0.eq(0), col0.eq(0), row0.eq(0), active.eq(0)]
                with m.Else():
                    m.d.sync += [step0.eq(step0 + 1), active.eq(1)]
                    with m.If(col0 == col_folds - 1):
                        m.d.sync += [col0.eq(0), row0.eq(row0 + 1)]
                    with m.Else():
                        m.d.sync += col0.eq(col0 + 1)
            # Stage 1 always reads the lowest simd inputs; rotating brings the next ones down and,
            # after col_folds steps, the vector back to its start for the next row fold.
            with m.If(issue_first):
                m.d.sync += x_work.eq(x_load)
            with m.Elif(valid1):
                m.d.sync += x_work.eq(x_work.rotate_right(simd * in_bits))

        # --- stage 1: products, SIMD sums, accumulation ---------------------------------------
        x_slice = data.ArrayLayout(in_shape, simd)(x_work[: simd * in_bits])
        tile = data.ArrayLayout(data.ArrayLayout(w_shape, simd), pe)(weight_port.data)
        acc = [Signal(self._acc_shape, name=f"acc{p}") for p in range(pe)]
        valid2 = Signal()
        last_row2 = Signal()
        kind = self._input_encoding.kind
        xs = [_operand(m, x_slice[s], kind, f"x{s}") for s in range(simd)]
        for p in range(pe):
            terms = []
            for s in range(simd):
                w = _operand(m, tile[p][s], self._weight_type, f"w{p}_{s}")
                product = _product(xs[s], w, kind, self._weight_type)
                term = Signal(product.shape(), name=f"product{p}_{s}")
                m.d.comb += term.eq(product)
                terms.append(term)
            total = self.simd_sum(m, terms, name=f"simd_sum{p}")
            with m.If(advance & valid1):
                # Every partial sum of a row lies in the row's range, so this truncation is exact.
                m.d.sync += acc[p].eq(Mux(first_col1, 0, acc[p]) + total)
        with m.If(advance):
            m.d.sync += [valid2.eq(valid1 & last_col1), last_row2.eq(last_row1)]

        # --- stage 2: activation, output assembly ---------------------------------------------
        if self._levels is None:
            results = acc
        elif row_folds == 1:
            results = [
                threshold_level(
                    acc[p], self._thresholds[p].tolist(), self._levels, acc_range=self._acc_range
                )
                for p in range(pe)
            ]
        else:
            t_shape = self._threshold_shape
            per_row = len(self._levels) - 1
            words = [
                _pack(self._thresholds[nf * pe : (nf + 1) * pe].ravel().tolist(), t_shape.width)
                for nf in range(row_folds)
            ]
            m.submodules.threshold_rom = threshold_rom = Memory(
                shape=unsigned(pe * per_row * t_shape.width), depth=row_folds, init=words
            )
            threshold_port = threshold_rom.read_port()
            # read during stage 1, so the row fold's thresholds arrive with its accumulators
            m.d.comb += [threshold_port.addr.eq(row1), threshold_port.en.eq(advance)]
            table = data.ArrayLayout(data.ArrayLayout(t_shape, per_row), pe)(threshold_port.data)
            results = [
                threshold_level(
                    acc[p],
                    [table[p][k] for k in range(per_row)],
                    self._levels,
                    acc_range=self._acc_range,
                )
                for p in range(pe)
            ]

        assert all(len(r) == out_bits for r in results)
        fresh = Cat(*results)
        # Earlier row folds wait in y_work, shifting down; the last joins them in the output.
        y_work = Signal((row_folds - 1) * pe * out_bits)
        finish = advance & valid2 & last_row2
        m.d.comb += advance.eq(~(valid2 & last_row2 & self.o.valid & ~self.o.ready))
        if row_folds > 1:
            with m.If(advance & valid2):
                m.d.sync += y_work.eq(Cat(y_work[pe * out_bits :], fresh))
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(finish):
            m.d.sync += [self.o.payload.eq(Cat(y_work, fresh)), self.o.valid.eq(1)]
        return m
