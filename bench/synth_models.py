"""Synthesis reports of the shipped models on their target parts.

Compiles each model with its folding, synthesizes, places and routes it (``gen.synth``) and
prints its report, then a summary against the acceptance figures of the synthesis issue:

- ``digits-mlp``, unrolled, on ``ice40-up5k``;
- ``mnist-mlp``, folded (the compiler's cheapest folding with an initiation interval of at most
  256 cycles), on ``ecp5-85k``: at least 100,000 inferences per second (Fmax / II);
- ``digits-cnn``, unrolled, on ``ecp5-25k``;
- ``digits-bfcn`` (segmentation, ``class_map`` output), folded ``0:2,9;2:1,48`` (unrolled it
  does not place: 5,761 logic cells of 5,280), on ``ice40-up5k``.

and, for each model on ``ice40-up5k`` or ``ecp5-85k``, measured LUTs within 25% of the
compiler's prediction. ECP5 place and route runs through YoWASP here and takes minutes.

With ``--part``, every shipped model is instead folded to fill its part (``tnngen verilog
--part``: the fastest folding predicted within 80% of the part, :data:`PART_RUNS`), and the
summary compares with the prediction in the part's own units.

Usage::

    python bench/synth_models.py [--part] [--only NAME ...] [--output DIR]
                                 [--tools auto|native|yowasp]

Each model's accelerator and reports go to ``DIR/<model>/`` (default ``out/synth-models``).
Exit status 1 if a run fails or a figure misses its mark.
"""

import argparse
import os
import sys
import time

from gen import compiler, folder, network
from gen.compiler.explore import fold_spec
from gen.flow import errors, synth
from gen.flow import report as synth_report

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# (model, target, fold, target_ii)
RUNS = [
    ("digits-mlp", "ice40-up5k", "unrolled", None),
    ("mnist-mlp", "ecp5-85k", "auto", 256),
    ("digits-cnn", "ecp5-25k", "unrolled", None),
    ("digits-bfcn", "ice40-up5k", "0:2,9;2:1,48", None),
]
#: --part: (model, part) for every shipped trained model; the small ones on the UP5K.
PART_RUNS = [
    ("digits-mlp", "ice40-up5k"),
    ("digits-mlp-ttq", "ice40-up5k"),
    ("digits-mlp-w4", "ice40-up5k"),
    ("digits-cnn", "ice40-up5k"),
    ("digits-twn-mlp", "ice40-up5k"),
    ("digits-bfcn", "ice40-up5k"),
    ("tfc-w1a1", "ecp5-85k"),
    ("sfc-w1a1", "ecp5-85k"),
    ("mnist-mlp", "ecp5-85k"),
]
MIN_MNIST_RATE = 100_000
# nextpnr's router2 for ECP5: router1 had not converged after 90 minutes on mnist-mlp (over a
# thousand congested wires left, each thousand iterations slower than the last).
PNR_ARGS = {"ecp5-25k": ("--router", "router2"), "ecp5-85k": ("--router", "router2")}
LUT_TOLERANCE = 0.25


def build(model, fold, target_ii, directory, part=None):
    path = os.path.join(ROOT, "models", f"{model}.tnn.json")
    net = network.load(path)
    start = time.perf_counter()

    def show_plan(step, state):
        if step == "plan":
            print(compiler.describe_plan(state.plan), flush=True)

    compilation, _, _ = folder.compile_to_folder(
        net, directory, fold=fold, target_ii=target_ii, part=part, vectors=16, on_step=show_plan
    )
    print(f"compiled in {time.perf_counter() - start:.1f} s", flush=True)
    return fold_spec(compilation.plan)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part", action="store_true", help="fold every shipped model to fill its part"
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="models to run")
    parser.add_argument("--output", default=os.path.join(ROOT, "out", "synth-models"))
    parser.add_argument("--tools", choices=("auto", "native", "yowasp"))
    parser.add_argument("--timeout", type=float, default=4 * 3600.0)
    args = parser.parse_args(argv)

    if args.part:
        runs = [(model, target, "auto", None) for model, target in PART_RUNS]
    else:
        runs = RUNS
    runs = [r for r in runs if not args.only or r[0] in args.only]
    reports, folds, failures = {}, {}, []
    for model, target, fold, target_ii in runs:
        directory = os.path.join(args.output, ("part-" if args.part else "") + model)
        fold_text = f"--part {target}" if args.part else fold
        fold_text += f" (II <= {target_ii})" if target_ii else ""
        print(f"\n== {model}, {fold_text}, on {target}", flush=True)
        try:
            folds[model] = build(
                model, fold, target_ii, directory, part=target if args.part else None
            )
            report = synth.run(
                directory,
                target,
                tools=args.tools,
                timeout=args.timeout,
                extra_pnr_args=PNR_ARGS.get(target, ()),
            )
        except (errors.SynthError, errors.SynthInputError, compiler.CompileError) as exc:
            if getattr(exc, "report", None) is not None:  # too big for the part
                reports[model] = exc.report
                print(synth_report.format_markdown(exc.report), flush=True)
            print(f"{model}: failed: {exc}", file=sys.stderr, flush=True)
            failures.append(f"{model}: failed")
            continue
        reports[model] = report
        print(synth_report.format_markdown(report), flush=True)

    print("\n== summary\n")
    print(
        "| model | target | fold | II | LUTs (acc.) | predicted | ratio | FFs | BRAM | Fmax (MHz) "
        "| inferences/s |"
    )
    print("|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|")
    for model, target, fold, _ in runs:
        report = reports.get(model)
        if report is None:
            print(f"| {model} | {target} | {fold} | failed ||||||||")
            continue
        acc = report["resources"]["accelerator"]
        luts = acc["luts"]
        predicted = (report.get("predicted") or {}).get("luts")
        ratio = luts / predicted if predicted else None
        perf = report["performance"]
        rate = perf.get("inferences_per_second") or 0
        fmax = "no fit" if perf["fmax_mhz"] is None else f"{perf['fmax_mhz']:.1f}"
        ii = perf.get("initiation_interval")
        print(
            f"| {model} | {target} | {folds[model]} | {ii} | {luts:,} | "
            f"{predicted:,} | {ratio:.2f} | {acc.get('ffs') or 0:,} | {acc.get('bram') or 0} | "
            f"{fmax} | {rate:,.0f} |"
        )
        if target in ("ice40-up5k", "ecp5-85k") and (
            ratio is None or abs(ratio - 1) > LUT_TOLERANCE
        ):
            failures.append(f"{model}: measured LUTs {luts} vs predicted {predicted}")
        if model == "mnist-mlp" and rate < MIN_MNIST_RATE:
            failures.append(f"mnist-mlp: {rate:,.0f} inferences/s < {MIN_MNIST_RATE:,}")
    for failure in failures:
        print(f"MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
