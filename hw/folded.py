"""Folded matrix-vector engine: a dense layer computed ``pe`` rows by ``simd`` columns per cycle.

This is the matrix-vector-activation unit of FINN: weights live in a ROM, one word per cycle
holding a ``pe x simd`` tile; each of the ``pe`` processing elements accumulates its row over
``cols / simd`` cycles, and the ``rows / pe`` row groups ("row folds") follow one another. The
input vector is buffered once and reused by every row fold; a second buffer accepts the next
vector while the current one is being computed, so a new vector starts every
``(rows / pe) * (cols / simd)`` cycles. The buffered vector stays where it was written; each step
reads its ``simd`` inputs through a multiplexer addressed by the column fold, as FINN's input
generators do, rather than rotating the whole buffer (a multiplexer per input bit per cycle).

Each PE's ``simd`` products form one bit heap, summed by :mod:`hw.compressor`'s compressor
trees on carry chains, as the unrolled dot products of :mod:`hw.dotproduct` are: the weights
come from ROM rather than being wired in, so each product is a LUT or two per bit
(:func:`product_bits`) in front of the heap. ``stages`` pipeline registers cut the trees; the
control bits travel beside them. With more than one issue step per vector nothing after the
issue stage has an enable: results go into an output queue
(:func:`hw.foldsizes.output_capacity` entries) and a vector issues only while the queue has
room for every result not yet taken, so back-pressure on ``o`` waits at the issue (credits).
With one step per vector everything after the ROM read moves on one ``advance`` enable and
back-pressure freezes the whole pipeline. Measured on a 64 x 256 ternary
layer, ``pe=4, simd=32``, one stage (Yosys 0.23 ``synth_ice40``, whole engine): 1,229 LUT4s and
220 carry cells (``bit_adders="logic"``) or 1,193 and 292 (``"carry"``), against 1,862 LUT4s and
28 carry cells for the balanced tree of ``+`` it replaced, which Yosys mapped to plain logic.
"""

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.compressor import build_sums, check_bit_adders, check_carry_in
from hw.encoding import ValueEncoding
from hw.foldsizes import default_stages, engine_depth, output_capacity
from hw.pipeline import check_stages, counter_copies
from hw.products import (
    WEIGHT_TYPES,
    check_multiply,
    check_weights,
    heap_column_bits,
    product_bits,
    simd_ranges,
    tile_heaps,
    weight_bits,
    weight_range_of_rows,
)
from hw.roms import (
    address_copies,
    block_read,
    check_block_bits,
    check_rom_style,
    read_rom,
    read_threshold_table,
    weight_words,
)
from hw.streamutil import check_encoding, check_positive_int, queue
from hw.threshold import (
    check_levels,
    check_thresholds,
    levels_encoding,
    registered_levels,
)

# product_bits, weight_bits, WEIGHT_TYPES and weight_range_of_rows are hw.products', imported
# here for the callers that know them as the folded engine's
__all__ = [
    "FoldedMatrixVector",
    "WEIGHT_TYPES",
    "product_bits",
    "weight_bits",
    "weight_range_of_rows",
]


