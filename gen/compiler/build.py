"""Building: a :class:`~gen.compiler.plan.Plan` as ``hw`` blocks in one stream pipeline.

Layers become engines, one builder per layer type (:data:`LAYER_BUILDERS`):

- ``dense``, unrolled: :class:`hw.dotproduct.DotProduct` (constant weights as wiring, one
  vector per cycle) followed by a :class:`hw.threshold.ThresholdUnit`;
- ``dense``, folded: :class:`hw.folded.FoldedMatrixVector` (``pe`` rows by ``simd`` columns per
  cycle, weights and thresholds in ROM);
- ``conv2d`` and ``maxpool`` work on a pixel stream: a sliding window feeds one window per
  transfer to the same dot-product engines; serializers convert between whole vectors and
  pixel streams where needed;
- ``argmax`` output: :class:`hw.argmax.Argmax`; ``class_map`` output: :class:`hw.classmap.ClassMap`
  on the last layer's pixel stream (an argmax per position, gathered into one map).

Every block is built with the pipeline depth the plan chose for it.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.argmax import Argmax
from hw.cast import Cast
from hw.classmap import ClassMap
from hw.dotproduct import DotProduct
from hw.encoding import ValueEncoding
from hw.folded import FoldedMatrixVector
from hw.pool import MaxPool as MaxPoolUnit
from hw.streamutil import PixelsToVector, SkidBuffer, VectorToPixels
from hw.threshold import ThresholdUnit
from hw.window import SlidingWindow

__all__ = [
    "ROM_CHOICES",
    "Stage",
    "Accelerator",
    "OutputInfo",
    "LAYER_BUILDERS",
    "build",
    "encoding_of",
    "payload_shape",
]


def encoding_of(value_type):
    """The :class:`ValueEncoding` that carries values of a description's ``ValueType``."""
    if value_type.name == "ternary":
        return ValueEncoding.ternary()
    if value_type.name == "binary":
        return ValueEncoding.binary()
    return ValueEncoding.for_range(value_type.lo, value_type.hi)


@dataclass
class Stage:
    """One block of the pipeline, with the cycles it adds and its interval between vectors."""

    name: str
    block: object
    layer: int | None
    latency: int
    initiation_interval: int


def payload_shape(port):
    """The payload shape of a stream port."""
    return port.signature.members["payload"].shape


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


@dataclass
class OutputInfo:
    """What one result on ``o`` is: ``kind`` (``argmax``, ``values`` or ``class_map``), shape,
    element count and element encoding (``class_map``: shape ``[h, w]``, ``h*w`` class
    indices)."""

    kind: str
    shape: list
    count: int
    encoding: ValueEncoding


def _stage(name, block, layer):
    return Stage(name, block, layer, block.latency, block.initiation_interval)


#: ``--rom``: where folded engines keep their weights and thresholds, and the ``rom_style``
#: each means for :class:`hw.folded.FoldedMatrixVector` (``auto``: the synthesizer chooses).
ROM_STYLE_OF = {"auto": None, "block": "block", "lut": "distributed", "logic": "logic"}
ROM_CHOICES = tuple(ROM_STYLE_OF)


class _Pipeline:
    """The stages built so far, the element encoding of the stream after them, and whether that
    stream carries pixels (else whole vectors)."""

    def __init__(self, encoding, *, rom_style=None):
        self.rom_style = rom_style
        self.encoding = encoding
        self.pixels = False
        self.stages = []

    def link(self, new):
        """Append ``new`` stages, with a :class:`hw.cast.Cast` where element shapes differ."""
        for stage in new:
            if self.stages:
                have = payload_shape(self.stages[-1].block.o)
                want = payload_shape(stage.block.i)
                if have != want:
                    if not (
                        isinstance(have, data.ArrayLayout)
                        and isinstance(want, data.ArrayLayout)
                        and have.length == want.length
                    ):
                        raise AssertionError(f"cannot connect {have!r} to {want!r}")
                    cast = Cast(source=have.elem_shape, target=want.elem_shape, count=have.length)
                    self.stages.append(Stage(f"{stage.name}_cast", cast, stage.layer, 0, 1))
            self.stages.append(stage)

    def register_slice(self):
        # Each vector block passes o.ready to i.ready combinationally; a skid buffer between
        # layers cuts that path, so that back-pressure is not one path through the whole
        # pipeline (digits-mlp on an iCE40 UP5K: 33.6 MHz with it as one path).
        # Only after constant-weight layers, pixel streams included: after a folded engine the
        # path is short next to its own, and a slice of its wide output cost mnist-mlp 1,650
        # LUTs on an ECP5 for 0.7 MHz. digits-cnn on an ECP5-25k: 39.9 MHz with back-pressure
        # one path from the argmax to the first serializer.
        # The slice belongs to the layer whose output it holds (l<index>_slice, that layer's
        # resources in the synthesis report and in the plan's prediction).
        if not self.stages or not isinstance(self.stages[-1].block, (DotProduct, ThresholdUnit)):
            return []
        index = self.stages[-1].layer
        unit = SkidBuffer(payload_shape(self.stages[-1].block.o))
        return [_stage(f"l{index}_slice", unit, index)]

    def to_pixels(self, index, shape):
        """A serializer, unless the stream already carries pixels."""
        if self.pixels:
            return []
        self.pixels = True
        h, w, c = shape
        unit = VectorToPixels(shape=self.encoding.shape, pixels=h * w, channels=c)
        return [_stage(f"l{index}_serialize", unit, index)]

    def to_vector(self, index, shape):
        """A deserializer, if the stream carries pixels."""
        if not self.pixels:
            return []
        self.pixels = False
        h, w, c = shape
        unit = PixelsToVector(shape=self.encoding.shape, pixels=h * w, channels=c)
        return [_stage(f"l{index}_deserialize", unit, index)]

    def vector_stages(self, lp, layer):
        """Stages of a dense layer (or a conv2d layer's dot product per window)."""
        index, act = lp.index, layer.activation
        weights = layer.weights.astype(np.int64)
        if lp.engine == "unrolled":
            dot = DotProduct(weights, encoding=self.encoding, stages=lp.stages)
            stages = [Stage(f"l{index}_dot", dot, index, dot.latency, 1)]
            if act is None:
                self.encoding = ValueEncoding("int", dot.acc_shape.width)
                return stages
            unit = ThresholdUnit(
                acc_shape=dot.acc_shape, thresholds=act.thresholds, levels=act.levels
            )
            self.encoding = unit.output_encoding
            return stages + [Stage(f"l{index}_threshold", unit, index, unit.latency, 1)]
        engine = FoldedMatrixVector(
            weights=weights,
            input_encoding=self.encoding,
            pe=lp.pe,
            simd=lp.simd,
            weight_type=layer.weight_type,
            levels=None if act is None else act.levels,
            thresholds=None if act is None else act.thresholds,
            stages=lp.stages,
            rom_style=self.rom_style,
            multiply=lp.multiply,
            block_bits=lp.block_bits,
        )
        self.encoding = engine.output_encoding
        return [_stage(f"l{index}_mvu", engine, index)]


