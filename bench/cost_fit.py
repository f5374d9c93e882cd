"""The resource model against synthesis, per target family: the calibration behind ``--part``.

Compiles a set of designs (the shipped models unrolled and at several foldings, ternary, binary
and int4 weights, ROMs in logic and in block RAM), synthesizes each without place and route for
one part of every FPGA family (Yosys 0.23: ``synth_ice40``, ``synth_ecp5``, ``synth_xilinx``) and
prints, per design and family, the accelerator's measured LUTs, flip-flops and block RAMs next to
the compiler's prediction for that family (:func:`gen.compiler.fit.predict`): iCE40 LUT4s,
ECP5 LUT4 sites (LUT4 cells and two per CCU2C), Xilinx LUT6s. Then, per family, the spread of
measured / predicted, the least-squares scales (LUTs against the model's LUTs, the folded
engines' apart, and carry cells plus the ROMs' LUTs; flip-flops against its flip-flops; in
relative error) that :data:`gen.compiler.fit.FAMILY_SCALE` is set from, and how many designs
are within 25%.

Usage::

    python -m bench.cost_fit [--only NAME ...] [--families ice40 ecp5 xilinx] [--output DIR]

Native Yosys takes about 10 to 20 minutes for the whole set on one core. Exit status 1 if a run
fails.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from gen import compiler, folder, network
from gen.compiler import fit
from gen.flow import errors, parse, synth

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

#: name -> (model, fold, target_ii, rom)
DESIGNS = {
    "digits-mlp-unrolled": ("digits-mlp", "unrolled", None, "auto"),
    "digits-mlp-2x4": ("digits-mlp", "2,4", None, "auto"),
    "digits-mlp-ii32": ("digits-mlp", "auto", 32, "auto"),
    "digits-cnn-unrolled": ("digits-cnn", "unrolled", None, "auto"),
    "digits-cnn-ii128": ("digits-cnn", "auto", 128, "auto"),
    "digits-mlp-w4": ("digits-mlp-w4", "0:4,16;1:2,4", None, "block"),
    "tfc-finn-block": ("tfc-w1a1", "0:16,49;1:8,8;2:8,8;3:10,8", None, "block"),
    "tfc-finn-auto": ("tfc-w1a1", "0:16,49;1:8,8;2:8,8;3:10,8", None, "auto"),
    "tfc-ii256": ("tfc-w1a1", "auto", 256, "auto"),
    "tfc-ii16-block": ("tfc-w1a1", "auto", 16, "block"),
    "mnist-mlp-ii256": ("mnist-mlp", "auto", 256, "auto"),
}
#: family -> the target synthesized for it
FAMILY_TARGETS = {"ice40": "ice40-up5k", "ecp5": "ecp5-85k", "xilinx": "xilinx7"}
TOLERANCE = 0.25


def build(model, fold, target_ii, rom, directory):
    net = network.load(os.path.join(ROOT, "models", f"{model}.tnn.json"))
    compilation, _, _ = folder.compile_to_folder(
        net, directory, fold=fold, target_ii=target_ii, rom=rom, vectors=4
    )
    return compilation.plan


def measure(directory, target, timeout, reuse):
    path = os.path.join(directory, f"synth-{target}.json")
    if reuse and os.path.exists(path):
        with open(path) as f:
            report = json.load(f)
    else:
        report = _synthesize(directory, target, timeout)
    acc = report["resources"]["accelerator"]
    measured = {key: acc.get(key) or 0 for key in ("luts", "ffs", "bram")}
    # the part's LUT sites: on ECP5 a CCU2C carry cell holds two LUT4s
    measured["luts"] = parse.lut_sites(acc, report["target"]["family"]) or 0
    return measured


def _synthesize(directory, target, timeout):
    return synth.run(
        directory,
        target,
        place_and_route=False,
        force=True,
        timeout=timeout,
        output=directory,
    )


def fitted_scale(pairs):
    """``(luts, folded, carry, ffs)`` scales that minimize the squared relative error of the
    LUT and flip-flop predictions over ``(measured, terms)`` pairs: measured LUTs against
    ``(luts - folded_luts) * a + folded_luts * f + carry * b + rom_luts`` with ``b >= 0``
    (the folded engines' LUTs apart from the rest), measured flip-flops against ``ffs * k``."""
    m_luts = np.array([m["luts"] for m, _ in pairs], dtype=float)
    columns = [[t["luts"] - t["folded_luts"], t["folded_luts"], t["carry"]] for _, t in pairs]
    rows = np.array(columns, dtype=float) / m_luts[:, None]
    rest = np.array([(m["luts"] - t["rom_luts"]) for m, t in pairs], dtype=float) / m_luts
    used = [j for j in range(3) if rows[:, j].any()]  # a kind no design has stays at 1
    scales = np.ones(3)
    scales[2] = 0.0
    for attempt in (used, [j for j in used if j != 2]):
        solution, *_ = np.linalg.lstsq(rows[:, attempt], rest, rcond=None)
        scales[attempt] = solution
        if 2 not in attempt or scales[2] >= 0:
            break
        scales[2] = 0.0  # a carry cell cannot save LUTs: refit without it
    m_ffs = np.array([m["ffs"] for m, _ in pairs], dtype=float)
    p_ffs = np.array([t["ffs"] for _, t in pairs], dtype=float) / m_ffs
    k = float(p_ffs @ np.ones_like(p_ffs) / (p_ffs @ p_ffs))
    a, f, b = (float(x) for x in scales)
    return a, f, b, k


def _ratio(measured, predicted):
    return measured / predicted if predicted else None


def _fmt(value, spec="{:,}"):
    return "—" if value is None else spec.format(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(DESIGNS), help="designs to run")
    parser.add_argument(
        "--families",
        nargs="+",
        choices=sorted(FAMILY_TARGETS),
        default=list(FAMILY_TARGETS),
        help="target families to synthesize for (default: all three)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per Yosys run")
    parser.add_argument("--output", default=os.path.join(ROOT, "out", "cost-fit"))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="take the synthesis reports an earlier run left in the output folder (the "
        "designs are compiled again and must be unchanged)",
    )
    args = parser.parse_args(argv)

    rows, failures = [], []
    for name in args.only or DESIGNS:
        model, fold, target_ii, rom = DESIGNS[name]
        directory = os.path.join(args.output, name)
        try:
            start = time.perf_counter()
            reports = [
                os.path.join(directory, f"synth-{FAMILY_TARGETS[f]}.json") for f in args.families
            ]
            if args.reuse and all(os.path.exists(r) for r in reports):
                the_plan = compiler.plan(
                    network.load(os.path.join(ROOT, "models", f"{model}.tnn.json")),
                    fold,
                    target_ii=target_ii,
                    rom=rom,
                )
            else:
                the_plan = build(model, fold, target_ii, rom, directory)
            print(f"== {name}: compiled in {time.perf_counter() - start:.1f} s", flush=True)
            for family in args.families:
                target = FAMILY_TARGETS[family]
                start = time.perf_counter()
                measured = measure(directory, target, args.timeout, args.reuse)
                terms = fit.plan_terms(the_plan, family)
                scaled = fit.predict(the_plan, family)
                rows.append((name, family, measured, terms, scaled))
                print(
                    f"   {family:7} {time.perf_counter() - start:6.1f} s  LUTs "
                    f"{measured['luts']:>7,} / {scaled.luts:>7,}  FFs {measured['ffs']:>7,} / "
                    f"{scaled.ffs:>7,}  BRAM {measured['bram']:>4} / {scaled.bram:>4}",
                    flush=True,
                )
        except (errors.SynthError, errors.SynthInputError, compiler.CompileError) as exc:
            print(f"{name}: failed: {exc}", file=sys.stderr, flush=True)
            failures.append(name)

    print(
        "\n| design | family | LUTs | predicted | ratio | FFs | predicted | ratio | BRAM | pred. |"
    )
    print("|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, family, m, _, p in rows:
        print(
            f"| {name} | {family} | {m['luts']:,} | {p.luts:,} | "
            f"{_fmt(_ratio(m['luts'], p.luts), '{:.2f}')} | {m['ffs']:,} | {p.ffs:,} | "
            f"{_fmt(_ratio(m['ffs'], p.ffs), '{:.2f}')} | {m['bram']} | {p.bram} |"
        )
    print()
    for family in args.families:
        mine = [r for r in rows if r[1] == family]
        if not mine:
            continue
        lut_a, lut_f, lut_b, ff_k = fitted_scale([(m, t) for _, _, m, t, _ in mine])
        for key in ("luts", "ffs"):
            ratios = [m[key] / getattr(p, key) for _, _, m, _, p in mine if getattr(p, key)]
            inside = sum(abs(x - 1) <= TOLERANCE for x in ratios)
            print(
                f"{family:7} {key:4}: measured / predicted {min(ratios):.2f} .. "
                f"{max(ratios):.2f}, {inside} of {len(ratios)} within {TOLERANCE:.0%}"
            )
        print(
            f"{family:7} least-squares scale (relative error): luts {lut_a:.3f}, folded "
            f"{lut_f:.3f}, carry {lut_b:.3f}, ffs {ff_k:.3f}; FAMILY_SCALE has "
            f"{fit.FAMILY_SCALE[family]}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
