"""The compiler: from a ``tnn/1`` description to a streaming accelerator and its Verilog.

The flow is a list of named steps, each a function ``step(state) -> state``:

1. ``plan``: choose each layer's engine and folding (``--fold``, ``--target-ii``,
   ``--max-luts``), with its predicted cycles and resources;
2. ``build``: instantiate the ``hw`` blocks of every layer as one stream pipeline (the
   :class:`Accelerator`), reading each block's latency and initiation interval;
3. ``emit``: convert to Verilog and describe it in the metadata (docs/accelerator.md).

Layers become engines:

- ``dense``, unrolled: :class:`hw.dotproduct.DotProduct` (constant weights as wiring, one
  vector per cycle) followed by a :class:`hw.threshold.ThresholdUnit`;
- ``dense``, folded: :class:`hw.folded.FoldedMatrixVector` (``pe`` rows by ``simd`` columns per
  cycle, weights and thresholds in ROM);
- ``conv2d`` and ``maxpool`` work on a pixel stream: a sliding window feeds one window per
  transfer to the same dot-product engines; serializers convert between whole vectors and
  pixel streams where needed;
- ``argmax`` output: :class:`hw.argmax.Argmax`.
"""

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.encoding import ValueEncoding

from . import cost, golden
from .network import Conv2d, Dense, MaxPool

__all__ = [
    "CompileError",
    "LayerPlan",
    "Plan",
    "Accelerator",
    "parse_fold",
    "plan",
    "build",
    "compile_network",
    "Compiled",
    "STEPS",
]

FORMAT = "tnngen-accelerator/1"


class CompileError(ValueError):
    """Options that do not fit the network (a folding that does not divide, an unmet target)."""


# --- the folding spec ----------------------------------------------------------------------------


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def parse_fold(spec, net):
    """Per-layer folding from a spec: a dict ``{layer index: "unrolled" | "auto" | (pe, simd)}``.

    ``spec`` is one of: ``"unrolled"``; ``"auto"``; ``"PE,SIMD"`` (every dense and conv2d
    layer); ``"L:PE,SIMD;L:unrolled;..."`` (per layer, the rest ``auto``); a dict or list of
    the same per layer (as read from a JSON file: ``{"0": [16, 49], "2": "unrolled"}``).
    Raises :class:`CompileError` naming the layer for anything that does not fit.
    """
    weighted = [k for k, layer in enumerate(net.layers) if not isinstance(layer, MaxPool)]
    if isinstance(spec, str):
        text = spec.strip()
        if text in ("unrolled", "auto"):
            return {k: text for k in weighted}
        if ":" not in text:
            return {k: _fold_item(text, net, k) for k in weighted}
        folds = {k: "auto" for k in weighted}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            index_text, _, item = part.partition(":")
            index = _layer_index(index_text, net, weighted)
            folds[index] = _fold_item(item, net, index)
        return folds
    if isinstance(spec, list):
        spec = {str(k): v for k, v in enumerate(spec) if v is not None}
    if isinstance(spec, dict):
        folds = {k: "auto" for k in weighted}
        for index_text, item in spec.items():
            index = _layer_index(str(index_text), net, weighted)
            folds[index] = _fold_item(item, net, index)
        return folds
    raise CompileError(
        f"fold: expected 'unrolled', 'auto', 'PE,SIMD' or a per-layer spec, not {spec!r}"
    )


def _layer_index(text, net, weighted):
    try:
        index = int(text)
    except ValueError:
        raise CompileError(f"fold: {text!r} is not a layer index") from None
    if index not in weighted:
        raise CompileError(
            f"fold: layer {index} is not a dense or conv2d layer of this network (those are "
            f"{', '.join(map(str, weighted))})"
        )
    return index


def _fold_item(item, net, index):
    if item in ("unrolled", "auto"):
        return item
    if isinstance(item, str):
        parts = item.split(",")
        try:
            item = [int(p) for p in parts]
        except ValueError:
            raise CompileError(
                f"fold: layer {index}: expected 'unrolled', 'auto' or 'PE,SIMD', not {item!r}"
            ) from None
    if not (
        isinstance(item, (list, tuple))
        and len(item) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
    ):
        raise CompileError(
            f"fold: layer {index}: expected 'unrolled', 'auto' or [PE, SIMD], not {item!r}"
        )
    pe, simd = item
    layer = net.layers[index]
    rows, cols = layer.weights.shape
    if pe < 1 or rows % pe:
        raise CompileError(
            f"fold: layer {index} ({layer.type}): PE {pe} must divide its "
            f"{rows} output rows (divisors: {_short(_divisors(rows))})"
        )
    if simd < 1 or cols % simd:
        raise CompileError(
            f"fold: layer {index} ({layer.type}): SIMD {simd} must divide its "
            f"fan-in of {cols} (divisors: {_short(_divisors(cols))})"
        )
    return (pe, simd)


def _short(values):
    return (
        ", ".join(map(str, values))
        if len(values) <= 12
        else (", ".join(map(str, values[:6])) + ", ..., " + ", ".join(map(str, values[-3:])))
    )


# --- planning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerPlan:
    """One layer's engine: ``engine`` is ``unrolled``, ``folded`` or ``pool``.

    ``positions`` is the number of output positions a conv2d engine computes per frame (1 for
    dense). ``initiation_interval`` is in cycles per input vector (per frame for conv2d).
    """

    index: int
    type: str
    engine: str
    pe: int
    simd: int
    positions: int
    initiation_interval: int
    predicted: cost.Resources


@dataclass
class Plan:
    net: object
    layers: list
    options: dict = field(default_factory=dict)

    @property
    def initiation_interval(self):
        return max(p.initiation_interval for p in self.layers)

    @property
    def predicted(self):
        total = cost.Resources()
        for p in self.layers:
            total = total + p.predicted
        return total


def _value_bits(value_type):
    if value_type.name == "ternary":
        return 2
    if value_type.name == "binary":
        return 1
    return encoding_of(value_type).width


