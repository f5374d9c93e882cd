"""The quantizers of a QONNX graph: the integer levels they produce, and their outputs as qonnx
computes them.

An activation quantizer (``Quant``, ``BipolarQuant``, ``MultiThreshold``) produces a finite set of
float32 values ``Y[k]``; :class:`Levels` writes them as integer levels ``L[k]`` times one step
``g > 0`` (``L`` ascending). Its outputs are always computed by the node's own qonnx
implementation (``CustomOp.execute_node``), the code ``execute_onnx`` runs, so its rounding mode,
clamping, ``narrow`` range and ``>=`` comparisons are qonnx's by construction.

A weight quantizer (``Quant`` of 2 bits, signed and narrow: ternary; ``BipolarQuant`` or 1-bit
signed ``Quant``: binary) or a plain initializer of values ``{-s, 0, +s}`` per output channel (the
older FINN dialect) gives integer weights and one scale per output channel.
"""

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .errors import UnsupportedGraph, display_name

__all__ = ["Levels", "ActivationQuantizer", "activation_quantizer", "Weights", "weights_of"]

QUANTIZER_OPS = ("Quant", "BipolarQuant", "MultiThreshold")
MAX_LEVEL = 1 << 16


@dataclass(frozen=True, eq=False)
class Levels:
    """The values of a quantized tensor: ``values[k]`` (float32) stands for ``levels[k] * step``.

    ``exact`` says whether every value is exactly ``levels[k] * step`` (always so for binary and
    ternary levels; a non-power-of-two step times a level above 1 may round).
    """

    levels: tuple
    step: Fraction
    values: np.ndarray

    @property
    def exact(self):
        return all(
            Fraction(float(y)) == level * self.step
            for y, level in zip(self.values, self.levels, strict=True)
        )

    @property
    def scale(self):
        return float(self.step)

    def index(self, y, node=None):
        """The index into ``levels`` of each float32 value in ``y`` (which must be a level)."""
        y = np.asarray(y, dtype=np.float32)
        k = np.clip(np.searchsorted(self.values, y), 0, len(self.values) - 1)
        if not np.array_equal(self.values[k], y):
            bad = y[self.values[k] != y].ravel()[0]
            where = f" of {display_name(node)!r}" if node is not None else ""
            raise RuntimeError(f"the quantizer{where} produced {bad}, which is none of its levels")
        return k

    def scaled(self, values, step):
        """The same levels carried as other float32 ``values`` with another ``step``."""
        return Levels(self.levels, step, np.asarray(values, dtype=np.float32))


def _levels_from_grid(levels, step, values, node):
    order = np.argsort(values, kind="stable")
    values = np.asarray(values, dtype=np.float32)[order]
    levels = tuple(int(levels[k]) for k in order)
    if np.any(np.diff(values) <= 0) or list(levels) != sorted(set(levels)):
        raise UnsupportedGraph.at(node, "its output values are not distinct and ascending")
    return Levels(levels, step, values)


def _levels_from_values(values, node):
    """Integer levels and the largest step of which every value is a multiple (exactly)."""
    values = np.unique(np.asarray(values, dtype=np.float32))
    fractions = [Fraction(float(v)) for v in values]
    numerator = 0
    denominator = 1
    for f in fractions:
        numerator = math.gcd(numerator, f.numerator)
        denominator = denominator * f.denominator // math.gcd(denominator, f.denominator)
    if numerator == 0:
        raise UnsupportedGraph.at(node, "all of its output values are 0")
    step = Fraction(numerator, denominator)
    levels = [int(f / step) for f in fractions]
    if max(abs(v) for v in levels) > MAX_LEVEL:
        raise UnsupportedGraph.at(
            node,
            "its output values are not small integer multiples of one step "
            f"(values {values.tolist()[:4]}...), so they are no tnn/1 levels",
        )
    return Levels(tuple(levels), step, values)


def _attr(op, name):
    return op.get_nodeattr(name)


def _scalar(static, node, what, *, integer=False):
    value = np.asarray(static.value)
    if value.size != 1:
        raise UnsupportedGraph.at(
            node,
            f"its {what} has shape {list(value.shape)}; only one {what} for the whole tensor is "
            "supported for activations (a per-channel activation scale would give the next "
            "layer's inputs different scales)",
        )
    v = float(value.reshape(()))
    if not math.isfinite(v) or (integer and v != round(v)):
        raise UnsupportedGraph.at(node, f"its {what} must be a finite integer, not {v}")
    return v


