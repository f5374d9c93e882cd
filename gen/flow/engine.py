"""Where sweep points run: a Dask cluster (a local one, or an existing scheduler) or, without
Dask, a local process pool.

One point is one task, :func:`run_point`: it compiles the description and synthesizes the
accelerator in a temporary folder of its own (no shared filesystem is assumed), and returns the
report and the small artifacts (Verilog, metadata, test vectors, reports, the tools' logs; not
the netlist) as bytes. The sweep writes them into its output folder. A task that fails for a
reason worth another try (a tool crashed or timed out, its worker died) raises
:class:`PointFailed` and is retried a bounded number of times; bad input for one point
(a folding the part cannot hold) is returned as that point's error at once.

Engines (:func:`open_engine`) share one interface: ``description`` (the line a sweep starts
with), ``workers``, ``run(tasks, on_result)``, ``running()``, ``tool_versions(target, tools)``
and ``close()``.
"""

import concurrent.futures
import hashlib
import importlib.util
import logging
import multiprocessing
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field

from .. import folder, network, progress
from ..compiler.folds import CompileError
from . import synth
from .errors import DoesNotFit, SynthError, SynthInputError, ToolMissing
from .targets import get_target
from .tools import find_tool

__all__ = [
    "SCHEDULER_ENV",
    "DEFAULT_RETRIES",
    "EngineError",
    "PointFailed",
    "PointTask",
    "run_point",
    "tool_versions",
    "open_engine",
    "PoolEngine",
    "DaskEngine",
]

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
DEFAULT_RETRIES = 2
_LOG_TAIL = 20
# Files of the tools' folder that are scratch: large, and made again by any re-run.
_SCRATCH = {"netlist.json", "accelerator.v"}
_ADDRESS = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


class EngineError(ValueError):
    """Engine options that cannot be met: Dask asked for but not installed, a scheduler address
    that is malformed or does not answer."""


class PointFailed(RuntimeError):
    """A point's run failed (a tool crashed or timed out); the message says why, with the end
    of the tool's log."""


@dataclass(frozen=True)
class PointTask:
    """Everything a worker needs for one point: the description's bytes (not a path), the
    folding, the target, the nextpnr seed and the synthesis options.

    ``label`` names the point's folder; ``seed_folder`` the sub-folder its reports go to when a
    folding is placed with several seeds (None: the point's folder itself).
    """

    label: str
    description: bytes
    source: str
    fold: str
    target: str
    seed: int = 1
    seed_folder: str | None = None
    vectors: int = 16
    options: dict = field(default_factory=dict)
    level: str = "normal"


def _log_tail(exc):
    path = getattr(exc, "log_path", None)
    if not path or not os.path.isfile(path):
        return ""
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()[-_LOG_TAIL:]
    return "\nend of the log:\n" + "\n".join(lines)


def _artifacts(directory):
    found = {}
    for root, _, files in os.walk(directory):
        for name in sorted(files):
            if name in _SCRATCH or name.startswith(".tnngen-"):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = f.read()
    return found


def run_point(task):
    """Compile and synthesize one point in a temporary folder; runs on a worker.

    Returns
    -------
    dict
        ``report``, ``artifacts`` (``{path relative to the point's folder: bytes}``) and
        ``directory`` (the worker's folder, which paths in the report and artifacts name); or
        ``error`` and ``kind`` (``input``, ``failure``) for a point that no retry would mend.

    Raises
    ------
    PointFailed
        A tool failed, crashed or timed out (worth another try, maybe on another worker).
    """
    progress.set_level(task.level)
    display = progress.Progress(prefix=f"[{task.label}] ", live=False)
    with tempfile.TemporaryDirectory(prefix="tnngen-point-") as scratch:
        directory = os.path.join(scratch, task.label)
        reports = (
            directory if task.seed_folder is None else os.path.join(directory, task.seed_folder)
        )
        try:
            net = network.loads(
                task.description.decode("utf-8"),
                source=task.source,
                sha256=hashlib.sha256(task.description).hexdigest(),
            )
            with display.step("compile"):
                folder.compile_to_folder(net, directory, fold=task.fold, vectors=task.vectors)
            os.makedirs(reports, exist_ok=True)
            report = synth.run(
                directory,
                task.target,
                output=reports,
                seed=task.seed,
                progress=display,
                **task.options,
            )
        except (SynthInputError, CompileError, network.DescriptionError, folder.FolderError) as exc:
            return {"error": str(exc), "kind": "input"}
        except DoesNotFit as exc:
            return {"error": str(exc).replace(scratch, "<worker>"), "kind": "failure"}
        except SynthError as exc:
            where = socket.gethostname()
            message = f"{exc}{_log_tail(exc)}".replace(scratch, f"<{where}>")
            raise PointFailed(message) from None
        return {"report": report, "artifacts": _artifacts(directory), "directory": directory}


