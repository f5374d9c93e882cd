"""Stream helpers and the stream harness for testbenches in Amaranth's simulator.

``stream_put`` and ``stream_get`` follow the helpers in Amaranth's ``lib.stream`` documentation,
with a delay knob: before each transfer the producer holds ``valid`` low (or the consumer holds
``ready`` low) for a random number of cycles drawn from ``rng``, so that every stream test also
exercises gaps and back-pressure. ``drive`` runs a block with random gaps on its input and
back-pressure on its output; ``timed`` runs it stall-free and records the cycle of every
transfer, so that latency and initiation interval are measured, never assumed.
"""

import random

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator


async def _idle(ctx, rng, max_delay):
    if rng is not None and max_delay > 0:
        for _ in range(rng.randint(0, max_delay)):
            await ctx.tick()


async def stream_put(ctx, stream, payload, *, rng=None, max_delay=0):
    """Send one ``payload`` on ``stream``, after a random gap of up to ``max_delay`` cycles.

    ``payload`` is a value of the payload's shape, or an ``int`` holding its packed bits.
    """
    await _idle(ctx, rng, max_delay)
    ctx.set(stream.valid, 1)
    target = stream.payload
    if isinstance(payload, int) and hasattr(target, "as_value"):
        target = target.as_value()  # a packed word for a structured payload
    ctx.set(target, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng=None, max_delay=0):
    """Receive one payload from ``stream``, holding ``ready`` low for up to ``max_delay`` cycles."""
    await _idle(ctx, rng, max_delay)
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def seeded(seed):
    """A ``random.Random`` for stall patterns, seeded so a failure reproduces."""
    return random.Random(seed)


def _clocked(dut):
    """``dut`` in a module with a ``sync`` domain, so that a combinational block has a clock."""
    m = Module()
    m.submodules.dut = dut
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)
    return m


def drive(dut, inputs, n_out, *, seed=0, max_delay=3, limit=20_000, quiet=8):
    """Send ``inputs`` on ``dut.i`` and return ``n_out`` payloads from ``dut.o``.

    Both sides pause for up to ``max_delay`` cycles before each transfer. Fails if the block
    offers another output within ``quiet`` cycles after the last expected one, or if the outputs
    do not all come within ``limit`` cycles (a lost transfer).
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
        for _ in range(quiet):
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


def timed(dut, inputs, n_out, *, limit=10_000, run_for=None):
    """Run stall-free: return (input transfer cycles, output transfer cycles, outputs).

    Inputs are offered back to back from cycle 0 and ``o.ready`` is always high; a transfer
    in cycle ``c`` happens at clock edge ``c + 1``. The run ends at the ``n_out``-th output
    (failing if it does not come within ``limit`` cycles), or with ``run_for``, after exactly
    that many cycles, whatever came (so that an extra output shows).
    """
    in_cycles, out_cycles, outputs = [], [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        pending = list(inputs)
        for cycle in range(limit if run_for is None else run_for):
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
                if run_for is None and len(outputs) == n_out:
                    return
            await ctx.tick()
        if run_for is None:
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