class ActivationQuantizer:
    """A ``Quant``, ``BipolarQuant`` or ``MultiThreshold`` node that quantizes activations.

    Attributes
    ----------
    node : onnx.NodeProto
    levels : Levels
        What it produces.
    params : dict
        Its parameters, as the input specification records them.
    """

    def __init__(self, step):
        from qonnx.custom_op.registry import getCustomOp

        self.node = step.node
        self.step = step
        self.op = getCustomOp(self.node)
        self.static = {k: s for k, s in step.static.items()}
        parse = {
            "Quant": self._parse_quant,
            "BipolarQuant": self._parse_bipolar,
            "MultiThreshold": self._parse_multithreshold,
        }[self.node.op_type]
        self.levels, self.params = parse()

    @property
    def kind(self):
        return self.node.op_type

    def outputs(self, v):
        """The node's float32 outputs for inputs ``v`` (channels on axis 1), computed by qonnx."""
        node = self.node
        context = {node.input[self.step.data]: np.asarray(v, dtype=np.float32)}
        for k, static in self.static.items():
            context[node.input[k]] = static.value
        context[node.output[0]] = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.op.execute_node(context, None)
        return np.asarray(context[node.output[0]], dtype=np.float32)

    def level_index(self, v):
        """The index into ``levels.levels`` of the output for each input in ``v``."""
        return self.levels.index(self.outputs(v), self.node)

    def describe(self):
        p = self.params
        if self.kind == "MultiThreshold":
            return (
                f"MultiThreshold ({p['thresholds_count']} thresholds, out_scale "
                f"{p['out_scale']:g}, out_bias {p['out_bias']:g})"
            )
        if self.kind == "BipolarQuant":
            return f"BipolarQuant (scale {p['scale']:g})"
        narrow = ", narrow" if p["narrow"] else ""
        sign = "signed" if p["signed"] else "unsigned"
        return (
            f"Quant ({p['bit_width']}-bit {sign}{narrow}, scale {p['scale']:g}, zero point "
            f"{p['zero_point']:g}, {p['rounding_mode']})"
        )

    # --- parsers ---------------------------------------------------------------------------------

    def _parse_quant(self):
        from qonnx.custom_op.general.quant import max_int, min_int

        node = self.node
        scale = _scalar(self.static[1], node, "scale")
        zero_point = _scalar(self.static[2], node, "zero point", integer=True)
        bits = _scalar(self.static[3], node, "bit width", integer=True)
        if not scale > 0:
            raise UnsupportedGraph.at(node, f"its scale must be positive, not {scale}")
        if not 1 <= bits <= 16:
            raise UnsupportedGraph.at(node, f"activations of {bits:g} bits are not supported")
        bits = int(bits)
        signed, narrow = bool(_attr(self.op, "signed")), bool(_attr(self.op, "narrow"))
        rounding = _attr(self.op, "rounding_mode")
        if bits == 1 and signed:  # qonnx executes a 1-bit signed Quant as bipolar
            grid = np.array([-1, 1], dtype=np.int64)
        else:
            grid = np.arange(min_int(signed, narrow, bits), max_int(signed, narrow, bits) + 1)
        levels = grid - int(zero_point)
        step = Fraction(scale)
        values = self.outputs(np.float32(levels) * np.float32(scale))
        params = {
            "op": "Quant",
            "scale": scale,
            "zero_point": zero_point,
            "bit_width": bits,
            "signed": signed,
            "narrow": narrow,
            "rounding_mode": rounding,
        }
        return _levels_from_grid(levels, step, values, node), params

    def _parse_bipolar(self):
        node = self.node
        scale = _scalar(self.static[1], node, "scale")
        if not scale > 0:
            raise UnsupportedGraph.at(node, f"its scale must be positive, not {scale}")
        values = self.outputs(np.array([-scale, scale], dtype=np.float32))
        params = {"op": "BipolarQuant", "scale": scale}
        return _levels_from_grid(np.array([-1, 1]), Fraction(scale), values, node), params

    def _parse_multithreshold(self):
        node = self.node
        layout = _attr(self.op, "data_layout")
        if layout not in ("", "NC", "NCHW"):
            raise UnsupportedGraph.at(
                node, f"data_layout {layout!r} is not supported (channels must be on axis 1)"
            )
        thresholds = np.asarray(self.static[1].value, dtype=np.float32)
        if thresholds.ndim != 2 or np.any(np.isnan(thresholds)):
            raise UnsupportedGraph.at(
                node, f"its thresholds must be a (channels, steps) array, not {thresholds.shape}"
            )
        out_scale = float(_attr(self.op, "out_scale"))
        out_bias = float(_attr(self.op, "out_bias"))
        if out_scale == 0:
            raise UnsupportedGraph.at(node, "its out_scale is 0")
        count = thresholds.shape[1]
        # The values qonnx's multithreshold() computes: out_scale * count + out_bias in float32.
        values = out_scale * np.arange(count + 1, dtype=np.float32) + out_bias
        params = {
            "op": "MultiThreshold",
            "thresholds": thresholds.tolist(),
            "thresholds_count": count,
            "out_scale": out_scale,
            "out_bias": out_bias,
        }
        return _levels_from_values(values, node), params


def activation_quantizer(step):
    """The :class:`ActivationQuantizer` of the step's node, or :class:`UnsupportedGraph`."""
    return ActivationQuantizer(step)


