# amaranth: UnusedElaboratable=no

import collections
import itertools
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from reference import ref_threshold
from streams import drive, from_wire, random_values, seeded, stream_get, stream_put, timed, to_wire

from hw import roms
from hw.encoding import ValueEncoding
from hw.folded import FoldedMatrixVector, weight_range_of_rows
from hw.foldsizes import default_stages

TERNARY = ValueEncoding.ternary()
BINARY = ValueEncoding.binary()


def ref_folded(weights, xs, levels=None, thresholds=None):
    acc = np.asarray(xs, dtype=np.int64) @ np.asarray(weights, dtype=np.int64).T
    if levels is None:
        return acc
    return ref_threshold(acc, thresholds, levels)


def rtl_folded(weights, xs, *, encoding, pe, simd, max_delay=0, seed=0, **kwargs):
    dut = FoldedMatrixVector(weights=weights, input_encoding=encoding, pe=pe, simd=simd, **kwargs)
    out = drive(dut, [to_wire(encoding, x) for x in xs], len(xs), seed=seed, max_delay=max_delay)
    return np.array([from_wire(dut.output_encoding, p) for p in out])


def extreme_thresholds(rng, rows, count, lo, hi):
    """Ascending rows mixing thresholds beyond, at and inside the accumulator's range.

    Even rows get one threshold drawn from inside the range, so that every row's output
    depends on its accumulator's value, not only on which side of an extreme it lies.
    """
    pool = np.array([lo - 50, lo - 1, lo, lo + 1, 0, hi - 1, hi, hi + 1, hi + 50])
    thresholds = rng.choice(pool, size=(rows, count))
    thresholds[0::2, 0] = rng.integers(lo, hi + 1, size=len(thresholds[0::2]))
    return np.sort(thresholds, axis=1)


@pytest.mark.parametrize("pe, simd", [(1, 1), (3, 2), (9, 1), (9, 2)])
def test_exhaustive_ternary_fan_in_2(pe, simd):
    """Every ternary weight row of fan-in 2 against every ternary input."""
    weights = np.array(list(itertools.product([-1, 0, 1], repeat=2)))
    xs = np.array(list(itertools.product([-1, 0, 1], repeat=2)))
    got = rtl_folded(weights, xs, encoding=TERNARY, pe=pe, simd=simd, max_delay=1, seed=pe)
    assert np.array_equal(got, ref_folded(weights, xs))


@pytest.mark.parametrize("pe, simd", [(1, 3), (8, 1), (2, 3)])
def test_exhaustive_binary_fan_in_3(pe, simd):
    """Every binary weight row of fan-in 3 against every binary input, with activations."""
    weights = np.array(list(itertools.product([-1, 1], repeat=3)))
    xs = np.array(list(itertools.product([-1, 1], repeat=3)))
    thresholds = np.arange(-4, 4)[:, None]  # one per row, sweeping the range [-3, 3] and beyond
    got = rtl_folded(
        weights,
        xs,
        encoding=BINARY,
        pe=pe,
        simd=simd,
        weight_type="binary",
        levels=(-1, 1),
        thresholds=thresholds,
        max_delay=1,
        seed=simd,
    )
    assert np.array_equal(got, ref_folded(weights, xs, (-1, 1), thresholds))


@pytest.mark.parametrize("pe, simd", [(27, 3), (9, 1)])
def test_exhaustive_binary_inputs_ternary_weights(pe, simd):
    """Every ternary weight row of fan-in 3 against every binary input, raw accumulators."""
    weights = np.array(list(itertools.product([-1, 0, 1], repeat=3)))
    xs = np.array(list(itertools.product([-1, 1], repeat=3)))
    got = rtl_folded(weights, xs, encoding=BINARY, pe=pe, simd=simd, max_delay=1, seed=pe)
    assert np.array_equal(got, ref_folded(weights, xs))


def test_fan_in_1():
    weights = np.array([[1], [0], [-1], [1]])
    xs = np.array([[v] for v in range(-8, 8)])
    enc = ValueEncoding.int(4)
    for pe in (1, 2, 4):
        got = rtl_folded(weights, xs, encoding=enc, pe=pe, simd=1, max_delay=2, seed=pe)
        assert np.array_equal(got, ref_folded(weights, xs))


