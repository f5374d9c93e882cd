# amaranth: UnusedElaboratable=no

import itertools

import numpy as np
import pytest
from amaranth.hdl import Const, Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from reference import ref_threshold
from streams import drive, from_wire, timed

from hw.encoding import ValueEncoding
from hw.threshold import ThresholdUnit, levels_encoding, threshold_level


def rtl_threshold(acc_shape, thresholds, levels, accs, *, max_delay=0, seed=0):
    dut = ThresholdUnit(acc_shape=acc_shape, thresholds=thresholds, levels=levels)
    out = drive(dut, [list(map(int, a)) for a in accs], len(accs), seed=seed, max_delay=max_delay)
    return np.array([from_wire(dut.output_encoding, p) for p in out])


LEVELS = [(-1, 0, 1), (-1, 1), (0, 1, 2, 3), (-3, 2, 5)]


def test_levels_encoding():
    assert levels_encoding([-1, 0, 1]) == ValueEncoding.ternary()
    assert levels_encoding((-1, 1)) == ValueEncoding.binary()
    assert levels_encoding((0, 1, 2, 3)) == ValueEncoding.uint(2)
    assert levels_encoding((0, 1)) == ValueEncoding.uint(1)
    assert levels_encoding((-3, 2, 5)) == ValueEncoding.int(4)
    assert levels_encoding((-2, 0, 2)) == ValueEncoding.int(3)


@pytest.mark.parametrize("levels", LEVELS)
@pytest.mark.parametrize("acc_shape", [signed(4), unsigned(3)])
def test_exhaustive_small_accumulators(levels, acc_shape):
    """Every accumulator value against rows with thresholds inside, at and beyond its range."""
    lo, hi = (-8, 7) if acc_shape.signed else (0, 7)
    candidates = sorted({lo - 5, lo, lo + 1, 0, 2, hi, hi + 1, hi + 40})
    rows = np.array(list(itertools.combinations_with_replacement(candidates, len(levels) - 1)))
    accs = np.arange(lo, hi + 1)
    # one transfer per accumulator value, each carrying that value to every row
    inputs = np.repeat(accs[:, None], len(rows), axis=1)
    got = rtl_threshold(acc_shape, rows, levels, inputs, max_delay=1, seed=len(levels))
    assert np.array_equal(got, ref_threshold(inputs, rows, levels))


@pytest.mark.parametrize("levels", LEVELS)
def test_random_rows_with_stalls(levels):
    rng = np.random.default_rng(len(levels))
    rows = np.sort(rng.integers(-70, 70, size=(12, len(levels) - 1)), axis=1)
    accs = rng.integers(-64, 64, size=(30, 12))
    got = rtl_threshold(signed(7), rows, levels, accs, max_delay=4, seed=3)
    assert np.array_equal(got, ref_threshold(accs, rows, levels))


def test_thresholds_beyond_the_accumulator_cost_no_comparator():
    acc = Signal(signed(6))  # -32..31
    # always met, never met: a constant 0 with no logic at all
    assert isinstance(threshold_level(acc, [-32, 32], (-1, 0, 1)), Const)
    assert isinstance(threshold_level(acc, [-1000, 1000], (-1, 0, 1)), Const)
    # a narrower known range folds more
    assert isinstance(threshold_level(acc, [-5, 6], (-1, 0, 1), acc_range=(-5, 5)), Const)
    assert not isinstance(threshold_level(acc, [-5, 5], (-1, 0, 1), acc_range=(-5, 5)), Const)
    # never met: the result keeps the accumulator's width only where a comparison remains
    assert threshold_level(acc, [3, 99], (-1, 0, 1)).shape() == signed(2)


def test_signal_thresholds_as_from_a_rom():
    """The combinational helper with thresholds that are signals, as a folded engine uses it."""
    levels = (0, 1, 2)
    acc = Signal(signed(4))
    t0, t1 = Signal(signed(5)), Signal(signed(5))
    y = threshold_level(acc, [t0, t1], levels)
    cases = [(a, lo, hi) for a in range(-8, 8) for lo in range(-9, 10, 3) for hi in (lo, lo + 4, 9)]
    got = []

    async def bench(ctx):
        for a, lo, hi in cases:
            ctx.set(acc, a)
            ctx.set(t0, lo)
            ctx.set(t1, min(hi, 15))
            got.append(ctx.get(y))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    expect = [ref_threshold(a, [lo, min(hi, 15)], levels) for a, lo, hi in cases]
    assert got == [int(e) for e in expect]


def test_latency_matches_property():
    rows = np.array([[-2, 2], [0, 1]])
    dut = ThresholdUnit(acc_shape=signed(4), thresholds=rows, levels=(-1, 0, 1))
    accs = [[a, -a] for a in range(-4, 4)]
    in_cycles, out_cycles, out = timed(dut, accs, len(accs))
    assert [o - i for i, o in zip(in_cycles, out_cycles, strict=True)] == [dut.latency] * len(accs)
    assert np.diff(in_cycles).tolist() == [dut.initiation_interval] * (len(accs) - 1)
    got = np.array([list(p) for p in out])
    assert np.array_equal(got, ref_threshold(accs, rows, (-1, 0, 1)))


def test_parameter_errors():
    ok = dict(acc_shape=signed(4), thresholds=[[0, 1]], levels=(-1, 0, 1))
    with pytest.raises(TypeError, match=r"^Levels must be a sequence of integers, not 3$"):
        ThresholdUnit(**{**ok, "levels": 3})
    message = r"^Levels must be a sequence of integers, not \(0, 1\.5\)$"
    with pytest.raises(TypeError, match=message):
        ThresholdUnit(**{**ok, "levels": (0, 1.5)})
    with pytest.raises(
        ValueError, match=r"^Levels must be at least two strictly ascending integers, not \(1, 0\)$"
    ):
        ThresholdUnit(**{**ok, "levels": (1, 0)})
    with pytest.raises(
        ValueError, match=r"^Levels must be at least two strictly ascending integers, not \(1,\)$"
    ):
        ThresholdUnit(**{**ok, "levels": (1,)})
    message = r"^Thresholds must be a 2-D array of integers, not \[0, 1\]$"
    with pytest.raises(TypeError, match=message):
        ThresholdUnit(**{**ok, "thresholds": [0, 1]})
    with pytest.raises(TypeError, match=r"^Thresholds must be a 2-D array of integers, not"):
        ThresholdUnit(**{**ok, "thresholds": [[0.5, 1]]})
    with pytest.raises(
        ValueError, match=r"^Thresholds must have 2 per row \(one fewer than the levels\), not 3$"
    ):
        ThresholdUnit(**{**ok, "thresholds": [[0, 1, 2]]})
    with pytest.raises(ValueError, match=r"^Thresholds of row 1 must be ascending, not \[2, 1\]$"):
        ThresholdUnit(**{**ok, "thresholds": [[0, 1], [2, 1]]})
    with pytest.raises(ValueError, match=r"^Thresholds must have at least one row$"):
        ThresholdUnit(**{**ok, "thresholds": np.zeros((0, 2), dtype=int)})
    with pytest.raises(TypeError, match=r"^Accumulator shape must be a shape, not 'int8'$"):
        ThresholdUnit(**{**ok, "acc_shape": "int8"})
    with pytest.raises(
        ValueError, match=r"^Thresholds must have 1 per row \(one fewer than the levels\), not 2$"
    ):
        threshold_level(Signal(4), [1, 2], (-1, 1))
