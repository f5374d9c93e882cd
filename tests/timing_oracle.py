"""The cycle model's test oracle: latency and initiation interval measured in Amaranth's
simulator (the experiments ``gen.compiler.cycles`` models without simulating)."""

import numpy as np
from streams import timed

from gen.network import golden


def simulate_transfers(top, inputs):
    """Edges of the input transfers and of the results of ``top``, in Amaranth's simulator.

    ``inputs`` are offered back to back from edge 1 (each from the edge after its
    predecessor's transfer) and ``o.ready`` is always high (:func:`streams.timed`); returns
    ``(accepted, produced)``, the edge of each input transfer and the edge at which each result
    is first offered.
    """
    vectors = [[int(v) for v in np.asarray(x).reshape(-1)] for x in inputs]
    accepted, produced, _ = timed(top, vectors, len(vectors), limit=1_000_000)
    return [c + 1 for c in accepted], [c + 1 for c in produced]


def _summarize(single, stream):
    """``(latency, interval)`` from the transfers of one vector alone and of a stream."""
    (accepted, produced), (stream_accepted, _) = single, stream
    gaps = np.diff(stream_accepted)
    if len(set(gaps[-3:].tolist())) != 1:
        raise RuntimeError(f"the initiation interval did not settle: input spacing {gaps}")
    return produced[0] - accepted[0], int(gaps[-1])


def measure_timing(top, inputs, *, settle=10):
    """Latency and initiation interval of ``top`` by simulating it (Amaranth's simulator).

    One vector alone gives the latency (edges from its input transfer to its result's first
    ``valid``, the definition of docs/accelerator.md); ``settle + 2`` vectors offered back to
    back with ``o.ready`` always high give the steady initiation interval (the last spacing of
    input transfers, which must equal the two before it).
    """
    if len(inputs) < settle + 2:
        raise ValueError(f"need {settle + 2} inputs to measure the initiation interval")
    single = simulate_transfers(top, inputs[:1])
    return _summarize(single, simulate_transfers(top, inputs[: settle + 2]))


def simulated_timing(net, top):
    """``(latency, initiation interval, "simulated")`` of ``top``: :func:`measure_timing` on
    random inputs, the figures :func:`gen.compiler.cycle_model` must equal."""
    latency, ii = measure_timing(top, golden.random_inputs(net, 12, seed=0))
    return latency, ii, "simulated"
