# amaranth: UnusedElaboratable=no

import itertools
import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from streams import seeded, stream_get, stream_put

from hw.adders import AdderTree, Popcount
from hw.compressor import BitHeap, build_sum, build_sums
from hw.pipeline import shape_for_range, tree_latency


def simulate(design, *benches):
    """Run ``benches`` on ``design`` with a clock, even when the design has no registers."""
    m = Module()
    m.submodules.design = design
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


def run_stream(dut, payloads, *, seed, max_delay=3):
    """Send ``payloads`` through ``dut`` with random stalls on both sides; return the outputs."""
    results = []

    async def producer(ctx):
        rng = seeded(seed)
        for payload in payloads:
            await stream_put(ctx, dut.i, payload, rng=rng, max_delay=max_delay)

    async def consumer(ctx):
        rng = seeded(seed + 1)
        for _ in payloads:
            results.append(await stream_get(ctx, dut.o, rng=rng, max_delay=max_delay))

    simulate(dut, producer, consumer)
    return results


def measure_latency(dut, payload):
    """Cycles from a transfer on ``i`` to the first ``o.valid``, with ``o`` always ready."""
    cycles = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, payload)
        ctx.set(dut.i.valid, 1)
        for n in range(10):
            if ctx.get(dut.o.valid):
                cycles.append(n)
                return
            await ctx.tick()
            ctx.set(dut.i.valid, 0)

    simulate(dut, bench)
    return cycles[0]


def test_shape_for_range():
    assert shape_for_range(0, 0) == unsigned(1)
    assert shape_for_range(0, 7) == unsigned(3)
    assert shape_for_range(0, 8) == unsigned(4)
    assert shape_for_range(-1, 0) == signed(1)
    assert shape_for_range(-8, 7) == signed(4)
    assert shape_for_range(-9, 7) == signed(5)
    assert shape_for_range(-3, 8) == signed(5)
    with pytest.raises(ValueError, match=r"Empty range \[2, 1\]"):
        shape_for_range(2, 1)


@pytest.mark.parametrize("stages", [0, 1, 3])
def test_popcount_tree_exhaustive(stages):
    """Every input of a 7-bit weighted heap, through trees of several depths."""
    weights = [0, 0, 0, 1, 1, 2, 0]
    m = Module()
    bits = Signal(len(weights))
    heap = BitHeap()
    for k, w in enumerate(weights):
        heap.add_bit(bits[k], w)
    total = build_sum(m, heap, stages=stages)
    assert total.shape() == unsigned(4)  # at most 3 + 4 + 4 = 11
    latency = tree_latency(stages)

    async def bench(ctx):
        for word in range(1 << len(weights)):
            ctx.set(bits, word)
            for _ in range(latency):
                await ctx.tick()
            expected = sum(1 << w for k, w in enumerate(weights) if word >> k & 1)
            assert ctx.get(total) == expected

    simulate(m, bench)


@pytest.mark.parametrize("bit_adders", ["logic", "carry"])
@pytest.mark.parametrize("stages,carry_in", [(0, "constant"), (2, "repeat")])
def test_mixed_heaps_with_sharing(stages, carry_in, bit_adders):
    """Operands (signed, negated, shifted, split), constants, and a sub-sum shared by two heaps."""
    m = Module()
    bits = Signal(9)
    a = Signal(signed(4))
    b = Signal(unsigned(3))
    c = Signal(signed(5))
    shared = BitHeap()
    shared.add_operand(a, negate=True)
    shared.add_operand(b, shift=2)
    first = BitHeap()
    first.add_bits(bits)
    first.add_heap(shared)
    first.add_operand(c, split=True)
    first.add_constant(-7)
    second = BitHeap()
    second.add_heap(shared, negate=True)
    second.add_operand(c, negate=True, shift=1)
    second.add_constant(3)
    empty = BitHeap()
    empty.add_constant(-2)
    outs = build_sums(
        m, [first, second, empty], stages=stages, carry_in=carry_in, bit_adders=bit_adders
    )
    for out, heap in zip(outs, [first, second, empty], strict=True):
        assert out.shape() == shape_for_range(heap.min, heap.max)
    rng = random.Random(4)

    async def bench(ctx):
        for _ in range(200):
            vbits, va, vb, vc = (
                rng.randrange(512),
                rng.randrange(-8, 8),
                rng.randrange(8),
                rng.randrange(-16, 16),
            )
            ctx.set(bits, vbits)
            ctx.set(a, va)
            ctx.set(b, vb)
            ctx.set(c, vc)
            for _ in range(tree_latency(stages)):
                await ctx.tick()
            s = -va + 4 * vb
            assert ctx.get(outs[0]) == bin(vbits).count("1") + s + vc - 7
            assert ctx.get(outs[1]) == -s - 2 * vc + 3
            assert ctx.get(outs[2]) == -2

    simulate(m, bench)


