"""``tnngen``: the command-line tool, one subcommand for each step of the flow.

Exit status: 0 on success, 2 on bad input (a malformed description, inputs or arguments),
1 on a failure of the run itself.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time

import numpy as np

from . import datasets, golden, network

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: reported without a traceback, exit status 2."""


# --- helpers -------------------------------------------------------------------------------------


def _load_model(path):
    return network.load(path)


def _load_npy(path, what):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file ({what})") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a NumPy .npy array ({what}): {exc}") from None


def save_npy_atomic(path, array):
    """Write ``array`` to ``path`` through a temporary file moved into place."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{path}: the folder {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".tnngen-", suffix=".npy", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _format_table(header, rows):
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if k else c.ljust(w)
                for k, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _shape_text(shape):
    return "x".join(str(d) for d in shape)


def _type_text(value_type):
    if value_type.name == "levels":
        return "levels " + ",".join(str(v) for v in value_type.levels)
    if value_type.name == "integer":
        return f"int [{value_type.lo}, {value_type.hi}]"
    return value_type.name


# --- check ---------------------------------------------------------------------------------------


def summarize(net):
    """The text ``tnngen check`` prints for ``net``."""
    ranges = golden.analyze_ranges(net)
    rows = []
    total_weights = total_nonzero = total_ops = total_nonzero_ops = 0
    for index, (layer, r) in enumerate(zip(net.layers, ranges, strict=True)):
        shape_in, shape_out = net.shapes[index], net.shapes[index + 1]
        if isinstance(layer, network.MaxPool):
            kind = f"maxpool {layer.kernel[0]}x{layer.kernel[1]}/{layer.stride[0]}"
            rows.append(
                [
                    index,
                    kind,
                    _shape_text(shape_in),
                    _shape_text(shape_out),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    _type_text(net.types[index + 1]),
                ]
            )
            continue
        positions = int(np.prod(shape_out[:-1])) if len(shape_out) == 3 else 1
        weights = layer.weights.size
        nonzero = int(np.count_nonzero(layer.weights))
        ops, nonzero_ops = positions * weights, positions * nonzero
        total_weights += weights
        total_nonzero += nonzero
        total_ops += ops
        total_nonzero_ops += nonzero_ops
        kind = (
            layer.type
            if layer.type == "dense"
            else (f"conv2d {layer.kernel[0]}x{layer.kernel[1]}/{layer.stride[0]}")
        )
        if layer.weight_type == "binary":
            kind += " (bin)"
        zero = 1 - nonzero / weights
        acc = f"[{r.acc_min}, {r.acc_max}] {'s' if r.acc_signed else 'u'}{r.acc_bits}"
        rows.append(
            [
                index,
                kind,
                _shape_text(shape_in),
                _shape_text(shape_out),
                weights,
                nonzero,
                f"{100 * zero:.1f}%",
                ops,
                acc,
                _type_text(net.types[index + 1]),
            ]
        )
    header = [
        "#",
        "layer",
        "in",
        "out",
        "weights",
        "nonzero",
        "zero",
        "synops",
        "accumulator",
        "output",
    ]
    lines = [
        f"model   {net.name}",
        f"input   {_shape_text(net.input.shape)} {net.input.type.name}",
        f"output  {net.output} of {_shape_text(net.output_shape)}",
        "",
        _format_table(header, rows),
        "",
        f"weights {total_weights} ({total_nonzero} nonzero, "
        f"{100 * (1 - total_nonzero / max(1, total_weights)):.1f}% zero)",
        f"synaptic operations per inference: {total_ops} ({total_nonzero_ops} with a nonzero "
        "weight)",
    ]
    return "\n".join(lines)


def cmd_check(args):
    net = _load_model(args.model)
    print(summarize(net))
    return EXIT_OK


# --- predict -------------------------------------------------------------------------------------


def cmd_predict(args):
    net = _load_model(args.model)
    inputs = _load_npy(args.inputs, "--inputs")
    outputs = _run(net, inputs, args.inputs)
    save_npy_atomic(args.output, outputs)
    print(f"{len(outputs)} inputs -> {args.output} (shape {tuple(outputs.shape)}, {net.output})")
    return EXIT_OK


def _run(net, inputs, source):
    try:
        return golden.run(net, inputs)
    except golden.InputError as exc:
        raise UsageError(f"{source}: {exc}") from None


# --- eval ----------------------------------------------------------------------------------------


def confusion_matrix(labels, predicted, classes):
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def cmd_eval(args):
    net = _load_model(args.model)
    if net.output != "argmax":
        raise UsageError(
            f"{args.model}: eval needs a network with output 'argmax', not {net.output!r}"
        )
    if args.data is not None:
        if args.inputs is not None or args.labels is not None:
            raise UsageError("give either --data or --inputs/--labels, not both")
        data = datasets.load(args.data, args.split)
        inputs, labels, source = datasets.to_inputs(data, net.input), data.labels, args.data
    else:
        if args.inputs is None or args.labels is None:
            raise UsageError("give --data NAME, or both --inputs X.npy and --labels Y.npy")
        inputs = _load_npy(args.inputs, "--inputs")
        labels = _load_npy(args.labels, "--labels")
        source = args.inputs
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise UsageError(f"{args.labels}: labels must be a 1-D integer array")
        if len(labels) != len(inputs):
            raise UsageError(
                f"{args.labels}: {len(labels)} labels for {len(inputs)} inputs in {args.inputs}"
            )
    predicted = _run(net, inputs, source)
    classes = int(np.prod(net.output_shape))
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise UsageError(f"labels must be class indices 0..{classes - 1}")
    correct = int(np.sum(predicted == labels))
    accuracy = correct / max(1, len(labels))
    print(f"model    {net.name}")
    print(f"data     {source} ({args.split if args.data else 'given'}), {len(labels)} inputs")
    print(f"accuracy {100 * accuracy:.2f}% ({correct}/{len(labels)})")
    matrix = confusion_matrix(labels, predicted, classes)
    header = ["true\\pred"] + [str(k) for k in range(classes)]
    print()
    print(_format_table(header, [[k] + row for k, row in enumerate(matrix.tolist())]))
    return EXIT_OK


# --- train ---------------------------------------------------------------------------------------


def cmd_train(args):
    from . import train

    try:
        _, summary = train.run_config(args.config, quantized=not args.float, output=args.output)
    except train.ConfigError as exc:
        raise UsageError(str(exc)) from None
    print(summary)
    return EXIT_OK


# --- verilog -----------------------------------------------------------------------------------


def _fold_spec(text):
    """``--fold``: a spec string, or a JSON file holding one (see gen.compiler.parse_fold)."""
    if text.endswith(".json"):
        try:
            with open(text) as f:
                return json.load(f)
        except OSError as exc:
            raise UsageError(f"{text}: cannot read the folding spec: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{text}: invalid JSON: {exc.msg} at line {exc.lineno}") from None
    return text


class _Progress:
    """One line per step of a long run, with the time each took."""

    def __init__(self):
        self.start = time.perf_counter()

    def step(self, text):
        print(f"  [{time.perf_counter() - self.start:7.1f} s] {text}", flush=True)


def _compile(args, net, progress):
    from . import compiler

    try:
        the_plan = compiler.plan(
            net, _fold_spec(args.fold), target_ii=args.target_ii, max_luts=args.max_luts
        )
    except compiler.CompileError as exc:
        raise UsageError(str(exc)) from None
    print(compiler.describe_plan(the_plan))
    progress.step("building the accelerator and converting it to Verilog")
    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    compiled = compiler.emit(the_plan, description_sha256=sha)
    meta = compiled.metadata
    progress.step(
        f"Verilog ready: {len(compiled.verilog) / 1e6:.2f} MB, latency "
        f"{meta['latency']} cycles, initiation interval "
        f"{meta['initiation_interval']} cycles"
    )
    return compiled


def cmd_verilog(args):
    from . import compiler

    net = _load_model(args.model)
    progress = _Progress()
    compiled = _compile(args, net, progress)
    vectors = compiler.make_vectors(net, args.vectors, seed=args.seed, data=args.data)
    paths = compiler.write_outputs(compiled, args.output, vectors)
    progress.step(f"{len(vectors[0])} test vectors ({vectors[2]})")
    for path in paths:
        print(f"wrote {path}")
    return EXIT_OK


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


# --- sim ---------------------------------------------------------------------------------------


def cmd_sim(args):
    """Check a generated accelerator in a cocotb bench against its test vectors."""
    # sim needs cocotb, which gen knows nothing of: it is loaded for this command only.
    from sim import runner

    try:
        result = runner.run(
            args.directory,
            sim=args.sim,
            vectors=args.vectors,
            seed=args.seed,
            waves=args.waves,
            stall=args.stall,
        )
    except ValueError as exc:  # sim.accel.AcceleratorError or an argument out of range
        raise UsageError(str(exc)) from None
    except runner.SimError as exc:
        print(f"tnngen sim: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(result.summary())
    return EXIT_OK if result.passed else EXIT_FAILURE


# --- synth and sweep -----------------------------------------------------------------------------


def _synth_options(args):
    return {
        "freq": args.freq,
        "tools": args.tools,
        "timeout": args.timeout,
        "pin_width": args.pin_width,
        "place_and_route": not args.no_pnr,
    }


def cmd_synth(args):
    from . import synth, synth_report

    try:
        report = synth.run(
            args.directory,
            args.target,
            output=args.output,
            liberty=args.liberty,
            pins_file=args.pins,
            seed=args.seed,
            extra_pnr_args=args.pnr_arg,
            hierarchy=not args.flat,
            **_synth_options(args),
        )
    except synth.SynthInputError as exc:
        raise UsageError(str(exc)) from None
    except synth.SynthError as exc:
        if getattr(exc, "report", None) is not None:  # too big for the part: still a report
            print(synth_report.format_markdown(exc.report))
        print(f"tnngen synth: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(synth_report.format_markdown(report))
    output = args.output or os.path.dirname(report["accelerator"]["metadata"])
    name = report["target"]["name"]
    print(f"wrote {os.path.join(output, f'synth-{name}.json')} and synth-{name}.md")
    return EXIT_OK


def cmd_sweep(args):
    from . import sweep, synth

    net = _load_model(args.model)
    output = args.output or os.path.join("out", f"{net.name}-sweep")
    try:
        summary = sweep.sweep(
            args.model,
            args.target,
            args.folds,
            output=output,
            jobs=args.jobs,
            **_synth_options(args),
        )
    except (sweep.SweepError, synth.SynthInputError) as exc:
        raise UsageError(str(exc)) from None
    print(sweep.format_markdown(summary))
    if summary.get("plot_message"):
        print(summary["plot_message"])
    failed = [p for p in summary["points"] if p.get("error")]
    for point in failed:
        print(f"tnngen sweep: fold {point['fold']!r} failed: {point['error']}", file=sys.stderr)
    print(f"wrote {os.path.join(output, f'sweep-{args.target}.json')} and .md")
    return EXIT_FAILURE if failed else EXIT_OK


# --- flow --------------------------------------------------------------------------------------


def _step(title):
    print(f"\n== {title}", flush=True)


def cmd_flow(args):
    """The whole flow on one model, each step through its own subcommand."""
    net = _load_model(args.model)
    out = args.output or os.path.join("out", net.name)
    _step(f"check {args.model}")
    print(summarize(net))
    _step("golden model")
    if args.data is not None:
        data = datasets.load(args.data, "test")
        inputs, labels = datasets.to_inputs(data, net.input), data.labels
        predicted = _run(net, inputs, args.data)
        correct = int(np.sum(predicted == labels))
        print(
            f"{args.data} test split: {len(labels)} inputs, accuracy "
            f"{100 * correct / len(labels):.2f}% ({correct}/{len(labels)})"
        )
    else:
        inputs = golden.random_inputs(net, args.vectors, seed=args.seed)
        outputs = _run(net, inputs, "random inputs")
        shown = outputs[:10].tolist() if net.output == "argmax" else outputs.shape
        print(f"{args.vectors} random inputs (seed {args.seed}); first results: {shown}")
    steps = [
        (
            "verilog",
            [
                "verilog",
                args.model,
                "-o",
                out,
                "--fold",
                args.fold,
                "--vectors",
                str(args.vectors),
                "--seed",
                str(args.seed),
            ]
            + (["--data", args.data] if args.data else [])
            + (["--target-ii", str(args.target_ii)] if args.target_ii else [])
            + (["--max-luts", str(args.max_luts)] if args.max_luts else []),
        )
    ]
    if not args.no_sim:
        steps.append(("sim", ["sim", out, "--sim", args.sim]))
    if not args.no_synth:
        steps.append(
            (
                "synth",
                ["synth", out, "--target", args.target] + (["--no-pnr"] if args.no_pnr else []),
            )
        )
    for name, argv in steps:
        _step(f"tnngen {' '.join(argv)}")
        status = main(argv)
        if status != EXIT_OK:
            print(f"tnngen flow: the {name} step failed (exit status {status})", file=sys.stderr)
            return status
    _step(f"done: everything is in {out}")
    return EXIT_OK


# --- entry point ---------------------------------------------------------------------------------


def build_parser():
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
    p.add_argument("model", metavar="MODEL", help="network description (*.tnn.json)")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser(
        "predict",
        help="run the golden model on inputs",
        description="Run the NumPy golden model. X holds input values (not bit encodings), "
        "shape (N, *input.shape); Y gets (N,) class indices for argmax, else the outputs.",
    )
    p.add_argument("model", metavar="MODEL", help="network description (*.tnn.json)")
    p.add_argument("--inputs", required=True, metavar="X.npy", help="integer input array")
    p.add_argument("--output", required=True, metavar="Y.npy", help="where to write outputs")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser(
        "eval",
        help="accuracy and confusion matrix on a data set",
        description="Print accuracy and the confusion matrix of the golden model on a data "
        "set: a named one (digits, mnist5k, idx:DIR with MNIST IDX files) or given arrays.",
    )
    p.add_argument("model", metavar="MODEL", help="network description (*.tnn.json)")
    p.add_argument("--data", metavar="NAME", help="digits, mnist5k or idx:DIR")
    p.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="which split of --data (default: test)",
    )
    p.add_argument("--inputs", metavar="X.npy", help="integer inputs, instead of --data")
    p.add_argument("--labels", metavar="Y.npy", help="integer labels, with --inputs")
    p.set_defaults(handler=cmd_eval)

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
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser(
        "verilog",
        help="generate the accelerator's Verilog, metadata and test vectors",
        description="Compile a description into a streaming accelerator: writes DIR/<name>.v, "
        "DIR/<name>.json (metadata) and DIR/vectors.npz (inputs and golden outputs). The "
        "chosen folding and its predicted cycles and resources are printed first.",
    )
    p.add_argument("model", metavar="MODEL", help="network description (*.tnn.json)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    _add_compile_options(p)
    p.add_argument(
        "--vectors", type=int, default=256, metavar="N", help="test vectors to write (default: 256)"
    )
    p.add_argument(
        "--data",
        metavar="NAME",
        help="take the vectors from this data set's test split instead of random",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random vectors (default: 0)")
    p.set_defaults(handler=cmd_verilog)

    p = sub.add_parser(
        "sim",
        help="simulate a generated accelerator against its test vectors",
        description="Build the accelerator in DIR (from 'tnngen verilog') with Icarus Verilog "
        "or Verilator and check it in a cocotb bench: every result against DIR/vectors.npz, "
        "with random gaps on the input and back-pressure on the output, and latency and "
        "initiation interval against the metadata. Exit status 0 only if all agree.",
    )
    p.add_argument("directory", metavar="DIR", help="accelerator folder (tnngen verilog -o DIR)")
    p.add_argument(
        "--sim",
        choices=("icarus", "verilator"),
        default="icarus",
        help="simulator (default: icarus)",
    )
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
    p.set_defaults(handler=cmd_sim)

    from .synth import TARGETS

    def add_synth_options(p):
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
        p.add_argument(
            "--no-pnr",
            action="store_true",
            help="stop after synthesis (resources only, no Fmax)",
        )

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
    add_synth_options(p)
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
    p.set_defaults(handler=cmd_synth)

    p = sub.add_parser(
        "sweep",
        help="synthesize several foldings and plot the Pareto front",
        description="Compile MODEL once per folding, synthesize each for the target in "
        "parallel (up to the core count), and print and plot (PNG, with matplotlib) the "
        "accelerator's LUTs against inferences per second, marking the Pareto front.",
    )
    p.add_argument("model", metavar="MODEL", help="network description (*.tnn.json)")
    p.add_argument(
        "--folds",
        nargs="+",
        required=True,
        metavar="SPEC",
        help="foldings as 'tnngen verilog --fold' takes them, e.g. unrolled '0:4,16' auto",
    )
    add_synth_options(p)
    p.add_argument(
        "--jobs", type=int, metavar="N", help="foldings run at once (default: the core count)"
    )
    p.add_argument(
        "-o", "--output", metavar="OUT", help="output folder (default: out/<name>-sweep)"
    )
    p.set_defaults(handler=cmd_sweep)

    p = sub.add_parser(
        "flow",
        help="run the whole flow on one model",
        description="Run every step on one model and report each: summary, golden model "
        "(accuracy on --data, or results on random inputs), Verilog, simulation against the "
        "golden model (cocotb), and synthesis with its resource and timing report.",
    )
    p.add_argument("model", metavar="MODEL", help="network description (*.tnn.json)")
    p.add_argument(
        "--data",
        metavar="NAME",
        help="data set for accuracy and test vectors (digits, mnist5k, idx:DIR); default: "
        "random inputs",
    )
    p.add_argument(
        "--vectors",
        type=int,
        default=256,
        metavar="N",
        help="test vectors for the simulation (default: 256)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random inputs (default: 0)")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: out/<name>)")
    _add_compile_options(p)
    p.add_argument(
        "--sim",
        choices=("icarus", "verilator"),
        default="icarus",
        help="simulator (default: icarus)",
    )
    p.add_argument(
        "--target",
        default="ice40-up5k",
        help="synthesis target (default: ice40-up5k); see tnngen synth --help",
    )
    p.add_argument("--no-sim", action="store_true", help="skip the simulation step")
    p.add_argument("--no-synth", action="store_true", help="skip the synthesis step")
    p.add_argument(
        "--no-pnr",
        action="store_true",
        help="synthesis only, no place and route (resources without Fmax; much faster)",
    )
    p.set_defaults(handler=cmd_flow)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (network.DescriptionError, UsageError, datasets.DataError) as exc:
        print(f"tnngen {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"tnngen {args.command}: interrupted", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
