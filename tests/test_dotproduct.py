# amaranth: UnusedElaboratable=no

import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator
from streams import seeded, stream_get, stream_put

from hw.dotproduct import DotProduct, default_stages, digit_matrix, digit_planes
from hw.encoding import ValueEncoding
from hw.pipeline import shape_for_range

TERNARY = ValueEncoding.ternary()
ENCODINGS = [
    TERNARY,
    ValueEncoding.binary(),
    ValueEncoding.uint(4),
    ValueEncoding.int(3),
    ValueEncoding.uint(1),
]


def ref_dot(weights, vectors):
    return [(np.asarray(weights) @ np.asarray(v)).tolist() for v in vectors]


def random_inputs(encoding, count, fan_in, rng):
    values = rng.integers(encoding.min, encoding.max + 1, size=(count, fan_in))
    if encoding.kind == "binary":
        values = np.where(values > 0, 1, -1)
    return values


def simulate(design, *benches):
    m = Module()
    m.submodules.design = design
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)  # a clock domain even for a combinational design
    sim = Simulator(m)
    sim.add_clock(1e-6)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


def rtl_dot(dut, vectors, *, seed, max_delay=3):
    """Stream ``vectors`` through ``dut`` with random stalls on both sides; return rows."""
    results = []

    async def producer(ctx):
        rng = seeded(seed)
        for v in vectors:
            payload = dut.encoding.encode(v).tolist()
            if dut.encoding.shape.signed:
                payload = np.asarray(v).tolist()
            await stream_put(ctx, dut.i, payload, rng=rng, max_delay=max_delay)

    async def consumer(ctx):
        rng = seeded(seed + 1)
        for _ in vectors:
            payload = await stream_get(ctx, dut.o, rng=rng, max_delay=max_delay)
            results.append([payload[j] for j in range(dut.rows)])

    simulate(dut, producer, consumer)
    return results


def rtl_dot_comb(dut, vectors):
    """Evaluate a ``stages=0`` dot product on every vector, without the stream protocol."""
    results = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for v in vectors:
            ctx.set(dut.i.payload.as_value(), dut.encoding.pack(v))
            results.append([ctx.get(dut.o.payload[j]) for j in range(dut.rows)])

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("bit_adders", ["logic", "carry"])
@pytest.mark.parametrize("fan_in", [3, 4])
@pytest.mark.parametrize("share", [False, True])
def test_exhaustive_ternary(fan_in, share, bit_adders):
    """Every ternary weight row (the all-zero one too) against every ternary input vector."""
    everything = [list(v) for v in itertools.product((-1, 0, 1), repeat=fan_in)]
    weights = np.array(everything)
    dut = DotProduct(
        weights,
        encoding=TERNARY,
        share=share,
        carry_in="repeat" if share else "constant",
        bit_adders=bit_adders,
    )
    assert dut.rows == 3**fan_in and dut.fan_in == fan_in
    assert (dut.graph is not None) == share
    assert rtl_dot_comb(dut, everything) == ref_dot(weights, everything)


@pytest.mark.parametrize("share", [False, True])
def test_exhaustive_binary(share):
    """Every binary weight row against every binary input vector, and the all-zero row."""
    everything = [list(v) for v in itertools.product((-1, 1), repeat=4)]
    weights = np.array(everything + [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0]])
    dut = DotProduct(weights, encoding=ValueEncoding.binary(), share=share)
    assert dut.graph is None  # popcounts: no graph for binary inputs
    assert rtl_dot_comb(dut, everything) == ref_dot(weights, everything)


def test_shared_layer_uses_its_graph():
    rng = np.random.default_rng(7)
    weights = rng.choice([-1, 0, 1], size=(24, 40))
    dut = DotProduct(weights, encoding=TERNARY)
    assert (dut.graph.expand() == weights).all()
    assert len(dut.graph.items) > 0
    assert DotProduct(weights, encoding=TERNARY, share=False).graph is None
    assert DotProduct(weights, encoding=ValueEncoding.binary()).graph is None
    # one row shares nothing: a compressor tree is smaller
    assert DotProduct(weights[:1], encoding=TERNARY).graph is None