def tool_versions(target, tools=None, place_and_route=True):
    """``{tool: "kind version"}`` of the tools a point on ``target`` runs (``missing`` for one
    that is not installed); part of each point's cache key."""
    target = get_target(target)
    names = ["yosys"]
    if target.place_and_route and place_and_route:
        names.append(target.pnr_tool)
    versions = {}
    for name in names:
        try:
            tool = find_tool(name, tools=tools)
            versions[name] = f"{tool.kind} {tool.version}"
        except (ToolMissing, SynthError):
            versions[name] = "missing"
    return versions


def _failure(exc):
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, PointFailed):
        text = f"{type(exc).__name__}: {text}"
    return {"error": text, "kind": "failure"}


class PoolEngine:
    """A local pool of spawned worker processes (the engine without Dask).

    Parameters
    ----------
    workers : int
        Processes.
    retries : int
        Further tries of a point whose task raised.
    why : str, optional
        Why the pool runs rather than Dask, for the description line.
    task : callable
        The function run per point (default :func:`run_point`).
    """

    kind = "pool"

    def __init__(self, workers, *, retries=DEFAULT_RETRIES, why=None, task=run_point):
        self.workers = workers
        self.retries = retries
        self.task = task
        self.description = f"process pool of {workers} worker{'s' if workers != 1 else ''}"
        if why:
            self.description += f" ({why})"
        self._running = 0
        self._pool = self._new_pool()

    def _new_pool(self):
        # Spawned workers: no fork of a process that may hold threads or open tool pipes.
        context = multiprocessing.get_context("spawn")
        return concurrent.futures.ProcessPoolExecutor(max_workers=self.workers, mp_context=context)

    def run(self, tasks, on_result):
        """Run ``tasks`` (in the order given, as workers free up); call ``on_result(k,
        outcome)`` as each ends, ``outcome`` being :func:`run_point`'s dict (a failure after the
        last retry as ``error`` and ``kind: failure``)."""
        tries = {}
        pending = {}
        queue = list(range(len(tasks)))
        while queue or pending:
            while queue and len(pending) < self.workers:
                k = queue.pop(0)
                tries[k] = tries.get(k, 0) + 1
                pending[self._pool.submit(self.task, tasks[k])] = k
            self._running = len(pending)
            done, _ = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED
            )
            broken = False
            for future in done:
                k = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the point's failure, retried while tries remain
                    # A worker that died breaks the pool, and every point it was running.
                    broken |= isinstance(exc, concurrent.futures.process.BrokenProcessPool)
                    if tries[k] <= self.retries:
                        queue.insert(0, k)
                        continue
                    outcome = _failure(exc)
                    outcome["tries"] = tries[k]
                self._running = len(pending)
                on_result(k, outcome)
            if broken:  # the points still pending on the broken pool go back in the queue
                for k in pending.values():
                    if tries[k] <= self.retries:
                        queue.insert(0, k)
                    else:
                        on_result(k, dict(_failure(PointFailed("its worker died")), tries=tries[k]))
                pending.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
        self._running = 0

    def running(self):
        return self._running

    def tool_versions(self, target, tools=None, place_and_route=True):
        return tool_versions(target, tools, place_and_route)

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskEngine:
    """Points as tasks of a ``dask.distributed`` cluster: a :class:`~distributed.LocalCluster`
    of ``workers`` processes, or the existing cluster whose scheduler is at ``scheduler``.

    A task is retried ``retries`` times when it raises, and rescheduled as often when its
    worker dies under it (the local scheduler's ``allowed-failures``; an existing scheduler
    keeps its own setting).
    """

    kind = "dask"

    def __init__(self, *, workers=None, scheduler=None, retries=DEFAULT_RETRIES, task=run_point):
        import dask
        from distributed import Client, LocalCluster

        self.retries = retries
        self.task = task
        self._cluster = None
        self._scheduler = scheduler
        if scheduler is not None:
            try:
                self.client = Client(scheduler, timeout="10s", set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise EngineError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
        else:
            with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
                self._cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    # Any free port for the scheduler's HTTP server: several sweeps may run.
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                )
            self.client = Client(self._cluster, set_as_default=False)
            self._workers = workers

    @property
    def workers(self):
        """Points that run at once: the local workers, or the cluster's worker threads now."""
        if self._cluster is not None:
            return self._workers
        return sum(self.client.nthreads().values())

    @property
    def description(self):
        n = self.workers
        if self._cluster is not None:
            return f"local Dask cluster of {n} worker process{'es' if n != 1 else ''}"
        return f"Dask scheduler at {self._scheduler} ({n} worker thread{'s' if n != 1 else ''})"

    def run(self, tasks, on_result):
        """As :meth:`PoolEngine.run`; the first task has the highest priority."""
        from distributed import as_completed

        futures = {
            self.client.submit(
                self.task, task, retries=self.retries, pure=False, priority=len(tasks) - k
            ): k
            for k, task in enumerate(tasks)
        }
        for future in as_completed(futures, loop=self.client.loop):
            k = futures[future]
            if future.status == "finished":
                outcome = future.result()
            else:
                outcome = _failure(future.exception())
                outcome["tries"] = self.retries + 1
            future.release()
            on_result(k, outcome)

    def running(self):
        try:
            return sum(len(keys) for keys in self.client.processing().values())
        except (OSError, TimeoutError):
            return 0

    def tool_versions(self, target, tools=None, place_and_route=True):
        # The workers' tools, which need not be the client's (or be on the client at all).
        future = self.client.submit(tool_versions, target, tools, place_and_route, pure=False)
        return future.result()

    def close(self):
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def dask_available():
    """Whether the optional ``cluster`` extra (``dask.distributed``) is installed."""
    return importlib.util.find_spec("distributed") is not None


