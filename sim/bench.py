"""The cocotb bench for a generated accelerator, driven by its metadata.

The simulator loads this module as its cocotb test module (the runner, :mod:`sim.runner`, sets
it up). Its one test reads a JSON configuration named by the environment variable
``TNNGEN_SIM_CONFIG``, loads the accelerator's metadata and ``vectors.npz`` (:mod:`gen.folder`),
and then:

1. resets the design and starts a clock;
2. sends every input vector on ``i`` (:class:`StreamDriver`) and takes every result from ``o``
   (:class:`StreamMonitor`), comparing each with the golden model's result in order
   (:class:`Scoreboard`); a mismatch is reported with its vector index, expected and actual
   values, and counted, and the run goes on;
3. measures latency (of the first vector, into an empty pipeline) and sustained initiation
   interval (the spacing of results in the second half) on the first vectors, which are sent
   back to back with ``o.ready`` held high, and compares both with the metadata's figures;
   the remaining vectors are sent with random gaps on ``valid`` and random back-pressure on
   ``ready``;
4. writes a result JSON (the path is in the configuration) and fails the test if any vector
   mismatched, a figure disagreed with the prediction, a result went missing or an extra one
   appeared.

Timing is read from simulation time, not counted by a coroutine, and the driver and monitor
wait for ``ready`` or ``valid`` to rise instead of polling every cycle, so that the Python cost
per vector is a handful of awaits: the bench runs as fast as the simulator allows.
"""

import json
import logging
import os
import random
import time
from fractions import Fraction

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import (
    ClockCycles,
    First,
    ReadOnly,
    RisingEdge,
    Timer,
)
from cocotb.types import Logic
from cocotb.utils import get_sim_steps

from gen import folder

__all__ = [
    "CONFIG_VARIABLE",
    "CLOCK_PERIOD_NS",
    "pauses",
    "EdgeCounter",
    "StreamDriver",
    "StreamMonitor",
    "Scoreboard",
    "AcceleratorBench",
]

#: Environment variable naming the bench's JSON configuration file.
CONFIG_VARIABLE = "TNNGEN_SIM_CONFIG"
#: Clock period of the bench; only cycle counts are reported, so its value is arbitrary.
CLOCK_PERIOD_NS = 10
#: Mismatches logged in detail (all are counted, and their indices kept).
REPORT_LIMIT = 10

log = logging.getLogger("cocotb.tnngen")


class BenchError(Exception):
    """The design does not match its metadata (a port missing or of the wrong width)."""


def pauses(rng, probability, longest, *, free=0):
    """Idle cycles to insert before each transfer on a stream.

    Parameters
    ----------
    rng : random.Random
        Source of the pattern, seeded so that a failure reproduces.
    probability : float
        Chance of a pause before a transfer.
    longest : int
        A pause lasts 1 to ``longest`` cycles, uniformly.
    free : int
        Transfers at the start with no pause.

    Yields
    ------
    int
        Cycles to wait before the next transfer.
    """
    for _ in range(free):
        yield 0
    while True:
        yield rng.randint(1, longest) if rng.random() < probability else 0


class EdgeCounter:
    """Rising clock edges counted from simulation time.

    Edge 0 is the one at which :meth:`start` is called; :meth:`next_edge` is the index of the
    first rising edge after the current time, the one at which values sampled now transfer.
    """

    def __init__(self, period_ns):
        self.period = get_sim_steps(period_ns, "ns")
        self.origin = 0

    def start(self):
        self.origin = get_sim_time()

    def next_edge(self):
        return (get_sim_time() - self.origin) // self.period + 1

    def edges(self):
        """Rising edges since the origin, including one at the current time."""
        return (get_sim_time() - self.origin) // self.period