def encoding_of(value_type):
    """The :class:`ValueEncoding` that carries values of a description's ``ValueType``."""
    if value_type.name == "ternary":
        return ValueEncoding.ternary()
    if value_type.name == "binary":
        return ValueEncoding.binary()
    return ValueEncoding.for_range(value_type.lo, value_type.hi)


def _unrolled_stages(layer):
    """Pipeline stages for a constant-weight tree: one register per ~3 adder levels."""
    fan = max(1, int(np.count_nonzero(layer.weights, axis=1).max()))
    return max(1, math.ceil(math.log2(fan + 1) / 3))


def _layer_estimate(net, index, engine, pe, simd, ranges):
    layer = net.layers[index]
    in_type, out_type = net.types[index], net.types[index + 1]
    in_bits = _value_bits(in_type)
    shape_in, shape_out = net.shapes[index], net.shapes[index + 1]
    if isinstance(layer, MaxPool):
        return cost.maxpool(shape_in[1], shape_in[2], layer.kernel, in_bits)
    acc_bits = ranges[index].acc_bits + (0 if ranges[index].acc_signed else 1)
    rows, cols = layer.weights.shape
    n_thr = 0 if layer.activation is None else len(layer.activation.levels) - 1
    out_bits = _value_bits(out_type)
    weight_bits = 2 if layer.weight_type == "ternary" else 1
    if engine == "unrolled":
        est = cost.unrolled_dot(
            layer.weights,
            in_bits,
            acc_bits,
            _unrolled_stages(layer),
            shared=in_type.name != "binary",
        )
        if n_thr:
            est = est + cost.threshold(rows, acc_bits, n_thr, out_bits)
    else:
        est = cost.folded(rows, cols, pe, simd, in_bits, acc_bits, n_thr, weight_bits)
    if isinstance(layer, Conv2d):
        est = est + cost.window(
            shape_in[1] + 2 * layer.padding[1], shape_in[2], layer.kernel, in_bits
        )
    del shape_out
    return est


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


def _layer_plan(net, index, fold, ranges):
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
            _layer_estimate(net, index, "pool", 1, 1, ranges),
        )
    rows, cols = layer.weights.shape
    if fold == "unrolled":
        pe, simd, engine = rows, cols, "unrolled"
        per_position = 1
    else:
        pe, simd = fold
        engine = "folded"
        per_position = (rows // pe) * (cols // simd)
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
        _layer_estimate(net, index, engine, pe, simd, ranges),
    )


def _candidates(net, index, ranges):
    layer = net.layers[index]
    rows, cols = layer.weights.shape
    plans = [_layer_plan(net, index, "unrolled", ranges)]
    for pe in _divisors(rows):
        for simd in _divisors(cols):
            if (pe, simd) != (rows, cols):
                plans.append(_layer_plan(net, index, (pe, simd), ranges))
    return plans


def plan(net, fold="unrolled", *, target_ii=None, max_luts=None):
    """Choose every layer's engine: returns a :class:`Plan`.

    Layers given as ``auto`` (see :func:`parse_fold`) get the cheapest folding (fewest
    predicted LUTs) whose initiation interval is at most ``target_ii``; with ``max_luts``
    instead, the smallest initiation interval whose total predicted LUTs fit. With neither,
    ``auto`` means unrolled.
    """
    folds = parse_fold(fold, net)
    ranges = golden.analyze_ranges(net)
    fixed = {k: _layer_plan(net, k, f, ranges) for k, f in folds.items() if f != "auto"}
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
    }
    if not auto or (target_ii is None and max_luts is None):
        chosen = {k: _layer_plan(net, k, "unrolled", ranges) for k in auto}
        return Plan(net, _ordered({**fixed, **pools, **chosen}), options)
    candidates = {k: _candidates(net, k, ranges) for k in auto}
    floor = max([p.initiation_interval for p in (*fixed.values(), *pools.values())] + [1])

    def cheapest(limit):
        chosen = {}
        for k, plans in candidates.items():
            fitting = [p for p in plans if p.initiation_interval <= limit]
            if not fitting:
                return None
            chosen[k] = min(fitting, key=lambda p: (p.predicted.luts, p.initiation_interval))
        return chosen

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
    else:
        fixed_luts = sum(p.predicted.luts for p in (*fixed.values(), *pools.values()))
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
        for limit in iis:
            attempt = cheapest(limit)
            if (
                attempt is not None
                and fixed_luts + sum(p.predicted.luts for p in attempt.values()) <= max_luts
            ):
                chosen = attempt
                break
        if chosen is None:
            raise CompileError(f"no folding fits in {max_luts} predicted LUTs")
    return Plan(net, _ordered({**fixed, **pools, **chosen}), options)


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
    return "\n".join(lines)


# --- building ------------------------------------------------------------------------------------


@dataclass
class Stage:
    """One block of the pipeline, with the cycles it adds and its interval between vectors."""

    name: str
    block: object
    layer: int | None
    latency: int
    initiation_interval: int


def _payload_shape(port):
    return port.signature.members["payload"].shape


def _vector_stages(net, index, lp, in_encoding):
    """Stages of a dense layer (or a conv2d layer's dot product per window)."""
    from hw.dotproduct import DotProduct
    from hw.folded import FoldedMatrixVector
    from hw.threshold import ThresholdUnit

    layer = net.layers[index]
    act = layer.activation
    stages = []
    if lp.engine == "unrolled":
        dot = DotProduct(
            layer.weights.astype(np.int64), encoding=in_encoding, stages=_unrolled_stages(layer)
        )
        stages.append(Stage(f"l{index}_dot", dot, index, dot.latency, 1))
        if act is None:
            out_encoding = ValueEncoding("int", dot.acc_shape.width)
        else:
            unit = ThresholdUnit(
                acc_shape=dot.acc_shape, thresholds=act.thresholds, levels=act.levels
            )
            stages.append(Stage(f"l{index}_threshold", unit, index, unit.latency, 1))
            out_encoding = unit.output_encoding
    else:
        engine = FoldedMatrixVector(
            weights=layer.weights.astype(np.int64),
            input_encoding=in_encoding,
            pe=lp.pe,
            simd=lp.simd,
            weight_type=layer.weight_type,
            levels=None if act is None else act.levels,
            thresholds=None if act is None else act.thresholds,
        )
        stages.append(
            Stage(f"l{index}_mvu", engine, index, engine.latency, engine.initiation_interval)
        )
        out_encoding = engine.output_encoding
    return stages, out_encoding


