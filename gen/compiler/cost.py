"""The compiler's resource model: iCE40 LUT4s, carry cells, flip-flops and ROM bits per engine.

Estimates, not promises: each formula counts the structures an engine builds (compressor-tree
bits, comparators, multiplexers, registers), with coefficients calibrated against Yosys
``synth_ice40`` on the project's blocks (``bench/area.py``, ``bench/synth_models.py``). The
synthesis report prints every prediction next to the measured figure and their ratio.
"""

from dataclasses import asdict, dataclass

import numpy as np

from hw.argmax import stage_cuts
from hw.dotproduct import prefer_graph
from hw.folded import weight_bits as rom_bits_per_weight
from hw.foldsizes import engine_depth, output_capacity
from hw.roms import address_copies

__all__ = [
    "Resources",
    "unrolled_dot",
    "graph_bits",
    "threshold",
    "folded",
    "argmax",
    "register_slice",
    "serializer",
    "deserializer",
    "window",
    "maxpool",
]


@dataclass(frozen=True)
class Resources:
    luts: int = 0
    carry: int = 0
    ffs: int = 0
    rom_bits: int = 0

    def __add__(self, other):
        return Resources(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self):
        return (self.luts, self.carry, self.ffs, self.rom_bits)

    def asdict(self):
        return asdict(self)


def _r(luts=0.0, carry=0.0, ffs=0.0, rom_bits=0):
    return Resources(round(luts), round(carry), round(ffs), int(rom_bits))


# Coefficients (iCE40, Yosys 0.23 synth_ice40, bit_adders="logic"), fitted to the shipped
# digits-mlp's layers (uint4 and ternary inputs; bench/synth_models.py): LUT4s, carry cells and
# pipeline flip-flops per input bit entering a row's compressor heap. Measured per heap bit:
# 1.82 / 0.94 / 0.12 for the uint4 layer (1,284 heap bits), 1.63 / 0.74 / 0.10 for the ternary one
# (208 heap bits).
LUT_PER_HEAP_BIT = 1.75
CARRY_PER_HEAP_BIT = 0.9
FF_PER_HEAP_BIT_PER_STAGE = 0.14
#: A folded engine's input slice multiplexer: LUT4s per slice bit and way beyond the first.
SELECT_LUT_PER_WAY = 0.75


def heap_bits(weights, bits_per_value):
    """Bits entering the rows' compressor heaps: nonzero weights times bits per input value."""
    return int(np.count_nonzero(weights)) * bits_per_value


# Shared adder graphs (hw.addergraph; non-binary inputs): the adders' result bits per nonzero weight
# fall as more rows share sums. hw.addergraph.graph_cost on random ternary layers and the shipped
# models' layers: 2.42 (10 x 20), 2.05 (16 x 64), 1.99 (10 x 256), 1.80 (64 x 256), 1.68
# (256 x 256), 1.54 (256 x 784), fitted as 2.75 - 0.15 * log2(rows) (planning a layer of 10^5
# weights takes minutes, too long for a cost model that weighs every folding). Yosys 0.23
# synth_ice40 takes 1.14 to 1.26 LUT4s and 0.73 to 0.78 carry cells per adder bit
# (bench/area.py).
GRAPH_BITS_PER_WEIGHT = 2.75
GRAPH_BITS_PER_ROW_DOUBLING = 0.15
LUT_PER_GRAPH_BIT = 1.2
CARRY_PER_GRAPH_BIT = 0.75


def graph_bits(weights, bits_per_value=2):
    """Estimated adder result bits of a shared adder graph of ``weights``.

    Fitted on ternary inputs (2 bits); wider inputs make proportionally wider adders (the
    shipped digits-mlp's ``uint4`` layer: 1,351 bits, 4.2 per weight, against 2.1 by the
    ternary fit).
    """
    rows = weights.shape[0]
    per_weight = GRAPH_BITS_PER_WEIGHT - GRAPH_BITS_PER_ROW_DOUBLING * np.log2(max(rows, 1))
    return int(np.count_nonzero(weights)) * max(per_weight, 1.0) * bits_per_value / 2