COMBOS = [(1, 1), (2, 4), (3, 2), (6, 8), (6, 1), (1, 8)]


@pytest.mark.parametrize("pe, simd", COMBOS)
@pytest.mark.parametrize(
    "encoding, weight_type, levels",
    [
        (TERNARY, "ternary", (-1, 0, 1)),
        (ValueEncoding.uint(4), "ternary", None),
        (ValueEncoding.int(3), "binary", (0, 1, 2, 3)),
        (BINARY, "ternary", (-1, 1)),
        (TERNARY, "binary", None),
    ],
    ids=["ternary-ternary", "uint4-ternary", "int3-binary", "binary-ternary", "ternary-binary"],
)
def test_random_layers_with_stalls(pe, simd, encoding, weight_type, levels):
    rng = np.random.default_rng([pe, simd, encoding.width, len(weight_type)])
    rows, cols = 6, 8
    choices = [-1, 0, 1] if weight_type == "ternary" else [-1, 1]
    weights = rng.choice(choices, size=(rows, cols))
    if weight_type == "ternary":
        weights[0] = 0  # an all-zero row: its accumulator is always 0
    xs = random_values(rng, encoding, (5, cols))
    kwargs = {}
    if levels is not None:
        dut = FoldedMatrixVector(
            weights=weights, input_encoding=encoding, pe=pe, simd=simd, weight_type=weight_type
        )
        lo, hi = dut.acc_range
        kwargs = dict(
            levels=levels, thresholds=extreme_thresholds(rng, rows, len(levels) - 1, lo, hi)
        )
    got = rtl_folded(
        weights,
        xs,
        encoding=encoding,
        pe=pe,
        simd=simd,
        weight_type=weight_type,
        max_delay=3,
        seed=pe * 10 + simd,
        **kwargs,
    )
    assert np.array_equal(got, ref_folded(weights, xs, levels, kwargs.get("thresholds")))


def test_larger_layer_extreme_inputs():
    """A 16 x 48 layer of int8 inputs, including the inputs that reach the accumulator's ends."""
    rng = np.random.default_rng(7)
    enc = ValueEncoding.int(8)
    weights = rng.choice([-1, 0, 1], size=(16, 48))
    dut = FoldedMatrixVector(weights=weights, input_encoding=enc, pe=4, simd=16)
    lo, hi = dut.acc_range
    row_lo, row_hi = weight_range_of_rows(weights, enc)
    top, bottom = int(np.argmax(row_hi)), int(np.argmin(row_lo))
    xs = [
        np.where(weights[top] > 0, enc.max, enc.min),
        np.where(weights[bottom] > 0, enc.min, enc.max),
    ]
    xs = np.array(xs + list(random_values(rng, enc, (3, 48))))
    got = rtl_folded(weights, xs, encoding=enc, pe=4, simd=16, max_delay=2)
    expect = ref_folded(weights, xs)
    assert np.array_equal(got, expect)
    # the accumulator range is reached at both ends, so it is tight
    assert expect[0, top] == hi and expect[1, bottom] == lo
    assert dut.output_encoding == ValueEncoding.for_range(lo, hi)


@pytest.mark.parametrize("pe, simd, levels", [(1, 2, (-1, 0, 1)), (2, 4, None), (4, 4, (-1, 1))])
def test_latency_and_initiation_interval_match_properties(pe, simd, levels):
    rng = np.random.default_rng(pe)
    weights = rng.choice([-1, 0, 1], size=(4, 4))
    kwargs = {}
    if levels is not None:
        kwargs = dict(levels=levels, thresholds=np.sort(rng.integers(-3, 3, (4, len(levels) - 1))))
    dut = FoldedMatrixVector(weights=weights, input_encoding=TERNARY, pe=pe, simd=simd, **kwargs)
    xs = random_values(rng, TERNARY, (4, 4))
    in_cycles, out_cycles, out = timed(dut, [to_wire(TERNARY, x) for x in xs], len(xs))
    assert out_cycles[0] - in_cycles[0] == dut.latency
    # the second vector waits in the input buffer; after it, one vector per interval
    assert np.diff(in_cycles)[1:].tolist() == [dut.initiation_interval] * 2
    assert np.diff(out_cycles).tolist() == [dut.initiation_interval] * 3
    got = np.array([from_wire(dut.output_encoding, p) for p in out])
    assert np.array_equal(got, ref_folded(weights, xs, levels, kwargs.get("thresholds")))


