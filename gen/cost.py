"""The compiler's resource model: iCE40 LUT4s, carry cells, flip-flops and ROM bits per engine.

Estimates, not promises: each formula counts the structures an engine builds (compressor-tree
bits, comparators, multiplexers, registers), with coefficients calibrated against Yosys
``synth_ice40`` on the project's blocks (``bench/area.py``, ``bench/synth_models.py``). The
synthesis report prints every prediction next to the measured figure and their ratio.
"""

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Resources", "unrolled_dot", "threshold", "folded", "argmax", "window", "maxpool"]


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


# Coefficients (iCE40, Yosys 0.23 synth_ice40), fitted to the shipped digits-mlp's layers
# (uint4 and ternary inputs): LUT4s, carry cells and pipeline flip-flops per input bit entering
# a row's compressor heap.
LUT_PER_HEAP_BIT = 1.4
CARRY_PER_HEAP_BIT = 1.15
FF_PER_HEAP_BIT_PER_STAGE = 0.18


def heap_bits(weights, bits_per_value):
    """Bits entering the rows' compressor heaps: nonzero weights times bits per input value."""
    return int(np.count_nonzero(weights)) * bits_per_value


def unrolled_dot(weights, bits_per_value, acc_bits, stages):
    """Constant-weight dot products of every row (wiring plus compressor trees)."""
    bits = heap_bits(weights, bits_per_value)
    rows = weights.shape[0]
    # a pipeline stage registers the partial sums alive at its depth, plus each row's result
    ffs = stages * (FF_PER_HEAP_BIT_PER_STAGE * bits + rows * acc_bits)
    return _r(LUT_PER_HEAP_BIT * bits + rows, CARRY_PER_HEAP_BIT * bits, ffs)


def threshold(rows, acc_bits, n_thresholds, out_bits):
    """Constant-threshold comparators: one carry-chain compare per threshold."""
    compares = rows * n_thresholds
    return _r(compares * (acc_bits / 2 + 1), compares * acc_bits / 2, rows * out_bits + 1)


def folded(rows, cols, pe, simd, in_bits, acc_bits, n_thresholds, weight_bits):
    """A folded matrix-vector engine: SIMD sums, accumulators, comparators, buffers, ROMs."""
    row_folds, col_folds = rows // pe, cols // simd
    sum_luts = pe * simd * in_bits * 1.2
    acc_luts = pe * acc_bits
    compare = pe * n_thresholds * (acc_bits + 1)
    # selecting the SIMD slice of the buffered input: a col_folds-to-1 multiplexer per bit
    select = simd * in_bits * max(0, col_folds - 1) / 3
    out_bits = 2 if n_thresholds else acc_bits
    ffs = 2 * cols * in_bits + pe * acc_bits + rows * out_bits + 32
    rom = rows * cols * weight_bits
    if n_thresholds and row_folds > 1:
        rom += rows * n_thresholds * acc_bits
    control = 40
    return _r(sum_luts + acc_luts + compare + select + control, pe * acc_bits + compare, ffs, rom)


def argmax(count, value_bits):
    """A tree of compare-and-select nodes."""
    index_bits = max(1, (count - 1).bit_length())
    nodes = max(0, count - 1)
    return _r(
        nodes * (value_bits + value_bits + index_bits),
        nodes * value_bits,
        value_bits + index_bits + 1,
    )


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
