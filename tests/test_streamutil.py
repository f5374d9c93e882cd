# amaranth: UnusedElaboratable=no

"""Stream helpers, and the stream harness the other block tests of ``hw/`` import.

``drive`` runs a block with random gaps on its input and back-pressure on its output (through
``tests/streams.py``); ``timed`` runs it stall-free and records the cycle of every transfer, so
that latency and initiation interval are measured, never assumed.
"""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from streams import seeded, stream_get, stream_put

from hw.encoding import ValueEncoding
from hw.streamutil import PixelsToVector, SkidBuffer, VectorToPixels

# --- harness -------------------------------------------------------------------------------------


def _clocked(dut):
    """``dut`` in a module with a ``sync`` domain, so that a combinational block has a clock."""
    m = Module()
    m.submodules.dut = dut
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)
    return m


def drive(dut, inputs, n_out, *, seed=0, max_delay=3, limit=20_000):
    """Send ``inputs`` on ``dut.i`` and return ``n_out`` payloads from ``dut.o``.

    Both sides pause for up to ``max_delay`` cycles before each transfer. Fails if the block
    offers more outputs than ``n_out`` within a few cycles after the last expected one, or if
    the outputs do not all come within ``limit`` cycles (a lost transfer).
    """
    rng_in, rng_out = seeded(seed), seeded(seed + 1000)
    outputs = []

    async def producer(ctx):
        for payload in inputs:
            await stream_put(ctx, dut.i, payload, rng=rng_in, max_delay=max_delay)

    async def consumer(ctx):
        for _ in range(n_out):
            outputs.append(await stream_get(ctx, dut.o, rng=rng_out, max_delay=max_delay))
        # Nothing extra may follow (a duplicated transfer would show here).
        ctx.set(dut.o.ready, 1)
        for _ in range(8):
            assert not ctx.get(dut.o.valid), "block offered an output nobody asked for"
            await ctx.tick()

    async def watchdog(ctx):
        for _ in range(limit):
            await ctx.tick()
        raise AssertionError(f"only {len(outputs)} of {n_out} outputs in {limit} cycles")

    sim = Simulator(_clocked(dut))
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(watchdog, background=True)
    sim.run()
    return outputs


def timed(dut, inputs, n_out, *, limit=10_000):
    """Run stall-free: return (input transfer cycles, output transfer cycles, outputs)."""
    in_cycles, out_cycles, outputs = [], [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        pending = list(inputs)
        for cycle in range(limit):
            if pending:
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, pending[0])
            else:
                ctx.set(dut.i.valid, 0)
            if pending and ctx.get(dut.i.ready):
                in_cycles.append(cycle)
                pending.pop(0)
            if ctx.get(dut.o.valid):
                out_cycles.append(cycle)
                outputs.append(ctx.get(dut.o.payload))
                if len(outputs) == n_out:
                    return
            await ctx.tick()
        raise AssertionError(f"only {len(outputs)} of {n_out} outputs in {limit} cycles")

    sim = Simulator(_clocked(dut))
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return in_cycles, out_cycles, outputs


def to_wire(encoding, values):
    """Values as the simulator sets them on a ``data.ArrayLayout(encoding.shape, n)`` payload."""
    values = np.asarray(values, dtype=np.int64).ravel()
    if encoding.kind == "binary":
        return [int(v > 0) for v in values]
    return [int(v) for v in values]


def from_wire(encoding, payload):
    """Values of a payload read back from the simulator (inverse of :func:`to_wire`)."""
    values = np.array(list(payload), dtype=np.int64)
    if encoding.kind == "binary":
        return np.where(values != 0, 1, -1)
    return values


def random_values(rng, encoding, size):
    """Random valid values of ``encoding`` (a NumPy ``Generator``), as an int64 array."""
    if encoding.kind == "binary":
        return rng.choice(np.array([-1, 1]), size=size)
    return rng.integers(encoding.min, encoding.max + 1, size=size)


# --- SkidBuffer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_delay", [0, 1, 4])
def test_skid_buffer_passes_every_transfer_in_order(max_delay):
    dut = SkidBuffer(unsigned(8))
    inputs = list(range(200, 240))
    assert drive(dut, inputs, len(inputs), seed=max_delay, max_delay=max_delay) == inputs


def test_skid_buffer_full_rate_and_registered_ready():
    dut = SkidBuffer(signed(5))
    inputs = [(v % 31) - 15 for v in range(20)]
    in_cycles, out_cycles, outputs = timed(dut, inputs, len(inputs))
    assert outputs == inputs
    assert out_cycles[0] - in_cycles[0] == dut.latency
    assert np.diff(in_cycles).tolist() == [dut.initiation_interval] * (len(inputs) - 1)
    assert np.diff(out_cycles).tolist() == [dut.initiation_interval] * (len(inputs) - 1)