@pytest.mark.parametrize("stages", [0, 2, 5])
@pytest.mark.parametrize(
    "encoding", [TERNARY, ValueEncoding.uint(4), ValueEncoding.int(3)], ids=lambda e: e.name
)
def test_graph_streamed(encoding, stages):
    """A shared layer with all-zero, fan-in-one and negated rows, pipelined, under stalls."""
    rng = np.random.default_rng(stages + 40)
    weights = rng.choice([-1, 0, 1], size=(20, 24))
    weights[0] = 0
    weights[1] = 0
    weights[1, 5] = -1
    weights[2] = -weights[3]
    dut = DotProduct(weights, encoding=encoding, stages=stages)
    assert dut.graph is not None
    vectors = random_inputs(encoding, 30, 24, rng)
    extremes = [np.full(24, encoding.min), np.full(24, encoding.max), np.zeros(24, dtype=int)]
    vectors = np.vstack([vectors, *extremes])
    got = rtl_dot(dut, vectors.tolist(), seed=stages)
    assert got == ref_dot(weights, vectors)


@pytest.mark.parametrize("encoding", ENCODINGS, ids=lambda e: e.name)
@pytest.mark.parametrize(
    "form,share,stages,carry_in,bit_adders",
    [
        ("bits", True, 0, "constant", "logic"),
        ("bits", True, 2, "repeat", "carry"),
        ("words", False, 2, "repeat", "carry"),
        ("bits", False, 3, "repeat", "logic"),
        ("bits", False, 1, "constant", "carry"),
    ],
)
def test_encodings_streamed(encoding, form, share, stages, carry_in, bit_adders):
    rng = np.random.default_rng(encoding.width * 10 + stages)
    weights = rng.choice([-1, 0, 1], size=(7, 12))
    weights[3] = 0
    dut = DotProduct(
        weights,
        encoding=encoding,
        stages=stages,
        form=form,
        share=share,
        carry_in=carry_in,
        bit_adders=bit_adders,
    )
    vectors = random_inputs(encoding, 30, 12, rng)
    vectors = np.vstack([vectors, np.full(12, encoding.min), np.full(12, encoding.max)])
    if encoding.kind == "binary":
        vectors[-2] = -1
    got = rtl_dot(dut, vectors.tolist(), seed=stages)
    assert got == ref_dot(weights, vectors)
    assert all(row == 0 for row in np.array(got)[:, 3])


def test_larger_layer_pipelined_and_shared():
    rng = np.random.default_rng(3)
    weights = rng.choice([-1, 0, 1], size=(16, 48))
    dut = DotProduct(weights, encoding=TERNARY, stages=2, share=True)
    assert dut.graph is not None
    vectors = random_inputs(TERNARY, 25, 48, rng)
    assert rtl_dot(dut, vectors.tolist(), seed=9, max_delay=2) == ref_dot(weights, vectors)


@pytest.mark.parametrize("stages", [0, 1])
def test_fan_in_one_and_one_row(stages):
    for weights in ([[1]], [[-1]], [[0]], [[1], [-1], [0]], [[1, -1, 0, 1, 1]]):
        for encoding in (TERNARY, ValueEncoding.int(4), ValueEncoding.binary()):
            dut = DotProduct(np.array(weights), encoding=encoding, stages=stages)
            fan_in = len(weights[0])
            values = [encoding.min, encoding.max] if encoding.kind != "binary" else [-1, 1]
            vectors = [list(v) for v in itertools.product(values, repeat=fan_in)]
            assert rtl_dot(dut, vectors, seed=1, max_delay=1) == ref_dot(weights, vectors)


def test_all_zero_layer_is_constant_zero():
    dut = DotProduct(np.zeros((3, 5), dtype=int), encoding=ValueEncoding.uint(8), stages=1)
    assert dut.row_ranges == [(0, 0)] * 3
    vectors = [[255] * 5, [0] * 5, [17, 3, 0, 99, 1]]
    assert rtl_dot(dut, vectors, seed=2) == [[0, 0, 0]] * 3


def test_ranges_and_shape():
    weights = np.array([[1, 1, -1, 0], [0, 0, 0, 0], [-1, -1, -1, -1]])
    dut = DotProduct(weights, encoding=ValueEncoding.uint(4))
    assert dut.row_ranges == [(-15, 30), (0, 0), (-60, 0)]
    assert dut.acc_shape == signed(7)
    assert dut.o.payload.shape().elem_shape == signed(7)
    dut = DotProduct(weights, encoding=ValueEncoding.int(3))
    assert dut.row_ranges == [(-11, 10), (0, 0), (-12, 16)]
    dut = DotProduct(weights, encoding=TERNARY)
    assert dut.row_ranges == [(-3, 3), (0, 0), (-4, 4)]
    # Each range is attained, so it is exact (the brute force over every input agrees).
    values = list(itertools.product((-1, 0, 1), repeat=4))
    sums = np.array(values) @ weights.T
    assert [(int(c.min()), int(c.max())) for c in sums.T] == dut.row_ranges
    for lo, hi in dut.row_ranges:
        assert shape_for_range(lo, hi).width <= dut.acc_shape.width


