"""Compiler speed: Verilog generation time and size for the shipped mnist-mlp.

Prints, for the folding that targets an ECP5-85k (auto folding at an initiation interval of 512
cycles: about 200,000 inferences per second at 100 MHz) and for the fully unrolled network, the
wall time of planning, building and converting to Verilog, and the Verilog's size. The unrolled
conversion is long (tens of minutes: every nonzero weight becomes wiring into a compressor
tree); ``--folded-only`` skips it.
"""

import argparse
import os
import sys
import time

from gen import compiler, network

MODEL = os.path.join(os.path.dirname(__file__), os.pardir, "models", "mnist-mlp.tnn.json")


def measure(net, fold, **options):
    start = time.perf_counter()
    compiled = compiler.compile_network(net, fold, **options)
    seconds = time.perf_counter() - start
    return compiled, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folded-only", action="store_true", help="skip the unrolled build")
    parser.add_argument("--model", default=MODEL, help="description (default: mnist-mlp)")
    args = parser.parse_args(argv)
    net = network.load(args.model)
    runs = [("folded for ECP5-85k (auto, II <= 512)", "auto", {"target_ii": 512})]
    if not args.folded_only:
        runs.append(("fully unrolled", "unrolled", {}))
    print(f"{'configuration':<40} {'II':>6} {'pred. LUTs':>11} {'seconds':>9} {'Verilog':>10}")
    for title, fold, options in runs:
        compiled, seconds = measure(net, fold, **options)
        meta = compiled.metadata
        size = len(compiled.verilog.encode())
        print(
            f"{title:<40} {meta['initiation_interval']:>6} {meta['predicted']['luts']:>11} "
            f"{seconds:>9.1f} {size / 1e6:>8.2f} MB",
            flush=True,
        )
        folds = ", ".join(
            f"{lay['index']}:{lay['engine']} {lay['pe']}x{lay['simd']}" for lay in meta["layers"]
        )
        print(f"{'':<40} {folds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