def test_skid_buffer_ready_does_not_follow_output_ready_combinationally():
    dut = SkidBuffer(unsigned(4))
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 3)
        ctx.set(dut.o.ready, 0)
        await ctx.tick()  # first transfer goes to the output register
        await ctx.tick()  # second one parks in the skid register
        seen.append(ctx.get(dut.i.ready))
        ctx.set(dut.o.ready, 1)  # same cycle: a combinational path would raise i.ready now
        seen.append(ctx.get(dut.i.ready))
        await ctx.tick()
        seen.append(ctx.get(dut.i.ready))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 0, 1]


# --- VectorToPixels / PixelsToVector -------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding, pixels, channels",
    [
        (ValueEncoding.ternary(), 1, 1),
        (ValueEncoding.ternary(), 6, 2),
        (ValueEncoding.binary(), 5, 3),
        (ValueEncoding.uint(4), 4, 1),
        (ValueEncoding.int(6), 3, 4),
    ],
)
@pytest.mark.parametrize("max_delay", [0, 3])
def test_vector_to_pixels_and_back(encoding, pixels, channels, max_delay):
    rng = np.random.default_rng(pixels * 10 + channels)
    frames = random_values(rng, encoding, (4, pixels, channels))
    vectors = [to_wire(encoding, f) for f in frames]

    ser = VectorToPixels(shape=encoding.shape, pixels=pixels, channels=channels)
    out = drive(ser, vectors, 4 * pixels, seed=max_delay, max_delay=max_delay)
    got = np.array([from_wire(encoding, p) for p in out]).reshape(4, pixels, channels)
    assert np.array_equal(got, frames)

    des = PixelsToVector(shape=encoding.shape, pixels=pixels, channels=channels)
    pixel_payloads = [to_wire(encoding, p) for f in frames for p in f]
    out = drive(des, pixel_payloads, 4, seed=max_delay + 7, max_delay=max_delay)
    got = np.array([from_wire(encoding, v) for v in out]).reshape(4, pixels, channels)
    assert np.array_equal(got, frames)


@pytest.mark.parametrize("pixels", [1, 5])
def test_serializer_timing_matches_properties(pixels):
    enc = ValueEncoding.ternary()
    rng = np.random.default_rng(pixels)
    frames = random_values(rng, enc, (3, pixels, 2))

    ser = VectorToPixels(shape=enc.shape, pixels=pixels, channels=2)
    in_cycles, out_cycles, _ = timed(ser, [to_wire(enc, f) for f in frames], 3 * pixels)
    assert out_cycles[0] - in_cycles[0] == ser.latency
    assert np.diff(in_cycles).tolist() == [ser.initiation_interval] * 2
    assert np.diff(out_cycles).tolist() == [1] * (3 * pixels - 1)  # no bubble between vectors

    des = PixelsToVector(shape=enc.shape, pixels=pixels, channels=2)
    payloads = [to_wire(enc, p) for f in frames for p in f]
    in_cycles, out_cycles, _ = timed(des, payloads, 3)
    assert np.diff(in_cycles).tolist() == [1] * (3 * pixels - 1)
    last_pixels = in_cycles[pixels - 1 :: pixels]
    assert [o - i for i, o in zip(last_pixels, out_cycles, strict=True)] == [des.latency] * 3
    assert np.diff(out_cycles).tolist() == [des.initiation_interval] * 2


def test_parameter_errors():
    with pytest.raises(TypeError, match=r"^Pixel count must be a positive integer, not 2\.0$"):
        VectorToPixels(shape=signed(2), pixels=2.0, channels=1)
    with pytest.raises(ValueError, match=r"^Pixel count must be a positive integer, not 0$"):
        PixelsToVector(shape=signed(2), pixels=0, channels=1)
    with pytest.raises(ValueError, match=r"^Channel count must be a positive integer, not -1$"):
        VectorToPixels(shape=signed(2), pixels=1, channels=-1)
    with pytest.raises(TypeError, match=r"^Channel count must be a positive integer, not True$"):
        PixelsToVector(shape=signed(2), pixels=1, channels=True)
    with pytest.raises(TypeError, match=r"^Value shape must be a shape, not 'int8'$"):
        VectorToPixels(shape="int8", pixels=1, channels=1)
    with pytest.raises(TypeError, match=r"^Payload shape must be a shape, not None$"):
        SkidBuffer(None)
