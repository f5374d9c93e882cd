"""The cycle model: latency and initiation interval of a built accelerator, without simulating.

Every stream between two blocks carries tokens in order; each block type states, in its
registered timing model (:data:`TIMING_MODELS`), which blocks of :mod:`gen.compiler.recurrences`
stand for it: when it takes an input token and when it offers an output token, in terms of
earlier transfers on both sides (docs/accelerator.md gives the table). :func:`analytic_timing`
evaluates those recurrences for one input alone (the latency) and for inputs back to back (the
interval).
"""

from fractions import Fraction

import numpy as np

from hw.argmax import Argmax
from hw.cast import Cast
from hw.classmap import ClassMap
from hw.dotproduct import DotProduct
from hw.folded import FoldedMatrixVector
from hw.pool import MaxPool as MaxPoolUnit
from hw.streamutil import PixelsToVector, SkidBuffer, VectorToPixels
from hw.threshold import ThresholdUnit
from hw.window import SlidingWindow

from .build import payload_shape
from .recurrences import (
    Deserializer,
    DisjointPool,
    Folded,
    FoldedCredit,
    Link,
    Pending,
    Pipeline,
    Serializer,
    Skid,
    Window,
)

__all__ = [
    "TIMING_MODELS",
    "timing_model",
    "timing_blocks",
    "transfer_times",
    "analytic_timing",
    "cycle_model",
]

#: The timing model of each block type: ``model(block, stage, net)`` returns the list of timing
#: blocks (possibly empty) that stand for it. A block type without one stops the compiler.
TIMING_MODELS = {}


def timing_model(*block_types):
    """Register a function as the timing model of ``block_types``."""

    def register(model):
        for block_type in block_types:
            TIMING_MODELS[block_type] = model
        return model

    return register


@timing_model(Cast)
def _time_cast(block, stage, net):
    # Combinational: valid and ready pass through in the same edge, so it adds nothing.
    return []


@timing_model(DotProduct, ThresholdUnit, Argmax)
def _time_pipeline(block, stage, net):
    # A pipeline of no stages is combinational, like a cast.
    return [Pipeline(block.latency)] if block.latency else []


@timing_model(FoldedMatrixVector)
def _time_folded(block, stage, net):
    ii = block.initiation_interval
    if ii > 1:
        return [FoldedCredit(ii, block.depth, block.output_capacity)]
    return [Folded(ii, block.latency - ii)]


@timing_model(ClassMap)
def _time_class_map(block, stage, net):
    # the per-pixel argmax (a pipeline, or nothing when combinational), then the deserializer
    argmax = [Pipeline(block.argmax_latency)] if block.argmax_latency else []
    return argmax + [Deserializer(block.positions, 1)]


@timing_model(SkidBuffer)
def _time_skid(block, stage, net):
    return [Skid(block.latency)]


@timing_model(VectorToPixels)
def _time_serializer(block, stage, net):
    ratio = payload_length(block.i) // payload_length(block.o)
    return [Serializer(ratio, block.latency)]


@timing_model(PixelsToVector)
def _time_deserializer(block, stage, net):
    ratio = payload_length(block.o) // payload_length(block.i)
    return [Deserializer(ratio, block.latency)]


@timing_model(SlidingWindow)
def _time_window(block, stage, net):
    layer = net.layers[stage.layer]
    height, width = net.shapes[stage.layer][:2]
    return [
        Window(
            height,
            width,
            block.scan_shape,
            block.output_shape,
            layer.kernel,
            layer.stride,
            layer.padding,
            block.latency,
        )
    ]


@timing_model(MaxPoolUnit)
def _time_maxpool(block, stage, net):
    layer = net.layers[stage.layer]
    height, width = net.shapes[stage.layer][:2]
    if tuple(layer.stride) == tuple(layer.kernel):
        return [DisjointPool(height, width, layer.kernel, block.latency)]
    # hw.pool builds a SlidingWindow (no padding: it scans the image, latency 1) and a maximum
    # register after it, which makes up the rest of its latency
    window = Window(
        height, width, (height, width), block.output_shape, layer.kernel, layer.stride, (0, 0), 1
    )
    return [window, Pipeline(block.latency - window.latency)]


def payload_length(port):
    """Elements per transfer of a stream port (1 for a payload that is not an array)."""
    return getattr(payload_shape(port), "length", 1)


def timing_blocks(net, top):
    """The accelerator's stages as blocks of the timing model, latencies read from the blocks."""
    blocks = []
    for stage in top.stages:
        model = next(
            (TIMING_MODELS[t] for t in type(stage.block).__mro__ if t in TIMING_MODELS), None
        )
        if model is None:
            raise AssertionError(f"no timing model for {type(stage.block).__name__}")
        blocks += model(stage.block, stage, net)
    return blocks


def _transfer_times(blocks, vectors):
    """Input transfer and output offer edges of ``vectors`` inputs offered back to back.

    The input is offered from edge 1 and each next vector the edge after its predecessor's
    transfer; ``o.ready`` is always high. The recurrences are evaluated in dependency order:
    every pass computes, for each block, whatever its known inputs allow.
    """
    links = [Link(vectors)]
    count = Fraction(vectors)
    for block in blocks:
        count = count * block.ratio[0] / block.ratio[1]
        links.append(Link(int(count)))
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
            except Pending:
                pass
            try:
                while len(block.o.offer) < block.o.count:
                    block.o.offer.append(block.emit(len(block.o.offer)))
                    progress = True
            except Pending:
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
    return _transfer_times(timing_blocks(net, top), vectors)


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


def cycle_model(net, top):
    """``(latency, initiation interval, "analytic")`` of an accelerator: :func:`analytic_timing`,
    the blocks' timing recurrences (the tests hold them against Amaranth's simulator)."""
    return (*analytic_timing(net, top), "analytic")