def unrolled_dot(weights, bits_per_value, acc_bits, stages, *, shared=False):
    """Constant-weight dot products of every row: compressor trees, or with ``shared``
    (non-binary inputs) the smaller of those and a shared adder graph, as
    :class:`hw.dotproduct.DotProduct` chooses."""
    bits = heap_bits(weights, bits_per_value)
    rows = weights.shape[0]
    # a pipeline stage registers the partial sums alive at its depth, plus each row's result
    ffs = stages * (FF_PER_HEAP_BIT_PER_STAGE * bits + rows * acc_bits)
    heap = _r(LUT_PER_HEAP_BIT * bits + rows, CARRY_PER_HEAP_BIT * bits, ffs)
    if not shared:
        return heap
    adder_bits = graph_bits(weights, bits_per_value)
    if bits_per_value > 2:
        # n-bit inputs are negated once each: an adder of bits_per_value + 1 bits
        adder_bits += weights.shape[1] * (bits_per_value + 1)
    graph = _r(LUT_PER_GRAPH_BIT * adder_bits, CARRY_PER_GRAPH_BIT * adder_bits, ffs)
    return graph if prefer_graph(bits, adder_bits) else heap


def threshold(rows, acc_bits, n_thresholds, out_bits):
    """Constant-threshold comparators: one carry-chain compare per threshold, behind a register
    of the accumulators and before one of the comparisons."""
    compares = rows * n_thresholds
    ffs = rows * acc_bits + compares + rows * out_bits + 3
    return _r(compares * (acc_bits / 2 + 1), compares * acc_bits / 2, ffs)


def _simd_product(in_bits, weight_type):
    """LUT4s of one folded-engine product and the bits it adds to its PE's heap.

    Follows :func:`hw.folded.product_bits`: a binary input gives an XNOR (binary weights) or
    a (nonzero, negative) pair; a ternary input one or two LUTs and two bits; an ``n``-bit
    input one LUT per bit plane and the weight's sign bits. ``uint2``/``int2`` inputs are
    counted as ternary (they cost about the same). An ``intN`` weight makes an AND array: one
    LUT and one heap bit per input bit and weight bit, and for a binary input (whose constant
    term is a weight bit) N more bits.
    """
    weight_bits = rom_bits_per_weight(weight_type)
    if weight_type not in ("ternary", "binary"):
        return in_bits * weight_bits, in_bits * weight_bits + (weight_bits if in_bits == 1 else 0)
    if in_bits == 1:
        return 1, 1 if weight_bits == 1 else 2
    if in_bits == 2:
        return 2 if weight_bits == 2 else 1, 2
    return in_bits, in_bits + 1.5


def folded(
    rows,
    cols,
    pe,
    simd,
    in_bits,
    acc_bits,
    n_thresholds,
    weight_type,
    *,
    stages,
    product_bits=None,
):
    """A folded matrix-vector engine: SIMD sums, accumulators, comparators, buffers, ROMs.

    ``weight_type`` (``ternary``, ``binary``, ``intN``) sets the ROM's bits per weight and the
    products (:func:`_simd_product`). ``product_bits``, given for an engine built with
    ``multiply="dsp"``, is the width of each product, a multiplier block's result that enters
    the heap as one word: no product LUTs (the multipliers are counted by
    :mod:`gen.compiler.fit`, per family).
    The SIMD sums are compressor trees as in :func:`unrolled_dot`, with the same coefficients
    per heap bit, behind the products' LUTs. ``stages`` is the SIMD sums' pipeline depth (the
    plan's, from :func:`hw.foldsizes.default_stages`). Measured (Yosys 0.23 ``synth_ice40``,
    64 x 256 ternary, ``pe=4, simd=32``, 9-bit accumulators, one stage): 1,229 LUT4s, 220
    carry cells, 2,283 flip-flops (1,193 LUT4s and 292 carry cells with
    ``bit_adders="carry"``), which this model predicts as 1,202, 330 and 2,290.
    """
    row_folds, col_folds = rows // pe, cols // simd
    weight_bits = rom_bits_per_weight(weight_type)
    if product_bits is None:
        product_luts, heap_per_product = _simd_product(in_bits, weight_type)
    else:
        product_luts, heap_per_product = 0, product_bits
    bits = pe * simd * heap_per_product
    sum_luts = pe * simd * product_luts + LUT_PER_HEAP_BIT * bits
    sum_carry = CARRY_PER_HEAP_BIT * bits
    largest = 1 if in_bits <= 2 else (1 << in_bits) - 1  # of one product's magnitude
    if weight_type not in ("ternary", "binary"):
        largest <<= weight_bits - 1
    sum_bits = (simd * largest).bit_length() + 1
    acc_luts = pe * acc_bits
    compare = pe * n_thresholds * (acc_bits + 1)
    # each step's SIMD slice is read from the buffered input by a col_folds-way multiplexer of
    # decoded selects: about 0.75 LUT4 per extra way and slice bit (Yosys 0.23: TFC at II 256,
    # digits-mlp at 2,4)
    select = SELECT_LUT_PER_WAY * simd * in_bits * (col_folds - 1)
    out_bits = 2 if n_thresholds else acc_bits
    # input double buffer, accumulators, earlier row folds' results, output queue, control
    steps = row_folds * col_folds
    # (a block RAM's read register, unknown here, would add a cycle of depth)
    depth = engine_depth(stages, activation=bool(n_thresholds), block_read=False)
    queue = output_capacity(steps, depth)
    ffs = 2 * cols * in_bits + pe * acc_bits + (rows - pe + queue * rows) * out_bits + 32
    # the ROM word and its input slice registered before the products (and the thresholds
    # after their ROM)
    ffs += pe * simd * weight_bits + simd * in_bits + 8
    if n_thresholds and row_folds > 1:
        ffs += pe * n_thresholds * acc_bits
    if n_thresholds:
        ffs += pe * n_thresholds + 2  # the comparisons' register (the levels follow it)
    # a pipeline stage registers the partial sums alive at its depth and the control bits
    ffs += stages * (FF_PER_HEAP_BIT_PER_STAGE * bits + pe * sum_bits + 8)
    rom = rows * cols * weight_bits
    if n_thresholds and row_folds > 1:
        rom += rows * n_thresholds * acc_bits
    control = 40 + (queue - 1) * rows * out_bits  # the queue's read multiplexer
    # the ROM address's copies, one per chunk of the word (hw.roms.read_rom): a counter each
    copies = address_copies(pe * simd * weight_bits, steps)
    counter_bits = max(1, (steps - 1).bit_length())
    ffs += (copies - 1) * counter_bits
    control += (copies - 1) * (counter_bits + 1)
    return _r(
        sum_luts + acc_luts + compare + select + control,
        sum_carry + pe * acc_bits + compare,
        ffs,
        rom,
    )


