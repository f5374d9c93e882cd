# amaranth: UnusedElaboratable=no

import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.sim import Simulator

from hw.addergraph import Leaf, build_graph, plan_graph


def unshared_adders(weights):
    return int(sum(max(0, int(np.count_nonzero(row)) - 1) for row in weights))


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (1, 7), (16, 64), (40, 24)])
def test_plan_is_exact(shape):
    rng = np.random.default_rng(sum(shape))
    weights = rng.choice([-1, 0, 1], size=shape)
    graph = plan_graph(weights)
    assert (graph.expand() == weights).all()
    assert graph.adders <= unshared_adders(weights)
    for k, (a, b, s) in enumerate(graph.items):
        assert a < b < graph.fan_in + k and s in (-1, 1)  # terms refer to earlier terms only
    for terms in graph.rows:
        assert len({t for t, _ in terms}) == len(terms)


def test_plan_shares():
    rng = np.random.default_rng(3)
    weights = rng.choice([-1, 0, 1], size=(16, 64))
    graph = plan_graph(weights)
    # fewer adders than rows summed on their own (measured: about a third fewer)
    assert graph.adders < 0.8 * unshared_adders(weights)
    # identical rows, and rows negated, collapse to one shared term each
    row = rng.choice([-1, 1], size=12)
    graph = plan_graph(np.array([row, row, -row, row]))
    assert len(graph.items) == 11
    assert all(len(terms) == 1 for terms in graph.rows)
    signs = [terms[0][1] for terms in graph.rows]
    assert signs == [signs[0], signs[0], -signs[0], signs[0]]
    # nothing used twice: nothing shared
    assert plan_graph(np.array([[1, 1, 0, 0], [0, 0, 1, -1]])).items == ()


def test_plan_in_blocks_is_exact():
    rng = np.random.default_rng(5)
    weights = rng.choice([-1, 0, 1], size=(12, 60))
    whole = plan_graph(weights)
    blocks = plan_graph(weights, max_pairs=100)
    assert (blocks.expand() == weights).all()
    # the blocks share less, and each block's terms stay within it
    assert whole.adders <= blocks.adders
    assert len(blocks.items) < len(whole.items)


def evaluate(graph, leaves_of, lo, hi, vectors, *, constants=None, stages=0, negate=True):
    """Simulate build_graph on ``vectors`` of inputs in ``[lo, hi]`` (one per cycle)."""
    m = Module()
    width = max(abs(lo), abs(hi)).bit_length() + 1
    x = [
        Signal(range(lo, hi + 1) if lo < 0 else unsigned(width), name=f"x{i}")
        for i in range(graph.fan_in)
    ]
    leaves = [leaves_of(v, negate) for v in x]
    outs = build_graph(m, graph, leaves, constants=constants, stages=stages, name="g")
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)  # a clock domain even without pipeline registers
    results = []

    async def bench(ctx):
        for n, v in enumerate(vectors + [vectors[-1]] * stages):
            for sig, value in zip(x, v, strict=True):
                ctx.set(sig, int(value))
            if n >= stages:
                results.append([ctx.get(o) for o in outs])
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def ternary_leaf(v, negate):
    return Leaf(v, -1, 1, Leaf(-v, -1, 1) if negate else None)


@pytest.mark.parametrize("stages", [0, 1, 3])
@pytest.mark.parametrize("negate", [False, True])
def test_build_exhaustive(stages, negate):
    """Every ternary row of fan-in 3 (all-zero and all-negative ones too), every input."""
    weights = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    weights = np.vstack([weights, weights[::-1]])  # every row twice: shared terms
    graph = plan_graph(weights)
    assert graph.items
    vectors = [list(v) for v in itertools.product((-1, 0, 1), repeat=3)]
    got = evaluate(graph, ternary_leaf, -1, 1, vectors, stages=stages, negate=negate)
    assert got == (np.array(vectors) @ weights.T).tolist()


@pytest.mark.parametrize("stages", [0, 2])
def test_build_unsigned_leaves_and_constants(stages):
    """Leaves of other ranges (no cheap negation: subtractions), with constants per row."""
    rng = np.random.default_rng(11)
    weights = rng.choice([-1, 0, 1], size=(10, 9))
    weights[0] = 0
    weights[1] = -np.abs(weights[1])  # only negative terms
    weights[2] = 0
    weights[2, 4] = 1  # fan-in one
    constants = rng.integers(-40, 41, size=10).tolist()
    constants[3] = 0
    graph = plan_graph(weights)

    def leaf(v, negate):
        return Leaf(v, 0, 7)

    vectors = rng.integers(0, 8, size=(30, 9))
    vectors[0], vectors[1] = 0, 7
    got = evaluate(graph, leaf, 0, 7, vectors.tolist(), constants=constants, stages=stages)
    assert got == (vectors @ weights.T + np.array(constants)).tolist()


def test_build_checks_leaves():
    graph = plan_graph(np.array([[1, 1]]))
    with pytest.raises(ValueError, match=r"^The graph has 2 inputs, not 1 leaves$"):
        build_graph(Module(), graph, [Leaf(Signal(2), 0, 3)], name="g")


def test_plan_checks_its_parameters():
    with pytest.raises(
        ValueError, match=r"^Weights must be a non-empty 2-D integer matrix, not shape \(3,\)$"
    ):
        plan_graph([1, 0, 1])
    with pytest.raises(
        ValueError, match=r"^Weights must be a non-empty 2-D integer matrix, not shape \(1, 0\)$"
    ):
        plan_graph(np.zeros((1, 0), dtype=int))
    with pytest.raises(ValueError, match=r"^Weights must be -1, 0 or \+1, not 2$"):
        plan_graph([[1, 2]])
    with pytest.raises(ValueError, match=r"^Minimum uses must be an integer of at least 2, not 1$"):
        plan_graph([[1, 1]], min_uses=1)
    with pytest.raises(ValueError, match=r"^Maximum pairs must be a positive integer, not 0$"):
        plan_graph([[1, 1]], max_pairs=0)
