"""The steps of the flow as functions that print what they do: ``check_step``,
``golden_step``, ``verilog_step``, ``sim_step`` and ``synth_step``, and the small helpers the
command line shares with them (reading and writing ``.npy`` arrays, folding specs).

:mod:`gen.cli` calls one of them per subcommand and all of them, in order, for ``tnngen flow``.
Bad input raises :class:`UsageError` (exit status 2); the simulation and synthesis steps return
the exit status of their run.
"""

import os
import sys

import numpy as np

from . import folder, jsontext, progress
from .compiler import CompileError, describe_plan
from .files import atomic_path
from .flow.errors import SynthError, SynthInputError
from .learn import datasets
from .learn.evaluate import score_network
from .network import golden
from .network.summary import summarize

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: reported without a traceback, exit status 2."""


# --- helpers -------------------------------------------------------------------------------------


def _load_npy(path, what):
    """A ``.npy`` array, its header checked against the file's size before anything is read
    (a header may declare a shape far larger than the file, or than memory)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ValueError(f"unknown .npy format version {version}")
            shape, _, dtype = read_header(f)
            size = os.fstat(f.fileno()).st_size - f.tell()
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if dtype.hasobject:
                raise ValueError("it holds Python objects, which are never loaded")
            if declared != size:
                raise ValueError(
                    f"its header declares shape {shape} of {dtype} ({declared} bytes), but the "
                    f"file holds {size} bytes of data"
                )
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file ({what})") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: a folder, not a .npy file ({what})") from None
    except (OSError, ValueError, EOFError) as exc:
        raise UsageError(f"{path}: not a NumPy .npy array ({what}): {exc}") from None