class Accelerator(wiring.Component):
    """A network's accelerator: its stages as one stream pipeline.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(input encoding, input count)))``
        One whole input vector per transfer (docs/accelerator.md gives the packing).
    o : ``Out(stream.Signature(...))``
        One result per transfer: the class index (unsigned) for ``argmax``, else the final
        vector.
    """

    def __init__(self, stages, *, input_shape, output_shape):
        self._stages = stages
        super().__init__(
            {"i": In(stream.Signature(input_shape)), "o": Out(stream.Signature(output_shape))}
        )

    @property
    def stages(self):
        return list(self._stages)

    @property
    def latency(self):
        """The sum of the stages' latencies: exact for a pipeline of whole-vector stages."""
        return sum(s.latency for s in self._stages)

    @property
    def initiation_interval(self):
        return max(s.initiation_interval for s in self._stages)

    def elaborate(self, platform):
        m = Module()
        for stage in self._stages:
            m.submodules[stage.name] = stage.block
        wiring.connect(m, wiring.flipped(self.i), self._stages[0].block.i)
        for a, b in zip(self._stages[:-1], self._stages[1:], strict=True):
            wiring.connect(m, a.block.o, b.block.i)
        wiring.connect(m, self._stages[-1].block.o, wiring.flipped(self.o))
        return m


def _link(stages, new):
    """Append ``new`` stages, with a :class:`hw.cast.Cast` where element shapes differ."""
    from hw.cast import Cast

    for stage in new:
        if stages:
            have = _payload_shape(stages[-1].block.o)
            want = _payload_shape(stage.block.i)
            if have != want:
                if not (
                    isinstance(have, data.ArrayLayout)
                    and isinstance(want, data.ArrayLayout)
                    and have.length == want.length
                ):
                    raise AssertionError(f"cannot connect {have!r} to {want!r}")
                cast = Cast(source=have.elem_shape, target=want.elem_shape, count=have.length)
                stages.append(Stage(f"{stage.name}_cast", cast, stage.layer, 0, 1))
        stages.append(stage)
    return stages


@dataclass
class OutputInfo:
    kind: str
    shape: list
    count: int
    encoding: ValueEncoding


def build(the_plan):
    """Instantiate the blocks of a :class:`Plan` as an :class:`Accelerator`.

    Returns ``(accelerator, output info)``.
    """
    from hw.dotproduct import DotProduct
    from hw.pool import MaxPool as MaxPoolUnit
    from hw.streamutil import PixelsToVector, SkidBuffer, VectorToPixels
    from hw.threshold import ThresholdUnit
    from hw.window import SlidingWindow

    net = the_plan.net
    in_encoding = encoding_of(net.input.type)
    encoding = in_encoding
    stages = []
    pixels = False  # whether the stream carries pixels (else whole vectors)

    def to_pixels(index, shape):
        h, w, c = shape
        unit = VectorToPixels(shape=encoding.shape, pixels=h * w, channels=c)
        return [Stage(f"l{index}_serialize", unit, index, unit.latency, unit.initiation_interval)]

    def to_vector(index, shape):
        h, w, c = shape
        unit = PixelsToVector(shape=encoding.shape, pixels=h * w, channels=c)
        return [Stage(f"l{index}_deserialize", unit, index, unit.latency, unit.initiation_interval)]

    def register_slice(index, name):
        # Each vector block passes o.ready to i.ready combinationally; a skid buffer between
        # layers cuts that path, so that back-pressure is not one path through the whole
        # pipeline (digits-mlp on an iCE40 UP5K: 33.6 MHz with it as one path).
        # Only after constant-weight layers, pixel streams included: after a folded engine the
        # path is short next to its own, and a slice of its wide output cost mnist-mlp 1,650
        # LUTs on an ECP5 for 0.7 MHz. digits-cnn on an ECP5-25k: 39.9 MHz with back-pressure
        # one path from the argmax to the first serializer.
        if not stages or not isinstance(stages[-1].block, (DotProduct, ThresholdUnit)):
            return []
        unit = SkidBuffer(_payload_shape(stages[-1].block.o))
        return [Stage(name, unit, index, unit.latency, unit.initiation_interval)]

    for lp in the_plan.layers:
        layer = net.layers[lp.index]
        shape = net.shapes[lp.index]
        new = []
        new += register_slice(lp.index, f"l{lp.index}_slice")
        if isinstance(layer, Dense):
            if pixels:
                new += to_vector(lp.index, shape)
                pixels = False
            dot, encoding = _vector_stages(net, lp.index, lp, encoding)
            new += dot
        elif isinstance(layer, Conv2d):
            if not pixels:
                new += to_pixels(lp.index, shape)
                pixels = True
            window = SlidingWindow(
                encoding=encoding,
                height=shape[0],
                width=shape[1],
                channels=shape[2],
                kernel=layer.kernel,
                stride=layer.stride,
                padding=layer.padding,
                pad_value=int(layer.pad),
            )
            new.append(
                Stage(
                    f"l{lp.index}_window",
                    window,
                    lp.index,
                    window.latency,
                    window.initiation_interval,
                )
            )
            dot, encoding = _vector_stages(net, lp.index, lp, encoding)
            positions = lp.positions
            for stage in dot:  # per-window figures become per-frame ones
                stage.initiation_interval *= positions
            new += dot
        else:
            if not pixels:
                new += to_pixels(lp.index, shape)
                pixels = True
            unit = MaxPoolUnit(
                encoding=encoding,
                height=shape[0],
                width=shape[1],
                channels=shape[2],
                kernel=layer.kernel,
                stride=layer.stride,
            )
            new.append(
                Stage(
                    f"l{lp.index}_maxpool", unit, lp.index, unit.latency, unit.initiation_interval
                )
            )
        _link(stages, new)
    if pixels:
        _link(stages, to_vector(len(net.layers) - 1, net.output_shape))
    count = int(np.prod(net.output_shape))
    if net.output == "argmax":
        from hw.argmax import Argmax

        # A register after every level of the tournament: a level is a compare (a carry chain
        # as wide as a score) and a multiplexer, about 13 ns on an iCE40 UP5K; two or more
        # levels per cycle set the whole accelerator's clock (digits-mlp: 16.6 MHz).
        unit = Argmax(encoding=encoding, count=count, stages=max(1, math.ceil(math.log2(count))))
        _link(
            stages,
            [*register_slice(None, "argmax_slice"), Stage("argmax", unit, None, unit.latency, 1)],
        )
        out_shape = _payload_shape(unit.o)
        info = OutputInfo("argmax", [], 1, ValueEncoding.uint(out_shape.width))
    else:
        info = OutputInfo("values", list(net.output_shape), count, encoding)
        out_shape = encoding.layout(count)
    top = Accelerator(
        stages,
        input_shape=in_encoding.layout(int(np.prod(net.input.shape))),
        output_shape=out_shape,
    )
    return top, info


