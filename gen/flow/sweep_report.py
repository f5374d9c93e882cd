"""The sweep's report: its Markdown table (with the cost model's accuracy, the Fmax spread over
seeds and the commands that rebuild the front) and its plot of size against throughput."""

import os

from ..files import atomic_path

__all__ = ["format_markdown", "cost_model_line", "plot", "plot_labels", "failed_note"]


def _rate(value, unit):
    if unit == "inferences/cycle":
        return f"{value:.4g}"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}"
    return f"{value:.3g}"


def _fmax(point):
    fmax = point["fmax_mhz"]
    if fmax is None:
        return "—"
    spread = point.get("fmax_spread_mhz")
    if spread is None:
        return f"{fmax:.1f}"
    return f"{fmax:.1f} ({spread[0]:.1f}–{spread[1]:.1f}, {len(point['seeds'])} seeds)"


def _ratio(point):
    ratio = point.get("lut_ratio")
    return "—" if ratio is None else f"{ratio:.2f}"


def cost_model_line(summary):
    """How far the cost model's LUTs were from synthesis over the sweep (None without data)."""
    model = summary.get("cost_model")
    if not model:
        return None
    return (
        f"Cost model: measured / predicted LUTs {model['lut_ratio_min']:.2f} to "
        f"{model['lut_ratio_max']:.2f} (mean {model['lut_ratio_mean']:.2f}) over "
        f"{model['points']} point{'s' if model['points'] != 1 else ''}."
    )


def format_markdown(summary):
    """The sweep as a Markdown table, front points marked, then the cost model's accuracy and
    the command that rebuilds each front point."""
    target = summary["target"]
    size_unit, speed_unit = summary["size_unit"], summary["throughput_unit"]
    lines = [
        f"## Sweep of {summary['model']} on {target}",
        "",
        f"| fold | II | latency | {size_unit} | LUTs / predicted | FFs | BRAM | Fmax (MHz) | "
        f"{speed_unit} | front |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for point in summary["points"]:
        if point.get("error"):
            lines.append(
                f"| `{point['fold']}` | failed: {point['error'].splitlines()[0]} |||||||||"
            )
            continue
        lines.append(
            f"| `{point['fold']}` | {point['initiation_interval']} | {point['latency']} | "
            f"{point['size']:,.0f} | {_ratio(point)} | {point['ffs']:,} | {point['bram']} | "
            f"{_fmax(point)} | {_rate(point['throughput'], speed_unit)} | "
            f"{'●' if point['front'] else ''} |"
        )
    lines.append("")
    lines.append(
        f"Size: the accelerator's {size_unit} (without the pin wrapper); front: no other folding "
        "is as small and as fast."
    )
    cost = cost_model_line(summary)
    if cost:
        lines.append(cost)
    front = [p for p in summary["points"] if p.get("front") and p.get("rebuild")]
    if front:
        lines += ["", "### Front, and the commands that rebuild it", ""]
        for p in sorted(front, key=lambda p: p["size"]):
            lines.append(
                f"- `{p['fold']}`: {p['size']:,.0f} {size_unit}, "
                f"{_rate(p['throughput'], speed_unit)} {speed_unit}"
            )
            lines.append(f"  `{p['rebuild']}`")
        lines.append("")
    if summary.get("engine"):
        cache = summary.get("cache")
        reused = (
            f"; cache {cache['directory']}: {cache['hits']} of {cache['hits'] + cache['misses']} "
            "runs reused"
            if cache
            else "; no cache"
        )
        lines.append(f"Ran on: {summary['engine']}{reused}.")
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