KINDS = [
    (TERNARY, "ternary"),
    (TERNARY, "binary"),
    (BINARY, "ternary"),
    (BINARY, "binary"),
    (ValueEncoding.uint(3), "ternary"),
    (ValueEncoding.uint(3), "binary"),
    (ValueEncoding.int(4), "ternary"),
    (ValueEncoding.int(4), "binary"),
    (ValueEncoding.uint(3), "int3"),
    (BINARY, "int4"),
]
KIND_IDS = [f"{enc.name}-{w}" for enc, w in KINDS]


@pytest.mark.parametrize("stages", [0, 1, 2, 3])
@pytest.mark.parametrize("encoding, weight_type", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("pe, simd", [(2, 4), (4, 1), (4, 8)], ids=["2x4", "simd1", "pe=rows"])
def test_pipelined_simd_sums_with_stalls(pe, simd, encoding, weight_type, stages):
    """Every input kind by both weight types, SIMD sums of 0 to 3 stages, gaps and stalls."""
    rng = np.random.default_rng([pe, simd, stages, encoding.width, len(weight_type)])
    rows, cols = 4, 8
    choices = {"ternary": [-1, 0, 1], "binary": [-1, 1]}.get(weight_type)
    if choices is None:  # intN: every value, the extremes included
        bits = int(weight_type[3:])
        choices = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
    weights = rng.choice(choices, size=(rows, cols))
    xs = random_values(rng, encoding, (6, cols))
    xs[0] = encoding.max  # the extreme inputs reach the ends of the SIMD sums' ranges
    xs[1] = encoding.min
    got = rtl_folded(
        weights,
        xs,
        encoding=encoding,
        pe=pe,
        simd=simd,
        weight_type=weight_type,
        stages=stages,
        max_delay=4,
        seed=stages * 100 + pe,
    )
    assert np.array_equal(got, ref_folded(weights, xs))


@pytest.mark.parametrize("encoding", [ValueEncoding.uint(4), ValueEncoding.int(4)], ids=str)
@pytest.mark.parametrize("weight_type", ["ternary", "binary"])
def test_every_n_bit_product(encoding, weight_type):
    """Every weight times every value of a 4-bit input, one product per cycle."""
    weights = np.array([[1], [0], [-1]] if weight_type == "ternary" else [[1], [-1]])
    xs = np.arange(encoding.min, encoding.max + 1)[:, None]
    got = rtl_folded(
        weights,
        xs,
        encoding=encoding,
        pe=len(weights),
        simd=1,
        weight_type=weight_type,
        stages=1,
        max_delay=1,
    )
    assert np.array_equal(got, ref_folded(weights, xs))


INT_INPUTS = [TERNARY, BINARY, ValueEncoding.uint(4), ValueEncoding.int(4)]


def multiply_cases(encodings):
    """(encoding, multiply) pairs: the AND array for every encoding, the multiplier (``dsp``)
    for those it takes (not binary inputs)."""
    return [(e, "logic") for e in encodings] + [(e, "dsp") for e in encodings if e.kind != "binary"]


@pytest.mark.parametrize(
    "encoding, multiply, bits",
    [(e, m, b) for b in (2, 3, 5) for e, m in multiply_cases(INT_INPUTS)]
    # int8: every weight by every uint4 value, products of 12 bits (an SB_MAC16's on iCE40)
    + [(ValueEncoding.uint(4), "dsp", 8)],
    ids=str,
)
def test_every_int_weight_product(encoding, multiply, bits):
    """Every ``intN`` weight times every input value, one product per row."""
    weights = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))[:, None]
    xs = np.arange(encoding.min, encoding.max + 1)[:, None]
    if encoding.kind == "binary":
        xs = np.array([[-1], [1]])
    got = rtl_folded(
        weights,
        xs,
        encoding=encoding,
        pe=len(weights),
        simd=1,
        weight_type=f"int{bits}",
        stages=1,
        max_delay=1,
        multiply=multiply,
    )
    assert np.array_equal(got, ref_folded(weights, xs))


