# amaranth: UnusedElaboratable=no

import itertools

import numpy as np
import pytest
from amaranth.hdl import unsigned
from streams import drive, random_values, timed, to_wire

from hw.argmax import Argmax, default_stages
from hw.encoding import ValueEncoding

TERNARY = ValueEncoding.ternary()
BINARY = ValueEncoding.binary()


def rtl_argmax(vectors, encoding, *, stages=0, max_delay=2, seed=0):
    dut = Argmax(encoding=encoding, count=len(vectors[0]), stages=stages)
    payloads = [to_wire(encoding, v) for v in vectors]
    return drive(dut, payloads, len(vectors), seed=seed, max_delay=max_delay)


@pytest.mark.parametrize("stages", [0, 1, 2, 3, 4, 5])
def test_exhaustive_ternary_three(stages):
    """Every ternary vector of 3 scores, ties included."""
    vectors = np.array(list(itertools.product([-1, 0, 1], repeat=3)))
    got = rtl_argmax(vectors, TERNARY, stages=stages, seed=stages)
    assert got == np.argmax(vectors, axis=1).tolist()


@pytest.mark.parametrize("stages", [0, 2, 5, 6, 7])
def test_exhaustive_binary_five(stages):
    """Every binary vector of 5 scores: mostly ties, which must go to the lowest index."""
    vectors = np.array(list(itertools.product([-1, 1], repeat=5)))
    got = rtl_argmax(vectors, BINARY, stages=stages, seed=stages)
    assert got == np.argmax(vectors, axis=1).tolist()


@pytest.mark.parametrize(
    "count, stages",
    [(10, 0), (10, 1), (10, 3), (10, 4), (10, 5), (10, 8), (10, 9), (7, 2), (7, 6), (7, 7), (2, 2)],
)
@pytest.mark.parametrize(
    "encoding", [ValueEncoding.int(8), ValueEncoding.uint(3)], ids=lambda e: e.name
)
def test_random_scores_with_ties_and_stalls(count, stages, encoding):
    rng = np.random.default_rng([count, stages, encoding.width])
    vectors = random_values(rng, encoding, (40, count))
    vectors[:10] = rng.integers(encoding.min, encoding.min + 2, size=(10, count))  # many ties
    vectors[10] = encoding.max  # all equal
    vectors[11] = encoding.min
    got = rtl_argmax(vectors, encoding, stages=stages, max_delay=3, seed=count + stages)
    assert got == np.argmax(vectors, axis=1).tolist()


@pytest.mark.parametrize("stages", [0, 1])
def test_single_score(stages):
    got = rtl_argmax(np.array([[-3], [5]]), ValueEncoding.int(4), stages=stages)
    assert got == [0, 0]


@pytest.mark.parametrize(
    "count, stages", [(1, 1), (2, 3), (6, 0), (6, 2), (6, 7), (9, 4), (9, 7), (9, 8), (9, 9)]
)
def test_latency_matches_property(count, stages):
    enc = ValueEncoding.int(5)
    rng = np.random.default_rng(count)
    vectors = random_values(rng, enc, (6, count))
    dut = Argmax(encoding=enc, count=count, stages=stages)
    in_cycles, out_cycles, out = timed(dut, [to_wire(enc, v) for v in vectors], len(vectors))
    assert out == np.argmax(vectors, axis=1).tolist()
    assert [o - i for i, o in zip(in_cycles, out_cycles, strict=True)] == [dut.latency] * 6
    assert np.diff(in_cycles).tolist() == [dut.initiation_interval] * 5


def test_index_shape():
    assert Argmax(encoding=TERNARY, count=10).index_shape == unsigned(4)
    assert Argmax(encoding=TERNARY, count=8).o.payload.shape() == unsigned(3)
    assert Argmax(encoding=TERNARY, count=1).index_shape == unsigned(1)


def test_parameter_errors():
    with pytest.raises(TypeError, match=r"^Encoding must be a ValueEncoding, not 'int8'$"):
        Argmax(encoding="int8", count=4)
    with pytest.raises(ValueError, match=r"^Count must be a positive integer, not 0$"):
        Argmax(encoding=TERNARY, count=0)
    with pytest.raises(TypeError, match=r"^Count must be a positive integer, not 4\.0$"):
        Argmax(encoding=TERNARY, count=4.0)
    with pytest.raises(TypeError, match=r"^Stages must be an integer, not None$"):
        Argmax(encoding=TERNARY, count=4, stages=None)
    with pytest.raises(ValueError, match=r"^Stages must be between 0 and 5 for 4 scores, not 6$"):
        Argmax(encoding=TERNARY, count=4, stages=6)
    with pytest.raises(ValueError, match=r"^Stages must be between 0 and 1 for 1 scores, not -1$"):
        Argmax(encoding=TERNARY, count=1, stages=-1)


def test_default_stages_register_every_comparison_and_selection():
    # two steps per level of the tournament, at least one register
    assert [default_stages(n) for n in (1, 2, 3, 4, 5, 10, 16, 17)] == [1, 2, 4, 4, 6, 8, 8, 10]
    # and one more on the scores themselves, which a single score already has
    registered = [default_stages(n, registered_input=True) for n in (1, 2, 3, 10, 17)]
    assert registered == [1, 3, 5, 9, 11]
    dut = Argmax(encoding=ValueEncoding.int(5), count=10)
    assert dut.latency == 0  # the default of the block itself stays combinational
