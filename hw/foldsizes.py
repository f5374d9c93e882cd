"""A folded engine's sizes, known before it is built: the SIMD sums' pipeline stages, its depth
after a vector's last issue, and its output queue's capacity. :class:`hw.folded.FoldedMatrixVector`
builds itself by them, and the compiler's plan and cost model (:mod:`gen.compiler.plan`,
:mod:`gen.compiler.cost`) weigh foldings by them without building one.
"""

from hw.pipeline import tree_latency

__all__ = ["default_stages", "engine_depth", "output_capacity"]


def engine_depth(stages, *, activation, block_read):
    """A folded engine's cycles after a vector's last issue: the ROM read, (in block RAM) its
    data register, the ROM word register, the SIMD sums' ``stages``, the accumulation, (with an
    activation) the comparisons' register, and the output."""
    return tree_latency(stages) + 4 + (1 if activation else 0) + (1 if block_read else 0)


def output_capacity(steps, depth):
    """Results a folded engine's output queue holds so that credits never slow it: a vector
    issues once the result ``capacity`` vectors before it is taken, ``steps + depth`` cycles
    after that vector's first issue when the output flows, which ``capacity`` vectors of
    ``steps`` issues each must cover (1, the plain output register, for one step per vector,
    where the engine stalls as a whole)."""
    if steps <= 1:
        return 1
    return 1 + -(-depth // steps)


def default_stages(simd, column_bits=1):
    """Pipeline stages of the SIMD sums when none are given: about two adders per stage.

    A sum of ``simd`` products is a compressor tree over columns of about ``simd *
    column_bits`` bits (:func:`hw.products.heap_column_bits`: 1 for ternary or binary weights
    and inputs, 2 with ``n``-bit inputs, more for an ``intN`` weight's AND array), about
    ``log2`` of that in adder levels, and the accumulator's adder follows it in the last
    stage: for one bit per column no register for ``simd <= 2``, one up to 8, two up to 32,
    three up to 128, four up to 512. Two carry-chain levels and their routing take about 5 ns
    on ECP5, what a 125 MHz clock leaves after the products; with a level fewer per stage,
    TFC's layer 0 (``simd = 49``) ran its last tree level and the accumulator in one 8.2 ns
    path. Counted by ``simd`` alone, the UP5K foldings of digits-mlp-ttq and digits-mlp-w4
    (``uint4`` inputs, integer weights) ran nine LUT levels of a tree in one path (31 ns).
    """
    levels = max(0, (simd * column_bits - 1).bit_length())
    return levels // 2