def _build_dense(pipe, lp, layer, shape):
    return pipe.to_vector(lp.index, shape) + pipe.vector_stages(lp, layer)


def _build_conv2d(pipe, lp, layer, shape):
    new = pipe.to_pixels(lp.index, shape)
    window = SlidingWindow(
        encoding=pipe.encoding,
        height=shape[0],
        width=shape[1],
        channels=shape[2],
        kernel=layer.kernel,
        stride=layer.stride,
        padding=layer.padding,
        pad_value=int(layer.pad),
    )
    new.append(_stage(f"l{lp.index}_window", window, lp.index))
    dot = pipe.vector_stages(lp, layer)
    for stage in dot:  # per-window figures become per-frame ones
        stage.initiation_interval *= lp.positions
    return new + dot


def _build_maxpool(pipe, lp, layer, shape):
    new = pipe.to_pixels(lp.index, shape)
    unit = MaxPoolUnit(
        encoding=pipe.encoding,
        height=shape[0],
        width=shape[1],
        channels=shape[2],
        kernel=layer.kernel,
        stride=layer.stride,
    )
    return new + [_stage(f"l{lp.index}_maxpool", unit, lp.index)]


#: One builder per layer type: ``builder(pipeline, layer plan, layer, input shape)`` returns the
#: layer's stages (and leaves the pipeline's encoding and pixel state after them).
LAYER_BUILDERS = {"dense": _build_dense, "conv2d": _build_conv2d, "maxpool": _build_maxpool}


def build(the_plan):
    """Instantiate the blocks of a :class:`Plan` as an :class:`Accelerator`.

    Returns ``(accelerator, output info)``.
    """
    net = the_plan.net
    in_encoding = encoding_of(net.input.type)
    pipe = _Pipeline(in_encoding, rom_style=ROM_STYLE_OF[the_plan.options.get("rom", "auto")])
    for lp in the_plan.layers:
        layer = net.layers[lp.index]
        new = pipe.register_slice()
        new += LAYER_BUILDERS[layer.type](pipe, lp, layer, net.shapes[lp.index])
        pipe.link(new)
    last = len(net.layers) - 1
    count = int(np.prod(net.output_shape))
    if net.output == "class_map":
        h, w, c = net.output_shape
        pipe.link(pipe.to_pixels(last, net.output_shape))
        unit = ClassMap(
            encoding=pipe.encoding, channels=c, positions=h * w, stages=the_plan.argmax_stages
        )
        pipe.link([*pipe.register_slice(), _stage("class_map", unit, None)])
        out_shape = payload_shape(unit.o)
        info = OutputInfo("class_map", [h, w], h * w, ValueEncoding.uint(unit.index_shape.width))
        return _top(pipe, net, in_encoding, out_shape), info
    pipe.link(pipe.to_vector(last, net.output_shape))
    if net.output == "argmax":
        unit = Argmax(encoding=pipe.encoding, count=count, stages=the_plan.argmax_stages)
        pipe.link(
            [
                *pipe.register_slice(),
                Stage("argmax", unit, None, unit.latency, 1),
            ]
        )
        out_shape = payload_shape(unit.o)
        info = OutputInfo("argmax", [], 1, ValueEncoding.uint(out_shape.width))
    else:
        info = OutputInfo("values", list(net.output_shape), count, pipe.encoding)
        out_shape = pipe.encoding.layout(count)
    return _top(pipe, net, in_encoding, out_shape), info


def _top(pipe, net, in_encoding, out_shape):
    return Accelerator(
        pipe.stages,
        input_shape=in_encoding.layout(int(np.prod(net.input.shape))),
        output_shape=out_shape,
    )
