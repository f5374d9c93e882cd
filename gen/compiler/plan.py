"""Planning: each layer's engine and folding, chosen from the spec and the resource model.

:func:`plan` reads a folding spec (:func:`gen.compiler.folds.parse_fold`), and for layers left
``auto`` takes the cheapest folding by the resource model (:mod:`gen.compiler.cost`) that meets
``target_ii``, or the fastest that fits ``max_luts``. Each :class:`LayerPlan` carries its
predicted cycles and resources and the pipeline depth its blocks will be built with.
"""

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from hw.argmax import default_stages as argmax_stages
from hw.dotproduct import default_stages as dot_stages
from hw.dotproduct import digit_matrix
from hw.foldsizes import default_stages as folded_stages
from hw.products import can_multiply, heap_column_bits

from ..network import Conv2d, MaxPool
from ..network.ranges import analyze_ranges
from . import cost, fit
from .estimate import (
    layer_input_encoding,
    layer_resources,
    output_estimate,
)
from .folds import CompileError, divisors, parse_fold

__all__ = [
    "LayerPlan",
    "Plan",
    "plan",
    "describe_plan",
    "MULTIPLY_CHOICES",
]

#: ``--multiply``: how folded engines multiply ``intN`` weights. ``logic``: AND arrays;
#: ``dsp``: a multiplier per product wherever an engine can (intN weights, non-binary inputs);
#: ``auto``: with a part that has multiplier blocks, each auto layer's folding is weighed with
#: and without them where the part's synthesis maps its products, else logic.
MULTIPLY_CHOICES = ("auto", "dsp", "logic")


@dataclass(frozen=True)
class LayerPlan:
    """One layer's engine: ``engine`` is ``unrolled``, ``folded`` or ``pool``.

    ``positions`` is the number of output positions a conv2d engine computes per frame (1 for
    dense). ``initiation_interval`` is in cycles per input vector (per frame for conv2d).
    ``stages`` is the pipeline depth of the engine's sums (a :class:`hw.dotproduct.DotProduct`'s
    adder tree, a :class:`hw.folded.FoldedMatrixVector`'s SIMD sums; None for a pool): decided
    here, once, from the block's own default, and read by the estimate, the build and the
    metadata. ``multiply`` is how a folded engine multiplies (``logic`` or ``dsp``,
    :class:`hw.folded.FoldedMatrixVector`); ``logic`` for the other engines. ``block_bits``,
    for a folded engine, splits its weight ROM: that many low bits of each word in block RAM,
    the rest in logic (None: the ROM placed as ``--rom`` says).
    """

    index: int
    type: str
    engine: str
    pe: int
    simd: int
    positions: int
    initiation_interval: int
    predicted: cost.Resources
    stages: int | None = None
    multiply: str = "logic"
    block_bits: int | None = None


@dataclass
class Plan:
    """Every layer's :class:`LayerPlan`, in order, and the options that chose them.

    ``argmax_stages`` is the pipeline depth of the final argmax, or of the per-position one of
    a ``class_map`` output (None for ``values`` output).
    """

    net: object
    layers: list
    options: dict = field(default_factory=dict)
    argmax_stages: int | None = None

    @property
    def initiation_interval(self):
        return max(p.initiation_interval for p in self.layers)

    @property
    def output_predicted(self):
        """The final argmax's :class:`gen.compiler.cost.Resources` (:func:`output_estimate`)."""
        return output_estimate(self.net, self.argmax_stages)

    @property
    def predicted(self):
        """The layers' predictions and the final argmax's."""
        total = self.output_predicted
        for p in self.layers:
            total = total + p.predicted
        return total


def _positions(net, index):
    shape_out = net.shapes[index + 1]
    return int(np.prod(shape_out[:2])) if len(shape_out) == 3 else 1


def _scan_cycles(net, index):
    """Cycles a sliding window scans per frame: real pixels and the padding that windows use."""
    layer, shape = net.layers[index], net.shapes[index]
    out = net.shapes[index + 1]
    cycles = 1
    for axis in (0, 1):
        k, s, p = layer.kernel[axis], layer.stride[axis], layer.padding[axis]
        cycles *= max(p + shape[axis], (out[axis] - 1) * s + k)
    return cycles


def can_use_multipliers(net, index):
    """Whether layer ``index``, folded, can multiply in multiplier blocks (``multiply="dsp"``)."""
    layer = net.layers[index]
    if isinstance(layer, MaxPool):
        return False
    return can_multiply(layer_input_encoding(net, index), layer.weight_type)