def open_engine(kind="auto", *, scheduler=None, jobs=None, points=None, retries=DEFAULT_RETRIES):
    """The engine a sweep runs on.

    Parameters
    ----------
    kind : str
        ``auto`` (Dask where it is installed, else the process pool), ``dask`` or ``pool``.
    scheduler : str, optional
        An existing Dask scheduler (``tcp://HOST:PORT``); default: ``DASK_SCHEDULER_ADDRESS``
        where it is set, else a local cluster.
    jobs : int, optional
        Local worker processes (default: the number of cores), at most ``points``.
    retries : int
        Further tries of a failed point.

    Raises
    ------
    EngineError
        Dask asked for and not installed, a scheduler with the pool, a bad address.
    """
    if kind not in ("auto", "dask", "pool"):
        raise EngineError(f"--engine must be 'auto', 'dask' or 'pool', not {kind!r}")
    if scheduler is not None and kind == "pool":
        raise EngineError("--scheduler needs the Dask engine, not --engine pool")
    if scheduler is None and kind != "pool":
        scheduler = os.environ.get(SCHEDULER_ENV) or None
    if scheduler is not None and not _ADDRESS.match(scheduler):
        raise EngineError(
            f"--scheduler: expected an address like tcp://HOST:PORT, not {scheduler!r}"
        )
    workers = max(1, min(jobs or os.cpu_count() or 1, points or jobs or os.cpu_count() or 1))
    have_dask = dask_available()
    if kind == "dask" or scheduler is not None:
        if not have_dask:
            raise EngineError(
                "the Dask engine needs the 'cluster' extra: pip install 'tnngen[cluster]'"
            )
        return DaskEngine(workers=workers, scheduler=scheduler, retries=retries)
    if kind == "auto" and have_dask:
        return DaskEngine(workers=workers, retries=retries)
    why = None if kind == "pool" else "Dask is not installed: pip install 'tnngen[cluster]'"
    return PoolEngine(workers, retries=retries, why=why)