def save_npy_atomic(path, array):
    """Write ``array`` to ``path`` through a temporary file moved into place."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{path}: the folder {directory} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{path}: a folder; give the path of a .npy file to write")
    try:
        with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
    except OSError as exc:
        raise UsageError(f"{path}: cannot be written: {exc.strerror}") from None


def _run(net, inputs, source):
    try:
        return golden.run(net, inputs)
    except golden.InputError as exc:
        raise UsageError(f"{source}: {exc}") from None


def _fold_spec(text):
    """``--fold``: a spec string, or a JSON file holding one (see gen.compiler.parse_fold)."""
    if text is None:
        raise AssertionError("--fold is resolved by _resolve_fold first")
    if text.endswith(".json"):
        try:
            with open(text, encoding="utf-8") as f:
                return jsontext.loads(f.read())
        except OSError as exc:
            raise UsageError(f"{text}: cannot read the folding spec: {exc.strerror}") from None
        except (jsontext.JSONError, UnicodeDecodeError) as exc:
            raise UsageError(f"{text}: invalid JSON: {exc}") from None
    return text


def _resolve_fold(args):
    """``--fold`` unless given: ``auto`` when ``--target-ii``, ``--max-luts`` or ``--part`` asks
    for a choice (they apply to auto layers only), else ``unrolled``."""
    if getattr(args, "utilization", None) is not None and not getattr(args, "part", None):
        raise UsageError("--utilization applies to --part: give the part to fill")
    if args.fold is None:
        chooses = args.target_ii or args.max_luts or getattr(args, "part", None)
        args.fold = "auto" if chooses else "unrolled"
    return args.fold


def _synth_options(args):
    return {
        "freq": args.freq,
        "tools": args.tools,
        "timeout": args.timeout,
        "pin_width": args.pin_width,
        "place_and_route": not args.no_pnr,
        "force": args.force,
    }


# --- the steps -----------------------------------------------------------------------------------


def check_step(net):
    print(summarize(net))


def golden_step(net, *, data, vectors, seed, inputs_of=None):
    """Accuracy on a data set's test split, or the first results on random inputs.

    ``inputs_of(dataset)`` makes the integer inputs (default: gen.learn.datasets.to_inputs).
    """
    if data is not None:
        dataset = datasets.load(data, "test")
        inputs = inputs_of(dataset) if inputs_of else datasets.to_inputs(dataset, net.input)
        predicted = _run(net, inputs, data)
        # No accuracy where the labels do not fit the output: values, or images for a class
        # map (the flow still takes its test vectors from the data set's images).
        if net.output == "values" or (net.output == "class_map") != dataset.segmentation:
            print(
                f"{data} test split: {len(predicted)} inputs; {net.output} results of shape "
                f"{tuple(predicted.shape[1:])} (no accuracy: {data} labels "
                f"{'pixels' if dataset.segmentation else 'whole images'})"
            )
            return
        try:
            score = score_network(net, predicted, dataset.labels, data)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if net.output == "class_map":
            print(
                f"{data} test split: {score.count} inputs, pixel accuracy "
                f"{score.accuracy_text()}, mean IoU {score.iou_text()}"
            )
        else:
            print(f"{data} test split: {score.count} inputs, accuracy {score.accuracy_text()}")
    else:
        outputs = _run(net, golden.random_inputs(net, vectors, seed=seed), "random inputs")
        shown = outputs[:10].tolist() if net.output == "argmax" else outputs.shape
        print(f"{vectors} random inputs (seed {seed}); first results: {shown}")


def verilog_step(
    net,
    output,
    *,
    fold,
    target_ii,
    max_luts,
    vectors,
    seed,
    data,
    rom="auto",
    part=None,
    utilization=None,
    multiply="auto",
):
    """Compile ``net`` into the accelerator folder ``output``, printing the plan and progress."""
    log = progress.StepLog()

    def on_step(name, state):
        if name == "plan" and progress.level() != "quiet":
            print(describe_plan(state.plan))
            log.step("building the accelerator and converting it to Verilog")
        elif name == "emit":
            meta = state.metadata
            log.step(
                f"Verilog ready: {len(state.verilog) / 1e6:.2f} MB, latency "
                f"{meta['latency']} cycles, initiation interval "
                f"{meta['initiation_interval']} cycles"
            )
        elif name == "vectors":
            made = len(state[0])
            short = f"; {data}'s test split holds only {made}" if made < vectors else ""
            log.step(f"{made} test vectors ({state[2]}){short}")

    try:
        _, paths, _ = folder.compile_to_folder(
            net,
            output,
            fold=_fold_spec(fold),
            target_ii=target_ii,
            max_luts=max_luts,
            rom=rom,
            part=part,
            utilization=utilization,
            multiply=multiply,
            vectors=vectors,
            seed=seed,
            data=data,
            on_step=on_step,
        )
    except (CompileError, folder.FolderError) as exc:
        raise UsageError(str(exc)) from None
    for path in paths:
        print(f"wrote {path}")


def sim_step(directory, *, sim, vectors=None, seed=0, waves=False, stall=0.25):
    """Simulate the accelerator folder in the cocotb bench; returns the exit status."""
    # sim needs cocotb, which gen knows nothing of: it is loaded for this step only.
    from sim import runner

    sim, why = runner.choose_simulator(sim)
    if why:
        print(f"simulator: {sim} ({why})", flush=True)
    try:
        result = runner.run(
            directory,
            sim=sim,
            vectors=vectors,
            seed=seed,
            waves=waves,
            stall=stall,
            progress=progress.Progress(sys.stdout),
        )
    except ValueError as exc:  # gen.folder.FolderError or an argument out of range
        raise UsageError(str(exc)) from None
    except runner.SimError as exc:
        print(f"tnngen sim: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(result.summary())
    return EXIT_OK if result.passed else EXIT_FAILURE


def synth_step(directory, target, *, output=None, **options):
    """Synthesize the accelerator folder for ``target``; returns the exit status."""
    from .flow import report as synth_report
    from .flow import synth

    try:
        report = synth.run(directory, target, output=output, **options)
    except (SynthInputError, folder.FolderError) as exc:
        raise UsageError(str(exc)) from None
    except SynthError as exc:
        if getattr(exc, "report", None) is not None:  # too big for the part: still a report
            print(synth_report.format_markdown(exc.report))
        print(f"tnngen synth: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(synth_report.format_markdown(report))
    output = output or os.path.dirname(report["accelerator"]["metadata"])
    name = report["target"]["name"]
    print(f"wrote {os.path.join(output, f'synth-{name}.json')} and synth-{name}.md")
    return EXIT_OK
