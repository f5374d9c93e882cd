"""Design-space sweep: several foldings of one model, synthesized on an engine of workers, and
their Pareto front of size against throughput.

:func:`sweep` takes the foldings given, or with ``explore`` enumerates them
(:func:`gen.compiler.explore.explore`: the cheapest folding per initiation interval, fastest
first), and runs each (with ``seeds`` nextpnr seeds) as one task on an engine
(:mod:`gen.flow.engine`: a local Dask cluster by default, an existing Dask scheduler, or a
local process pool). A task compiles and synthesizes in a temporary folder of its own and
returns its report and artifacts, which the sweep writes, file by file and atomically, into
its output folder: one accelerator folder per folding (with its synthesis report; with several
seeds, one report folder ``synth-seed<N>/`` per seed) and:

- ``sweep-<target>.json``: every point's folding, figures, measured / predicted LUTs, Fmax
  spread over seeds, whether it is on the front and the command that rebuilds it;
- ``sweep-<target>.md``: the same as Markdown, also printed;
- ``sweep-<target>.png``: size against throughput, the front drawn as a line (needs
  matplotlib, the ``plot`` extra; without it the sweep says so and writes no plot).

Results are kept in a content-addressed cache (:mod:`gen.flow.cache`), so that a re-run, or a
sweep extended by new points or seeds, synthesizes only what it has not seen.

Size is the accelerator's LUTs (without the pin wrapper, which is the same for every folding)
on FPGA targets, its NAND2 equivalents (or Liberty area) on ``asic``. Throughput is inferences
per second (Fmax / initiation interval) where the target is placed and routed, else inferences
per cycle (1 / initiation interval); with several seeds, a folding's figures are those of its
fastest seed. A point is on the front when no other point is at least as small and at least as
fast, and better in one of the two.
"""

import json
import os
import re
import shlex
import sys

from .. import network, progress, version
from ..compiler.explore import explore as explore_folds
from ..compiler.folds import CompileError, parse_fold
from ..compiler.plan import plan
from ..files import atomic_path, write_text_atomic
from . import cache as result_cache
from .engine import DEFAULT_RETRIES, PointTask, open_engine
from .sweep_report import failed_note, format_markdown, plot, plot_labels
from .targets import get_target

__all__ = [
    "SweepError",
    "sweep",
    "pareto_front",
    "format_markdown",
    "plot",
    "plot_labels",
    "failed_note",
]

REPORT_FORMAT = "tnngen-sweep/1"


class SweepError(ValueError):
    """Bad input to a sweep: no foldings, a folding that does not fit the model, bad options."""


def _slug(fold):
    return re.sub(r"[^A-Za-z0-9]+", "_", fold).strip("_") or "fold"


def _size(report):
    family = report["target"]["family"]
    acc = report["resources"]["accelerator"] or report["resources"]["total"]
    if family == "asic":
        if acc.get("area") is not None:
            return acc["area"], "cell area"
        return acc["nand2"], "NAND2 equivalents"
    return acc["luts"], "LUTs"


def _throughput(report):
    perf = report["performance"]
    if perf.get("inferences_per_second") is not None:
        return perf["inferences_per_second"], "inferences/s"
    return 1.0 / perf["initiation_interval"], "inferences/cycle"


def pareto_front(points):
    """Indices of the points no other point dominates.

    Parameters
    ----------
    points : list of (size, throughput)
        Smaller size and larger throughput are better.

    Returns
    -------
    list of int
        In order of increasing size.
    """
    front = []
    for k, (size, speed) in enumerate(points):
        dominated = any(
            s <= size and t >= speed and (s < size or t > speed)
            for j, (s, t) in enumerate(points)
            if j != k
        )
        if not dominated:
            front.append(k)
    return sorted(front, key=lambda k: (points[k][0], -points[k][1]))


def _canonical_fold(fold, net):
    """A folding as the compiler reads it, so that equivalent specs share a cache key."""
    parsed = parse_fold(fold, net)
    return [[k, v if isinstance(v, str) else list(v)] for k, v in sorted(parsed.items())]


