"""Design-space sweep: several foldings of one model, synthesized in parallel, and their Pareto
front of size against throughput.

:func:`sweep` compiles the model once per folding (:mod:`gen.folder`), synthesizes each on
one target (:mod:`gen.flow.synth`), in parallel up to the number of cores, and writes into its
output folder one accelerator folder per folding (with its own synthesis report) and:

- ``sweep-<target>.json``: every point's folding, figures and whether it is on the front;
- ``sweep-<target>.md``: the same as a Markdown table, also printed;
- ``sweep-<target>.png``: size against throughput, the front drawn as a line (needs
  matplotlib, the ``plot`` extra; without it the sweep says so and writes no plot).

Size is the accelerator's LUTs (without the pin wrapper, which is the same for every folding)
on FPGA targets, its NAND2 equivalents (or Liberty area) on ``asic``. Throughput is inferences
per second (Fmax / initiation interval) where the target is placed and routed, else inferences
per cycle (1 / initiation interval). A point is on the front when no other point is at least
as small and at least as fast, and better in one of the two.
"""

import json
import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

from .. import folder, network
from ..compiler.folds import CompileError, parse_fold
from ..files import atomic_path, write_text_atomic
from ..progress import Progress
from . import synth
from .errors import SynthError, SynthInputError
from .targets import get_target

__all__ = ["SweepError", "sweep", "pareto_front", "format_markdown", "plot"]

REPORT_FORMAT = "tnngen-sweep/1"


class SweepError(ValueError):
    """Bad input to a sweep: no foldings, a folding that does not fit the model, bad options."""


def _slug(fold):
    return re.sub(r"[^A-Za-z0-9]+", "_", fold).strip("_") or "fold"


def _point(model, fold, target, directory, label, options, vectors):
    """One folding: compile, write the accelerator, synthesize. Runs in a worker process.

    Returns a dict (exceptions do not all pickle): ``report``, or ``error`` and ``kind``.
    """
    progress = Progress(sys.stderr, prefix=f"[{label}] ", live=False)
    try:
        net = network.load(model)
        with progress.step("compile"):
            folder.compile_to_folder(net, directory, fold=fold, vectors=vectors)
        report = synth.run(directory, target, progress=progress, **options)
        return {"report": report}
    except (SynthInputError, CompileError, network.DescriptionError, folder.FolderError) as exc:
        return {"error": str(exc), "kind": "input"}
    except SynthError as exc:
        return {"error": str(exc), "kind": "failure"}
    except Exception as exc:  # a bug or an unexpected failure: reported with the point
        return {"error": f"{type(exc).__name__}: {exc}", "kind": "failure"}


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


def _rate(value, unit):
    if unit == "inferences/cycle":
        return f"{value:.4g}"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}"
    return f"{value:.3g}"