def _layer_plan(net, index, fold, ranges, multiply="logic"):
    layer = net.layers[index]
    positions = _positions(net, index)
    if isinstance(layer, MaxPool):
        ii = int(np.prod(net.shapes[index][:2]))  # one input pixel per cycle
        return LayerPlan(
            index,
            "maxpool",
            "pool",
            1,
            1,
            positions,
            ii,
            layer_resources(net, index, "pool", 1, 1, None, ranges),
        )
    rows, cols = layer.weights.shape
    if fold == "unrolled":
        pe, simd, engine = rows, cols, "unrolled"
        per_position = 1
        stages = dot_stages(digit_matrix(layer.weights)[0])
    else:
        pe, simd = fold
        engine = "folded"
        per_position = (rows // pe) * (cols // simd)
        if multiply == "dsp" and not can_use_multipliers(net, index):
            multiply = "logic"
        encoding = layer_input_encoding(net, index)
        stages = folded_stages(simd, heap_column_bits(encoding, layer.weight_type, multiply))
    if engine != "folded":
        multiply = "logic"
    ii = positions * per_position
    if isinstance(layer, Conv2d):
        ii = max(ii, _scan_cycles(net, index))
    return LayerPlan(
        index,
        layer.type,
        engine,
        pe,
        simd,
        positions,
        ii,
        layer_resources(net, index, engine, pe, simd, stages, ranges, multiply),
        stages,
        multiply,
    )


def _candidates(net, index, ranges, multiplies=("logic",)):
    """Every folding of layer ``index``: unrolled, and each (PE, SIMD) with each of
    ``multiplies`` that the layer can use."""
    layer = net.layers[index]
    rows, cols = layer.weights.shape
    plans = [_layer_plan(net, index, "unrolled", ranges)]
    kinds = [k for k in multiplies if k == "logic" or can_use_multipliers(net, index)]
    for pe in divisors(rows):
        for simd in divisors(cols):
            if (pe, simd) != (rows, cols):
                plans.extend(_layer_plan(net, index, (pe, simd), ranges, k) for k in kinds)
    return plans


#: A weight ROM of fewer bits than this is not split between block RAM and logic.
MIN_SPLIT_BITS = 4096
#: Splits weighed per folding: 0, 1/8, ..., 8/8 of the word's block RAM primitives.
SPLIT_STEPS = 8


def _with_splits(plans, net, index, ranges, rom, part):
    """``plans`` and, on a part with ``--rom auto``, each folded plan's weight ROM split between
    block RAM and logic at whole primitives' widths (:data:`SPLIT_STEPS` of them, all-logic and
    all-block included), for wide, shallow ROMs whose block RAMs would run out first."""
    if part is None or rom != "auto":
        return plans
    family = fit.part_family(part)
    out = []
    for lp in plans:
        out.append(lp)
        if lp.engine != "folded":
            continue
        depth, word = fit.roms(net, lp, ranges)[0]  # the weight ROM
        unit = fit.block_width(depth, family)
        if unit == 0 or word * depth < MIN_SPLIT_BITS:
            continue
        units = -(-word // unit)
        steps = range(SPLIT_STEPS + 1)
        splits = sorted({min(word, round(units * i / SPLIT_STEPS) * unit) for i in steps})
        out.extend(dataclasses.replace(lp, block_bits=b) for b in splits)
    return out


def _multiplies(net, index, multiply, part):
    """The ``multiply`` kinds an auto layer's foldings are weighed with (see
    :data:`MULTIPLY_CHOICES`)."""
    if multiply != "auto":
        return (multiply,)
    if part is None or not fit.budget(part, 1.0).dsp or not can_use_multipliers(net, index):
        return ("logic",)
    family = fit.part_family(part)
    layer = net.layers[index]
    if not fit.multiplier_maps(family, layer_input_encoding(net, index), layer.weight_type):
        return ("logic",)
    return ("logic", "dsp")


def plan(
    net,
    fold="unrolled",
    *,
    target_ii=None,
    max_luts=None,
    rom="auto",
    part=None,
    utilization=fit.DEFAULT_UTILIZATION,
    multiply="auto",
):
    """Choose every layer's engine: returns a :class:`Plan`.

    Layers given as ``auto`` (see :func:`parse_fold`) get the cheapest folding (fewest
    predicted LUTs) whose initiation interval is at most ``target_ii``; with ``max_luts``
    instead, the smallest initiation interval whose total predicted LUTs fit; with ``part`` (a
    synthesis target with known resources), the smallest initiation interval whose LUTs,
    flip-flops and block RAMs, predicted in the part's family's units with ``rom``'s placement
    (:mod:`gen.compiler.fit`), fit within ``utilization`` of the part. ``part`` with
    ``target_ii`` checks that the folding for that interval fits. With none of them, ``auto``
    means unrolled; any of them with no ``auto`` layer is an error (it would have nothing to
    choose). ``multiply`` (:data:`MULTIPLY_CHOICES`) is how folded engines multiply ``intN``
    weights; a layer whose folding the spec fixes multiplies in logic unless it is ``dsp``.
    """
    if part is not None and max_luts is not None:
        raise CompileError("give a part or a LUT limit, not both")
    if multiply not in MULTIPLY_CHOICES:
        raise CompileError(
            f"multiply: expected one of {', '.join(MULTIPLY_CHOICES)}, not {multiply!r}"
        )
    folds = parse_fold(fold, net)
    ranges = analyze_ranges(net)
    fixed_multiply = "dsp" if multiply == "dsp" else "logic"
    fixed = {
        k: _layer_plan(net, k, f, ranges, fixed_multiply) for k, f in folds.items() if f != "auto"
    }
    auto = [k for k, f in folds.items() if f == "auto"]
    pools = {
        k: _layer_plan(net, k, None, ranges)
        for k, layer in enumerate(net.layers)
        if isinstance(layer, MaxPool)
    }
    options = {
        "fold": fold if isinstance(fold, str) else json.dumps(fold, sort_keys=True),
        "target_ii": target_ii,
        "max_luts": max_luts,
        "rom": rom,
        "multiply": multiply,
    }
    if part is not None:
        options.update(part=part, utilization=utilization)
    # the argmax's share while the layers are chosen: as after a folded last layer (one more
    # register, on the scores), the larger of its two forms
    argmax = _argmax_stages(net, last_folded=True)
    limited = target_ii is not None or max_luts is not None or part is not None
    if not auto and limited:
        given = (
            "target II" if target_ii is not None else "LUT limit" if max_luts else "part to fill"
        )
        raise CompileError(
            f"a {given} applies to 'auto' layers, and the folding {options['fold']!r} fixes "
            "every layer: give --fold auto, or leave the layers to choose out of the spec"
        )
    if not auto or not limited:
        chosen = {k: _layer_plan(net, k, "unrolled", ranges) for k in auto}
        return _finished(net, {**fixed, **pools, **chosen}, options)
    candidates = {
        k: _with_splits(
            _candidates(net, k, ranges, _multiplies(net, k, multiply, part)),
            net,
            k,
            ranges,
            rom,
            part,
        )
        for k in auto
    }
    floor = max([p.initiation_interval for p in (*fixed.values(), *pools.values())] + [1])
    measure, limit = _resource_measure(net, ranges, part, utilization, max_luts, rom)

    def cheapest(ii):
        chosen = {}
        for k, plans in candidates.items():
            fitting = [p for p in plans if p.initiation_interval <= ii]
            if not fitting:
                return None
            chosen[k] = min(
                fitting, key=lambda p: (_share(measure(p), limit), p.initiation_interval)
            )
        return chosen

    # The final argmax takes its share of the limit, and on a part the pin wrapper too.
    output = output_estimate(net, argmax)
    if part is None:
        outside = fit.PartResources(output.luts, 0, 0)
    else:
        family = fit.part_family(part)
        outside = fit.wrapper(net, family) + fit.output_resources(output, family)

    def total(attempt):
        parts = [measure(p) for p in (*fixed.values(), *pools.values(), *attempt.values())]
        return sum(parts, outside)

    def fitting(ii):
        """The cheapest folding at ``ii`` if it fits, else any that fits (a search over each
        layer's Pareto-optimal foldings), else None."""
        attempt = cheapest(ii)
        if attempt is None or fit.fits(total(attempt), limit):
            return attempt
        base = total({})
        fronts = {}
        for k, plans in candidates.items():
            fronts[k] = _pareto([p for p in plans if p.initiation_interval <= ii], measure, limit)
        return _search(list(fronts.items()), base, limit, measure)

    if target_ii is not None:
        chosen = cheapest(max(target_ii, floor))
        if chosen is None:
            best = max(min(p.initiation_interval for p in plans) for plans in candidates.values())
            raise CompileError(
                f"target II {target_ii} cycles is out of reach: the fastest "
                f"folding of the auto layers needs {best}"
            )
        if floor > target_ii:
            raise CompileError(
                f"target II {target_ii} cycles is out of reach: fixed layers need {floor}"
            )
        if part is not None and not fit.fits(total(chosen), limit):
            raise CompileError(
                f"the folding for target II {target_ii} is predicted at "
                f"{fit.describe(total(chosen))}, over {utilization:.0%} of {part} "
                f"({fit.describe(limit)}): give a larger --target-ii, or leave it out to take the "
                "fastest folding that fits"
            )
    else:
        chosen = None
        iis = sorted(
            {
                p.initiation_interval
                for plans in candidates.values()
                for p in plans
                if p.initiation_interval >= floor
            }
            | {floor}
        )
        for ii in iis:
            attempt = fitting(ii)
            if attempt is not None and fit.fits(total(attempt), limit):
                chosen = attempt
                break
        if chosen is None and part is None:
            raise CompileError(f"no folding fits in {max_luts} predicted LUTs")
        if chosen is None:
            smallest = total(cheapest(iis[-1]))
            raise CompileError(
                f"no folding fits {utilization:.0%} of {part} ({fit.describe(limit)}): the "
                f"smallest folding is predicted at {fit.describe(smallest)}; choose a larger part "
                "or a higher --utilization"
            )
    if part is not None:
        chosen = _use_idle_multipliers(chosen, candidates, total, measure, limit)
        chosen = _use_idle_block_ram(chosen, candidates, total, measure, limit)
    return _finished(net, {**fixed, **pools, **chosen}, options)


def _finished(net, layers, options):
    """The plan of the chosen layer plans (by index), its argmax as the last layer needs."""
    layers = _ordered(layers)
    last_folded = bool(layers) and layers[-1].engine == "folded"
    return Plan(net, layers, options, _argmax_stages(net, last_folded=last_folded))


def _use_idle_multipliers(chosen, candidates, total, measure, limit):
    """``chosen`` with layers moved to their multiplier-block variant (the same folding with
    ``multiply="dsp"``) while the part's multipliers last: the layers that save the most logic
    cells per multiplier first, each only if the whole still fits ``limit``."""
    swaps = []
    for k, lp in chosen.items():
        if lp.multiply != "logic" or lp.engine != "folded":
            continue
        for other in candidates[k]:
            same = (other.pe, other.simd, other.block_bits) == (lp.pe, lp.simd, lp.block_bits)
            if same and other.multiply == "dsp":
                here, there = measure(lp), measure(other)
                if there.dsp and there.cells < here.cells:
                    swaps.append(((here.cells - there.cells) / there.dsp, k, other))
    result = dict(chosen)
    for _, k, other in sorted(swaps, key=lambda swap: (-swap[0], swap[1])):
        attempt = {**result, k: other}
        if fit.fits(total(attempt), limit):
            result = attempt
    return result


def _use_idle_block_ram(chosen, candidates, total, measure, limit):
    """``chosen`` with split weight ROMs moved further into block RAM (the same folding with a
    larger ``block_bits``) while the part's block RAMs last: one split step at a time, the one
    that saves the most logic cells per block RAM first, each only if the whole still fits
    ``limit``. The cheapest folding weighs a block RAM against the LUTs it saves as shares of
    the part; once the interval is chosen, blocks left idle are better spent on the logic ROMs,
    whose LUTs crowd the placement of the rest."""
    result = dict(chosen)
    while True:
        moves = []
        for k, lp in result.items():
            if lp.engine != "folded" or lp.block_bits is None:
                continue
            larger = [
                other
                for other in candidates[k]
                if (other.pe, other.simd, other.multiply) == (lp.pe, lp.simd, lp.multiply)
                and other.block_bits is not None
                and other.block_bits > lp.block_bits
            ]
            if not larger:
                continue
            step = min(larger, key=lambda other: other.block_bits)
            here, there = measure(lp), measure(step)
            if there.bram > here.bram and there.cells < here.cells:
                moves.append(((here.cells - there.cells) / (there.bram - here.bram), k, step))
        for _, k, step in sorted(moves, key=lambda move: (-move[0], move[1])):
            attempt = {**result, k: step}
            if fit.fits(total(attempt), limit):
                result = attempt
                break
        else:
            return result


_UNLIMITED = 1 << 62
#: Combinations :func:`_search` tries before it gives an interval up.
_SEARCH_BUDGET = 100_000
_KEYS = ("luts", "cells", "ffs", "bram", "dsp")


def _pareto(plans, measure, limit):
    """The layer plans that no other plan beats in every figure, cheapest share first."""
    scored = sorted(((measure(p), p) for p in plans), key=lambda rp: _share(rp[0], limit))
    front = []
    for r, p in scored:
        if not any(all(getattr(q, key) <= getattr(r, key) for key in _KEYS) for q, _ in front):
            front.append((r, p))
    return front


def _search(fronts, base, limit, measure):
    """A choice from each layer's front whose total with ``base`` fits ``limit``: depth first,
    cheapest share first, skipping a branch as soon as its partial total does not fit. None if
    there is none, or none within :data:`_SEARCH_BUDGET` steps."""
    budget = [_SEARCH_BUDGET]

    def walk(i, sofar, chosen):
        if i == len(fronts):
            return dict(chosen)
        k, front = fronts[i]
        for r, p in front:
            budget[0] -= 1
            if budget[0] < 0:
                return None
            partial = sofar + r
            if not fit.fits(partial, limit):
                continue
            chosen.append((k, p))
            found = walk(i + 1, partial, chosen)
            chosen.pop()
            if found is not None:
                return found
        return None

    return walk(0, base, [])


def _resource_measure(net, ranges, part, utilization, max_luts, rom):
    """``(measure, limit)``: a layer plan's resources as the limit counts them, and the limit
    (a part's budget in its family's units, or ``max_luts`` iCE40 LUTs, or none)."""
    if part is None:
        limit = fit.PartResources(
            max_luts or _UNLIMITED, _UNLIMITED, _UNLIMITED, _UNLIMITED, _UNLIMITED
        )
        return (lambda p: fit.PartResources(p.predicted.luts, 0, 0)), limit
    family = fit.part_family(part)
    limit = fit.budget(part, utilization)
    return (lambda p: fit.predict_layer(net, p, ranges, family, rom)), limit


def _share(resources, limit):
    """A layer's resources as a sum of fractions of the limit: what the cheapest folding
    minimizes (LUTs alone when only LUTs are limited)."""
    return sum(
        getattr(resources, key) / max(getattr(limit, key), 1)
        for key in ("cells", "ffs", "bram", "dsp")
    )


def _argmax_stages(net, *, last_folded):
    """The final argmax's pipeline depth (:func:`hw.argmax.default_stages`), none for values;
    after a folded last layer it registers the scores as they arrive, which come out of the
    engine's output-queue multiplexer."""
    if net.output == "argmax":
        count = int(np.prod(net.output_shape))
    elif net.output == "class_map":  # an argmax over each position's channels
        count = net.output_shape[-1]
    else:
        return None
    return argmax_stages(count, registered_input=last_folded)


def _ordered(plans):
    return [plans[k] for k in sorted(plans)]


def describe_plan(the_plan):
    """A table of the chosen folding with predicted cycles and resources."""
    lines = [
        f"{'#':>2}  {'layer':<8} {'engine':<9} {'PE':>5} {'SIMD':>5} {'II':>8} "
        f"{'LUTs':>8} {'carry':>7} {'FFs':>7} {'ROM bits':>9}"
    ]
    for p in the_plan.layers:
        r = p.predicted
        pe = "-" if p.engine == "pool" else str(p.pe)
        simd = "-" if p.engine == "pool" else str(p.simd)
        lines.append(
            f"{p.index:>2}  {p.type:<8} {p.engine:<9} {pe:>5} {simd:>5} "
            f"{p.initiation_interval:>8} {r.luts:>8} {r.carry:>7} {r.ffs:>7} "
            f"{r.rom_bits:>9}"
        )
    t = the_plan.predicted
    lines.append(
        f"{'':>2}  {'total':<8} {'':<9} {'':>5} {'':>5} "
        f"{the_plan.initiation_interval:>8} {t.luts:>8} {t.carry:>7} {t.ffs:>7} "
        f"{t.rom_bits:>9}"
    )
    for p in the_plan.layers:
        notes = []
        if p.multiply == "dsp":
            notes.append("products in DSP blocks")
        if p.block_bits is not None:
            word = p.pe * p.simd * fit.weight_bits(the_plan.net.layers[p.index].weight_type)
            notes.append(
                f"weight ROM: {p.block_bits} of its {word} bits in block RAM, the rest in logic"
            )
        if notes:
            lines.append(f"layer {p.index}: {'; '.join(notes)}")
    return "\n".join(lines)
