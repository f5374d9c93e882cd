"""Open-source synthesis of a generated accelerator: resources, timing and throughput.

:func:`run` takes an accelerator folder (``DIR/<name>.v`` and ``DIR/<name>.json``, read by
:mod:`gen.folder`), synthesizes it with Yosys for one of :data:`TARGETS`, places and
routes it with nextpnr where the target names a part, and writes ``DIR/synth-<target>.json``
and ``DIR/synth-<target>.md``. The tools' own files (script, logs, netlist, nextpnr's report)
stay in ``DIR/synth-<target>/``.

Flow
----
1. For a place-and-route target the accelerator is wrapped by :class:`hw.pins.PinWrapper`, so
   that it talks to the outside through two narrow streams and places on the part's real
   package. The wrapper is emitted as Verilog that instantiates the accelerator's module.
2. Yosys reads both, marks the accelerator's top module and each layer's module
   ``keep_hierarchy`` (the rest is flattened as usual), synthesizes for the family, and writes
   a JSON netlist. Cell counts per module give the wrapper/accelerator split and the per-layer
   breakdown. A layer's module is the one the metadata names (a layer's ``"module"``: the
   instance path below the top, e.g. ``"layer0"``), else the submodule whose name is
   ``layer<index>`` or ``layer_<index>``.
3. nextpnr places and routes with a clock constraint (``--freq``) and writes its JSON report,
   from which come Fmax and the utilization of the part.

The tools are found and run by :mod:`gen.flow.tools`; each report names the tool, its path,
kind and version. The report itself is built by :mod:`gen.flow.report`.
"""

import json
import os
import re
import shutil
import tempfile
import time

from .. import folder
from ..progress import Progress
from . import outreg
from .errors import DoesNotFit, SynthError, SynthInputError, ToolFailed
from .parse import (
    ReportError,
    liberty_sequential_cells,
    parse_liberty_area,
    parse_netlist,
    parse_nextpnr_log,
    parse_nextpnr_report,
    parse_nextpnr_utilization,
)
from .report import build_report, write_report
from .targets import ASIC_GATES, get_target
from .tools import DEFAULT_TIMEOUT, find_tool, run_tool

__all__ = ["DEFAULT_PIN_WIDTH", "check_fit", "synthesize", "run"]

DEFAULT_PIN_WIDTH = 8


# --- Verilog modules and layers ------------------------------------------------------------------


def _verilog_modules(text):
    names = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("module "):
            name = stripped[len("module ") :].split("(")[0].split()[0]
            names.append(name[1:] if name.startswith("\\") else name)
    return names


def _layer_modules(modules, top, layers):
    """Map each metadata layer's index to the modules that hold it, where there are any.

    A layer's modules are, in order of preference: its ``blocks`` (the names of the top's
    submodules that make the layer, as the compiler lists them), its ``module``, or the
    submodule named ``layer<index>`` or ``layer_<index>`` at any depth below the top.
    """
    below = [m for m in modules if m.startswith(top + ".")]
    pattern = re.compile(r"layer_?(\d+)")
    found = {}
    for layer in layers:
        index = layer.get("index")
        names = layer.get("blocks")
        if not isinstance(names, list):
            names = [layer["module"]] if isinstance(layer.get("module"), str) else []
        held = [f"{top}.{n}" for n in names if isinstance(n, str) and f"{top}.{n}" in modules]
        if not held:
            for module in below:
                path = module[len(top) + 1 :].split(".")
                for depth, part in enumerate(path):
                    match = pattern.fullmatch(part)
                    if match and int(match.group(1)) == index:
                        held = [".".join([top, *path[: depth + 1]])]
                        break
                if held:
                    break
        if held:
            found[index] = held
    return found


# --- the flow ------------------------------------------------------------------------------------