@pytest.mark.parametrize("pe, simd", [(1, 1), (2, 4), (6, 8), (3, 2)])
@pytest.mark.parametrize("encoding, multiply", multiply_cases(INT_INPUTS), ids=str)
@pytest.mark.parametrize("bits, levels", [(2, (-1, 0, 1)), (4, None), (8, (0, 1, 2, 3))])
def test_int_weight_layers_with_stalls(pe, simd, encoding, multiply, bits, levels):
    """Random ``intN`` layers with the weights' and inputs' extremes, thresholds, stalls."""
    rng = np.random.default_rng([pe, simd, encoding.width, bits])
    rows, cols = 6, 8
    lo_w, hi_w = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    weights = rng.integers(lo_w, hi_w + 1, size=(rows, cols))
    weights[0] = 0  # an all-zero row
    weights[1] = lo_w  # the most negative weight everywhere: the accumulator's extremes
    weights[2, ::2] = hi_w
    xs = random_values(rng, encoding, (6, cols))
    xs[0] = encoding.max
    xs[1] = encoding.min
    kwargs = {}
    weight_type = f"int{bits}"
    if levels is not None:
        dut = FoldedMatrixVector(
            weights=weights, input_encoding=encoding, pe=pe, simd=simd, weight_type=weight_type
        )
        lo, hi = dut.acc_range
        kwargs = dict(
            levels=levels, thresholds=extreme_thresholds(rng, rows, len(levels) - 1, lo, hi)
        )
    got = rtl_folded(
        weights,
        xs,
        encoding=encoding,
        pe=pe,
        simd=simd,
        weight_type=weight_type,
        max_delay=3,
        seed=pe * 10 + simd + bits,
        multiply=multiply,
        **kwargs,
    )
    expect = ref_folded(weights, xs, levels, kwargs.get("thresholds"))
    assert np.array_equal(got, expect)
    if levels is None:
        # the accumulator's range is reached: the row of lo_w weights at both input extremes
        assert {expect[0, 1], expect[1, 1]} == {
            lo_w * cols * encoding.max,
            lo_w * cols * encoding.min,
        }


@pytest.mark.parametrize("stages", [0, 2])
def test_all_zero_weights(stages):
    weights = np.zeros((4, 6), dtype=int)
    dut = FoldedMatrixVector(weights=weights, input_encoding=TERNARY, pe=2, simd=3, stages=stages)
    assert dut.acc_range == (0, 0) and dut.simd_ranges == [(0, 0), (0, 0)]
    xs = random_values(np.random.default_rng(1), TERNARY, (4, 6))
    got = rtl_folded(weights, xs, encoding=TERNARY, pe=2, simd=3, stages=stages, max_delay=3)
    assert np.array_equal(got, np.zeros((4, 4), dtype=int))


def test_deep_pipeline_long_stalls_with_activation():
    """One step per vector (pe = rows, simd = cols) keeps every stage full; stalls are long."""
    rng = np.random.default_rng(5)
    weights = rng.choice([-1, 0, 1], size=(6, 8))
    weights[2] = 0
    thresholds = extreme_thresholds(rng, 6, 2, -8, 8)
    xs = random_values(rng, TERNARY, (12, 8))
    for carry_in, bit_adders in (("constant", "logic"), ("repeat", "carry")):
        got = rtl_folded(
            weights,
            xs,
            encoding=TERNARY,
            pe=6,
            simd=8,
            stages=3,
            carry_in=carry_in,
            bit_adders=bit_adders,
            levels=(-1, 0, 1),
            thresholds=thresholds,
            max_delay=8,
            seed=3,
        )
        assert np.array_equal(got, ref_folded(weights, xs, (-1, 0, 1), thresholds))


