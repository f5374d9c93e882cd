"""Sweep throughput: points per minute on a local Dask cluster of 1 and 2 worker processes, and
the cache-hit rate of a re-run.

Sweeps the shipped digits-mlp's ``--explore`` candidates (the first ``--points`` of them) on a
target (default ``asic``: Yosys only, so the figure is synthesis throughput), each time with a
fresh cache, then re-runs the last sweep on its cache.
"""

import argparse
import os
import sys
import tempfile
import time

from gen import network
from gen.compiler.explore import explore
from gen.flow import cache, sweep

MODEL = os.path.join(os.path.dirname(__file__), os.pardir, "models", "digits-mlp.tnn.json")


def run(folds, target, workers, store, output):
    started = time.monotonic()
    summary = sweep.sweep(
        MODEL, target, folds, output=output, jobs=workers, cache=store, say=lambda line: None
    )
    return time.monotonic() - started, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="asic")
    parser.add_argument("--points", type=int, default=4)
    args = parser.parse_args(argv)
    folds = [c.fold for c in explore(network.load(MODEL))][: args.points]
    with tempfile.TemporaryDirectory() as scratch:
        for workers in (1, 2):
            store = cache.Cache(os.path.join(scratch, f"cache{workers}"))
            seconds, _ = run(folds, args.target, workers, store, os.path.join(scratch, "o"))
            print(f"{workers} worker(s): {len(folds)} points in {seconds:.1f} s, "
                  f"{60 * len(folds) / seconds:.1f} points/minute", flush=True)  # fmt: skip
        seconds, summary = run(folds, args.target, 2, store, os.path.join(scratch, "r"))
        hits = summary["cache"]["hits"]
        print(f"re-run: {hits} of {len(folds)} from the cache ({100 * hits / len(folds):.0f}%), "
              f"{seconds:.1f} s")  # fmt: skip
    print(f"load: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
