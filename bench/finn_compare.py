"""Side by side with FINN: the TFC- and SFC-shaped w1a1 networks at FINN's foldings.

Builds ``models/tfc-w1a1.tnn.json`` and ``models/sfc-w1a1.tnn.json`` (binary weights and
activations, trained by ``tnngen train models/{tfc,sfc}-w1a1.json``) at the foldings FINN
publishes for the same shapes, synthesizes and places and routes each on ECP5 (Yosys
``synth_ecp5``, nextpnr-ecp5 through YoWASP where no native build is installed), and with
``--xilinx`` also through Yosys ``synth_xilinx`` (LUT6, the unit of FINN's figures). Prints
LUTs, flip-flops, block RAMs, Fmax and images/s (Fmax / initiation interval) next to FINN's
published figures:

- TFC-w1a1 (784-64-64-64-10), finn-examples: folding (PE x SIMD) 16x49, 8x8, 8x8, 10x8, II 64
  at 100 MHz: 1.56 M images/s (1.09 M measured on a board).
- SFC-max (784-256-256-256-10, w1a1), FINN paper: 12.3 M images/s at 200 MHz, II 16, 91,131
  LUTs on a ZC706, so 136 images/s per LUT.

Caveats, printed with the table: our LUTs (ECP5: LUT4 cells and two per CCU2C carry cell;
Xilinx: LUT6 cells) are Yosys's, not Vivado's; FINN's totals include its FIFOs, width
converters and the AXI shell, ours the accelerator without the narrow-pin wrapper; FINN's Fmax
is Vivado's on a Zynq, ours nextpnr's on an ECP5 (a slower fabric); our networks are trained on
4,000 MNIST images.

Usage::

    python bench/finn_compare.py [--only tfc|sfc ...] [--xilinx] [--output DIR]

SFC at II 16 is about 50,000 LUT4s: its ECP5 place and route through YoWASP takes the better
part of an hour. Exit status 1 if a run fails.
"""

import argparse
import os
import sys
import time

from gen import compiler, folder, network
from gen.compiler.build import ROM_CHOICES
from gen.flow import errors, parse, synth

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

#: name -> (model, fold spec, FINN's figures)
DESIGNS = {
    "tfc": (
        "tfc-w1a1",
        "0:16,49;1:8,8;2:8,8;3:10,8",
        {"ii": 64, "mhz": 100.0, "images_per_s": 1.56e6, "luts": None, "source": "finn-examples"},
    ),
    "sfc": (
        "sfc-w1a1",
        "0:64,196;1:64,64;2:64,64;3:10,16",
        {"ii": 16, "mhz": 200.0, "images_per_s": 12.3e6, "luts": 91_131, "source": "FINN paper"},
    ),
}
#: nextpnr-ecp5 options (the default router; --router router2 gives other figures, see --help)
PNR_ARGS = ()


def build(model, fold, directory, rom):
    net = network.load(os.path.join(ROOT, "models", f"{model}.tnn.json"))

    def show_plan(step, state):
        if step == "plan":
            print(compiler.describe_plan(state.plan), flush=True)

    start = time.perf_counter()
    folder.compile_to_folder(net, directory, fold=fold, rom=rom, vectors=16, on_step=show_plan)
    print(f"compiled in {time.perf_counter() - start:.1f} s", flush=True)


def figures(report):
    acc = report["resources"]["accelerator"]
    perf = report["performance"]
    return {
        "luts": parse.lut_sites(acc, report["target"]["family"]),
        "ffs": acc["ffs"],
        "bram": acc.get("bram"),
        "mhz": perf.get("fmax_mhz"),
        "ii": perf["initiation_interval"],
        "images_per_s": perf.get("inferences_per_second"),
    }


def _num(value, fmt="{:,.0f}"):
    return "—" if value is None else fmt.format(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(DESIGNS), help="designs to run")
    parser.add_argument("--xilinx", action="store_true", help="also synthesize for xilinx7")
    parser.add_argument("--rom", default="block", choices=ROM_CHOICES)
    parser.add_argument("--tools", choices=("auto", "native", "yowasp"))
    parser.add_argument(
        "--router", choices=("router1", "router2"), help="nextpnr-ecp5's router (default: its own)"
    )
    parser.add_argument("--timeout", type=float, default=4 * 3600.0)
    parser.add_argument("--output", default=os.path.join(ROOT, "out", "finn-compare"))
    args = parser.parse_args(argv)

    rows, failures = [], []
    for name in args.only or ("tfc", "sfc"):
        model, fold, finn = DESIGNS[name]
        directory = os.path.join(args.output, name)
        print(f"\n== {model} at FINN's folding {fold} (rom {args.rom})", flush=True)
        targets = ["ecp5-85k"] + (["xilinx7"] if args.xilinx else [])
        try:
            build(model, fold, directory, args.rom)
            for target in targets:
                report = synth.run(
                    directory,
                    target,
                    tools=args.tools,
                    timeout=args.timeout,
                    extra_pnr_args=(
                        (*PNR_ARGS, *(("--router", args.router) if args.router else ()))
                        if target.startswith("ecp5")
                        else ()
                    ),
                )
                rows.append((name, target, figures(report), finn))
        except (errors.SynthError, errors.SynthInputError, compiler.CompileError) as exc:
            print(f"{name}: failed: {exc}", file=sys.stderr, flush=True)
            failures.append(name)

    print("\n== side by side\n")
    print(
        "| design | target | II | LUTs | FFs | BRAM | Fmax (MHz) | images/s | images/s per LUT "
        "| FINN: II, MHz | FINN images/s | FINN images/s per LUT |"
    )
    print("|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, target, ours, finn in rows:
        per_lut = ours["images_per_s"] / ours["luts"] if ours["images_per_s"] else None
        finn_per_lut = finn["images_per_s"] / finn["luts"] if finn["luts"] else None
        print(
            f"| {name} | {target} | {ours['ii']} | {ours['luts']:,} | {ours['ffs']:,} | "
            f"{_num(ours['bram'])} | {_num(ours['mhz'], '{:.1f}')} | "
            f"{_num(ours['images_per_s'])} | {_num(per_lut, '{:.0f}')} | "
            f"{finn['ii']}, {finn['mhz']:.0f} | {finn['images_per_s']:,.0f} | "
            f"{_num(finn_per_lut, '{:.0f}')} |"
        )
    print(
        "\nLUTs: the accelerator's LUT sites without its pin wrapper (ECP5: Yosys's LUT4 cells "
        "and two per CCU2C carry cell; xilinx7: LUT6 cells, the carry chains apart); FINN's are "
        "Vivado LUT sites including FIFOs, width converters and the shell. "
        "xilinx7 is synthesis only (no Fmax). images/s = Fmax / II (the pins of a real board "
        "would feed 784 bits per image)."
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
