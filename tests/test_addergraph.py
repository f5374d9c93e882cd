# amaranth: UnusedElaboratable=no

import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.sim import Simulator

from hw.addergraph import Leaf, build_graph, graph_cost, plan_graph


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
    """Simulate build_graph on ``vectors`` of inputs in ``[lo, hi]`` (one per cycle); input
    ``i``'s leaf is ``leaves_of(x_i, negate, i)``."""
    m = Module()
    width = max(abs(lo), abs(hi)).bit_length() + 1
    x = [
        Signal(range(lo, hi + 1) if lo < 0 else unsigned(width), name=f"x{i}")
        for i in range(graph.fan_in)
    ]
    leaves = [leaves_of(v, negate, i) for i, v in enumerate(x)]
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


def ternary_leaf(v, negate, i):
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

    def leaf(v, negate, i):
        return Leaf(v, 0, 7)

    vectors = rng.integers(0, 8, size=(30, 9))
    vectors[0], vectors[1] = 0, 7
    got = evaluate(graph, leaf, 0, 7, vectors.tolist(), constants=constants, stages=stages)
    assert got == (vectors @ weights.T + np.array(constants)).tolist()


@pytest.mark.parametrize("negate", [False, True])
def test_build_shifted_leaves(negate):
    """Leaves whose low bits are 0 (digit planes of integer weights): the adders wire those
    bits past the carry chain, exactly, for every mix of shifts and signs, with constants odd,
    even and zero."""
    rng = np.random.default_rng(21)
    weights = rng.choice([-1, 0, 1], size=(14, 8))
    weights = np.vstack([weights, weights[:4], -weights[4:8]])  # shared terms of both signs
    weights[0] = 0
    weights[1] = -np.abs(weights[1])
    weights[2] = 0
    weights[2, 5] = 1
    shifts = [0, 1, 2, 3, 1, 0, 4, 2]
    constants = rng.integers(-50, 51, size=len(weights)).tolist()
    constants[3], constants[4], constants[5] = 0, 24, -16
    graph = plan_graph(weights)
    assert graph.items
    vectors = rng.integers(-4, 4, size=(40, 8))
    vectors[0], vectors[1] = -4, 3

    def shifted_leaf(v, negate, i):
        # x << e, int3 x: its e low bits (and its negation's) always 0
        e = shifts[i]
        neg = Leaf((-v).shift_left(e), -3 << e, 4 << e, zeros=e) if negate else None
        return Leaf(v.shift_left(e), -4 << e, 3 << e, neg, zeros=e)

    got = evaluate(graph, shifted_leaf, -4, 3, vectors.tolist(), constants=constants, negate=negate)
    shifted = vectors * (1 << np.array(shifts))
    assert got == (shifted @ weights.T + np.array(constants)).tolist()


def test_cost_leaves_out_the_low_zero_bits():
    """x << 2 plus y << 3, both 0..7: the sum 0..84 has 7 result bits, of which bits 0-1 are 0
    and bit 2 is x's, so the chain is bits 3-6, four cells; x - (y << 3) chains from bit 3 too,
    x << 3 minus y from bit 0."""
    graph = plan_graph(np.array([[1, 1]]))

    def leaves(ex, ey):
        return [Leaf(None, 0, 7 << ex, zeros=ex), Leaf(None, 0, 7 << ey, zeros=ey)]

    assert graph_cost(graph, leaves(2, 3)) == 4
    assert graph_cost(graph, leaves(0, 0)) == 4  # 0..14: four bits, all in the chain
    minus = plan_graph(np.array([[1, -1]]))
    # x - (y << 3), x in 0..7: -56..7, 7 bits; y's three zero bits pass x's through
    assert graph_cost(minus, leaves(0, 3)) == 7 - 3
    # (x << 3) - y: -7..56, 7 bits, every one in the chain
    assert graph_cost(minus, leaves(3, 0)) == 7


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


def test_a_negation_that_is_an_adder_counts_as_a_level():
    # -x0 - x1 sums the inputs' negations; an intN input's negation is a carry chain of its own
    # (Leaf.depth 1), a ternary input's one LUT (depth 0): the root is 2 or 1 adders deep
    from hw.addergraph import graph_words

    graph = plan_graph(np.array([[-1, -1]]))
    for depth, expected in ((1, 2), (0, 1)):
        leaves = [Leaf(None, 0, 3, Leaf(None, -3, 0, depth=depth)) for _ in range(2)]
        roots, _ = graph_words(graph, leaves)
        assert roots[0].depth == expected
