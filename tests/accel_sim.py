"""Running a compiled accelerator in Amaranth's simulator, with stalls on both streams."""

import numpy as np
from amaranth.sim import Simulator
from streams import seeded, stream_get, stream_put

from hw.encoding import ValueEncoding


def simulate(compiled, inputs, *, seed=0, max_delay=2, timeout_cycles=None):
    """Feed ``inputs`` (values) through ``compiled.top``; returns the results as an array.

    Random gaps on ``i.valid`` and ``o.ready`` of up to ``max_delay`` cycles. The results are
    decoded from the output payload as the metadata describes them.
    """
    top = compiled.top
    meta = compiled.metadata
    count = meta["output"]["count"]
    results = []
    flat = np.asarray(inputs).reshape(len(inputs), -1)
    in_encoding = ValueEncoding(meta["input"]["encoding"], meta["input"]["element_width"])
    out_encoding = ValueEncoding(meta["output"]["encoding"], meta["output"]["element_width"])

    async def producer(ctx):
        rng = seeded(seed)
        for vector in flat:
            await stream_put(ctx, top.i, in_encoding.pack(vector), rng=rng, max_delay=max_delay)

    async def consumer(ctx):
        rng = seeded(seed + 1)
        for _ in range(len(flat)):
            payload = await stream_get(ctx, top.o, rng=rng, max_delay=max_delay)
            word = int(payload.as_value().value) if hasattr(payload, "as_value") else payload
            results.append(out_encoding.unpack(word, count).tolist())

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    if timeout_cycles is None:
        # A guard against a design that hangs, not a timing check (the cycle-model tests check
        # timing): stalls on both sides can cost a chain of folded engines several intervals
        # per vector, so the budget is four times one interval and one latency per vector.
        per_vector = meta["initiation_interval"] + 2 * max_delay + 2
        timeout_cycles = 4 * ((len(flat) + 4) * per_vector + meta["latency"]) + 20
    sim.run_until(timeout_cycles * 1e-6)
    assert len(results) == len(flat), f"only {len(results)} of {len(flat)} results arrived"
    out = np.array(results, dtype=np.int64)
    if meta["output"]["kind"] == "argmax":
        out = out[:, 0]
    else:
        out = out.reshape((len(flat),) + tuple(meta["output"]["shape"]))
    return out