def rtl_backed_up(dut, inputs, *, seed, max_delay):
    """Outputs of ``dut`` fed back to back while ``o`` pauses up to ``max_delay`` cycles.

    With inputs always waiting, every pipeline register holds a vector's step when ``o`` stalls.
    """
    outputs = []

    async def producer(ctx):
        for payload in inputs:
            await stream_put(ctx, dut.i, payload)

    async def consumer(ctx):
        rng = seeded(seed)
        for _ in inputs:
            outputs.append(await stream_get(ctx, dut.o, rng=rng, max_delay=max_delay))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return np.array([from_wire(dut.output_encoding, p) for p in outputs])


@pytest.mark.parametrize("stages", [1, 3])
@pytest.mark.parametrize("pe, simd", [(4, 8), (2, 8), (4, 2)])
def test_back_pressure_holds_every_stage(pe, simd, stages):
    rng = np.random.default_rng([pe, simd, stages])
    weights = rng.choice([-1, 0, 1], size=(4, 8))
    xs = random_values(rng, ValueEncoding.int(3), (16, 8))
    dut = FoldedMatrixVector(
        weights=weights, input_encoding=ValueEncoding.int(3), pe=pe, simd=simd, stages=stages
    )
    got = rtl_backed_up(
        dut, [to_wire(ValueEncoding.int(3), x) for x in xs], seed=stages, max_delay=5
    )
    assert np.array_equal(got, ref_folded(weights, xs))


@pytest.mark.parametrize("rom", [{}, {"rom_style": "block"}, {"block_bits": 1}], ids=str)
@pytest.mark.parametrize("stages", [0, 1, 2, 4])
@pytest.mark.parametrize("pe, simd, levels", [(1, 2, (-1, 0, 1)), (4, 4, None), (2, 1, (-1, 1))])
def test_latency_with_stages_matches_simulation(pe, simd, levels, stages, rom):
    rng = np.random.default_rng([pe, simd, stages])
    weights = rng.choice([-1, 0, 1], size=(4, 4))
    kwargs = {}
    if levels is not None:
        kwargs = dict(levels=levels, thresholds=np.sort(rng.integers(-3, 3, (4, len(levels) - 1))))
    dut = FoldedMatrixVector(
        weights=weights, input_encoding=TERNARY, pe=pe, simd=simd, stages=stages, **kwargs, **rom
    )
    assert dut.stages == stages
    if rom:  # block RAM read data gets a register of its own
        plain = FoldedMatrixVector(
            weights=weights, input_encoding=TERNARY, pe=pe, simd=simd, stages=stages, **kwargs
        )
        assert dut.latency == plain.latency + 1
    xs = random_values(rng, TERNARY, (4, 4))
    in_cycles, out_cycles, out = timed(dut, [to_wire(TERNARY, x) for x in xs], len(xs))
    assert out_cycles[0] - in_cycles[0] == dut.latency
    ii = dut.initiation_interval
    assert np.diff(out_cycles).tolist() == [ii] * 3
    got = np.array([from_wire(dut.output_encoding, p) for p in out])
    assert np.array_equal(got, ref_folded(weights, xs, levels, kwargs.get("thresholds")))


def test_default_stages():
    # about two adders per stage, the accumulator's included: none up to 2, one up to 8, two
    # up to 32, three up to 128, four up to 512
    sizes = (1, 2, 3, 8, 9, 32, 33, 128, 129, 512, 513)
    assert [default_stages(s) for s in sizes] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    w = np.ones((2, 32), dtype=int)
    dut = FoldedMatrixVector(weights=w, input_encoding=TERNARY, pe=1, simd=32)
    assert dut.stages == 2
    # ROM, ROM word register, 2 stages, accumulator, output register
    assert dut.latency == dut.initiation_interval + 6
    assert dut.simd_ranges == [(-32, 32)]
    # an intN weight's AND array stacks min(n, N) bits of a product in its middle columns
    assert [default_stages(8, c) for c in (1, 2, 4)] == [1, 2, 2]
    assert default_stages(49, 4) == 4  # 196 bits a column: eight levels
    w4 = FoldedMatrixVector(
        weights=np.ones((2, 8), dtype=int),
        input_encoding=ValueEncoding.uint(4),
        pe=1,
        simd=8,
        weight_type="int4",
    )
    assert w4.stages == 2