def format_markdown(summary):
    """The sweep as a Markdown table, front points marked."""
    target = summary["target"]
    size_unit, speed_unit = summary["size_unit"], summary["throughput_unit"]
    lines = [
        f"## Sweep of {summary['model']} on {target}",
        "",
        f"| fold | II | latency | {size_unit} | FFs | BRAM | Fmax (MHz) | {speed_unit} | front |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for point in summary["points"]:
        if point.get("error"):
            lines.append(f"| `{point['fold']}` | failed: {point['error'].splitlines()[0]} ||||||||")
            continue
        fmax = point["fmax_mhz"]
        lines.append(
            f"| `{point['fold']}` | {point['initiation_interval']} | {point['latency']} | "
            f"{point['size']:,.0f} | {point['ffs']:,} | {point['bram']} | "
            f"{'—' if fmax is None else f'{fmax:.1f}'} | "
            f"{_rate(point['throughput'], speed_unit)} | {'●' if point['front'] else ''} |"
        )
    lines.append("")
    lines.append(
        f"Size: the accelerator's {size_unit} (without the pin wrapper); front: no other folding "
        "is as small and as fast."
    )
    if summary.get("plot"):
        lines.append(f"Plot: {os.path.basename(summary['plot'])}")
    return "\n".join(lines) + "\n"


def plot_labels(points):
    """One label per place on the plot: ``[(throughput, size, text)]``, the foldings that land
    on the same point joined in one label (so that coincident labels do not overprint)."""
    places = {}
    for p in points:
        if not p.get("error"):
            places.setdefault((p["throughput"], p["size"]), []).append(p["fold"])
    return [(x, y, ", ".join(folds)) for (x, y), folds in places.items()]


def failed_note(points, limit=4):
    """The line under the plot naming the points that failed (None when none did)."""
    failed = [p for p in points if p.get("error")]
    if not failed:
        return None
    shown = [f"{p['fold']} ({p['error'].splitlines()[0][:40]})" for p in failed[:limit]]
    more = f" and {len(failed) - limit} more" if len(failed) > limit else ""
    return f"failed, not drawn: {'; '.join(shown)}{more}"


def plot(summary, path):
    """Draw size against throughput, front as a line, into ``path`` (PNG).

    Returns
    -------
    str or None
        ``path``, or ``None`` if matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    points = [p for p in summary["points"] if not p.get("error")]
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    xs = [p["throughput"] for p in points]
    ys = [p["size"] for p in points]
    axes.scatter(xs, ys, color="tab:gray", zorder=2, label="folding")
    front = sorted((p for p in points if p["front"]), key=lambda p: p["throughput"])
    if front:
        axes.plot(
            [p["throughput"] for p in front],
            [p["size"] for p in front],
            color="tab:blue",
            marker="o",
            zorder=3,
            label="Pareto front",
        )
    for x, y, text in plot_labels(points):
        axes.annotate(text, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if xs and max(xs) > 10 * min(xs):
        axes.set_xscale("log")
    if ys and min(ys) > 0 and max(ys) > 10 * min(ys):
        axes.set_yscale("log")
    axes.set_xlabel(summary["throughput_unit"])
    axes.set_ylabel(summary["size_unit"])
    axes.set_title(f"{summary['model']} on {summary['target']}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    note = failed_note(summary["points"])
    figure.tight_layout(rect=(0, 0.06, 1, 1) if note else None)
    if note:
        figure.text(0.01, 0.01, note, fontsize=7, color="tab:red")
    try:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png")
    finally:
        plt.close(figure)
    return path


def sweep(model, target, folds, *, output, jobs=None, vectors=16, **options):
    """Compile ``model`` with each folding, synthesize each for ``target``, find the front.

    Parameters
    ----------
    model : str
        A ``tnn/1`` description.
    target : str
        A name in :data:`gen.flow.targets.TARGETS`.
    folds : list of str
        Folding specs, as ``tnngen verilog --fold`` takes them (``unrolled``, ``PE,SIMD``,
        ``L:PE,SIMD;...``).
    output : str
        Folder for the points (``<output>/<fold>/``) and the sweep's reports; created if
        missing.
    jobs : int, optional
        Points run at once (default: the number of cores).
    vectors : int
        Test vectors written with each accelerator.
    **options
        Passed to :func:`gen.flow.synth.synthesize` (``freq``, ``tools``, ``timeout``,
        ``pin_width``, ``place_and_route``, ``liberty``).

    Returns
    -------
    dict
        The summary written to ``sweep-<target>.json``: ``points`` (each with ``fold``,
        ``directory``, ``initiation_interval``, ``latency``, ``size``, ``ffs``, ``bram``,
        ``fmax_mhz``, ``throughput``, ``front``; or ``error``), units, ``plot`` (the PNG's path,
        or ``None`` with ``plot_message``).

    Raises
    ------
    SweepError
        No foldings, a repeated one, one that does not fit the model, or bad ``jobs``.
    gen.network.DescriptionError
        A malformed description.
    gen.flow.errors.SynthInputError
        An unknown target.
    """
    target = get_target(target)
    if not folds:
        raise SweepError("give at least one folding (--folds)")
    if len(set(folds)) != len(folds):
        raise SweepError("a folding is given twice")
    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        raise SweepError(f"jobs must be a positive integer, not {jobs!r}")
    net = network.load(model)
    for fold in folds:
        try:
            parse_fold(fold, net)
        except CompileError as exc:
            raise SweepError(f"fold {fold!r}: {exc}") from None
    os.makedirs(output, exist_ok=True)
    labels, directories = [], []
    for fold in folds:
        slug = _slug(fold)
        while slug in labels:
            slug += "_"
        labels.append(slug)
        directories.append(os.path.join(output, slug))

    workers = min(jobs or os.cpu_count() or 1, len(folds))
    results = [None] * len(folds)
    # Spawned workers: no fork of a process that may hold threads or open tool pipes.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(_point, model, fold, target.name, directory, label, options, vectors): k
            for k, (fold, directory, label) in enumerate(
                zip(folds, directories, labels, strict=True)
            )
        }
        for future in as_completed(futures):
            results[futures[future]] = future.result()

    points = []
    for fold, directory, result in zip(folds, directories, results, strict=True):
        if "error" in result:
            points.append({"fold": fold, "directory": directory, **result})
            continue
        report = result["report"]
        size, size_unit = _size(report)
        speed, speed_unit = _throughput(report)
        acc = report["resources"]["accelerator"] or report["resources"]["total"]
        perf = report["performance"]
        points.append(
            {
                "fold": fold,
                "directory": directory,
                "initiation_interval": perf["initiation_interval"],
                "latency": perf["latency_cycles"],
                "size": size,
                "luts": acc.get("luts"),
                "ffs": acc.get("ffs"),
                "bram": acc.get("bram"),
                "fmax_mhz": perf.get("fmax_mhz"),
                "throughput": speed,
                "predicted_luts": (report.get("predicted") or {}).get("luts"),
                "report": os.path.join(directory, f"synth-{target.name}.json"),
            }
        )
    good = [p for p in points if "error" not in p]
    units = {(p["size"] is not None) for p in good}
    front = set()
    if good and units == {True}:
        indices = pareto_front([(p["size"], p["throughput"]) for p in good])
        front = {id(good[k]) for k in indices}
    for p in good:
        p["front"] = id(p) in front
    first = next((r["report"] for r in results if "report" in r), None)
    summary = {
        "format": REPORT_FORMAT,
        "model": net.name,
        "description": os.path.abspath(model),
        "target": target.name,
        "size_unit": _size(first)[1] if first else None,
        "throughput_unit": _throughput(first)[1] if first else None,
        "points": points,
        "plot": None,
    }
    if good:
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
    return summary
