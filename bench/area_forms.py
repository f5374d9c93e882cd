"""Which form of :class:`hw.dotproduct.DotProduct` is smaller for n-bit inputs, and does sharing
pay: Yosys cell counts of the same weights built each way.

Forms: ``bits`` and ``words``, per-row compressor trees (``share=False``) of the inputs' bit
planes or of whole words; ``default``, what the compiler builds (``share=True``: a graph of
shared word adders where that is estimated smaller, column ``graph``).

Each design is checked against NumPy in Amaranth's simulator before it is synthesized.

Run: ``python -m bench.area_forms`` (a few minutes).
"""

import argparse
import sys

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from bench.area_synth import synth_counts
from hw.dotproduct import DotProduct
from hw.encoding import ValueEncoding


def build(weights, encoding, **options):
    m = Module()
    dut = DotProduct(weights, encoding=encoding, **options)
    x = Signal(encoding.width * weights.shape[1], name="x")
    y = Signal(dut.acc_shape.width * weights.shape[0], name="y")
    m.submodules.dot = dut
    m.d.comb += [dut.i.payload.eq(x), dut.i.valid.eq(1), dut.o.ready.eq(1), y.eq(dut.o.payload)]
    return m, dut, x, y


def check(weights, encoding, options, vectors=20, seed=0):
    m, dut, x, _ = build(weights, encoding, **options)
    rng = np.random.default_rng(seed)
    xs = rng.integers(encoding.min, encoding.max + 1, size=(vectors, weights.shape[1]))
    if encoding.kind == "binary":
        xs = np.where(xs > 0, 1, -1)

    async def bench(ctx):
        for v in xs:
            ctx.set(x, encoding.pack(v))
            got = [ctx.get(dut.o.payload[j]) for j in range(weights.shape[0])]
            assert got == (weights @ v).tolist()

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def measure(weights, encoding, options, targets):
    check(weights, encoding, options)
    m, _, x, y = build(weights, encoding, **options)
    text = verilog.convert(m, name="top", ports=[x, y], emit_src=False)
    return {t: synth_counts(text, "top", t) for t in targets}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    rng = np.random.default_rng(0)
    cases = [
        ("row 64, uint8", rng.choice([-1, 0, 1], size=(1, 64)), ValueEncoding.uint(8)),
        ("16x64, uint4", rng.choice([-1, 0, 1], size=(16, 64)), ValueEncoding.uint(4)),
        ("16x64, int4", rng.choice([-1, 0, 1], size=(16, 64)), ValueEncoding.int(4)),
    ]
    variants = [
        ("bits", {"form": "bits", "share": False}),
        ("words", {"form": "words", "share": False}),
        ("default", {}),
    ]
    print(
        f"{'case':16s} {'form':8s} {'graph':5s} {'nz':>5s} {'iCE40 LUT4':>10s} {'carry':>6s} "
        f"{'iCE40 LC':>8s} {'Xilinx LUT':>10s}"
    )
    for name, weights, encoding in cases:
        nz = int(np.count_nonzero(weights))
        for label, options in variants:
            ice = measure(weights, encoding, {**options, "carry_in": "constant"}, ["ice40"])
            xil = measure(weights, encoding, {**options, "carry_in": "repeat"}, ["xilinx"])
            graph = DotProduct(weights, encoding=encoding, **options).graph is not None
            lcs = ice["ice40"].get("lcs") or 0
            print(
                f"{name:16s} {label:8s} {'yes' if graph else 'no':5s} {nz:5d} "
                f"{ice['ice40']['luts']:10d} {ice['ice40']['carry']:6d} {lcs:8d} "
                f"{xil['xilinx']['luts']:10d}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