# --- timing ---------------------------------------------------------------------------------


def simulate_transfers(top, inputs):
    """Edges of the input transfers and of the results of ``top``, in Amaranth's simulator.

    ``inputs`` are offered back to back from edge 1 (each from the edge after its
    predecessor's transfer) and ``o.ready`` is always high; returns ``(accepted, produced)``,
    the edge of each input transfer and the edge at which each result is first offered.
    """
    from amaranth.sim import Simulator

    vectors = [np.asarray(v).reshape(-1) for v in inputs]
    accepted, produced = [], []

    async def bench(ctx):
        ctx.set(top.o.ready, 1)
        cycle, sent = 0, 0
        if vectors:
            ctx.set(top.i.valid, 1)
            ctx.set(top.i.payload, [int(v) for v in vectors[0]])
        limit = 1_000_000
        while len(produced) < len(vectors) and cycle < limit:
            _, _, i_ready, o_valid = await ctx.tick().sample(top.i.ready, top.o.valid)
            cycle += 1
            if o_valid:
                produced.append(cycle)
            if sent < len(vectors) and i_ready:
                accepted.append(cycle)
                sent += 1
                if sent < len(vectors):
                    ctx.set(top.i.payload, [int(v) for v in vectors[sent]])
                else:
                    ctx.set(top.i.valid, 0)
        if cycle >= limit:
            raise RuntimeError("the accelerator produced no result within a million cycles")

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return accepted, produced


def _summarize(single, stream):
    """``(latency, interval)`` from the transfers of one vector alone and of a stream."""
    (accepted, produced), (stream_accepted, _) = single, stream
    gaps = np.diff(stream_accepted)
    if len(set(gaps[-3:].tolist())) != 1:
        raise RuntimeError(f"the initiation interval did not settle: input spacing {gaps}")
    return produced[0] - accepted[0], int(gaps[-1])


def measure_timing(top, inputs, *, settle=10):
    """Latency and initiation interval of ``top`` by simulating it (Amaranth's simulator).

    One vector alone gives the latency (edges from its input transfer to its result's first
    ``valid``, the definition of docs/accelerator.md); ``settle + 2`` vectors offered back to
    back with ``o.ready`` always high give the steady initiation interval (the last spacing of
    input transfers, which must equal the two before it).
    """
    if len(inputs) < settle + 2:
        raise ValueError(f"need {settle + 2} inputs to measure the initiation interval")
    single = simulate_transfers(top, inputs[:1])
    return _summarize(single, simulate_transfers(top, inputs[: settle + 2]))


# --- the cycle model ----------------------------------------------------------------------
#
# Every link between two blocks carries tokens (whole vectors, pixels or windows) in order. For
# token ``n`` of a link, ``offer[n]`` is the first clock edge at which its producer offers it
# (``valid`` high) and ``transfer[n]`` the edge at which its consumer takes it. Each block kind
# below states two recurrences, read off its Verilog-level behaviour:
#
# - ``accept(n, offer)``: the edge at which the block takes input token ``n`` offered from
#   ``offer`` on (the first edge from ``offer`` on at which its ``ready`` is high);
# - ``emit(n)``: the edge from which it offers output token ``n``.
#
# Both depend only on earlier transfers on either side (back-pressure included), so the times
# of all tokens follow by evaluating the recurrences in dependency order (max-plus algebra).
# Edges count from 1, as in :func:`measure_timing`; a register written at edge ``e`` is seen at
# edge ``e + 1``.


class _Pending(Exception):
    """A recurrence needs a time that is not known yet (evaluate something else first)."""


class _Link:
    """Token times on one stream: ``offer`` and ``transfer`` edges, in token order."""

    def __init__(self, count):
        self.count = count
        self.offer = []
        self.transfer = []

    def offered(self, n):
        if n >= len(self.offer):
            raise _Pending
        return self.offer[n]

    def taken(self, n):
        if n < 0:
            return 0  # before the first token: nothing to wait for
        if n >= len(self.transfer):
            raise _Pending
        return self.transfer[n]


class _Block:
    """A block of the timing model: ``ratio`` output tokens per input token (a fraction)."""

    ratio = (1, 1)
    i = o = None

    def accept(self, n, offer):
        raise NotImplementedError

    def emit(self, n):
        raise NotImplementedError