def test_narrow_range_is_modular():
    """A caller's tighter range narrows the result; the sum stays exact within it."""
    m = Module()
    x = Signal(signed(2))  # ternary: 0b10 never occurs
    heap = BitHeap()
    heap.add_operand(x)
    assert (heap.min, heap.max) == (-2, 1)
    (out,) = build_sums(m, [heap], ranges=[(-1, 1)])
    assert out.shape() == signed(2)
    wide = BitHeap()
    wide.add_operand(x, split=True)
    wide.add_operand(x, negate=True)
    wide.add_operand(x, shift=2)
    (zero_or_4x,) = build_sums(m, [wide], ranges=[(-4, 4)])

    async def bench(ctx):
        for v in (-1, 0, 1):
            ctx.set(x, v)
            assert ctx.get(out) == v
            assert ctx.get(zero_or_4x) == 4 * v

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("bit_adders", ["logic", "carry"])
@pytest.mark.parametrize("stages", [0, 1, 3])
def test_popcount_stream(stages, bit_adders):
    rng = random.Random(stages)
    dut = Popcount(
        23, stages=stages, carry_in=("constant", "repeat")[stages % 2], bit_adders=bit_adders
    )
    assert dut.o.payload.shape() == unsigned(5)
    assert dut.range == (0, 23)
    words = [rng.randrange(1 << 23) for _ in range(40)] + [0, (1 << 23) - 1]
    got = run_stream(dut, words, seed=stages)
    assert got == [bin(w).count("1") for w in words]
    assert measure_latency(dut, 5) == dut.latency


def test_popcount_weighted_stream():
    weights = [0, 1, 2, 2, 3, 0, 0]
    dut = Popcount(7, weights=weights, stages=2)
    assert dut.range == (0, 1 + 2 + 4 + 4 + 8 + 1 + 1)
    words = list(range(128))
    got = run_stream(dut, words, seed=11)
    assert got == [sum(1 << w for k, w in enumerate(weights) if v >> k & 1) for v in words]


@pytest.mark.parametrize(
    "shape,signs,stages,split,carry_in,bit_adders",
    [
        (signed(4), [1, -1, 1, 0, -1, 1, 1], 0, False, "constant", "logic"),
        (signed(4), [1, -1, 1, 0, -1, 1, 1], 2, True, "repeat", "carry"),
        (signed(4), [1, -1, 1, 0, -1, 1, 1], 1, True, "constant", "logic"),
        (unsigned(3), [-1, -1, 1, 1, 1], 1, False, "repeat", "logic"),
        (unsigned(5), None, 3, False, "constant", "carry"),
    ],
)
def test_adder_tree_stream(shape, signs, stages, split, carry_in, bit_adders):
    count = 7 if signs is None else len(signs)
    dut = AdderTree(
        shape,
        count,
        signs=signs,
        stages=stages,
        split=split,
        carry_in=carry_in,
        bit_adders=bit_adders,
    )
    signs = signs or [1] * count
    lo, hi = (-8, 7) if shape.signed else (0, (1 << shape.width) - 1)
    assert dut.range == (
        sum(min(s * lo, s * hi) for s in signs),
        sum(max(s * lo, s * hi) for s in signs),
    )
    assert dut.o.payload.shape() == shape_for_range(*dut.range)
    rng = random.Random(count + stages)
    vectors = [[rng.randint(lo, hi) for _ in range(count)] for _ in range(40)]
    vectors += [[lo] * count, [hi] * count]
    got = run_stream(dut, vectors, seed=stages)
    assert got == [sum(s * v for s, v in zip(signs, vec, strict=True)) for vec in vectors]
    assert measure_latency(dut, [0] * count) == dut.latency