@pytest.mark.parametrize(
    "encoding",
    [
        TERNARY,
        ValueEncoding.binary(),
        ValueEncoding.uint(2),
        ValueEncoding.uint(4),
        ValueEncoding.int(3),
    ],
    ids=lambda e: e.name,
)
@pytest.mark.parametrize("weight_type", ["ternary", "binary", "int2", "int4", "int8"])
def test_heap_column_bits_is_the_tallest_column_of_a_product(encoding, weight_type):
    from amaranth.hdl import Signal

    from hw.products import heap_column_bits, product_bits, weight_bits

    x = Signal(encoding.width)
    w = Signal(weight_bits(weight_type))
    bits, _ = product_bits(x, encoding, w, weight_type)
    columns = collections.Counter(exponent for _, exponent, _ in bits)
    assert max(columns.values()) == heap_column_bits(encoding, weight_type)
    assert heap_column_bits(encoding, weight_type, "dsp") == 1


def test_properties():
    weights = np.zeros((6, 8), dtype=int)
    weights[:, 0] = 1
    weights[1, 1:] = -1
    dut = FoldedMatrixVector(weights=weights, input_encoding=ValueEncoding.uint(4), pe=2, simd=4)
    assert dut.fold == (3, 2)
    assert dut.initiation_interval == 6
    assert dut.acc_range == (-105, 15)
    assert dut.output_encoding == ValueEncoding.int(8)
    assert dut.weight_rom_bits == 96 and dut.threshold_rom_bits == 0 and dut.rom_bits == 96
    thresholds = np.tile([-1000, 3, 1000], (6, 1))
    act = FoldedMatrixVector(
        weights=weights,
        input_encoding=ValueEncoding.uint(4),
        pe=2,
        simd=4,
        weight_type="ternary",
        levels=(0, 1, 2, 3),
        thresholds=thresholds,
    )
    # thresholds clamp to [-105, 16]: int8 in ROM
    assert act.threshold_rom_bits == 6 * 3 * 8
    assert act.output_encoding == ValueEncoding.uint(2)
    full = FoldedMatrixVector(
        weights=weights,
        input_encoding=BINARY,
        pe=6,
        simd=8,
        weight_type="ternary",
        levels=(0, 1, 2, 3),
        thresholds=thresholds,
    )
    assert full.threshold_rom_bits == 0  # one row fold: thresholds are constants
    # II 1; ROM, ROM word, one sum stage, accumulator, comparisons, output register
    assert full.latency == 7 and full.initiation_interval == 1
    # the activation's comparisons are registered: one cycle more than the raw accumulators
    assert act.latency == dut.latency + 1