class _Stalls:
    """Ordered, disjoint stall intervals ``[begin(k), end(k))`` of one block's advance enable.

    Interval ``k`` belongs to token ``k``; a question about token ``n`` considers the
    intervals of tokens before it, whose ``begin`` the block must know (else it raises
    :class:`_Pending`), as ``end`` may. ``first`` skips intervals that ended before any edge
    still asked about.
    """

    def __init__(self, begin, end):
        self.begin, self.end = begin, end
        self.first = 0

    def forget_before(self, edge):
        """No edge before ``edge`` will be asked about again."""
        try:
            while self.end(self.first) <= edge:
                self.first += 1
        except _Pending:  # that interval is still open, or not yet known: keep it
            pass

    def nth_free_edge(self, edge, count, before):
        """The ``count``-th edge after ``edge`` (``edge`` for 0) outside the intervals of the
        tokens before ``before``."""
        if count == 0:
            return edge
        k = self.first
        while k < before and (begin := self.begin(k)) <= edge + count:
            end = self.end(k)
            if end > edge + 1:  # the interval covers edges after ``edge``
                count -= max(0, begin - edge - 1)  # free edges before it
                edge = max(edge, end - 1)
            k += 1
        return edge + count


class _Pipeline(_Block):
    """A ``stages``-deep pipeline that stalls as a whole (``hw.compressor.pipeline_control``).

    Used for :class:`~hw.dotproduct.DotProduct`, :class:`~hw.threshold.ThresholdUnit`,
    :class:`~hw.argmax.Argmax` and the maximum register of a windowed max pool, with
    ``stages`` their ``latency``. Everything moves at an edge unless a result waits at the
    output (``o.valid`` without ``o.ready``): the stall edges are ``[offer[m], transfer[m])``
    of the output tokens. Hence, counting only the edges outside those:

    - ``accept(n)`` = the first such edge from ``offer`` on: ``i.ready`` is the advance enable;
    - ``emit(n)`` = one edge after the ``stages``-th such edge counted from the input transfer
      (the transfer itself loads the first register): ``transfer + stages`` without stalls.
    """

    def __init__(self, stages):
        self.stages = stages
        self.stalls = _Stalls(lambda m: self.o.offered(m), lambda m: self.o.taken(m))

    def accept(self, n, offer):
        edge = self.stalls.nth_free_edge(offer - 1, 1, n)
        self.stalls.forget_before(edge)
        return edge

    def emit(self, n):
        return self.stalls.nth_free_edge(self.i.taken(n), self.stages - 1, n) + 1


class _Folded(_Block):
    """:class:`~hw.folded.FoldedMatrixVector`: ``ii`` issue cycles per vector, then ``depth``.

    ``ii`` is the engine's ``initiation_interval`` and ``depth = latency - ii`` its cycles after
    the last issue (ROM read, sums, accumulate, output register). A vector waits in the load
    buffer from its transfer; it starts issuing at the first advancing edge ``start[n]`` after
    both its transfer and the previous vector's last issue ``last[n-1]``, and issues at ``ii``
    advancing edges. ``depth - 2`` advancing edges later its result is complete and is written
    at the next edge at which the output register is free: ``finish[n] = max(complete + 1,
    transfer_out[n-1])``; the whole engine stalls in between (the stall edges
    ``[complete + 1, finish)``). Then:

    - ``accept(n) = max(offer, start[n-1])``: the load buffer frees when its vector starts;
    - ``emit(n) = finish[n] + 1``, which is ``transfer + latency`` in an idle engine.
    """

    def __init__(self, ii, depth):
        self.ii = ii
        self.depth = depth
        self.start, self.last, self.complete, self.finish = [], [], [], []
        self.stalls = _Stalls(self._stall_begin, self._stall_end)

    def _stall_begin(self, m):
        if m >= len(self.complete):
            raise _Pending
        return self.complete[m] + 1

    def _stall_end(self, m):
        if m >= len(self.finish):
            raise _Pending  # its finish waits on the output, not yet known
        return self.finish[m]

    def _schedule(self, n):
        """Fill ``start``, ``last``, ``complete``, ``finish`` of vector ``n`` (as far as known),
        after those of the vectors before it."""
        if len(self.finish) < n:
            self._schedule(n - 1)

        def free(edge, count):
            return self.stalls.nth_free_edge(edge, count, n)

        if len(self.start) == n:
            previous = self.last[n - 1] if n else 0
            self.start.append(free(max(self.i.taken(n), previous), 1))
            self.stalls.forget_before(self.start[n])
        if len(self.last) == n:
            self.last.append(free(self.start[n], self.ii - 1))
        if len(self.complete) == n:
            self.complete.append(free(self.last[n], self.depth - 2))
        if len(self.finish) == n:
            self.finish.append(max(self.complete[n] + 1, self.o.taken(n - 1)))

    def accept(self, n, offer):
        if n == 0:
            return offer
        if len(self.start) < n:
            self._schedule(n - 1)
        return max(offer, self.start[n - 1])

    def emit(self, n):
        self._schedule(n)
        return self.finish[n] + 1


class _Skid(_Block):
    """:class:`~hw.streamutil.SkidBuffer`: an output register and one skid register.

    An input goes straight to the output register if that is free at its transfer, else into
    the skid until the output's transfer ``d[n-1]``; ``i.ready`` is "the skid is empty", a
    register. So ``accept(n) = max(offer, d[n-2] + 1)`` and ``emit(n) = max(transfer, d[n-1])
    + latency``.
    """

    def __init__(self, latency):
        self.latency = latency

    def accept(self, n, offer):
        return max(offer, self.o.taken(n - 2) + 1)

    def emit(self, n):
        return max(self.i.taken(n), self.o.taken(n - 1)) + self.latency


class _Serializer(_Block):
    """:class:`~hw.streamutil.VectorToPixels`: a vector in, ``pixels`` pixels out.

    Pixel 0 is offered the edge after its vector's transfer, each next pixel the edge after
    its predecessor's transfer; the next vector is taken at the transfer of the last pixel
    (``i.ready = ~busy | last pixel sent``).
    """

    def __init__(self, pixels, latency):
        self.pixels = pixels
        self.latency = latency
        self.ratio = (pixels, 1)

    def accept(self, n, offer):
        return max(offer, self.o.taken(n * self.pixels - 1))

    def emit(self, k):
        n, j = divmod(k, self.pixels)
        if j == 0:
            return self.i.taken(n) + self.latency
        return self.o.taken(k - 1) + 1