class FoldedMatrixVector(wiring.Component):
    """Matrix-vector product with weights in ROM, ``pe`` rows x ``simd`` columns per cycle.

    Computes ``acc = weights @ x`` exactly (integers, no overflow possible) and, if ``levels``
    and ``thresholds`` are given, the threshold activation of each row (:mod:`hw.threshold`).

    Parameters
    ----------
    weights : array-like of int, shape ``(rows, cols)``
        The layer's weights: -1, 0, +1 (ternary), -1, +1 (binary) or the integers of ``intN``.
    input_encoding : ValueEncoding
        Encoding of the input values (``ternary``, ``binary``, ``uintN``, ``intN``).
    pe : int
        Rows computed in parallel; must divide ``rows``.
    simd : int
        Columns consumed per cycle; must divide ``cols``.
    weight_type : str
        ``"ternary"`` (2 ROM bits per weight), ``"binary"`` (1 bit: 1 = +1, 0 = -1) or
        ``"int2"`` .. ``"int8"`` (N bits, two's complement; each product an array of AND
        terms, :func:`product_bits`).
    levels : sequence of int, optional
        Output levels of the activation; with ``None`` (and ``thresholds`` ``None``) the outputs
        are the raw accumulators.
    thresholds : array-like of int, shape ``(rows, len(levels) - 1)``, optional
        Ascending thresholds per row.
    stages : int, optional
        Pipeline registers in each PE's SIMD sum (a compressor tree, :mod:`hw.compressor`);
        default :func:`hw.foldsizes.default_stages` of ``simd``. Each adds a cycle to
        :attr:`latency` and none to :attr:`initiation_interval`.
    carry_in : str
        ``"constant"`` (fewest cells on iCE40) or ``"repeat"`` (fewest LUTs on 6-LUT fabrics);
        see :func:`hw.compressor.build_sums`.
    bit_adders : str
        ``"logic"`` (fewest iCE40 logic cells) or ``"carry"`` (fewest Yosys LUT4s on iCE40 and
        LUTs on Xilinx); see :func:`hw.compressor.build_sums`.
    rom_style : str, optional
        Where the weight and threshold ROMs go (:data:`hw.roms.ROM_STYLES`): ``"block"`` RAM,
        ``"distributed"`` LUT RAM, ``"logic"``, or the synthesizer's choice (``None``).
    block_bits : int, optional
        Split the weight ROM by its word's bits: the low ``block_bits`` in a ROM marked for
        block RAM, the others in one marked for logic (``rom_style``), both read at the same
        address; for parts whose block RAM holds only part of a wide, shallow ROM. ``None``
        (default): one ROM, placed as ``rom_style`` says.
    multiply : str
        ``"logic"`` (default: AND arrays, :func:`product_bits`) or ``"dsp"`` (``intN`` weights
        and non-binary inputs only: one ``*`` per product, for the part's multiplier blocks,
        :func:`hw.products.multiplier_bits`). Both are exact and equally fast in cycles.

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
    stages : int
        Pipeline registers in the SIMD sums.
    simd_ranges : list of (int, int)
        Per PE, ``(lo, hi)`` of its SIMD sum over its weight tiles and all inputs.
    initiation_interval : int
        ``rows // pe * cols // simd`` cycles between the starts of successive vectors.
    latency : int
        ``initiation_interval + stages + 4`` cycles from an input transfer (into an idle engine)
        to its output's ``valid``, one more with an activation (its comparisons are
        registered) and one more with ROMs in block RAM (``rom_style="block"`` or
        ``block_bits``: the block's read data is registered before it travels on).
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
        stages=None,
        carry_in="constant",
        bit_adders="logic",
        rom_style=None,
        multiply="logic",
        block_bits=None,
    ):
        weight_bits(weight_type)
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
        if stages is None:
            stages = default_stages(simd, heap_column_bits(input_encoding, weight_type, multiply))
        check_stages(stages)
        check_carry_in(carry_in)
        check_bit_adders(bit_adders)
        self._rom_style = check_rom_style(rom_style)
        self._multiply = check_multiply(multiply, self._input_encoding, weight_type)
        self._block_bits = check_block_bits(block_bits, pe * simd * weight_bits(weight_type))
        # Block RAM read data gets a register of its own (:attr:`latency`).
        self._block_read = block_read(rom_style, block_bits)
        self._stages = stages
        self._bit_adders = bit_adders
        self._carry_in = carry_in

        row_lo, row_hi = weight_range_of_rows(self._weights, self._input_encoding)
        self._acc_range = (int(row_lo.min()), int(row_hi.max()))
        acc_encoding = ValueEncoding.for_range(*self._acc_range)
        self._acc_shape = acc_encoding.shape
        self._simd_ranges = simd_ranges(self._weights, self._input_encoding, pe, simd)

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
    def stages(self):
        return self._stages

    @property
    def simd_ranges(self):
        return list(self._simd_ranges)

    @property
    def initiation_interval(self):
        row_folds, col_folds = self.fold
        return row_folds * col_folds

    @property
    def latency(self):
        return self.initiation_interval + self.depth

    @property
    def depth(self):
        """Cycles from a vector's last issue to its result's offer, without stalls."""
        return engine_depth(
            self._stages, activation=self._levels is not None, block_read=self._block_read
        )

    @property
    def output_capacity(self):
        """Results the output queue holds: 1 (the output register) with one issue step per
        vector, else :func:`hw.foldsizes.output_capacity` of the steps and the depth."""
        return output_capacity(self.initiation_interval, self.depth)

    @property
    def multiply(self):
        return self._multiply

    @property
    def block_bits(self):
        return self._block_bits

    @property
    def multipliers(self):
        """Multipliers the engine has: one per PE and SIMD lane with ``multiply="dsp"``."""
        return self._pe * self._simd if self._multiply == "dsp" else 0

    @property
    def weight_rom_bits(self):
        return self._weights.size * weight_bits(self._weight_type)

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

    # --- the hook for the SIMD-wide sums ---------------------------------------------------------
    def simd_sums(self, m, heaps, *, ranges, enable):
        """Every PE's sum of its ``simd`` products, ``stages`` cycles later (override point).

        ``heaps`` holds one :class:`hw.compressor.BitHeap` per PE, and ``ranges`` their
        ``(lo, hi)``; the results must be their exact sums, valid :attr:`stages` cycles after
        the products, with registers that load only while ``enable`` is 1. The default is
        :func:`hw.compressor.build_sums`' compressor trees.
        """
        return build_sums(
            m,
            heaps,
            stages=self._stages,
            ranges=ranges,
            enable=enable,
            name="simd_sum",
            carry_in=self._carry_in,
            bit_adders=self._bit_adders,
        )

    def elaborate(self, platform):
        m = Module()
        cols = self._weights.shape[1]
        row_folds, col_folds = self.fold
        pe, simd = self._pe, self._simd
        steps = row_folds * col_folds
        in_shape = self._input_encoding.shape
        in_bits = in_shape.width
        out_bits = self._output_encoding.shape.width
        if self._weight_type == "ternary":
            w_shape = signed(2)
        else:
            w_shape = unsigned(weight_bits(self._weight_type))

        # With one issue step per vector the whole compute pipeline moves together, or stalls
        # together while a result waits at the output. With more, it never stalls: a vector
        # issues only while the output queue has room for every result not yet taken, those in
        # flight included (credits), so no enable reaches the datapath's registers.
        advance = Signal()
        credit = steps > 1
        capacity = self.output_capacity
        credits = Signal(range(capacity + 1))  # vectors issued whose results are not yet taken
        room = Signal()
        m.d.comb += room.eq(credits < capacity if credit else 1)

        # --- input double buffer: x_load accepts while x_work is being computed on -------------
        x_load = Signal(cols * in_bits)
        x_full = Signal()
        x_work = Signal(cols * in_bits)

        # --- stage 0: issue (row fold, column fold) and read the weight tile ------------------
        col0 = Signal(range(col_folds))
        row0 = Signal(range(row_folds))
        active = Signal()  # a vector is part-way through its steps
        issue = Signal()
        issue_first = Signal()
        m.d.comb += [issue_first.eq(~active & x_full & room), issue.eq(active | issue_first)]
        # the ROM address: a copy per chunk of the weight word (hw.roms.read_rom)
        word_bits = pe * simd * w_shape.width
        copies = address_copies(word_bits, steps, self._rom_style, self._block_bits)
        step0s = counter_copies(m, steps, advance & issue, copies, "step0")
        step0 = step0s[0]

        if steps > 1:
            # From a register only: no combinational path from ``o.ready`` back to ``i.ready``,
            # so a chain of engines has no ready chain. The buffer frees at its vector's first
            # issue and takes the next one a cycle later, well inside the ``steps`` cycles.
            m.d.comb += self.i.ready.eq(~x_full)
        else:
            # One step per vector: taking the next vector in the cycle this one issues is what
            # keeps the initiation interval at 1.
            m.d.comb += self.i.ready.eq(~x_full | (advance & issue_first))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [x_load.eq(self.i.payload), x_full.eq(1)]
        with m.Elif(advance & issue_first):
            m.d.sync += x_full.eq(0)

        weight_data = read_rom(
            m,
            "weight_rom",
            weight_words(self._weights, self._weight_type, pe, simd),
            word_bits,
            step0s,
            advance,
            rom_style=self._rom_style,
            block_bits=self._block_bits,
        )

        # --- stage 1 registers ------------------------------------------------------------------
        valid1 = Signal()
        first_col1 = Signal()
        last_col1 = Signal()
        last_row1 = Signal()
        row1 = Signal(range(row_folds))
        col1 = Signal(range(col_folds))

        with m.If(advance):
            m.d.sync += [
                valid1.eq(issue),
                first_col1.eq(col0 == 0),
                last_col1.eq(col0 == col_folds - 1),
                last_row1.eq(row0 == row_folds - 1),
                row1.eq(row0),
                col1.eq(col0),
            ]
            with m.If(issue):
                with m.If(step0 == steps - 1):
                    m.d.sync += [col0.eq(0), row0.eq(0), active.eq(0)]
                with m.Else():
                    m.d.sync += active.eq(1)
                    with m.If(col0 == col_folds - 1):
                        m.d.sync += [col0.eq(0), row0.eq(row0 + 1)]
                    with m.Else():
                        m.d.sync += col0.eq(col0 + 1)
            # The vector is copied once per vector (a clock enable, no multiplexer); stage 1b
            # reads the column fold's slice of it, so a step's slice is read before the next
            # vector replaces it at that vector's first issue.
            with m.If(issue_first):
                m.d.sync += x_work.eq(x_load)

        def register(value, name, *, reset_less=False):
            """``value`` one register later, moving on ``advance``."""
            if isinstance(value, Signal):
                held = Signal.like(value, name=name, reset_less=reset_less)
            else:  # a ROM's read data, a Cat of its parts
                held = Signal(len(value), name=name, reset_less=reset_less)
            with m.If(advance):
                m.d.sync += held.eq(value)
            return held

        def delay(signals, suffix):
            return [register(c, f"{c.name}_{suffix}") for c in signals]

        if self._block_read:
            # A block RAM's output comes late in the cycle (5.8 ns clock-to-out on ECP5 without
            # its output register, which Yosys 0.23 does not use): a register of its own before
            # the word travels on. (In TFC the placer still put it 17 columns from the block.)
            # Without a reset, as the block's output register is: gen.flow.outreg moves it
            # into the block on ECP5.
            weight_data = register(weight_data, "weight_word", reset_less=True)

        # --- stage 1b: the ROM word and its input slice registered --------------------------
        # A ROM mapped to logic has its read register on the address side, so the word would
        # reach the products straight from the ROM's LUTs; this register cuts that path.
        tile_bits = Signal(pe * simd * w_shape.width)
        x_bits = Signal(simd * in_bits)
        width = simd * in_bits
        with m.If(advance):
            m.d.sync += tile_bits.eq(weight_data)
            # One case per column fold: a multiplexer of decoded selects, which Yosys maps in
            # fewer LUTs than the shifter a variable slice would become.
            with m.Switch(col1):
                for c in range(col_folds):
                    with m.Case(c):
                        m.d.sync += x_bits.eq(x_work[c * width : (c + 1) * width])
        control = delay([valid1, first_col1, last_col1, last_row1, row1], "r")
        rows = [row1, control[4]]  # the row fold at each register from stage 1 on
        if self._block_read:
            # the block RAM's register delays the word: its input slice and control follow
            (x_bits,) = delay([x_bits], "b")
            control = delay(control, "b")
            rows.append(control[4])

        # --- stage 2: products and SIMD sums, through `stages` pipeline registers -------------
        x_slice = data.ArrayLayout(in_shape, simd)(x_bits)
        tile = data.ArrayLayout(data.ArrayLayout(w_shape, simd), pe)(tile_bits)
        heaps = tile_heaps(
            m, x_slice, tile, self._input_encoding, self._weight_type, self._multiply, pe, simd
        )
        totals = self.simd_sums(m, heaps, ranges=self._simd_ranges, enable=advance)

        # The control bits travel beside the sums, through as many registers.
        for stage in range(self._stages):
            control = delay(control, f"p{stage}")
            rows.append(control[4])
        valid_sum, first_col_sum, last_col_sum, last_row_sum, row_sum = control

        # --- accumulation -----------------------------------------------------------------------
        acc = [Signal(self._acc_shape, name=f"acc{p}") for p in range(pe)]
        valid2 = Signal()
        last_row2 = Signal()
        for p in range(pe):
            with m.If(advance & valid_sum):
                # Every partial sum of a row lies in the row's range, so this truncation is exact.
                m.d.sync += acc[p].eq(Mux(first_col_sum, 0, acc[p]) + totals[p])
        with m.If(advance):
            m.d.sync += [valid2.eq(valid_sum & last_col_sum), last_row2.eq(last_row_sum)]

        # --- stage 3: activation, output assembly ---------------------------------------------
        valid_out, last_row_out = valid2, last_row2
        if self._levels is None:
            fresh = Cat(*acc)
        else:
            if row_folds == 1:
                table = [self._thresholds[p].tolist() for p in range(pe)]
            else:
                # Read a register ahead of the sums (two with the block RAM's register) and
                # registered once more (as the weight word is), so that the thresholds arrive
                # with their row fold's accumulators.
                words = read_threshold_table(
                    m,
                    self._thresholds,
                    pe,
                    self._threshold_shape,
                    rows[-3] if self._block_read else rows[-2],
                    advance,
                    rom_style=self._rom_style,
                    block_read=register if self._block_read else None,
                )
                per_row = len(self._levels) - 1
                table = [[words[p][k] for k in range(per_row)] for p in range(pe)]
            # The comparisons get a register of their own, and the level is selected after it:
            # the accumulator's carry chain and the comparators' would otherwise be one path
            # (8.7 ns on ECP5, TFC's slowest), and with the selection too, 23.5 ns on the UP5K.
            valid3 = Signal()
            last_row3 = Signal()
            with m.If(advance):
                m.d.sync += [valid3.eq(valid2), last_row3.eq(last_row2)]
            results = registered_levels(
                m, acc, table, self._levels, acc_range=self._acc_range, enable=advance
            )
            assert all(len(r) == out_bits for r in results)
            fresh = Cat(*results)
            valid_out, last_row_out = valid3, last_row3
        # Earlier row folds wait in y_work, shifting down; the last joins them in the output.
        y_work = Signal((row_folds - 1) * pe * out_bits)
        finish = advance & valid_out & last_row_out
        if credit:
            m.d.comb += advance.eq(1)
        else:
            m.d.comb += advance.eq(~(valid_out & last_row_out & self.o.valid & ~self.o.ready))
        if row_folds > 1:
            with m.If(advance & valid_out):
                m.d.sync += y_work.eq(Cat(y_work[pe * out_bits :], fresh))
        result = Cat(y_work, fresh)
        if not credit:
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
            with m.If(finish):
                m.d.sync += [self.o.payload.eq(result), self.o.valid.eq(1)]
            return m
        # --- the output queue of `capacity` results, and the credits ---------------------------
        taken = Signal()
        m.d.comb += taken.eq(self.o.valid & self.o.ready)
        with m.If(issue_first & ~taken):
            m.d.sync += credits.eq(credits + 1)
        with m.Elif(taken & ~issue_first):
            m.d.sync += credits.eq(credits - 1)
        queue(m, result, finish, self.o, capacity, name="result")
        return m