class StreamDriver:
    """Drives payloads on a ``lib.stream`` input, with pauses on ``valid``.

    Parameters
    ----------
    clock, payload, valid, ready : cocotb handles
        The clock and the stream's signals.
    pauses : iterator of int
        Idle cycles (``valid`` low) before each transfer; see :func:`pauses`.
    edges : EdgeCounter
        Converts simulation time to clock edges.

    Attributes
    ----------
    accepted : list of int
        The clock edge at which each payload was transferred.
    idle : int
        Cycles of pauses inserted.
    """

    def __init__(self, clock, payload, valid, ready, pauses, edges):
        self.clock, self.payload, self.valid, self.ready = clock, payload, valid, ready
        self.pauses, self.edges = pauses, edges
        self.accepted = []
        self.idle = 0

    async def send(self, payloads):
        """Transfer each of ``payloads`` in turn; returns when the last has been accepted."""
        clock_edge, read_only = RisingEdge(self.clock), ReadOnly()
        ready_rises = RisingEdge(self.ready)
        for payload in payloads:
            gap = next(self.pauses)
            if gap:
                self.idle += gap
                self.valid.value = 0
                await ClockCycles(self.clock, gap)
            self.payload.value = payload
            self.valid.value = 1
            await read_only
            while not self.ready.value:
                await ready_rises
                await read_only
            self.accepted.append(self.edges.next_edge())
            await clock_edge
        self.valid.value = 0


class StreamMonitor:
    """Takes results from a ``lib.stream`` output, with back-pressure on ``ready``.

    Parameters
    ----------
    clock, payload, valid, ready : cocotb handles
        The clock and the stream's signals.
    pauses : iterator of int
        Cycles to hold ``ready`` low before each transfer; see :func:`pauses`.
    edges : EdgeCounter
        Converts simulation time to clock edges.
    on_result : callable
        Called with each payload (a ``LogicArray``, or a ``Logic`` for one bit) as it transfers.

    Attributes
    ----------
    presented : list of int
        For each result, the first clock edge at which it was offered while the monitor was
        watching (with no pause, the first edge at which its ``valid`` was high).
    idle : int
        Cycles of back-pressure inserted.
    """

    def __init__(self, clock, payload, valid, ready, pauses, edges, on_result):
        self.clock, self.payload, self.valid, self.ready = clock, payload, valid, ready
        self.pauses, self.edges, self.on_result = pauses, edges, on_result
        self.presented = []
        self.idle = 0

    async def receive(self, count):
        """Take ``count`` results; returns after the last transfer, leaving ``ready`` high."""
        clock_edge, read_only = RisingEdge(self.clock), ReadOnly()
        valid_rises = RisingEdge(self.valid)
        self.ready.value = 1
        for _ in range(count):
            pause = next(self.pauses)
            if pause:
                self.idle += pause
                self.ready.value = 0
                await ClockCycles(self.clock, pause)
                self.ready.value = 1
            await read_only
            while not self.valid.value:
                await valid_rises
                await read_only
            self.presented.append(self.edges.next_edge())
            self.on_result(self.payload.value)
            await clock_edge


class Scoreboard:
    """Compares each result with the golden model's, in order.

    Parameters
    ----------
    accelerator : gen.folder.AcceleratorFolder
        Gives the output encoding, to decode a mismatching result.
    vectors : gen.folder.Vectors
        The expected results.

    Attributes
    ----------
    checked : int
        Results compared so far.
    mismatches : list of int
        Vector indices whose result differed.
    details : list of dict
        ``index``, ``expected`` and ``actual`` (as text) of the first mismatches.
    """

    def __init__(self, accelerator, vectors):
        self.accelerator, self.vectors = accelerator, vectors
        self.expected = vectors.output_payloads
        self.checked = 0
        self.mismatches = []
        self.details = []

    def check(self, value):
        """Compare ``value``, the next result's payload (a ``LogicArray`` or, for one bit, a
        ``Logic``), with its vector."""
        index = self.checked
        self.checked += 1
        try:
            # A one-bit payload reads as a Logic, a wider one as a LogicArray.
            actual = int(value) if isinstance(value, Logic) else value.to_unsigned()
        except ValueError:  # X or Z bits
            actual = None
        if actual == self.expected[index]:
            return
        self.mismatches.append(index)
        if len(self.details) >= REPORT_LIMIT:
            return
        if actual is None:
            actual_text = f"unresolved bits {value}"
        else:
            actual_text = self.accelerator.format_result(self.accelerator.output.unpack([actual]))
        expected_text = self.accelerator.format_result(self.vectors.outputs[index])
        self.details.append({"index": index, "expected": expected_text, "actual": actual_text})
        log.error("vector %d: expected %s, got %s", index, expected_text, actual_text)