@pytest.mark.parametrize("stages", [0, 1, 4])
def test_latency_property(stages):
    dut = DotProduct(np.array([[1, -1, 1], [0, 1, 1]]), encoding=TERNARY, stages=stages)
    assert dut.latency == dut.stages == stages
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, [1, -1, 1])
        ctx.set(dut.i.valid, 1)
        for n in range(8):
            if ctx.get(dut.o.valid):
                seen.append((n, ctx.get(dut.o.payload[0]), ctx.get(dut.o.payload[1])))
                return
            await ctx.tick()
            ctx.set(dut.i.valid, 0)

    simulate(dut, bench)
    assert seen == [(dut.latency, 3, 0)]


def test_stall_holds_pipeline():
    """With ``o`` not ready, results wait in the pipeline and come out in order, once each."""
    weights = np.array([[1, 1], [1, -1]])
    dut = DotProduct(weights, encoding=TERNARY, stages=2)
    vectors = [[1, 1], [1, -1], [-1, 0], [0, 1], [-1, -1]]
    out = []

    async def producer(ctx):
        for v in vectors:
            await stream_put(ctx, dut.i, v)

    async def consumer(ctx):
        for _ in range(6):
            await ctx.tick()  # o not ready: the pipeline fills and stops
        assert not ctx.get(dut.i.ready)
        for _ in vectors:
            out.append(await stream_get(ctx, dut.o))

    simulate(dut, producer, consumer)
    assert [[p[0], p[1]] for p in out] == ref_dot(weights, vectors)


def test_parameter_errors():
    t = TERNARY
    with pytest.raises(TypeError, match=r"^Weights must be a 2-D array of integers, not 'abc'$"):
        DotProduct("abc", encoding=t)
    with pytest.raises(TypeError, match=r"^Weights must be a 2-D array of integers, not \[1, 0\]$"):
        DotProduct([1, 0], encoding=t)
    with pytest.raises(TypeError, match=r"^Weights must be a 2-D array of integers, not"):
        DotProduct(np.array([[0.5, 1.0]]), encoding=t)
    with pytest.raises(
        ValueError, match=r"^Weights must have at least one row and one column, not shape \(1, 0\)$"
    ):
        DotProduct(np.zeros((1, 0), dtype=int), encoding=t)
    with pytest.raises(
        ValueError, match=r"^Weights must be integers of magnitude at most 32768, not -32769$"
    ):
        DotProduct([[1, -32769]], encoding=t)
    with pytest.raises(TypeError, match=r"^Encoding must be a ValueEncoding, not 'ternary'$"):
        DotProduct([[1]], encoding="ternary")
    with pytest.raises(TypeError, match=r"^Stages must be a non-negative integer, not '2'$"):
        DotProduct([[1]], encoding=t, stages="2")
    with pytest.raises(ValueError, match=r"^Stages must be a non-negative integer, not -1$"):
        DotProduct([[1]], encoding=t, stages=-1)
    with pytest.raises(ValueError, match=r"^Form must be one of \('bits', 'words'\), not 'tree'$"):
        DotProduct([[1]], encoding=t, form="tree")
    with pytest.raises(TypeError, match=r"^Share must be a bool, not 1$"):
        DotProduct([[1]], encoding=t, share=1)
    with pytest.raises(
        ValueError, match=r"^Carry-in must be one of \('constant', 'repeat'\), not None$"
    ):
        DotProduct([[1]], encoding=t, carry_in=None)
    with pytest.raises(
        ValueError, match=r"^Bit adders must be one of \('logic', 'carry'\), not 'lut'$"
    ):
        DotProduct([[1]], encoding=t, bit_adders="lut")


# --- integer weights (intN, TTQ): signed-digit planes ---------------------------------------


def test_digit_planes_are_the_non_adjacent_form():
    """Every int8 value: the planes sum back to it, digits are -1/0/+1, no two adjacent digits
    of one weight are nonzero, and no form with fewer nonzero digits exists (checked against
    the weight of the naive minimum by brute force over digit strings of 9 places)."""
    values = np.arange(-128, 128).reshape(1, -1)
    planes = digit_planes(values)
    total = sum((1 << e) * d for e, d in planes)
    assert (total == values).all()
    assert all(set(np.unique(d)) <= {-1, 0, 1} for _, d in planes)
    digits = np.zeros((9, values.shape[1]), dtype=np.int64)
    for e, d in planes:
        digits[e] = d[0]
    assert not np.any((digits[:-1] != 0) & (digits[1:] != 0))
    fewest = {}
    for string in itertools.product((-1, 0, 1), repeat=9):
        value = sum(d << k for k, d in enumerate(string))
        count = sum(1 for d in string if d)
        fewest[value] = min(count, fewest.get(value, 99))
    for k, v in enumerate(values[0].tolist()):
        assert int(np.count_nonzero(digits[:, k])) == fewest[v], v