# --- weights -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Weights:
    """Integer weights (the tensor's own shape, int16: negating an int8 -128 must not wrap), one
    float32 scale per output channel."""

    ints: np.ndarray
    scale: np.ndarray
    weight_type: str
    source: str


def _per_channel(value, shape, out_axis, node, what):
    full = np.broadcast_to(np.asarray(value, dtype=np.float32), shape)
    moved = np.moveaxis(full, out_axis, 0).reshape(shape[out_axis], -1)
    if not np.all(moved == moved[:, :1]):
        raise UnsupportedGraph.at(
            node,
            f"the {what} of its weights varies within an output channel; only one scale per "
            "tensor or per output channel maps onto thresholds",
        )
    return moved[:, 0].copy()


def weights_of(static, node, out_axis):
    """:class:`Weights` of the static weight tensor ``static`` of the linear op ``node``.

    ``out_axis`` is the axis of the weight tensor along which output channels lie.
    """
    value = np.asarray(static.value, dtype=np.float32)
    producer = static.producer
    if producer is None:
        return _plain_weights(value, node, out_axis)
    if producer.op_type not in ("Quant", "BipolarQuant"):
        raise UnsupportedGraph.at(
            node, f"its weights are computed by {producer.op_type} node {display_name(producer)!r}"
        )
    from qonnx.custom_op.registry import getCustomOp

    sources = static.sources
    if producer.op_type == "BipolarQuant":
        bits, signed, narrow, kind = 1, True, False, "BipolarQuant"
    else:
        op = getCustomOp(producer)
        zero_point = np.asarray(sources[2].value)
        if np.any(zero_point != 0):
            raise UnsupportedGraph.at(
                producer,
                "weight zero points other than 0 are not supported (a description's weights "
                "are integers around 0)",
            )
        bits = float(np.asarray(sources[3].value).reshape(()))
        signed, narrow = bool(op.get_nodeattr("signed")), bool(op.get_nodeattr("narrow"))
        if bits != int(bits) or not 1 <= bits <= (8 if signed else 7):
            raise UnsupportedGraph.at(
                producer,
                f"{'signed' if signed else 'unsigned'} weights of {bits:g} bits are not "
                f"supported (tnn/2 weights have 1 to 8 bits, unsigned ones at most 7)",
            )
        kind = f"Quant {int(bits)}-bit {'signed' if signed else 'unsigned'}"
    scale = _per_channel(sources[1].value, value.shape, out_axis, producer, "scale")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise UnsupportedGraph.at(producer, "weight scales must be positive and finite")
    shape = [1] * value.ndim
    shape[out_axis] = -1
    s = scale.reshape(shape)
    ints = np.rint(value / s)
    weight_type = _weight_type(int(bits), signed, narrow, producer.op_type == "BipolarQuant")
    lo, hi = _int_range(weight_type)
    if not np.array_equal(np.float32(ints) * s, value) or np.any((ints < lo) | (ints > hi)):
        name = display_name(producer)
        raise RuntimeError(f"the weights of {name!r} are not levels times the scale")
    per = "per-tensor" if np.all(scale == scale[0]) else "per-channel"
    return Weights(ints.astype(np.int16), scale, weight_type, f"{kind}, {per} scale")


def _weight_type(bits, signed, narrow, bipolar):
    """The description's weight type of a weight quantizer: ``binary`` (bipolar or 1-bit
    signed, which qonnx executes as bipolar), ``ternary`` (2-bit signed narrow, or 1-bit
    unsigned: 0, 1), else the ``intN`` that holds its levels (an unsigned N-bit quantizer's
    0 .. 2**N - 1 need N + 1 bits)."""
    if bipolar or (bits == 1 and signed):
        return "binary"
    if (bits == 2 and signed and narrow) or (bits == 1 and not signed):
        return "ternary"
    return f"int{bits if signed else bits + 1}"


def _int_range(weight_type):
    if weight_type == "binary":
        return -1, 1
    if weight_type == "ternary":
        return -1, 1
    bits = int(weight_type[3:])
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _plain_weights(value, node, out_axis):
    moved = np.moveaxis(value, out_axis, 0).reshape(value.shape[out_axis], -1)
    magnitude = np.abs(moved)
    top = magnitude.max(axis=1)
    if not np.all(np.isfinite(moved)) or np.any((magnitude != 0) & (magnitude != top[:, None])):
        raise UnsupportedGraph.at(
            node,
            "its weights are plain floats, not quantized (no Quant or BipolarQuant node, and not "
            "values -s, 0, +s per output channel); for a float model use --quantize twn|xnor",
        )
    scale = np.where(top > 0, top, 1).astype(np.float32)
    shape = [1] * value.ndim
    shape[out_axis] = -1
    ints = np.sign(value).astype(np.int8)
    weight_type = "binary" if np.all(ints != 0) else "ternary"
    per = "per-tensor" if np.all(scale == scale[0]) else "per-channel"
    return Weights(ints, scale, weight_type, f"initializer of {weight_type} values, {per} scale")