def test_adder_tree_exhaustive_small():
    """Every input of three signed 2-bit operands, one of them subtracted."""
    dut = AdderTree(signed(2), 3, signs=[1, -1, 1])
    vectors = [list(v) for v in itertools.product(range(-2, 2), repeat=3)]
    got = run_stream(dut, vectors, seed=5, max_delay=1)
    assert got == [a - b + c for a, b, c in vectors]


def test_parameter_errors():
    with pytest.raises(TypeError, match=r"^Fan-in must be a positive integer, not '3'$"):
        Popcount("3")
    with pytest.raises(ValueError, match=r"^Fan-in must be a positive integer, not 0$"):
        Popcount(0)
    with pytest.raises(ValueError, match=r"^Weights must be 2 non-negative integers, not \[0\]$"):
        Popcount(2, weights=[0])
    with pytest.raises(TypeError, match=r"^Stages must be a non-negative integer, not 1\.0$"):
        Popcount(2, stages=1.0)
    with pytest.raises(ValueError, match=r"^Stages must be a non-negative integer, not -1$"):
        AdderTree(signed(3), 2, stages=-1)
    with pytest.raises(TypeError, match=r"^Shape must be a shape, not 'wide'$"):
        AdderTree("wide", 2)
    with pytest.raises(TypeError, match=r"^Count must be a positive integer, not None$"):
        AdderTree(signed(3), None)
    with pytest.raises(ValueError, match=r"^Count must be a positive integer, not 0$"):
        AdderTree(signed(3), 0)
    with pytest.raises(ValueError, match=r"^Signs must be 2 values in \(-1, 0, 1\), not \[1, 2\]$"):
        AdderTree(signed(3), 2, signs=[1, 2])
    with pytest.raises(TypeError, match=r"^Stages must be a non-negative integer, not True$"):
        build_sums(Module(), [BitHeap()], stages=True)
    with pytest.raises(
        ValueError, match=r"^Carry-in must be one of \('constant', 'repeat'\), not 'xor'$"
    ):
        build_sums(Module(), [BitHeap()], carry_in="xor")
    with pytest.raises(
        ValueError, match=r"^Carry-in must be one of \('constant', 'repeat'\), not 0$"
    ):
        Popcount(3, carry_in=0)
    with pytest.raises(
        ValueError, match=r"^Bit adders must be one of \('logic', 'carry'\), not 'lut'$"
    ):
        build_sums(Module(), [BitHeap()], bit_adders="lut")
    with pytest.raises(
        ValueError, match=r"^Bit adders must be one of \('logic', 'carry'\), not None$"
    ):
        AdderTree(signed(3), 2, bit_adders=None)
    with pytest.raises(TypeError, match=r"^Heap must be a BitHeap, not 3$"):
        BitHeap().add_heap(3)


@pytest.mark.parametrize("constant", [1, 2, 3, 5, -1])
def test_bit_adders_fold_constant_ones(constant):
    """Constant ones among single bits are folded by the tree, not by the Verilog back end.

    The back end's own folding names its inverters as Yosys does (``$auto$...``), and those
    names collide in a later Yosys run that keeps the module's hierarchy.
    """
    from amaranth.back import verilog

    m = Module()
    bits = Signal(5)
    heap = BitHeap()
    heap.add_bits(bits)
    heap.add_constant(constant)
    (total,) = build_sums(m, [heap])
    out = Signal(total.shape())
    m.d.comb += out.eq(total)
    assert "$auto$" not in verilog.convert(m, ports=[bits, out], emit_src=False)

    async def bench(ctx):
        for word in range(32):
            ctx.set(bits, word)
            assert ctx.get(out) == bin(word).count("1") + constant

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
