"""The options of every ``tnngen`` subcommand: one argparse parser, built from shared builders.

Each option that several subcommands take (the model, the folding, test vectors, the simulator,
the synthesis target and tools) is added by one builder, so that its name, default and help
read the same everywhere.
"""

import argparse

from .flow.targets import TARGETS

__all__ = ["build_parser"]


def _add_model(p):
    p.add_argument("model", metavar="MODEL", help="network description (*.tnn.json)")


def _add_compile_options(p):
    p.add_argument(
        "--fold",
        default="unrolled",
        metavar="SPEC",
        help="'unrolled' (default), 'auto', 'PE,SIMD' for every layer, "
        "'L:PE,SIMD;L:unrolled;...' per layer (others auto), or a JSON file",
    )
    p.add_argument(
        "--target-ii",
        type=int,
        metavar="N",
        help="auto layers: the cheapest folding with an initiation interval <= N",
    )
    p.add_argument(
        "--max-luts",
        type=int,
        metavar="N",
        help="auto layers: the fastest folding with predicted LUTs <= N",
    )


def _add_vector_options(p, *, vectors_help, data_help):
    p.add_argument("--vectors", type=int, default=256, metavar="N", help=vectors_help)
    p.add_argument("--data", metavar="NAME", help=data_help)
    p.add_argument("--seed", type=int, default=0, help="seed of random inputs (default: 0)")


def _add_simulator(p):
    p.add_argument(
        "--sim",
        choices=("icarus", "verilator"),
        default="icarus",
        help="simulator (default: icarus)",
    )


def _add_synth_options(p):
    p.add_argument(
        "--target",
        required=True,
        choices=list(TARGETS),
        help="ice40-up5k, ice40-hx8k (nextpnr-ice40), ecp5-25k, ecp5-85k (nextpnr-ecp5), "
        "xilinx7 (synthesis only), asic (gates, or --liberty cells)",
    )
    p.add_argument(
        "--freq",
        type=float,
        metavar="MHZ",
        help="clock constraint for nextpnr (default: per target, 48 to 125 MHz)",
    )
    p.add_argument(
        "--tools",
        choices=("auto", "native", "yowasp"),
        help="which build of Yosys/nextpnr: native on PATH first, YoWASP from PyPI second "
        "(auto, the default; also TNNGEN_SYNTH_TOOLS)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="S",
        help="seconds each tool may run (default: 3600)",
    )
    p.add_argument(
        "--pin-width",
        type=int,
        default=8,
        metavar="N",
        help="data pins of each narrow stream of the pin wrapper (default: 8)",
    )
    _add_no_pnr(p, "stop after synthesis (resources only, no Fmax)")


def _add_no_pnr(p, text):
    p.add_argument("--no-pnr", action="store_true", help=text)


