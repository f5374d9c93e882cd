"""Automatic design-space exploration: the foldings worth synthesizing for one model.

:func:`explore` walks initiation intervals on a geometric grid (powers of two) from the fastest
the model allows (every layer unrolled) to the slowest useful one (every layer at ``PE = SIMD =
1``, beyond which no folding is cheaper), asks the planner (:func:`gen.compiler.plan.plan`, the
one behind ``--target-ii``) for the cheapest balanced folding at each, and keeps the distinct
ones. Each candidate is a folding spec that :func:`gen.compiler.folds.parse_fold` reads back
into the same plan. Given a part, candidates whose prediction in the part's family's units
(:func:`gen.compiler.fit.predict`: LUTs, logic cells, flip-flops and block RAMs), with the pin
wrapper around them (:func:`gen.compiler.fit.wrapper`, as ``--part`` counts it), exceeds the part
are dropped.
"""

from dataclasses import dataclass

from . import fit
from .folds import CompileError
from .plan import plan

__all__ = ["Candidate", "explore", "ii_grid", "fold_spec"]


@dataclass(frozen=True)
class Candidate:
    """One folding found by :func:`explore`: its spec, initiation interval (cycles) and
    predicted LUTs, and the grid interval it was planned for."""

    fold: str
    initiation_interval: int
    predicted_luts: int
    target_ii: int


def ii_grid(fastest, slowest):
    """``fastest``, the powers of two between, and ``slowest`` (ascending, distinct)."""
    if not (isinstance(fastest, int) and isinstance(slowest, int) and 1 <= fastest <= slowest):
        raise ValueError(
            f"Interval bounds must be integers with 1 <= fastest <= slowest, not "
            f"{fastest!r}, {slowest!r}"
        )
    grid = [fastest]
    step = 1
    while step <= fastest:
        step *= 2
    while step < slowest:
        grid.append(step)
        step *= 2
    if slowest != fastest:
        grid.append(slowest)
    return grid


def fold_spec(the_plan):
    """The per-layer spec (``"0:unrolled;2:4,16"``) that fixes every layer as ``the_plan``
    does."""
    parts = []
    for layer in the_plan.layers:
        if layer.engine == "pool":
            continue
        item = "unrolled" if layer.engine == "unrolled" else f"{layer.pe},{layer.simd}"
        parts.append(f"{layer.index}:{item}")
    return ";".join(parts)


def explore(net, *, max_luts=None, part=None):
    """The distinct cheapest foldings of ``net`` over the interval grid, fastest first.

    Parameters
    ----------
    net : gen.network.Network
    max_luts : int, optional
        Drop candidates predicted above this many LUTs (iCE40 units).
    part : str, optional
        Drop candidates that, with the pin wrapper, do not fit this synthesis target's LUTs,
        logic cells, flip-flops and block RAMs (all of the part: :func:`gen.compiler.fit.budget`
        at utilization 1).

    Returns
    -------
    list of Candidate
        Ascending initiation interval and, since a slower candidate is kept only when it is
        predicted cheaper, descending predicted LUTs.

    Raises
    ------
    CompileError
        If the network cannot be compiled, or no candidate fits ``max_luts`` or ``part``.
    """
    fastest = plan(net, "unrolled").initiation_interval
    slowest = max(fastest, plan(net, "1,1").initiation_interval)
    found, plans = [], {}
    for target in ii_grid(fastest, slowest):
        chosen = plan(net, "auto", target_ii=target)
        candidate = Candidate(
            fold_spec(chosen), chosen.initiation_interval, chosen.predicted.luts, target
        )
        # The planner's choice at a looser interval is never dearer; keep only real savings.
        if found and (
            candidate.fold == found[-1].fold or candidate.predicted_luts >= found[-1].predicted_luts
        ):
            continue
        found.append(candidate)
        plans[candidate.fold] = chosen
    if max_luts is not None:
        found = _keep(found, lambda c: c.predicted_luts <= max_luts, f"{max_luts:,} LUTs")
    if part is not None:
        family, limit = fit.part_family(part), fit.budget(part, 1.0)
        outside = fit.wrapper(net, family)
        predicted = {c.fold: fit.predict(plans[c.fold], family) + outside for c in found}
        found = _keep(found, lambda c: fit.fits(predicted[c.fold], limit), part, predicted)
    return found


def _keep(found, fitting, where, predicted=None):
    """The candidates for which ``fitting`` holds; CompileError naming the cheapest if none."""
    kept = [c for c in found if fitting(c)]
    if not kept:
        cheapest = min(found, key=lambda c: c.predicted_luts)
        shown = (
            f"{cheapest.predicted_luts:,} LUTs"
            if predicted is None
            else fit.describe(predicted[cheapest.fold])
        )
        raise CompileError(f"no folding fits {where}: the cheapest is predicted at {shown}")
    return kept