def check_fit(metadata, target):
    """Raise :class:`SynthInputError` if the compiler predicts more LUTs (or DSP blocks) than
    ``target`` has.

    The prediction (the metadata's ``predicted.luts``) is within about 25% of synthesis, so a
    design predicted beyond the part is not worth minutes of Yosys; the message says by how
    much and what to change.
    """
    target = get_target(target)
    capacity = target.capacity.get("luts")
    predicted = (metadata.get("predicted") or {}).get("luts")
    in_units = (metadata.get("predicted_by_family") or {}).get(target.family) or {}
    if isinstance(in_units.get("luts"), int):
        predicted = in_units["luts"]
    dsp, dsp_capacity = in_units.get("dsp"), target.capacity.get("dsp")
    if isinstance(dsp, int) and dsp_capacity is not None and dsp > dsp_capacity:
        raise SynthInputError(
            f"the design's products take {dsp} DSP blocks, and {target.name} ({target.part}) "
            f"has {dsp_capacity}: give --multiply auto (with --part) or logic, a smaller "
            "folding, or --force to synthesize anyway"
        )
    if not capacity or not isinstance(predicted, int) or predicted <= capacity:
        return
    raise SynthInputError(
        f"the design is predicted at {predicted:,} LUTs, {predicted / capacity:.1f} times the "
        f"{capacity:,} of {target.name} ({target.part}); fold it (--fold auto --target-ii N, "
        f"or --fold PE,SIMD), choose a larger part, or give --force to synthesize anyway"
    )


def _write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def _wrapper_verilog(accelerator, pin_width):
    """Verilog of the pin wrapper around ``accelerator``'s module, and its top's name."""
    from amaranth.back import verilog

    from hw.pins import PinWrapper, VerilogAccelerator

    meta = accelerator.metadata
    ports = meta.get("ports", {})
    names = {
        "clock": meta.get("clock", "clk"),
        "reset": (meta.get("reset") or {}).get("name", "rst"),
        "i": {k: ports["i"].get(k, f"i__{k}") for k in ("payload", "valid", "ready")},
        "o": {k: ports["o"].get(k, f"o__{k}") for k in ("payload", "valid", "ready")},
    }
    inner = VerilogAccelerator(
        module=meta["top"],
        in_width=ports["i"]["width"],
        out_width=ports["o"]["width"],
        port_names=names,
    )
    wrapper = PinWrapper(inner, pin_width=pin_width)
    top = f"{meta['top']}_pins"
    text = verilog.convert(wrapper, name=top, emit_src=False)
    return top, text, wrapper


