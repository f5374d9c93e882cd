"""``tnngen``: the command-line tool, one subcommand for each step of the flow.

Each step is a function of its inputs (``check_step``, ``verilog_step``, ... in
:mod:`gen.steps`) that the subcommand's handler calls with the parsed options, and that
``tnngen flow`` calls in sequence.
This module is the one place that ties :mod:`gen` and :mod:`sim` together.

Exit status: 0 on success, 2 on bad input (a malformed description, inputs or arguments),
1 on a failure of the run itself.
"""

import os
import signal
import sys

import numpy as np

from . import folder, network, options, progress
from .compiler import CompileError, parse_fold
from .flow.errors import SynthInputError
from .flow.synth import check_fit
from .flow.targets import get_target
from .learn import datasets
from .learn.evaluate import check_labels, score_network
from .steps import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    _fold_spec,
    _load_npy,
    _resolve_fold,
    _run,
    _synth_options,
    check_step,
    golden_step,
    save_npy_atomic,
    sim_step,
    synth_step,
    verilog_step,
)

# --- the commands --------------------------------------------------------------------------------


def cmd_check(args):
    check_step(network.load(args.model))
    return EXIT_OK


def cmd_predict(args):
    net = network.load(args.model)
    inputs = _float_inputs(args, _load_npy(args.inputs, "--inputs"))
    outputs = _run(net, inputs, args.inputs)
    save_npy_atomic(args.output, outputs)
    print(f"{len(outputs)} inputs -> {args.output} (shape {tuple(outputs.shape)}, {net.output})")
    return EXIT_OK


def cmd_eval(args):
    net = network.load(args.model)
    if net.output not in ("argmax", "class_map"):
        raise UsageError(
            f"{args.model}: eval needs a network with output 'argmax' or 'class_map', "
            f"not {net.output!r}"
        )
    if args.data is not None:
        if args.inputs is not None or args.labels is not None:
            raise UsageError("give either --data or --inputs/--labels, not both")
        data = datasets.load(args.data, args.split)
        try:
            check_labels(net, data.labels, args.data)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        inputs, labels, source = _data_inputs(args, data, net), data.labels, args.data
    else:
        if args.inputs is None or args.labels is None:
            raise UsageError("give --data NAME, or both --inputs X.npy and --labels Y.npy")
        inputs = _float_inputs(args, _load_npy(args.inputs, "--inputs"))
        labels = _load_npy(args.labels, "--labels")
        source = args.inputs
        wanted = 3 if net.output == "class_map" else 1
        if labels.ndim != wanted or not np.issubdtype(labels.dtype, np.integer):
            shape = "(N, H, W) pixel" if wanted == 3 else "1-D"
            raise UsageError(f"{args.labels}: labels must be a {shape} integer array")
        if len(labels) != len(inputs):
            raise UsageError(
                f"{args.labels}: {len(labels)} labels for {len(inputs)} inputs in {args.inputs}"
            )
    predicted = _run(net, inputs, source)
    try:
        score = score_network(net, predicted, labels, source)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"model    {net.name}")
    print(f"data     {source} ({args.split if args.data else 'given'}), {score.count} inputs")
    if net.output == "class_map":
        print(f"pixel accuracy {score.accuracy_text()}")
        print(f"mean IoU       {score.iou_text()}")
    else:
        print(f"accuracy {score.accuracy_text()}")
    print()
    print(score.matrix_text())
    return EXIT_OK


def cmd_train(args):
    from .learn import config, train

    try:
        _, summary = train.run_config(args.config, quantized=not args.float, output=args.output)
    except config.ConfigError as exc:
        raise UsageError(str(exc)) from None
    print(summary)
    return EXIT_OK


def cmd_verilog(args):
    _resolve_fold(args)
    verilog_step(
        network.load(args.model),
        args.output,
        fold=args.fold,
        target_ii=args.target_ii,
        max_luts=args.max_luts,
        rom=args.rom,
        part=args.part,
        utilization=args.utilization,
        multiply=args.multiply,
        vectors=args.vectors,
        seed=args.seed,
        data=args.data,
    )
    return EXIT_OK


def cmd_sim(args):
    """Check a generated accelerator in a cocotb bench against its test vectors."""
    return sim_step(
        args.directory,
        sim=args.sim,
        vectors=args.vectors,
        seed=args.seed,
        waves=args.waves,
        stall=args.stall,
    )