def test_parameter_errors():
    w = np.ones((4, 6), dtype=int)
    ok = dict(weights=w, input_encoding=TERNARY, pe=2, simd=3)

    def check(exc, message, **change):
        with pytest.raises(exc, match="^" + message + "$"):
            FoldedMatrixVector(**{**ok, **change})

    check(ValueError, r"PE \(3\) must divide the number of rows \(4\)", pe=3)
    check(ValueError, r"SIMD \(4\) must divide the number of columns \(6\)", simd=4)
    check(TypeError, r"PE must be a positive integer, not '2'", pe="2")
    check(ValueError, r"PE must be a positive integer, not 0", pe=0)
    check(TypeError, r"SIMD must be a positive integer, not 1\.5", simd=1.5)
    check(ValueError, r"SIMD must be a positive integer, not -3", simd=-3)
    check(
        TypeError,
        r"Input encoding must be a ValueEncoding, not 'ternary'",
        input_encoding="ternary",
    )
    check(
        ValueError,
        r"Weight type must be 'ternary', 'binary' or 'int2' to 'int8', not 'int9'",
        weight_type="int9",
    )
    check(ValueError, r"int3 weights must be -4 to 3, not 4", weights=4 * w, weight_type="int3")
    check(
        TypeError,
        r"Weights must be a non-empty 2-D array of integers, not \[1, 0\]",
        weights=[1, 0],
    )
    check(ValueError, r"Ternary weights must be -1, 0 or \+1, not 2", weights=2 * w)
    check(
        ValueError, r"Binary weights must be -1 or \+1, not 0", weights=0 * w, weight_type="binary"
    )
    check(ValueError, r"Levels and thresholds must be given together, or neither", levels=(-1, 1))
    check(TypeError, r"Stages must be a non-negative integer, not True", stages=True)
    check(ValueError, r"Stages must be a non-negative integer, not -1", stages=-1)
    check(
        ValueError,
        r"Carry-in must be one of \('constant', 'repeat'\), not 'none'",
        carry_in="none",
    )
    check(
        ValueError,
        r"Bit adders must be one of \('logic', 'carry'\), not 'lut'",
        bit_adders="lut",
    )
    check(ValueError, r"Multiply must be one of 'logic', 'dsp', not 'mac'", multiply="mac")
    # the weight word of pe=2, simd=3 ternary weights is 12 bits
    for bad in (-1, 13, 1.5, True):
        check(
            ValueError,
            rf"Block bits must be an integer from 0 to the weight word's 12 bits, not {bad!r}",
            block_bits=bad,
        )
    check(
        ValueError,
        r"Multiply 'dsp' takes intN weights and non-binary inputs, not ternary weights and "
        r"ternary inputs",
        multiply="dsp",
    )
    check(
        ValueError,
        r"Multiply 'dsp' takes intN weights and non-binary inputs, not int4 weights and "
        r"binary inputs",
        multiply="dsp",
        weight_type="int4",
        input_encoding=BINARY,
    )
    check(
        ValueError,
        r"Thresholds must have one row per weight row \(4\), not 1",
        levels=(-1, 1),
        thresholds=[[0]],
    )
    check(
        ValueError,
        r"Thresholds of row 0 must be ascending, not \[1, 0\]",
        levels=(-1, 0, 1),
        thresholds=[[1, 0]] * 4,
    )


@pytest.mark.parametrize("pe, simd", [(2, 4), (4, 2), (4, 4)])
def test_ready_does_not_look_at_the_output_side(pe, simd):
    """With more than one issue step, ``i.ready`` comes from registers: flipping ``o.ready``
    within a cycle never changes it (a chain of engines has no ready path through them). With
    one step (``pe x simd`` the whole matrix) it may, which keeps the interval at 1."""
    rng = np.random.default_rng(7)
    weights = rng.choice([-1, 0, 1], size=(4, 4))
    dut = FoldedMatrixVector(weights=weights, input_encoding=TERNARY, pe=pe, simd=simd)
    xs = [to_wire(TERNARY, x) for x in random_values(rng, TERNARY, (12, 4))]
    seen = {"cycles": 0, "differs": 0}

    async def bench(ctx):
        sent = 0
        for _ in range(200):
            ctx.set(dut.i.valid, sent < len(xs))
            ctx.set(dut.i.payload, xs[min(sent, len(xs) - 1)])
            ctx.set(dut.o.ready, 0)
            low = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1)
            high = ctx.get(dut.i.ready)
            seen["cycles"] += 1
            seen["differs"] += low != high
            ready_out = rng.random() < 0.3  # mostly back-pressure: the engine fills up
            ctx.set(dut.o.ready, ready_out)
            accepted = ctx.get(dut.i.valid) and ctx.get(dut.i.ready)
            await ctx.tick()
            sent += bool(accepted)
        assert sent == len(xs)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    steps = dut.initiation_interval
    if steps > 1:
        assert seen["differs"] == 0
    else:
        assert seen["differs"] > 0  # the check can see a combinational path where there is one