def synthesize(
    accelerator,
    target,
    *,
    workdir,
    freq=None,
    tools=None,
    timeout=DEFAULT_TIMEOUT,
    liberty=None,
    pin_width=DEFAULT_PIN_WIDTH,
    pins_file=None,
    seed=1,
    extra_pnr_args=(),
    hierarchy=True,
    place_and_route=True,
    progress=None,
    force=False,
):
    """Synthesize (and place and route) ``accelerator`` for ``target``; return the report.

    Parameters
    ----------
    accelerator : gen.folder.AcceleratorFolder or str
        From :func:`gen.folder.load`, or a path it accepts.
    target : str or Target
        A name in :data:`TARGETS`.
    workdir : str
        A folder for the tools' files (script, logs, netlist); created if missing.
    freq : float, optional
        Clock constraint for nextpnr in MHz (default: the target's ``default_freq``).
    tools : str, optional
        ``auto``, ``native`` or ``yowasp`` (see :func:`find_tool`).
    timeout : float
        Seconds each tool may run before it is stopped.
    liberty : str, optional
        ``asic`` only: a Liberty file to map to (``dfflibmap``, ``abc -liberty``) and whose
        cell areas ``stat -liberty`` sums; without it, simple gates and NAND2 equivalents.
    pin_width : int
        Data pins of each narrow stream of the wrapper (place-and-route targets).
    pins_file : str, optional
        A PCF (iCE40) or LPF (ECP5) file that places the wrapper's ports on chosen pins;
        without it nextpnr places them on free pins of the package.
    seed : int
        nextpnr's placement seed.
    extra_pnr_args : sequence of str
        More options for nextpnr, passed as they are (e.g. ``["--router", "router2"]``).
    hierarchy : bool
        Keep the accelerator's and its layers' modules apart (default). ``False`` flattens
        everything, as a design would be built for a product; the report then has no wrapper
        or layer split.
    place_and_route : bool
        Run nextpnr on place-and-route targets (default). ``False`` stops after synthesis of
        the wrapped design: resources only, no Fmax.
    progress : Progress, optional
        Where to show progress (default: standard error).
    force : bool
        Synthesize even a design whose predicted LUTs exceed the part's (see
        :func:`check_fit`), which otherwise stops before Yosys runs.

    Returns
    -------
    dict
        The report (``format: tnngen-synth/1``), see :func:`run`.

    Raises
    ------
    SynthInputError
        Bad target, options or accelerator.
    SynthError
        A tool is missing, failed or timed out, or its output could not be read.
    """
    target = get_target(target)
    if not isinstance(accelerator, folder.AcceleratorFolder):
        accelerator = folder.load(accelerator)
    progress = progress if progress is not None else Progress()
    if liberty is not None and target.family != "asic":
        raise SynthInputError("--liberty applies to the 'asic' target only")
    if liberty is not None and not os.path.isfile(liberty):
        raise SynthInputError(f"{liberty}: no such Liberty file")
    if pins_file is not None and not target.place_and_route:
        raise SynthInputError(f"a pin file applies to place-and-route targets, not {target.name}")
    if pins_file is not None and not os.path.isfile(pins_file):
        raise SynthInputError(f"{pins_file}: no such pin file")
    if not isinstance(pin_width, int) or isinstance(pin_width, bool) or pin_width < 1:
        raise SynthInputError(f"pin width must be a positive integer, not {pin_width!r}")
    if freq is not None and not (isinstance(freq, (int, float)) and freq > 0):
        raise SynthInputError(f"clock constraint must be a positive number of MHz, not {freq!r}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise SynthInputError(f"time-out must be a positive number of seconds, not {timeout!r}")
    if not force:
        check_fit(accelerator.metadata, target)

    yosys = find_tool("yosys", tools=tools)
    route = target.place_and_route and place_and_route
    nextpnr = find_tool(target.pnr_tool, tools=tools) if route else None

    os.makedirs(workdir, exist_ok=True)
    meta = accelerator.metadata
    acc_top = meta["top"]
    with open(accelerator.verilog_path) as f:
        acc_text = f.read()
    acc_file = "accelerator.v"
    _write_text(os.path.join(workdir, acc_file), acc_text)
    sources = [acc_file]
    modules = _verilog_modules(acc_text)
    if acc_top not in modules:
        raise SynthInputError(
            f"{accelerator.verilog_path}: no module {acc_top!r} (the metadata's 'top')"
        )
    layers = meta.get("layers", [])
    layer_modules = _layer_modules(modules, acc_top, layers) if hierarchy else {}

    wrapper = None
    top = acc_top
    if target.place_and_route:
        top, wrapper_text, wrapper_component = _wrapper_verilog(accelerator, pin_width)
        _write_text(os.path.join(workdir, "wrapper.v"), wrapper_text)
        sources.append("wrapper.v")
        port_bits = pin_width * 2 + 4 + 2  # data each way, valid/ready each way, clock, reset
        wrapper = {
            "top": top,
            "pin_width": pin_width,
            "in_words": wrapper_component.in_words,
            "out_words": wrapper_component.out_words,
            "pin_interval": wrapper_component.pin_interval,
            "latency": wrapper_component.latency,
            "pins": port_bits,
        }

    # --- Yosys -----------------------------------------------------------------------------
    kept = [acc_top, *sorted({m for held in layer_modules.values() for m in held})]
    kept = kept if hierarchy else []
    script = [f"read_verilog {name}" for name in sources]
    script.append(f"hierarchy -check -top {top}")
    # Amaranth names each element of an array payload (`\o__payload[0]`); Yosys 0.70's ABC9
    # (YoWASP's build, and newer native ones) fails without a message on such names, which clash
    # with bit selects. They only alias bits of other wires: hidden, they are cleaned away.
    script.append("rename -hide w:*[[]*")
    if kept and (wrapper is not None or layer_modules):
        script.append("setattr -mod -set keep_hierarchy 1 " + " ".join(kept))
    script.append(target.synth.format(top=top))
    lib_file = None
    if target.family == "asic":
        if liberty is None:
            script += [
                "dfflegalize -cell $_DFF_P_ 01 -cell $_DFF_PP0_ 01 -cell $_DFF_PP1_ 01",
                f"abc -g {ASIC_GATES}",
                "opt_clean -purge",
            ]
        else:
            lib_file = "cells.lib"
            shutil.copyfile(liberty, os.path.join(workdir, lib_file))
            script += [
                f"dfflibmap -liberty {lib_file}",
                f"abc -liberty {lib_file}",
                "opt_clean -purge",
            ]
    stat = "tee -o stat.txt stat" + (f" -liberty {lib_file}" if lib_file else "")
    script += ["write_json netlist.json", stat]
    _write_text(os.path.join(workdir, "synth.ys"), "\n".join(script) + "\n")
    log = os.path.join(workdir, "yosys.log")
    synth_step = target.synth.split()[0]
    seconds = run_tool(
        yosys,
        ["-s", "synth.ys"],
        cwd=workdir,
        log_path=log,
        timeout=timeout,
        title=f"yosys {synth_step} ({yosys.kind})",
        progress=progress,
    )
    tools_used = [_tool_entry(yosys, "synthesis", seconds, log)]
    absorbed = None
    try:
        if target.family == "ecp5":
            # DP16KD output registers, which Yosys 0.23 leaves unused (gen.flow.outreg); the
            # netlist as Yosys wrote it stays beside the one nextpnr places
            os.replace(
                os.path.join(workdir, "netlist.json"), os.path.join(workdir, "netlist-yosys.json")
            )
            absorbed = outreg.absorb_file(
                os.path.join(workdir, "netlist-yosys.json"), os.path.join(workdir, "netlist.json")
            )
        with open(os.path.join(workdir, "netlist.json")) as f:
            netlist = parse_netlist(f.read())
        liberty_area = sequential = None
        if lib_file is not None:
            with open(os.path.join(workdir, "stat.txt")) as f:
                liberty_area = parse_liberty_area(f.read())
            with open(os.path.join(workdir, lib_file), errors="replace") as f:
                sequential = liberty_sequential_cells(f.read())
    except (OSError, ValueError, KeyError, ReportError) as exc:
        raise SynthError(f"Yosys's output could not be read: {exc}; full log: {log}", log) from None

    # --- nextpnr ---------------------------------------------------------------------------
    pnr = None
    constraint = None
    if route:
        constraint = float(freq if freq is not None else target.default_freq)
        args = [*target.pnr_args, "--json", "netlist.json", "--top", top]
        args += ["--freq", f"{constraint:g}", "--timing-allow-fail", "--seed", str(seed)]
        args += ["--report", "nextpnr-report.json", *extra_pnr_args]
        if pins_file is not None:
            local = "pins.pcf" if target.family == "ice40" else "pins.lpf"
            shutil.copyfile(pins_file, os.path.join(workdir, local))
            args += ["--pcf" if target.family == "ice40" else "--lpf", local]
        log = os.path.join(workdir, "nextpnr.log")
        started = time.monotonic()
        try:
            seconds = run_tool(
                nextpnr,
                args,
                cwd=workdir,
                log_path=log,
                timeout=timeout,
                title=f"{nextpnr.name} place and route ({nextpnr.kind})",
                progress=progress,
            )
        except ToolFailed as exc:
            overflow = _overflow(log)
            if not overflow:
                raise
            # The design is too big for the part: still a report, with the synthesis figures
            # and what overflowed, so the user sees by how much.
            entry = _tool_entry(nextpnr, "place and route", time.monotonic() - started, log)
            tools_used.append(entry)
            over = ", ".join(
                f"{bel} {e['used']:,} of {e['available']:,} "
                f"({100 * e['used'] / e['available']:.0f}%)"
                for bel, e in overflow["over"].items()
            )
            message = f"the design does not fit {target.part}: {over}; full log: {log}"
            report = build_report(
                accelerator=accelerator,
                target=target,
                top=top,
                netlist=netlist,
                layer_modules=layer_modules,
                verilog_modules=modules,
                wrapper=wrapper,
                pnr={
                    "failed": message,
                    "report": {"utilization": overflow["utilization"], "fmax": {}},
                    "log_fmax": {},
                    "constraint_mhz": constraint,
                    "seed": seed,
                    "pins_file": pins_file,
                },
                tools_used=tools_used,
                liberty=liberty,
                liberty_area=liberty_area,
                sequential=sequential,
                workdir=workdir,
                hierarchy=hierarchy,
            )
            raise DoesNotFit(message, log, report) from exc
        tools_used.append(_tool_entry(nextpnr, "place and route", seconds, log))
        try:
            with open(os.path.join(workdir, "nextpnr-report.json")) as f:
                pnr_report = parse_nextpnr_report(f.read())
            with open(log, errors="replace") as f:
                log_fmax = parse_nextpnr_log(f.read())
        except (OSError, ReportError) as exc:
            raise SynthError(
                f"nextpnr's output could not be read: {exc}; full log: {log}", log
            ) from None
        pnr = {
            "report": pnr_report,
            "log_fmax": log_fmax,
            "extra_args": list(extra_pnr_args),
            "constraint_mhz": constraint,
            "seed": seed,
            "pins_file": pins_file,
        }

    return build_report(
        accelerator=accelerator,
        target=target,
        top=top,
        netlist=netlist,
        layer_modules=layer_modules,
        verilog_modules=modules,
        wrapper=wrapper,
        pnr=pnr,
        tools_used=tools_used,
        liberty=liberty,
        liberty_area=liberty_area,
        sequential=sequential,
        workdir=workdir,
        hierarchy=hierarchy,
        absorbed=absorbed,
    )


def _overflow(log):
    """nextpnr's utilization from its log, and the resources it found short, if any."""
    try:
        with open(log, errors="replace") as f:
            utilization = parse_nextpnr_utilization(f.read())
    except OSError:
        return None
    over = {b: e for b, e in utilization.items() if e["used"] > e["available"]}
    return {"utilization": utilization, "over": over} if over else None


def _tool_entry(tool, step, seconds, log):
    return {
        "step": step,
        "tool": tool.name,
        "kind": tool.kind,
        "path": tool.path,
        "version": tool.version,
        "seconds": round(seconds, 2),
        "log": log,
    }


def run(path, target, *, output=None, **options):
    """Synthesize the accelerator at ``path`` for ``target`` and write its report.

    Parameters
    ----------
    path : str
        The accelerator's folder (or metadata file).
    target : str
        A name in :data:`TARGETS`.
    output : str, optional
        Where the reports go (default: the accelerator's folder). The tools' files go to
        ``<output>/synth-<target>/``.
    **options
        Passed to :func:`synthesize`.

    Returns
    -------
    dict
        The report, as written to ``synth-<target>.json``: ``target``, ``accelerator``,
        ``tools`` (each with name, kind, path, version, seconds and log), ``wrapper``,
        ``resources`` (``total``, ``wrapper``, ``accelerator`` and ``layers``, each with the
        figures of :data:`gen.flow.parse.CATEGORIES` and the raw ``cells``), ``utilization``
        (fraction of the part), ``place_and_route`` (nextpnr's Fmax and utilization),
        ``performance`` (Fmax, latency in us, inferences per second), ``predicted`` and
        ``comparison`` (measured / predicted).

    Raises
    ------
    gen.folder.FolderError
        If ``path`` is not an accelerator folder.
    SynthInputError, SynthError
        As :func:`synthesize`.
    """
    target = get_target(target)
    accelerator = folder.load(path)
    output = output if output is not None else accelerator.directory
    if not os.path.isdir(output):
        raise SynthInputError(f"{output}: no such folder")
    workdir = os.path.join(output, f"synth-{target.name}")
    # The tools work in a temporary folder; the report set (the tools' folder, the JSON and the
    # Markdown) is swapped in only when the run is over, so an interrupted or failed run never
    # leaves a report beside the logs of another run. A failed run's folder is kept, as
    # synth-<target>-failed/, for its logs, and an interrupted one's as
    # synth-<target>-interrupted/.
    scratch = tempfile.mkdtemp(prefix=f".tnngen-synth-{target.name}-", dir=output)
    try:
        try:
            report = synthesize(accelerator, target, workdir=scratch, **options)
        except DoesNotFit as exc:
            _settle(scratch, workdir)
            exc.report = _relocated(exc.report, scratch, workdir)
            exc.args = (str(exc).replace(scratch, workdir),)
            exc.log_path = exc.log_path and exc.log_path.replace(scratch, workdir)
            write_report(exc.report, output)
            raise
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM (gen.cli) during a tool: its logs so far are kept, as a failed
            # run's are, since a long place and route stopped by hand is still worth reading.
            if os.listdir(scratch):
                _settle(scratch, f"{workdir}-interrupted")
            raise
        except SynthError as exc:
            if not os.listdir(scratch):  # nothing ran (a tool is missing)
                raise
            failed = f"{workdir}-failed"
            _settle(scratch, failed)
            exc.args = (str(exc).replace(scratch, failed),)
            if exc.log_path:
                exc.log_path = exc.log_path.replace(scratch, failed)
            raise
        _settle(scratch, workdir)
        report = _relocated(report, scratch, workdir)
        write_report(report, output)
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _settle(scratch, final):
    """Move the tools' folder ``scratch`` to ``final``, replacing an earlier one."""
    if os.path.isdir(final):
        old = tempfile.mkdtemp(prefix=".tnngen-old-", dir=os.path.dirname(final))
        os.rename(final, os.path.join(old, "x"))
        os.rename(scratch, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(scratch, final)


def _relocated(report, scratch, final):
    """``report`` with the paths into ``scratch`` pointing into ``final``."""
    return json.loads(json.dumps(report).replace(json.dumps(scratch)[1:-1], final))