def test_digit_matrix_of_ternary_weights_is_the_matrix():
    weights = np.array([[1, 0, -1], [0, 0, 0]])
    matrix, columns = digit_matrix(weights)
    assert (matrix == weights).all() and columns == [(0, 0), (1, 0), (2, 0)]
    assert digit_matrix(np.zeros((2, 2), dtype=int))[0].shape == (2, 2)


def test_digit_matrix_reproduces_the_product():
    rng = np.random.default_rng(3)
    weights = rng.integers(-8, 8, size=(6, 5))
    matrix, columns = digit_matrix(weights)
    x = rng.integers(-20, 20, size=5)
    shifted = np.array([x[i] << e for i, e in columns])
    assert (matrix @ shifted == weights @ x).all()


def int_weights(rng, rows, fan_in, bits):
    """Random ``int<bits>`` weights with the corner cases: an all-zero row, a fan-in-one row,
    a row at the most negative value, one at the most positive, a TTQ-like {-n, 0, +p} row,
    and rows that share a column pair at the same shift (which the graph may share)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    weights = rng.integers(lo, hi + 1, size=(rows, fan_in))
    weights[0] = 0
    weights[1] = 0
    weights[1, fan_in // 2] = lo
    weights[2] = lo
    weights[3] = hi
    weights[4] = rng.choice([-2, 0, 3], size=fan_in)
    weights[5, :3] = weights[6, :3] = [3, 3, -5]
    return weights


@pytest.mark.parametrize("stages", [0, 2])
@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize(
    "encoding",
    [TERNARY, ValueEncoding.binary(), ValueEncoding.uint(4), ValueEncoding.int(3)],
    ids=lambda e: e.name,
)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_integer_weights_streamed(bits, encoding, share, stages):
    """intN weights against the reference product, under stalls, extreme inputs included."""
    rng = np.random.default_rng(bits * 10 + stages)
    weights = int_weights(rng, 10, 9, bits)
    dut = DotProduct(weights, encoding=encoding, stages=stages, share=share)
    vectors = random_inputs(encoding, 12, 9, rng).tolist()
    vectors += [[encoding.min] * 9, [encoding.max] * 9]
    assert rtl_dot(dut, vectors, seed=bits + stages) == ref_dot(weights, vectors)
    lo, hi = zip(*dut.row_ranges, strict=True)
    products = [np.asarray(weights) @ np.asarray(v) for v in vectors]
    assert all((np.array(lo) <= p).all() and (p <= np.array(hi)).all() for p in products)


def test_integer_weights_words_form():
    rng = np.random.default_rng(5)
    weights = int_weights(rng, 8, 7, 4)
    enc = ValueEncoding.uint(4)
    dut = DotProduct(weights, encoding=enc, form="words", share=False)
    vectors = random_inputs(enc, 10, 7, rng).tolist() + [[15] * 7]
    assert rtl_dot(dut, vectors, seed=9) == ref_dot(weights, vectors)


def test_integer_row_ranges_are_exact():
    """Each row's range is reached: by brute force over every uint2 input of a small layer."""
    weights = np.array([[3, -4, 0], [-8, 7, 1], [0, 0, 0], [2, 2, 2]])
    enc = ValueEncoding.uint(2)
    dut = DotProduct(weights, encoding=enc)
    every = np.array(list(itertools.product(range(4), repeat=3)))
    products = every @ weights.T
    assert dut.row_ranges == list(
        zip(products.min(axis=0).tolist(), products.max(axis=0).tolist(), strict=True)
    )


def test_a_weight_of_three_is_two_digits():
    """A row of threes sums two shifted copies of each input: the graph's leaves are the digit
    columns (x << 2 and -x), not three copies of x."""
    weights = np.full((4, 6), 3)
    dut = DotProduct(weights, encoding=TERNARY)
    assert dut.digits.shape == (4, 12)
    assert int(np.count_nonzero(dut.digits)) == 48


def test_default_stages_register_about_every_two_adder_levels():
    # ceil(log2(fan_in + 1) / 2) of the row with the most nonzero weights, at least one
    fans = (0, 1, 3, 7, 15, 21, 63, 64)
    stages = []
    for fan in fans:
        weights = np.zeros((2, 80), dtype=int)
        weights[1, :fan] = -1
        stages.append(default_stages(weights))
    assert stages == [1, 1, 1, 2, 2, 3, 3, 4]