@pytest.mark.parametrize("block_bits", [0, 1, 7, 16, 23, 24])
def test_weight_rom_split_between_block_ram_and_logic(block_bits):
    """The weight word's low bits in one ROM, the rest in another, read together: exact for
    every split, all-logic and all-block included (int4 weights, PE 2 x SIMD 3: 24 bits)."""
    rng = np.random.default_rng(block_bits)
    weights = rng.integers(-8, 8, size=(6, 9))
    weights[0] = -8
    xs = random_values(rng, ValueEncoding.uint(3), (8, 9))
    xs[0] = 7
    got = rtl_folded(
        weights,
        xs,
        encoding=ValueEncoding.uint(3),
        pe=2,
        simd=3,
        weight_type="int4",
        block_bits=block_bits,
        max_delay=2,
        seed=block_bits,
    )
    assert np.array_equal(got, ref_folded(weights, xs))
    dut = FoldedMatrixVector(
        weights=weights,
        input_encoding=ValueEncoding.uint(3),
        pe=2,
        simd=3,
        weight_type="int4",
        block_bits=block_bits,
    )
    assert dut.block_bits == block_bits


# --- a wide weight word read in chunks, each at its own copy of the address ------------------


@pytest.mark.parametrize(
    "rom_style, block_bits", [("logic", None), (None, None), ("block", None), (None, 150)]
)
def test_wide_word_read_in_chunks_at_copies_of_the_address(rom_style, block_bits):
    """PE 2 x SIMD 80 ternary weights: a 320-bit word, three chunks of at most 144 bits (with
    150 bits in block RAM: 144 + 6 of block RAM, 144 + 26 of logic), exact at every split."""
    rng = np.random.default_rng(7)
    weights = rng.integers(-1, 2, size=(6, 160))
    weights[1] = 0  # an all-zero row
    xs = rng.integers(-1, 2, size=(6, 160))
    kwargs = {"rom_style": rom_style, "block_bits": block_bits}
    got = rtl_folded(weights, xs, encoding=TERNARY, pe=2, simd=80, max_delay=2, seed=3, **kwargs)
    assert np.array_equal(got, ref_folded(weights, xs))
    dut = FoldedMatrixVector(weights=weights, input_encoding=TERNARY, pe=2, simd=80, **kwargs)
    pieces = roms.chunks(320, rom_style, block_bits)
    assert [bits for _, bits, _, _ in pieces] == (
        [144, 6, 144, 26] if block_bits else [144, 144, 32]
    )
    text = verilog.convert(dut, name="engine")
    copies = set(re.findall(r"\bstep0_copy(\d+)\b", text))
    assert copies == {str(k) for k in range(1, len(pieces))}
    assert len(set(re.findall(r"reg \[\d+:0\] (\S*weight_rom\S*) \[", text))) == len(pieces)


def test_one_chunk_keeps_one_address():
    dut = FoldedMatrixVector(
        weights=np.ones((4, 16), dtype=int), input_encoding=TERNARY, pe=2, simd=8
    )
    assert "step0_copy" not in verilog.convert(dut, name="engine")


@pytest.mark.skipif(not shutil.which("yosys"), reason="needs yosys")
def test_synthesis_keeps_the_address_copies_apart(tmp_path):
    """Yosys merges registers with equal inputs (``opt_merge``): each copy counts from its own
    value, so after ``synth_ecp5`` the copies are still distinct flip-flops."""
    rng = np.random.default_rng(1)
    weights = rng.integers(-1, 2, size=(4, 160))
    dut = FoldedMatrixVector(
        weights=weights, input_encoding=TERNARY, pe=2, simd=80, rom_style="logic"
    )
    (tmp_path / "engine.v").write_text(verilog.convert(dut, name="engine"))
    netlist = tmp_path / "engine.json"
    subprocess.run(
        [
            "yosys",
            "-q",
            "-p",
            f"read_verilog engine.v; synth_ecp5 -top engine; write_json {netlist}",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=600,
    )
    nets = json.loads(netlist.read_text())["modules"]["engine"]["netnames"]
    names = ["step0", "step0_copy1", "step0_copy2"]
    bits = [tuple(nets[n]["bits"]) for n in names]
    assert len(set(bits)) == 3, dict(zip(names, bits, strict=True))
    cells = json.loads(netlist.read_text())["modules"]["engine"]["cells"].values()
    driven = {b for c in cells if c["type"] == "TRELLIS_FF" for b in c["connections"]["Q"]}
    assert all(b in driven for copy in bits for b in copy)