def _relocated(value, old, new):
    """``value`` (a report) with the paths into ``old`` pointing into ``new``."""
    return json.loads(json.dumps(value).replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]))


def _write_artifacts(outcome, final):
    """Write a task's artifacts into the point's folder ``final``, each file atomically, with
    the worker's paths in the text files made the folder's."""
    old, new = outcome["directory"].encode("utf-8"), final.encode("utf-8")
    for name, data in sorted(outcome["artifacts"].items()):
        path = os.path.join(final, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not name.endswith(".npz"):
            data = data.replace(old, new)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(data)


def _tools_of(report):
    return {t["tool"]: f"{t['kind']} {t['version']}" for t in report.get("tools", [])}


def rebuild_command(model, fold, target, directory, *, seed, vectors, options, routed):
    """The ``tnngen`` commands that build one point again, by itself."""
    verilog = ["tnngen", "verilog", model, "--fold", fold, "--vectors", str(vectors)]
    verilog += ["-o", directory]
    synth = ["tnngen", "synth", directory, "--target", target]
    if routed and seed != 1:
        synth += ["--seed", str(seed)]
    if options.get("freq") is not None:
        synth += ["--freq", f"{options['freq']:g}"]
    if options.get("pin_width") not in (None, 8):
        synth += ["--pin-width", str(options["pin_width"])]
    if options.get("tools"):
        synth += ["--tools", options["tools"]]
    if not options.get("place_and_route", True):
        synth.append("--no-pnr")
    if options.get("force"):
        synth.append("--force")
    return " ".join(map(shlex.quote, verilog)) + " && " + " ".join(map(shlex.quote, synth))


def _figures(fold, directory, report, target):
    size, _ = _size(report)
    speed, _ = _throughput(report)
    acc = report["resources"]["accelerator"] or report["resources"]["total"]
    perf = report["performance"]
    predicted = (report.get("predicted") or {}).get("luts")
    luts = acc.get("luts")
    return {
        "fold": fold,
        "directory": directory,
        "initiation_interval": perf["initiation_interval"],
        "latency": perf["latency_cycles"],
        "size": size,
        "luts": luts,
        "ffs": acc.get("ffs"),
        "bram": acc.get("bram"),
        "fmax_mhz": perf.get("fmax_mhz"),
        "throughput": speed,
        "predicted_luts": predicted,
        "lut_ratio": luts / predicted if luts is not None and predicted else None,
    }


class _Display:
    """Progress on standard error: points done, running and failed, and the front so far."""

    def __init__(self, total, engine):
        self.total, self.engine = total, engine
        self.done = self.failed = 0
        self.found = {}  # fold: (size, throughput) of its fastest seed so far

    def update(self, fold, outcome):
        self.done += 1
        if "report" in outcome:
            report = outcome["report"]
            size, speed = _size(report)[0], _throughput(report)[0]
            best = self.found.get(fold)
            if best is None or speed > best[1]:  # a folding's fastest seed
                self.found[fold] = (size, speed)
        else:
            self.failed += 1
        if progress.level() == "quiet":
            return
        folds = list(self.found)
        places = [self.found[f] for f in folds]
        front = []
        if all(size is not None for size, _ in places):
            front = [(folds[k], *places[k]) for k in pareto_front(places)]
        shown = ", ".join(f"{f} ({s:,.0f}, {t:.3g}/s)" for f, s, t in front[:3])
        more = f" and {len(front) - 3} more" if len(front) > 3 else ""
        # Dask counts tasks queued on a worker as processing: at most one runs per worker.
        running = min(self.engine.running(), self.engine.workers, self.total - self.done)
        print(
            f"[sweep] {self.done}/{self.total} done, {running} running, {self.failed} failed"
            + (f"; front: {shown}{more}" if shown else ""),
            file=sys.stderr,
            flush=True,
        )


def _check(folds, explore, jobs, seeds, retries, routed):
    if explore and folds:
        raise SweepError("give either --folds or --explore, not both")
    if not explore and not folds:
        raise SweepError("give at least one folding (--folds), or --explore")
    if folds and len(set(folds)) != len(folds):
        raise SweepError("a folding is given twice")
    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        raise SweepError(f"jobs must be a positive integer, not {jobs!r}")
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise SweepError(f"--seeds must be a positive integer, not {seeds!r}")
    if seeds > 1 and not routed:
        raise SweepError(
            "--seeds applies to place and route, which this target (or --no-pnr) skips"
        )
    if not isinstance(retries, int) or retries < 0:
        raise SweepError(f"--retries must be an integer of at least 0, not {retries!r}")


def _candidates(net, folds, explore, target, force):
    """The foldings with their predicted initiation intervals, in the summary's order."""
    if explore:
        part = None if force or not target.capacity else target.name
        try:
            return [(c.fold, c.initiation_interval) for c in explore_folds(net, part=part)]
        except CompileError as exc:
            raise SweepError(f"--explore: {exc}") from None
    found = []
    for fold in folds:
        try:
            found.append((fold, plan(net, fold).initiation_interval))
        except CompileError as exc:
            raise SweepError(f"fold {fold!r}: {exc}") from None
    return found


def sweep(
    model,
    target,
    folds=None,
    *,
    output,
    explore=False,
    seeds=1,
    jobs=None,
    vectors=16,
    cache=None,
    engine=None,
    engine_kind="auto",
    scheduler=None,
    retries=DEFAULT_RETRIES,
    say=None,
    **options,
):
    """Synthesize ``model`` with each folding for ``target`` and find the front.

    Parameters
    ----------
    model : str
        A ``tnn/1`` description.
    target : str
        A name in :data:`gen.flow.targets.TARGETS`.
    folds : list of str, optional
        Folding specs, as ``tnngen verilog --fold`` takes them (``unrolled``, ``PE,SIMD``,
        ``L:PE,SIMD;...``); or none, with ``explore``.
    output : str
        Folder for the points (``<output>/<fold>/``) and the sweep's reports; created if
        missing.
    explore : bool
        Enumerate the foldings (:func:`gen.compiler.explore.explore`), fastest first, leaving
        out those predicted beyond the part (unless ``force``).
    seeds : int
        nextpnr seeds per folding (1 to ``seeds``); a folding's figures are its fastest seed's.
    jobs : int, optional
        Local worker processes (default: the number of cores).
    vectors : int
        Test vectors written with each accelerator.
    cache : gen.flow.cache.Cache, optional
        Where results are looked up and stored (default: no cache).
    engine : optional
        An engine from :func:`gen.flow.engine.open_engine`, left open; by default one is
        opened from ``engine_kind``, ``scheduler``, ``jobs`` and ``retries``, and closed.
    say : callable, optional
        Called with the line naming the engine, before any point runs (default: print it on
        standard error).
    **options
        Passed to :func:`gen.flow.synth.synthesize` (``freq``, ``tools``, ``timeout``,
        ``pin_width``, ``place_and_route``, ``force``).

    Returns
    -------
    dict
        The summary written to ``sweep-<target>.json``: ``points`` (each with ``fold``,
        ``directory``, ``initiation_interval``, ``latency``, ``size``, ``ffs``, ``bram``,
        ``fmax_mhz``, ``throughput``, ``predicted_luts``, ``lut_ratio``, ``front``,
        ``rebuild``, ``cached``, with several seeds ``seeds`` and ``fmax_spread_mhz``; or
        ``error``), units, ``cost_model``, ``engine``, ``cache``, ``plot`` (the PNG's path, or
        ``None`` with ``plot_message``).

    Raises
    ------
    SweepError
        No foldings, a repeated one, one that does not fit the model, or bad options.
    gen.flow.engine.EngineError
        An engine that cannot be opened (Dask not installed, a scheduler that does not answer).
    gen.network.DescriptionError
        A malformed description.
    gen.flow.errors.SynthInputError
        An unknown target.
    """
    target = get_target(target)
    routed = target.place_and_route and options.get("place_and_route", True)
    _check(folds, explore, jobs, seeds, retries, routed)
    net = network.load(model)
    with open(model, "rb") as f:
        description = f.read()
    candidates = _candidates(net, folds, explore, target, options.get("force"))
    folds = [fold for fold, _ in candidates]
    os.makedirs(output, exist_ok=True)
    labels, directories = [], []
    for fold in folds:
        slug = _slug(fold)
        while slug in labels:
            slug += "_"
        labels.append(slug)
        directories.append(os.path.join(output, slug))
    seed_list = list(range(1, seeds + 1))
    # Fastest first: an interrupted sweep already holds the front's fast end.
    order = sorted(range(len(folds)), key=lambda k: candidates[k][1])
    runs = [(k, seed) for k in order for seed in seed_list]
    tasks = [
        PointTask(
            label=labels[k],
            description=description,
            source=os.path.basename(model),
            fold=folds[k],
            target=target.name,
            seed=seed,
            seed_folder=f"synth-seed{seed}" if seeds > 1 else None,
            vectors=vectors,
            options=dict(options),
            level=progress.level(),
        )
        for k, seed in runs
    ]
    own_engine = engine is None
    if own_engine:
        engine = open_engine(
            engine_kind, scheduler=scheduler, jobs=jobs, points=len(tasks), retries=retries
        )
    try:
        (say or (lambda line: print(line, file=sys.stderr, flush=True)))(
            f"engine: {engine.description}"
        )
        outcomes = _run(net, tasks, runs, folds, directories, engine, cache, target, routed)
    finally:
        if own_engine:
            engine.close()
    summary = _summary(
        model, net, target, folds, directories, seed_list, outcomes, vectors, options, routed
    )
    summary["engine"] = engine.description
    summary["cache"] = outcomes.pop("cache")
    _write(summary, output, target)
    return summary


def _run(net, tasks, runs, folds, directories, engine, cache, target, routed):
    """Look each task up in the cache, run the others on ``engine``; write every result.

    Returns ``{(fold index, seed): outcome}`` (reports relocated into the output folder,
    artifacts written and dropped) and, under ``"cache"``, the hits and misses.
    """
    results = {}
    display = _Display(len(tasks), engine)
    keys, materials, todo = [None] * len(tasks), [None] * len(tasks), []
    versions = warned = None

    def finish(i, outcome):
        nonlocal warned
        k, seed = runs[i]
        if "report" in outcome:
            _write_artifacts(outcome, directories[k])
            report = _relocated(outcome["report"], outcome["directory"], directories[k])
            # Stored only when the worker's tools are the ones the key names.
            if cache is not None and not outcome.get("cached") and _tools_of(report) == versions:
                try:
                    cache.put(keys[i], materials[i], outcome)
                except result_cache.CacheError as exc:
                    if not warned:
                        print(f"tnngen sweep: warning: {exc}", file=sys.stderr)
                    warned = True
            outcome = {"report": report, "cached": bool(outcome.get("cached"))}
        results[(k, seed)] = outcome
        display.update(folds[k], outcome)

    if cache is None:
        todo = list(range(len(tasks)))
    else:
        options = tasks[0].options if tasks else {}
        versions = engine.tool_versions(target.name, options.get("tools"), routed)
        freq = options.get("freq") or (target.default_freq if routed else None)
        common = {
            "format": result_cache.CACHE_FORMAT,
            "description_sha256": net.source_sha256,
            "target": target.name,
            "tools": versions,
            "generator": {"version": version(), "sources": result_cache.sources()},
        }
        for i, task in enumerate(tasks):
            materials[i] = dict(
                common,
                fold=_canonical_fold(task.fold, net),
                options={
                    "freq": float(freq) if freq is not None else None,
                    "pin_width": options.get("pin_width", 8),
                    "place_and_route": routed,
                    "seed": task.seed if routed else None,
                    "vectors": task.vectors,
                },
            )
            keys[i] = result_cache.point_key(materials[i])
            stored = cache.get(keys[i])
            if stored is None:
                todo.append(i)
            else:
                finish(i, dict(stored, cached=True))
    engine.run([tasks[i] for i in todo], lambda j, outcome: finish(todo[j], outcome))
    results["cache"] = (
        None
        if cache is None
        else {"directory": cache.directory, "hits": len(tasks) - len(todo), "misses": len(todo)}
    )
    return results


def _summary(model, net, target, folds, directories, seed_list, outcomes, vectors, options, routed):
    points = []
    several = len(seed_list) > 1
    for k, fold in enumerate(folds):
        tried = [(seed, outcomes[(k, seed)]) for seed in seed_list]
        good = [(seed, o) for seed, o in tried if "report" in o]
        bad = [(seed, o) for seed, o in tried if "report" not in o]
        if not good:
            seed, failed = bad[0]
            error = f"seed {seed}: {failed['error']}" if several else failed["error"]
            point = {"fold": fold, "directory": directories[k], "error": error}
            point.update({key: failed[key] for key in ("kind", "tries") if key in failed})
            points.append(point)
            continue

        seed, best = max(good, key=lambda pair: (_fmax(pair), -pair[0]))
        point = _figures(fold, directories[k], best["report"], target)

        def report_path(s, directory=directories[k]):
            where = os.path.join(directory, f"synth-seed{s}") if several else directory
            return os.path.join(where, f"synth-{target.name}.json")

        point["report"] = report_path(seed)
        point["cached"] = all(o.get("cached") for _, o in good)
        if routed:
            point["seed"] = seed
        if several:
            point["seeds"] = [
                {"seed": s, "fmax_mhz": _fmax((s, o)) or None, "report": report_path(s)}
                for s, o in good
            ]
            measured = [e["fmax_mhz"] for e in point["seeds"] if e["fmax_mhz"] is not None]
            point["fmax_spread_mhz"] = [min(measured), max(measured)] if measured else None
            if bad:
                point["failed_seeds"] = [{"seed": s, "error": o["error"]} for s, o in bad]
        point["rebuild"] = rebuild_command(
            model,
            fold,
            target.name,
            directories[k],
            seed=seed,
            vectors=vectors,
            options=options,
            routed=routed,
        )
        points.append(point)
    good = [p for p in points if "error" not in p]
    front = set()
    if good and all(p["size"] is not None for p in good):
        indices = pareto_front([(p["size"], p["throughput"]) for p in good])
        front = {id(good[k]) for k in indices}
    for p in good:
        p["front"] = id(p) in front
    ratios = [p["lut_ratio"] for p in good if p.get("lut_ratio") is not None]
    first = next((outcomes[(k, s)]["report"] for (k, s) in _reported(outcomes)), None)
    return {
        "format": REPORT_FORMAT,
        "model": net.name,
        "description": os.path.abspath(model),
        "target": target.name,
        "size_unit": _size(first)[1] if first else None,
        "throughput_unit": _throughput(first)[1] if first else None,
        "points": points,
        "cost_model": {
            "points": len(ratios),
            "lut_ratio_min": min(ratios),
            "lut_ratio_max": max(ratios),
            "lut_ratio_mean": sum(ratios) / len(ratios),
        }
        if ratios
        else None,
        "plot": None,
    }


def _fmax(pair):
    return pair[1]["report"]["performance"].get("fmax_mhz") or 0.0


def _reported(outcomes):
    return sorted(key for key, o in outcomes.items() if key != "cache" and "report" in o)


def _write(summary, output, target):
    if any("error" not in p for p in summary["points"]):
        png = os.path.join(output, f"sweep-{target.name}.png")
        summary["plot"] = plot(summary, png)
        if summary["plot"] is None:
            summary["plot_message"] = (
                "matplotlib is not installed, so no plot was drawn (pip install -e '.[plot]')"
            )
    write_text_atomic(
        os.path.join(output, f"sweep-{target.name}.json"), json.dumps(summary, indent=2) + "\n"
    )
    write_text_atomic(os.path.join(output, f"sweep-{target.name}.md"), format_markdown(summary))