def build_parser(handlers):
    """The ``tnngen`` parser; ``handlers`` maps each subcommand's name to its function."""
    parser = argparse.ArgumentParser(
        prog="tnngen",
        description="Hardware generator for fully discretized (ternary and binary) networks.",
        epilog="Exit status: 0 on success, 2 on bad input, 1 on a failure of the run.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "check",
        help="validate a description and print its summary",
        description="Validate a tnn/1 description and print a summary: layers, shapes, weight "
        "counts, zero-weight fraction, synaptic operations and accumulator widths.",
    )
    _add_model(p)
    p.set_defaults(handler=handlers["check"])

    p = sub.add_parser(
        "predict",
        help="run the golden model on inputs",
        description="Run the NumPy golden model. X holds input values (not bit encodings), "
        "shape (N, *input.shape); Y gets (N,) class indices for argmax, else the outputs.",
    )
    _add_model(p)
    p.add_argument("--inputs", required=True, metavar="X.npy", help="integer input array")
    p.add_argument("--output", required=True, metavar="Y.npy", help="where to write outputs")
    p.set_defaults(handler=handlers["predict"])

    p = sub.add_parser(
        "eval",
        help="accuracy and confusion matrix on a data set",
        description="Print accuracy and the confusion matrix of the golden model on a data "
        "set: a named one (digits, mnist5k, idx:DIR with MNIST IDX files) or given arrays.",
    )
    _add_model(p)
    p.add_argument("--data", metavar="NAME", help="digits, mnist5k or idx:DIR")
    p.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="which split of --data (default: test)",
    )
    p.add_argument("--inputs", metavar="X.npy", help="integer inputs, instead of --data")
    p.add_argument("--labels", metavar="Y.npy", help="integer labels, with --inputs")
    p.set_defaults(handler=handlers["eval"])

    p = sub.add_parser(
        "train",
        help="train a ternary network and export its description",
        description="Quantization-aware training from a JSON configuration (data set, layers, "
        "quantization, epochs, seed, output; see models/README.md), then export to tnn/1 with "
        "every scale and batch norm folded into integer thresholds. Deterministic: the same "
        "configuration gives the same description, byte for byte. One line per epoch on stderr.",
    )
    p.add_argument("config", metavar="CONFIG", help="training configuration (*.json)")
    p.add_argument(
        "--float",
        action="store_true",
        help="train the float baseline of the same architecture instead (writes nothing)",
    )
    p.add_argument("--output", metavar="PATH", help="write the description here instead")
    p.set_defaults(handler=handlers["train"])

    p = sub.add_parser(
        "verilog",
        help="generate the accelerator's Verilog, metadata and test vectors",
        description="Compile a description into a streaming accelerator: writes DIR/<name>.v, "
        "DIR/<name>.json (metadata) and DIR/vectors.npz (inputs and golden outputs). The "
        "chosen folding and its predicted cycles and resources are printed first.",
    )
    _add_model(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    _add_compile_options(p)
    _add_vector_options(
        p,
        vectors_help="test vectors to write (default: 256)",
        data_help="take the vectors from this data set's test split instead of random",
    )
    p.set_defaults(handler=handlers["verilog"])

    p = sub.add_parser(
        "sim",
        help="simulate a generated accelerator against its test vectors",
        description="Build the accelerator in DIR (from 'tnngen verilog') with Icarus Verilog "
        "or Verilator and check it in a cocotb bench: every result against DIR/vectors.npz, "
        "with random gaps on the input and back-pressure on the output, and latency and "
        "initiation interval against the metadata. Exit status 0 only if all agree.",
    )
    p.add_argument("directory", metavar="DIR", help="accelerator folder (tnngen verilog -o DIR)")
    _add_simulator(p)
    p.add_argument(
        "--vectors", type=int, metavar="N", help="check the first N vectors (default: all)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the stall patterns (default: 0)")
    p.add_argument(
        "--stall",
        type=float,
        default=0.25,
        metavar="P",
        help="chance of a gap before each input and of back-pressure before each result "
        "(default: 0.25)",
    )
    p.add_argument(
        "--waves", action="store_true", help="write a waveform file (FST or VCD) and say where"
    )
    p.set_defaults(handler=handlers["sim"])

    p = sub.add_parser(
        "synth",
        help="synthesize an accelerator: resources, Fmax, throughput",
        description="Synthesize the accelerator in DIR (from 'tnngen verilog') with Yosys, and "
        "place and route it with nextpnr on a named part, behind a narrow-pin wrapper so it "
        "fits the package. Prints and writes DIR/synth-TARGET.json and .md: LUTs, carry, "
        "flip-flops, block RAM, DSP, I/O, utilization, Fmax, latency and inferences per second, "
        "per layer, each next to the compiler's prediction. Tool logs: DIR/synth-TARGET/.",
    )
    p.add_argument("directory", metavar="DIR", help="accelerator folder (tnngen verilog -o DIR)")
    _add_synth_options(p)
    p.add_argument(
        "--liberty",
        metavar="FILE",
        help="asic: map to this Liberty library and report its cell area",
    )
    p.add_argument(
        "--pins",
        metavar="FILE",
        help="PCF (iCE40) or LPF (ECP5) placing the wrapper's ports (default: nextpnr chooses)",
    )
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default: 1)")
    p.add_argument(
        "--pnr-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG on to nextpnr, e.g. --pnr-arg=--router --pnr-arg=router2 (repeatable)",
    )
    p.add_argument(
        "--flat",
        action="store_true",
        help="flatten the whole design (no wrapper/accelerator or per-layer split)",
    )
    p.add_argument("-o", "--output", metavar="OUT", help="where reports go (default: DIR)")
    p.set_defaults(handler=handlers["synth"])

    p = sub.add_parser(
        "sweep",
        help="synthesize several foldings and plot the Pareto front",
        description="Compile MODEL once per folding, synthesize each for the target in "
        "parallel (up to the core count), and print and plot (PNG, with matplotlib) the "
        "accelerator's LUTs against inferences per second, marking the Pareto front.",
    )
    _add_model(p)
    p.add_argument(
        "--folds",
        nargs="+",
        required=True,
        metavar="SPEC",
        help="foldings as 'tnngen verilog --fold' takes them, e.g. unrolled '0:4,16' auto",
    )
    _add_synth_options(p)
    p.add_argument(
        "--jobs", type=int, metavar="N", help="foldings run at once (default: the core count)"
    )
    p.add_argument(
        "-o", "--output", metavar="OUT", help="output folder (default: out/<name>-sweep)"
    )
    p.set_defaults(handler=handlers["sweep"])

    p = sub.add_parser(
        "flow",
        help="run the whole flow on one model",
        description="Run every step on one model and report each: summary, golden model "
        "(accuracy on --data, or results on random inputs), Verilog, simulation against the "
        "golden model (cocotb), and synthesis with its resource and timing report.",
    )
    _add_model(p)
    _add_vector_options(
        p,
        vectors_help="test vectors for the simulation (default: 256)",
        data_help="data set for accuracy and test vectors (digits, mnist5k, idx:DIR); "
        "default: random inputs",
    )
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: out/<name>)")
    _add_compile_options(p)
    _add_simulator(p)
    p.add_argument(
        "--target",
        default="ice40-up5k",
        help="synthesis target (default: ice40-up5k); see tnngen synth --help",
    )
    p.add_argument("--no-sim", action="store_true", help="skip the simulation step")
    p.add_argument("--no-synth", action="store_true", help="skip the synthesis step")
    _add_no_pnr(p, "synthesis only, no place and route (resources without Fmax; much faster)")
    p.set_defaults(handler=handlers["flow"])
    return parser