def argmax(count, value_bits, stages):
    """A tournament of compare-and-select nodes (``hw.argmax``), registered after the steps that
    ``stages`` cuts: a comparison register holds its level's candidates and a bit per pair, a
    selection register the winners, an input register (step 0) the scores; an index grows a bit
    per level (the first level's are constants). Measured (Yosys 0.23, 10 scores of 5 bits, 8
    stages): 196 flip-flops against 210 predicted."""
    index_bits = max(1, (count - 1).bit_length())
    nodes = max(0, count - 1)
    levels = (count - 1).bit_length()
    cuts = stage_cuts(levels, stages)
    ffs, n = stages, count
    if 0 in cuts:
        ffs += count * value_bits
    for level in range(1, levels + 1):
        pairs = n // 2
        if 2 * level - 1 in cuts:
            ffs += n * (value_bits + level - 1) + pairs
        n = pairs + n % 2
        if 2 * level in cuts:
            ffs += n * (value_bits + level)
    return _r(nodes * (value_bits + value_bits + index_bits), nodes * value_bits, ffs)


def serializer(bits):
    """``hw.streamutil.VectorToPixels``: a vector of ``bits`` in a shift register that loads
    or shifts (a LUT per bit), and its count."""
    return _r(bits, 0, bits + 8)


def deserializer(bits, pixel_bits):
    """``hw.streamutil.PixelsToVector``: pixels shifting in (with their enable, no LUTs) and
    the output register of the whole vector."""
    return _r(8, 0, 2 * bits - pixel_bits + 8)


def register_slice(width):
    """``hw.streamutil.SkidBuffer``: two payload registers, the output multiplexer (Yosys 0.23
    on iCE40: 88 LUT4s for 50 bits), pointers and flags."""
    return _r(1.75 * width, 0, 2 * width + 4)


def window(width, channels, kernel, value_bits):
    """A sliding window: line buffers (registers) and the window registers."""
    kh, kw = kernel
    line = (kh - 1) * width * channels * value_bits
    win = kh * kw * channels * value_bits
    return _r(win / 2 + 30, 16, line + win + 32)


def maxpool(width, channels, kernel, value_bits):
    kh, kw = kernel
    compares = (kh * kw - 1) * channels
    line = (kh - 1) * width * channels * value_bits
    return _r(
        compares * value_bits * 1.5 + 30, compares * value_bits, line + channels * value_bits + 32
    )