class _Deserializer(_Block):
    """:class:`~hw.streamutil.PixelsToVector`: ``pixels`` pixels in, a vector out.

    Pixels are taken as offered, except a frame's last one, which also waits for the output
    register (the previous vector's transfer); the vector is offered the edge after.
    """

    def __init__(self, pixels, latency):
        self.pixels = pixels
        self.latency = latency
        self.ratio = (1, pixels)

    def accept(self, k, offer):
        n, j = divmod(k, self.pixels)
        if j < self.pixels - 1:
            return offer
        return max(offer, self.o.taken(n - 1))

    def emit(self, n):
        return self.i.taken(n * self.pixels + self.pixels - 1) + self.latency


class _DisjointPool(_Block):
    """:class:`~hw.pool.MaxPool` with ``stride == kernel``: one output per ``kh x kw`` group.

    Pixels are taken as offered, except one that completes a window, which also waits for the
    output register (the previous output's transfer); the output is offered the edge after.
    """

    def __init__(self, height, width, kernel, latency):
        (kh, kw), (oh, ow) = kernel, (height // kernel[0], width // kernel[1])
        self.latency = latency
        self.pixels = height * width
        self.ends = {
            (kh - 1 + kh * oy) * width + kw - 1 + kw * ox: oy * ow + ox
            for oy in range(oh)
            for ox in range(ow)
        }
        self.outputs = oh * ow
        self.ratio = (self.outputs, self.pixels)
        self.source = sorted(self.ends)  # the pixel that completes each output

    def accept(self, k, offer):
        frame, j = divmod(k, self.pixels)
        if j not in self.ends:
            return offer
        return max(offer, self.o.taken(frame * self.outputs + self.ends[j] - 1))

    def emit(self, m):
        frame, index = divmod(m, self.outputs)
        return self.i.taken(frame * self.pixels + self.source[index]) + self.latency


class _Window(_Block):
    """:class:`~hw.window.SlidingWindow`: a scan of ``scan_shape`` positions per frame.

    The scan takes one position per step ``step[p]``, at least one edge after the previous one
    and not before the last window offered has been taken (the window register is the output).
    A real position is the transfer of its pixel; a padding position needs no input, but the
    first position of a frame waits until the frame's first pixel is offered. A window leaves
    the edge after the step at its bottom-right position. So, with ``d`` the transfer of the
    last window before ``p``:

    - ``accept`` (real ``p``): ``step[p] = max(offer, step[p-1] + 1, d)``;
    - padding ``p``: ``step[p] = max(step[p-1] + 1, d)`` (and the first pixel's offer, at the
      first position of a frame);
    - ``emit(k) = step[p_k] + latency`` (1: the window register).
    """

    def __init__(self, height, width, scan_shape, output_shape, kernel, stride, padding, latency):
        rows, cols = scan_shape
        self.latency = latency
        (oh, ow), (kh, kw), (sy, sx), (py, px) = output_shape, kernel, stride, padding
        self.pixels = height * width
        self.windows = oh * ow
        self.ratio = (self.windows, self.pixels)
        ends_rows = {kh - 1 + sy * oy for oy in range(oh)}
        ends_cols = {kw - 1 + sx * ox for ox in range(ow)}
        # per position of a frame: (pixel index or None, windows offered before it)
        self.positions = []
        self.window_at = []  # position of each window
        pixel = 0
        for r in range(rows):
            for c in range(cols):
                real = py <= r < py + height and px <= c < px + width
                self.positions.append((pixel if real else None, len(self.window_at)))
                pixel += real
                if r in ends_rows and c in ends_cols:
                    self.window_at.append(len(self.positions) - 1)
        self.pixel_at = [p for p, (j, _) in enumerate(self.positions) if j is not None]
        self.steps = []  # step edge of every position scanned so far, all frames

    def _earliest(self, p):
        """The first edge at which the scan may step at global position ``p`` (no input)."""
        frame, local = divmod(p, len(self.positions))
        before = frame * self.windows + self.positions[local][1] - 1
        edge = max(self.steps[p - 1] + 1 if p else 1, self.o.taken(before))
        if local == 0:  # a new frame starts when its first pixel is offered
            edge = max(edge, self.i.offered(frame * self.pixels))
        return edge

    def _scan_to(self, p):
        """Step every padding position before global position ``p``."""
        while len(self.steps) < p:
            q = len(self.steps)
            if self.positions[q % len(self.positions)][0] is not None:
                raise _Pending  # a real position: its pixel comes through accept
            self.steps.append(self._earliest(q))

    def accept(self, k, offer):
        frame, j = divmod(k, self.pixels)
        p = frame * len(self.positions) + self.pixel_at[j]
        self._scan_to(p)
        edge = max(offer, self._earliest(p))
        self.steps.append(edge)
        return edge

    def emit(self, k):
        frame, index = divmod(k, self.windows)
        p = frame * len(self.positions) + self.window_at[index]
        self._scan_to(p + 1)
        return self.steps[p] + self.latency


def _timing_blocks(net, top):
    """The accelerator's stages as blocks of the timing model, latencies read from the blocks.

    Combinational stages (:class:`~hw.cast.Cast`, a pipeline of no stages) pass ``valid`` and
    ``ready`` through in the same edge, so they add nothing and are left out.
    """
    from hw.argmax import Argmax
    from hw.cast import Cast
    from hw.dotproduct import DotProduct
    from hw.folded import FoldedMatrixVector
    from hw.pool import MaxPool as MaxPoolUnit
    from hw.streamutil import PixelsToVector, SkidBuffer, VectorToPixels
    from hw.threshold import ThresholdUnit
    from hw.window import SlidingWindow

    blocks = []
    for stage in top.stages:
        block = stage.block
        length_in = getattr(_payload_shape(block.i), "length", 1)
        length_out = getattr(_payload_shape(block.o), "length", 1)
        if isinstance(block, Cast):
            continue
        if isinstance(block, (DotProduct, ThresholdUnit, Argmax)):
            if block.latency:
                blocks.append(_Pipeline(block.latency))
        elif isinstance(block, FoldedMatrixVector):
            ii = block.initiation_interval
            blocks.append(_Folded(ii, block.latency - ii))
        elif isinstance(block, SkidBuffer):
            blocks.append(_Skid(block.latency))
        elif isinstance(block, VectorToPixels):
            blocks.append(_Serializer(length_in // length_out, block.latency))
        elif isinstance(block, PixelsToVector):
            blocks.append(_Deserializer(length_out // length_in, block.latency))
        elif isinstance(block, SlidingWindow):
            layer = net.layers[stage.layer]
            height, width = net.shapes[stage.layer][:2]
            blocks.append(
                _Window(
                    height,
                    width,
                    block.scan_shape,
                    block.output_shape,
                    layer.kernel,
                    layer.stride,
                    layer.padding,
                    block.latency,
                )
            )
        elif isinstance(block, MaxPoolUnit):
            layer = net.layers[stage.layer]
            height, width = net.shapes[stage.layer][:2]
            if tuple(layer.stride) == tuple(layer.kernel):
                blocks.append(_DisjointPool(height, width, layer.kernel, block.latency))
            else:
                # hw.pool builds a SlidingWindow (no padding: it scans the image, latency 1)
                # and a maximum register after it, which makes up the rest of its latency
                window = _Window(
                    height,
                    width,
                    (height, width),
                    block.output_shape,
                    layer.kernel,
                    layer.stride,
                    (0, 0),
                    1,
                )
                blocks += [window, _Pipeline(block.latency - window.latency)]
        else:
            raise AssertionError(f"no timing model for {type(block).__name__}")
    return blocks


def _transfer_times(blocks, vectors):
    """Input transfer and output offer edges of ``vectors`` inputs offered back to back.

    The input is offered from edge 1 and each next vector the edge after its predecessor's
    transfer; ``o.ready`` is always high. The recurrences are evaluated in dependency order:
    every pass computes, for each block, whatever its known inputs allow.
    """
    from fractions import Fraction

    links = [_Link(vectors)]
    count = Fraction(vectors)
    for block in blocks:
        count = count * block.ratio[0] / block.ratio[1]
        links.append(_Link(int(count)))
        block.i, block.o = links[-2], links[-1]
    source, sink = links[0], links[-1]
    while len(sink.transfer) < sink.count:
        progress = False
        if len(source.offer) < source.count and len(source.offer) == len(source.transfer):
            source.offer.append(source.taken(len(source.offer) - 1) + 1)
            progress = True
        for block in blocks:
            try:
                while len(block.i.transfer) < len(block.i.offer):
                    n = len(block.i.transfer)
                    block.i.transfer.append(block.accept(n, block.i.offer[n]))
                    progress = True
            except _Pending:
                pass
            try:
                while len(block.o.offer) < block.o.count:
                    block.o.offer.append(block.emit(len(block.o.offer)))
                    progress = True
            except _Pending:
                pass
        sink.transfer.extend(sink.offer[len(sink.transfer) :])  # o.ready is always high
        if not progress:
            raise AssertionError("the timing model's recurrences wait on each other")
    return source.transfer, sink.offer


def transfer_times(net, top, vectors):
    """The cycle model's counterpart of :func:`simulate_transfers`, for ``vectors`` inputs.

    Returns ``(accepted, produced)``: the edge of each input transfer and the edge at which
    each result is first offered, from the blocks' recurrences.
    """
    return _transfer_times(_timing_blocks(net, top), vectors)


def analytic_timing(net, top):
    """``(latency, initiation interval)`` of ``top`` from the timing model of its blocks.

    The latency is that of one vector alone (its result's offer minus its input transfer), as
    :func:`measure_timing` measures it. The interval is the steady spacing of transfers with
    inputs offered back to back: the model runs 12, 24, 48, ... vectors until, over the second
    half of them, the spacings of inputs and of results are one and the same constant. Inputs
    alone are not enough: while the buffers between blocks fill, inputs are taken faster than
    results leave (tiny-mlp folded ``0:2,3;1:1,2``: inputs every 4 cycles for 13 vectors, every
    6 after, results every 6 from the first). Up to 3072 vectors, else ``RuntimeError``.
    """
    accepted, produced = transfer_times(net, top, 1)
    latency = produced[0] - accepted[0]
    vectors = 12
    while True:
        accepted, produced = transfer_times(net, top, vectors)
        tail = np.diff(accepted)[vectors // 2 :]
        out_tail = np.diff(produced)[vectors // 2 :]
        if len(set(tail.tolist()) | set(out_tail.tolist())) == 1:
            return latency, int(tail[-1])
        if vectors >= 3072:
            raise RuntimeError(f"the initiation interval did not settle: input spacing {tail}")
        vectors *= 2


def cycle_model(net, top, *, simulate=False):
    """``(latency, initiation interval, how)`` of an accelerator.

    ``how`` is ``"analytic"``: :func:`analytic_timing`, the blocks' timing recurrences. With
    ``simulate``, the figures come from simulating the built design instead
    (:func:`measure_timing`, ``"simulated"``), the model's test oracle.
    """
    if simulate:
        latency, ii = measure_timing(top, golden.random_inputs(net, 12, seed=0))
        return latency, ii, "simulated"
    return (*analytic_timing(net, top), "analytic")


# --- emitting -------------------------------------------------------------------------------------


def top_name(name):
    """The Verilog module name of a description's ``name``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


@dataclass
class Compiled:
    """A compiled accelerator: its plan, Amaranth top, Verilog text and metadata."""

    plan: Plan
    top: Accelerator
    verilog: str
    metadata: dict


def metadata(the_plan, top, info, timing, *, description_sha256, version):
    net = the_plan.net
    in_encoding = encoding_of(net.input.type)
    count_in = int(np.prod(net.input.shape))
    stages = top.stages
    layers = []
    for lp in the_plan.layers:
        own = [s for s in stages if s.layer == lp.index]
        layers.append(
            {
                "index": lp.index,
                "type": lp.type,
                "engine": lp.engine,
                "pe": lp.pe,
                "simd": lp.simd,
                "blocks": [s.name for s in own],
                "latency": sum(s.latency for s in own),
                "initiation_interval": max(s.initiation_interval for s in own),
                "predicted": lp.predicted.asdict(),
            }
        )
    name = top_name(net.name)
    out_width = info.count * info.encoding.width
    return {
        "format": FORMAT,
        "name": net.name,
        "top": name,
        "verilog": f"{net.name}.v",
        "description_sha256": description_sha256,
        "generator": {"tool": "tnngen", "version": version, "options": the_plan.options},
        "clock": "clk",
        "reset": {"name": "rst", "active": "high", "synchronous": True},
        "ports": {
            "i": {
                "payload": "i__payload",
                "valid": "i__valid",
                "ready": "i__ready",
                "width": count_in * in_encoding.width,
            },
            "o": {
                "payload": "o__payload",
                "valid": "o__valid",
                "ready": "o__ready",
                "width": out_width,
            },
        },
        "input": {
            "shape": list(net.input.shape),
            "count": count_in,
            "type": net.input.type.name,
            "encoding": in_encoding.kind,
            "element_width": in_encoding.width,
        },
        "output": {
            "kind": info.kind,
            "shape": info.shape,
            "count": info.count,
            "encoding": info.encoding.kind,
            "element_width": info.encoding.width,
        },
        "latency": timing[0],
        "initiation_interval": timing[1],
        "timing_model": timing[2],
        "layers": layers,
        "predicted": the_plan.predicted.asdict(),
    }


def _version():
    try:
        from importlib.metadata import version

        return version("tnngen")
    except Exception:  # not installed: running from a source tree
        return "0.0.0+source"


def emit(the_plan, *, description_sha256=None):
    """Build and convert: returns a :class:`Compiled`."""
    from . import network

    if description_sha256 is None:
        description_sha256 = hashlib.sha256(network.dumps(the_plan.net).encode()).hexdigest()
    top, info = build(the_plan)
    timing = cycle_model(the_plan.net, top)
    name = top_name(the_plan.net.name)
    text = verilog.convert(top, name=name, emit_src=False, strip_internal_attrs=True)
    meta = metadata(
        the_plan, top, info, timing, description_sha256=description_sha256, version=_version()
    )
    return Compiled(the_plan, top, text, meta)


STEPS = [("plan", plan), ("emit", emit)]


def compile_network(
    net, fold="unrolled", *, target_ii=None, max_luts=None, description_sha256=None
):
    """Plan, build and convert ``net``: returns a :class:`Compiled`."""
    the_plan = plan(net, fold, target_ii=target_ii, max_luts=max_luts)
    return emit(the_plan, description_sha256=description_sha256)


# --- outputs: Verilog, metadata, test vectors ---------------------------------------------------


def corner_inputs(net):
    """Inputs at the corners of the input type: all lowest, all highest, all zero (if legal),
    and the two alternations of lowest and highest."""
    value_type = net.input.type
    shape = tuple(net.input.shape)
    lo = value_type.levels[0] if value_type.levels else value_type.lo
    hi = value_type.levels[-1] if value_type.levels else value_type.hi
    size = int(np.prod(shape))
    alternate = np.where(np.arange(size) % 2 == 0, lo, hi).reshape(shape)
    corners = [np.full(shape, lo), np.full(shape, hi), alternate, lo + hi - alternate]
    if value_type.contains(0):
        corners.insert(2, np.zeros(shape, dtype=np.int64))
    return np.array(corners, dtype=np.int64)


def make_vectors(net, count, *, seed=0, data=None):
    """Test vectors: ``(inputs, outputs, source)``.

    From the test split of a data set (its first ``count`` images) when ``data`` names one,
    else the corner inputs followed by random ones (``count`` in all).
    """
    from . import datasets

    if data is not None:
        dataset = datasets.load(data, "test")
        inputs = datasets.to_inputs(dataset, net.input)[:count]
        source = f"{data}:test[:{len(inputs)}]"
    else:
        corners = corner_inputs(net)[:count]
        rest = golden.random_inputs(net, max(0, count - len(corners)), seed=seed)
        inputs = np.concatenate([corners, rest]) if len(rest) else corners
        source = f"corners+random:{seed}"
    return inputs, golden.run(net, inputs), source


def write_outputs(compiled, out_dir, vectors):
    """Write ``<name>.v``, ``<name>.json`` and ``vectors.npz`` into ``out_dir``.

    Everything is written to a temporary folder beside ``out_dir`` first and each file is then
    moved into place, so a failure leaves the folder as it was. Returns the paths written.
    """
    import os
    import shutil
    import tempfile

    name = compiled.plan.net.name
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tnngen-", dir=parent)
    try:
        with open(os.path.join(tmp, f"{name}.v"), "w") as f:
            f.write(compiled.verilog)
        with open(os.path.join(tmp, f"{name}.json"), "w") as f:
            json.dump(compiled.metadata, f, indent=1)
            f.write("\n")
        inputs, outputs, source = vectors
        np.savez(
            os.path.join(tmp, "vectors.npz"),
            inputs=inputs,
            outputs=outputs,
            source=np.array(source),
        )
        names = [f"{name}.v", f"{name}.json", "vectors.npz"]
        if not os.path.isdir(out_dir):
            os.rename(tmp, out_dir)
        else:
            for item in names:
                os.replace(os.path.join(tmp, item), os.path.join(out_dir, item))
        return [os.path.join(out_dir, item) for item in names]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