def cmd_synth(args):
    return synth_step(
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


def cmd_sweep(args):
    from .flow import cache, engine, sweep

    if args.cache_info:
        info = cache.Cache(args.cache or cache.default_directory()).info()
        print(f"cache {info['directory']}: {info['entries']} entries, {info['bytes']:,} bytes")
        return EXIT_OK
    if args.model is None or args.target is None:
        raise UsageError("give MODEL and --target (or --cache-info)")
    net = network.load(args.model)
    output = args.output or os.path.join("out", f"{net.name}-sweep")
    try:
        results = None if args.no_cache else cache.Cache(args.cache or cache.default_directory())
        summary = sweep.sweep(
            args.model,
            args.target,
            args.folds,
            output=output,
            explore=args.explore,
            seeds=args.seeds,
            jobs=args.jobs,
            cache=results,
            engine_kind=args.engine,
            scheduler=args.scheduler,
            retries=args.retries,
            say=lambda line: print(line, flush=True),
            **_synth_options(args),
        )
    except (sweep.SweepError, SynthInputError, engine.EngineError, cache.CacheError) as exc:
        raise UsageError(str(exc)) from None
    print(sweep.format_markdown(summary))
    if summary.get("plot_message"):
        print(summary["plot_message"])
    failed = [p for p in summary["points"] if p.get("error")]
    for point in failed:
        print(f"tnngen sweep: fold {point['fold']!r} failed: {point['error']}", file=sys.stderr)
    for point in summary["points"]:
        for seed in point.get("failed_seeds", []):
            print(
                f"tnngen sweep: fold {point['fold']!r}, seed {seed['seed']} failed: "
                f"{seed['error']}",
                file=sys.stderr,
            )
    print(f"wrote {os.path.join(output, f'sweep-{args.target}.json')} and .md")
    return EXIT_FAILURE if failed else EXIT_OK


def _heading(title):
    print(f"\n== {title}", flush=True)


def cmd_flow(args):
    """The whole flow on one model: each step's function, in order."""
    try:  # every option is checked before the first step runs
        get_target(args.target)
    except SynthInputError as exc:
        raise UsageError(str(exc)) from None
    args.model = _flow_model(args)
    net = network.load(args.model)
    _resolve_fold(args)
    try:
        parse_fold(_fold_spec(args.fold), net)
        if args.data is not None:
            datasets.check_name(args.data)
    except (SynthInputError, CompileError) as exc:
        raise UsageError(str(exc)) from None
    out = args.output or os.path.join("out", net.name)
    _heading(f"check {args.model}")
    check_step(net)
    _heading("golden model")
    golden_step(
        net,
        data=args.data,
        vectors=args.vectors,
        seed=args.seed,
        inputs_of=lambda dataset: _data_inputs(args, dataset, net),
    )
    _heading(f"verilog: {out} (fold {args.fold})")
    verilog_step(
        net,
        out,
        fold=args.fold,
        target_ii=args.target_ii,
        max_luts=args.max_luts,
        rom=args.rom,
        part=args.part,
        utilization=args.utilization,
        multiply=args.multiply,
        vectors=args.vectors,
        seed=args.seed,
        data=args.data,
    )
    if not args.no_synth and not args.force:
        try:  # before the simulation: a design too big for the part is not worth simulating
            check_fit(folder.load(out).metadata, args.target)
        except SynthInputError as exc:
            raise UsageError(str(exc)) from None
    steps = []
    if not args.no_sim:
        steps.append((f"sim: {args.sim}", lambda: sim_step(out, sim=args.sim)))
    if not args.no_synth:
        options = {"place_and_route": not args.no_pnr, "force": args.force}
        steps.append((f"synth: {args.target}", lambda: synth_step(out, args.target, **options)))
    for title, run in steps:
        _heading(title)
        status = run()
        if status != EXIT_OK:
            name = title.split(":")[0]
            print(f"tnngen flow: the {name} step failed (exit status {status})", file=sys.stderr)
            return status
    _heading(f"done: everything is in {out}")
    return EXIT_OK


# --- import: QONNX and float ONNX models (gen.learn.qonnx) -------------------------------------
# `tnngen import`, the --float-inputs of predict and eval (through the input specification
# written beside an imported description), and the import step of `flow` on an .onnx file.


def _importer():
    from .learn import qonnx

    try:
        qonnx.require_extra()
    except qonnx.MissingExtra as exc:
        raise UsageError(str(exc)) from None
    return qonnx


def _import(args, model, destination):
    """Import ``model`` as ``args`` asks; write the description and its input specification."""
    qonnx = _importer()
    from .learn.qonnx import inputspec

    try:
        if getattr(args, "quantize", None):
            if not args.calibrate:
                raise UsageError("--quantize needs --calibrate DATA (a data set or X.npy)")
            result = qonnx.quantize_model(
                model,
                method=args.quantize,
                calibrate=args.calibrate,
                input_type=args.input_type,
                act_bits=args.act_bits,
                name=args.name,
            )
        else:
            result = qonnx.import_model(
                model,
                input_type=args.input_type,
                output=getattr(args, "output_kind", None),
                name=getattr(args, "name", None),
                strict=getattr(args, "strict", False),
            )
    except (qonnx.UnsupportedGraph, datasets.DataError) as exc:
        raise UsageError(f"{model}: {exc}") from None
    for line in result.report:
        print(line)
    for warning in result.warnings:
        print(f"tnngen import: warning: {warning}", file=sys.stderr)
    parent = os.path.dirname(os.path.abspath(destination))
    if not os.path.isdir(parent):
        raise UsageError(f"{destination}: the folder {parent} does not exist")
    network.save(result.network, destination)
    spec = inputspec.spec_path(destination)
    inputspec.save(result.input_spec, spec)
    print(f"wrote {destination} and {spec}")
    return result


def cmd_import(args):
    _import(args, args.model, args.destination)
    return EXIT_OK


def _spec_for(args):
    from .learn.qonnx import inputspec

    path = getattr(args, "input_spec", None) or inputspec.spec_path(args.model)
    try:
        return inputspec.load(path)
    except inputspec.SpecError as exc:
        raise UsageError(str(exc)) from None


def _float_inputs(args, inputs):
    """``--float-inputs``: float arrays in the original graph's layout, made integers."""
    if not getattr(args, "float_inputs", False):
        return inputs
    from .learn.qonnx import inputspec

    try:
        return inputspec.to_integers(_spec_for(args), inputs)
    except inputspec.SpecError as exc:
        raise UsageError(f"{args.inputs}: {exc}") from None


def _data_inputs(args, data, net):
    """A data set's integer inputs: through the input specification where one is asked for
    (--float-inputs) or lies beside an imported description, else gen.learn.datasets'
    conversion."""
    from .learn.qonnx import inputspec

    beside = os.path.exists(inputspec.spec_path(args.model))
    if not (getattr(args, "float_inputs", False) or getattr(args, "input_spec", None) or beside):
        return datasets.to_inputs(data, net.input)
    spec = _spec_for(args)
    try:
        return inputspec.to_integers(spec, inputspec.from_pixels(spec, data))
    except inputspec.SpecError as exc:
        raise UsageError(f"{args.model}: {exc}") from None


def _flow_model(args):
    """``tnngen flow MODEL.onnx``: import first; the description and its input specification
    go beside the output folder (``out/model.tnn.json`` for ``out/model/``), which holds the
    accelerator alone."""
    if not args.model.endswith(".onnx"):
        return args.model
    stem = os.path.splitext(os.path.basename(args.model))[0]
    out = os.path.abspath(args.output or os.path.join("out", stem))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    destination = os.path.join(os.path.dirname(out), f"{stem}.tnn.json")
    _heading(f"import {args.model}")
    _import(args, args.model, destination)
    args.output = out
    return destination


HANDLERS = {
    "check": cmd_check,
    "predict": cmd_predict,
    "eval": cmd_eval,
    "train": cmd_train,
    "verilog": cmd_verilog,
    "sim": cmd_sim,
    "synth": cmd_synth,
    "sweep": cmd_sweep,
    "flow": cmd_flow,
    "import": cmd_import,
}


def build_parser():
    """The ``tnngen`` argument parser (:mod:`gen.options`)."""
    return options.build_parser(HANDLERS)


def _terminate(signum, frame):
    # A SIGTERM unwinds like Ctrl-C, so that every temporary file and folder is removed.
    raise KeyboardInterrupt


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    progress.set_level("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.handler(args)
    except (network.DescriptionError, UsageError, datasets.DataError, folder.FolderError) as exc:
        print(f"tnngen {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"tnngen {args.command}: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # the reader went away (tnngen check MODEL | head): not an error
        sys.stderr.close()
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