class AcceleratorBench:
    """Clock, reset, stimulus, checking and measurement for one accelerator.

    Parameters
    ----------
    dut : cocotb handle
        The top module.
    accelerator : gen.folder.AcceleratorFolder
        Its metadata.
    vectors : gen.folder.Vectors
        Inputs and expected results.
    seed : int
        Seed of the stall patterns.
    stall : float
        Chance of a gap before each input and of back-pressure before each result, after the
        timing vectors.
    longest_stall : int
        Longest gap or back-pressure, in cycles.
    timing_vectors : int
        Vectors sent back to back, with no back-pressure, at the start, on which latency and
        initiation interval are measured.
    """

    def __init__(self, dut, accelerator, vectors, *, seed, stall, longest_stall, timing_vectors):
        self.dut, self.accelerator, self.vectors = dut, accelerator, vectors
        self.seed, self.stall, self.longest_stall = seed, stall, longest_stall
        self.timing_vectors = min(len(vectors), timing_vectors)
        self.failures = []

    def _port(self, name, width):
        try:
            handle = getattr(self.dut, name)
        except AttributeError:
            raise BenchError(f"the design has no port {name!r}, which the metadata names") from None
        if len(handle) != width:
            raise BenchError(f"port {name!r} is {len(handle)} bits wide, the metadata says {width}")
        return handle

    def _ports(self):
        acc = self.accelerator
        self.clock = self._port(acc.clock, 1)
        self.reset = self._port(acc.reset, 1)
        handles = {}
        for side, encoding in (("i", acc.input), ("o", acc.output)):
            names = acc.ports[side]
            handles[side] = (
                self._port(names["payload"], encoding.payload_width),
                self._port(names["valid"], 1),
                self._port(names["ready"], 1),
            )
        return handles

    async def run(self):
        """Run the whole check; returns the result as a JSON-ready dict."""
        acc, vectors = self.accelerator, self.vectors
        (i_payload, i_valid, i_ready), (o_payload, o_valid, o_ready) = self._ports().values()
        Clock(self.clock, CLOCK_PERIOD_NS, unit="ns").start()
        self.reset.value = acc.reset_active
        i_valid.value, i_payload.value, o_ready.value = 0, 0, 0
        await ClockCycles(self.clock, 3)
        self.reset.value = 1 - acc.reset_active
        edges = EdgeCounter(CLOCK_PERIOD_NS)
        edges.start()
        wall_start = time.perf_counter()

        rng_in, rng_out = random.Random(f"{self.seed}:i"), random.Random(f"{self.seed}:o")
        free = self.timing_vectors
        driver = StreamDriver(
            self.clock, i_payload, i_valid, i_ready,
            pauses(rng_in, self.stall, self.longest_stall, free=free), edges,
        )  # fmt: skip
        scoreboard = Scoreboard(acc, vectors)
        monitor = StreamMonitor(
            self.clock, o_payload, o_valid, o_ready,
            pauses(rng_out, self.stall, self.longest_stall, free=free), edges, scoreboard.check,
        )  # fmt: skip
        n = len(vectors)
        driver_task = cocotb.start_soon(driver.send(vectors.input_payloads))
        monitor_task = cocotb.start_soon(monitor.receive(n))
        # Watchdog: the run fails when no result comes for longer than the slowest correct
        # design could take (its latency and II, with the longest stalls on both sides).
        window = 4 * (acc.latency + acc.initiation_interval) + 8 * self.longest_stall + 200
        timed_out, progress = False, -1
        while not monitor_task.done():
            if scoreboard.checked == progress:
                timed_out = True
                self.failures.append(
                    f"timeout: no result for {window} cycles, after {scoreboard.checked} of {n} "
                    f"({len(driver.accepted)} inputs accepted; the metadata predicts latency "
                    f"{acc.latency} and II {acc.initiation_interval})"
                )
                break
            progress = scoreboard.checked
            await First(monitor_task.complete, Timer(window * CLOCK_PERIOD_NS, "ns"))
        driver_task.cancel()
        monitor_task.cancel()
        extra = 0 if timed_out else await self._extra_results(o_valid, o_ready)
        cycles = edges.edges()
        wall = time.perf_counter() - wall_start
        if extra:
            self.failures.append("the accelerator gave a result with no input left to answer")
        mismatches = len(scoreboard.mismatches)
        if mismatches:
            self.failures.append(f"{mismatches} of {scoreboard.checked} results mismatched")
        timing = self._timing(driver.accepted, monitor.presented)
        return {
            "name": acc.name,
            "top": acc.top,
            "source": vectors.source,
            "vectors": n,
            "checked": scoreboard.checked,
            "mismatches": mismatches,
            "mismatch_indices": scoreboard.mismatches,
            "mismatch_details": scoreboard.details,
            "extra_results": extra,
            "timed_out": timed_out,
            "seed": self.seed,
            "stall": self.stall,
            "input_gap_cycles": driver.idle,
            "output_stall_cycles": monitor.idle,
            **timing,
            "cycles": cycles,
            "wall_seconds": wall,
            "failures": self.failures,
            "passed": not self.failures,
        }

    async def _extra_results(self, o_valid, o_ready):
        """Watch ``o`` (ready high) for a while after the last result: nothing may come."""
        acc = self.accelerator
        window = acc.latency + 2 * acc.initiation_interval + 2 * self.longest_stall + 16
        o_ready.value = 1
        await ReadOnly()
        if o_valid.value:
            return 1
        trigger = await First(RisingEdge(o_valid), Timer(window * CLOCK_PERIOD_NS, "ns"))
        if isinstance(trigger, Timer):
            return 0
        await ReadOnly()
        return 1 if o_valid.value else 0

    def _timing(self, accepted, presented):
        acc = self.accelerator
        timed = min(self.timing_vectors, len(presented))
        latencies = [presented[k] - accepted[k] for k in range(timed)]
        latency = latencies[0] if latencies else None
        if latency is not None and latency != acc.latency:
            self.failures.append(
                f"latency: measured {latency} cycles, the metadata predicts {acc.latency}"
            )
        ii = input_ii = None
        if timed >= 3:
            # The sustained rate, in the second half of the back-to-back vectors. It is read
            # from the results, which leave at the slowest layer's pace as soon as that layer
            # has work; inputs reach the same pace only once the buffers before the slowest
            # layer have filled, which can take many vectors when layers differ by little.
            half = timed // 2
            ii = Fraction(presented[timed - 1] - presented[half], timed - 1 - half)
            input_ii = Fraction(accepted[timed - 1] - accepted[half], timed - 1 - half)
            if ii != acc.initiation_interval:
                self.failures.append(
                    f"initiation interval: measured {float(ii):g} cycles, the metadata "
                    f"predicts {acc.initiation_interval}"
                )
        return {
            "latency": {
                "predicted": acc.latency,
                "measured": latency,
                "min": min(latencies) if latencies else None,
                "max": max(latencies) if latencies else None,
                "vectors": timed,
            },
            "initiation_interval": {
                "predicted": acc.initiation_interval,
                "measured": None if ii is None else float(ii),
                "input_measured": None if input_ii is None else float(input_ii),
                "vectors": timed,
            },
        }


def _config():
    path = os.environ.get(CONFIG_VARIABLE)
    if not path:
        raise RuntimeError(f"{CONFIG_VARIABLE} is not set; run the bench through sim.runner")
    with open(path) as f:
        return json.load(f)


@cocotb.test()
async def verify(dut):
    """Every vector's result against the golden model, with stalls; latency and II."""
    config = _config()
    accelerator = folder.load(config["directory"])
    vectors = accelerator.load_vectors(config["vectors"])
    bench = AcceleratorBench(
        dut,
        accelerator,
        vectors,
        seed=config["seed"],
        stall=config["stall"],
        longest_stall=config["longest_stall"],
        timing_vectors=config["timing_vectors"],
    )
    try:
        result = await bench.run()
    except BenchError as exc:
        result = {"failures": [str(exc)], "passed": False, "error": str(exc)}
    with open(config["result"] + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(config["result"] + ".tmp", config["result"])
    assert result["passed"], "; ".join(result["failures"])
