"""A layer's resources as the pipeline builds it: its engine, its register slice and its stream
conversions, in the resource model's iCE40 units (:mod:`gen.compiler.cost`), and the final
argmax's. :mod:`gen.compiler.plan` weighs foldings with them and :mod:`gen.compiler.fit`
turns them into a part family's units.
"""

import numpy as np

from hw.dotproduct import digit_matrix
from hw.products import product_width

from ..network import Conv2d, MaxPool
from . import cost
from .build import encoding_of

__all__ = [
    "value_bits",
    "layer_input_encoding",
    "layer_estimate",
    "layer_resources",
    "output_estimate",
]


def value_bits(value_type):
    """Bits per element of a value type in the accelerator's streams."""
    if value_type.name == "ternary":
        return 2
    if value_type.name == "binary":
        return 1
    return encoding_of(value_type).width


def layer_input_encoding(net, index):
    """The :class:`hw.encoding.ValueEncoding` of layer ``index``'s inputs."""
    return encoding_of(net.types[index])


def output_estimate(net, argmax_stages):
    """The argmax after the last layer (per position for a ``class_map``), none for values."""
    if net.output == "argmax":
        count = int(np.prod(net.output_shape))
    elif net.output == "class_map":
        count = net.output_shape[-1]
    else:
        return cost.Resources()
    return cost.argmax(count, value_bits(net.types[-1]), argmax_stages or 0)


def _ends_in_slice(net, index):
    """Whether an unrolled layer's output passes a register slice (``build.register_slice``):
    before every next layer, and before the argmax of a vector (a dense last layer's) or the
    class map of a pixel stream (a convolution's)."""
    if index < len(net.layers) - 1:
        return True
    conv = isinstance(net.layers[index], Conv2d)
    return (net.output == "argmax" and not conv) or (net.output == "class_map" and conv)


def layer_estimate(net, layer_plan, ranges, *, multiply=None):
    """A layer plan's :class:`gen.compiler.cost.Resources` (its own ``multiply`` unless given)."""
    lp = layer_plan
    return layer_resources(
        net, lp.index, lp.engine, lp.pe, lp.simd, lp.stages, ranges, multiply or lp.multiply
    )


def layer_resources(net, index, engine, pe, simd, stages, ranges, multiply="logic"):
    """The layer's engine, and the stream conversions the pipeline puts in it
    (:func:`_conversions`)."""
    return _engine_estimate(net, index, engine, pe, simd, stages, ranges, multiply) + _conversions(
        net, index
    )


def _spatial(layer):
    return isinstance(layer, (Conv2d, MaxPool))


def _conversions(net, index):
    """A serializer in front of a spatial layer fed a vector (the input, or a dense layer's
    output), a deserializer in front of a dense layer fed pixels, and after a spatial last layer
    whose output is an argmax (``build``: ``to_pixels``, ``to_vector``)."""
    layer, total = net.layers[index], cost.Resources()
    in_bits = value_bits(net.types[index])
    shape_in = net.shapes[index]
    spatial_before = index > 0 and _spatial(net.layers[index - 1])
    if _spatial(layer) and not spatial_before:
        total = total + cost.serializer(int(np.prod(shape_in)) * in_bits)
    if not _spatial(layer) and spatial_before:
        bits = int(np.prod(shape_in)) * in_bits
        total = total + cost.deserializer(bits, shape_in[-1] * in_bits)
    if _spatial(layer) and index == len(net.layers) - 1 and net.output == "argmax":
        out_bits, shape_out = value_bits(net.types[index + 1]), net.shapes[index + 1]
        bits = int(np.prod(shape_out)) * out_bits
        total = total + cost.deserializer(bits, shape_out[-1] * out_bits)
    return total


def _engine_estimate(net, index, engine, pe, simd, stages, ranges, multiply):
    layer = net.layers[index]
    in_type, out_type = net.types[index], net.types[index + 1]
    in_bits = value_bits(in_type)
    shape_in, shape_out = net.shapes[index], net.shapes[index + 1]
    if isinstance(layer, MaxPool):
        return cost.maxpool(shape_in[1], shape_in[2], layer.kernel, in_bits)
    acc_bits = ranges[index].acc_bits + (0 if ranges[index].acc_signed else 1)
    rows, cols = layer.weights.shape
    n_thr = 0 if layer.activation is None else len(layer.activation.levels) - 1
    out_bits = value_bits(out_type)
    if engine == "unrolled":
        # integer weights are summed as their signed-digit planes, a ternary matrix over shifted
        # copies of the inputs (hw.dotproduct.digit_matrix); a ternary matrix is its own
        est = cost.unrolled_dot(
            digit_matrix(layer.weights)[0],
            in_bits,
            acc_bits,
            stages,
            shared=in_type.name != "binary",
        )
        if n_thr:
            est = est + cost.threshold(rows, acc_bits, n_thr, out_bits)
        if _ends_in_slice(net, index):  # a vector, or a pixel of `rows` channels
            est = est + cost.register_slice(rows * out_bits)
    else:
        product = None
        if multiply == "dsp":
            product = product_width(layer_input_encoding(net, index), layer.weight_type)
        est = cost.folded(
            rows,
            cols,
            pe,
            simd,
            in_bits,
            acc_bits,
            n_thr,
            layer.weight_type,
            stages=stages,
            product_bits=product,
        )
    if isinstance(layer, Conv2d):
        est = est + cost.window(
            shape_in[1] + 2 * layer.padding[1], shape_in[2], layer.kernel, in_bits
        )
    del shape_out
    return est
