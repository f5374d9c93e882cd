"""The NumPy golden model of a ``tnn/1`` network, and its range analysis.

:func:`run` evaluates a description on a batch of inputs with exact integer arithmetic (vectorized
over the batch and over neurons); :func:`analyze_ranges` gives, for each layer, the smallest and
largest accumulator any legal input can produce and so the accumulator width in bits.
"""

from dataclasses import dataclass

import numpy as np

from hw.encoding import ValueEncoding

from . import arith
from .network import MaxPool

__all__ = [
    "InputError",
    "LayerTrace",
    "LayerRange",
    "check_inputs",
    "random_inputs",
    "run",
    "analyze_ranges",
]


class InputError(ValueError):
    """Inputs that do not fit the network's declared input shape or type."""


@dataclass(frozen=True)
class LayerTrace:
    """One layer's results on a batch: accumulators (None for maxpool) and outputs."""

    acc: np.ndarray | None
    out: np.ndarray


@dataclass(frozen=True)
class LayerRange:
    """Range analysis of one layer.

    ``acc_min``/``acc_max`` bound every accumulator of the layer (over outputs and positions);
    ``acc_min_per_output``/``acc_max_per_output`` per output neuron or channel. ``acc_bits`` is
    the width of a two's complement accumulator holding the range (``acc_signed``), or of an
    unsigned one when no accumulator can be negative. ``out_min``/``out_max`` bound the layer's
    outputs. For maxpool the accumulator fields are None.
    """

    acc_min: int | None
    acc_max: int | None
    acc_min_per_output: np.ndarray | None
    acc_max_per_output: np.ndarray | None
    acc_bits: int | None
    acc_signed: bool | None
    out_min: int
    out_max: int


def width_of(lo, hi):
    """``(bits, signed)`` of the narrowest integer holding every value in ``[lo, hi]``."""
    encoding = ValueEncoding.for_range(lo, hi)
    return encoding.width, encoding.kind == "int"


def check_inputs(net, inputs):
    """``inputs`` as int64 of shape ``(N, *input.shape)``, or :class:`InputError` saying why."""
    x = np.asarray(inputs)
    shape = net.input.shape
    if x.dtype == np.bool_ or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise InputError(f"inputs must be integers, not an array of {x.dtype}")
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise InputError(
            f"inputs must have shape (N, {', '.join(map(str, shape))}) for input.shape "
            f"{list(shape)}, not {tuple(x.shape)}"
        )
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise InputError("inputs must be integers; found values with a fraction part")
    x = x.astype(np.int64)
    ok = net.input.type.contains(x)
    if not np.all(ok):
        where = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise InputError(
            f"input {where[0]} holds {int(x[where])} at index {list(where[1:])}, which is not a "
            f"{net.input.type.name} value ({_allowed(net.input.type)})"
        )
    return x


def _allowed(value_type):
    if value_type.levels is not None:
        return "one of " + ", ".join(str(v) for v in value_type.levels)
    return f"{value_type.lo} to {value_type.hi}"


def random_inputs(net, count, seed=0):
    """``count`` random legal inputs of ``net``, uniform over its input type's values."""
    rng = np.random.default_rng(seed)
    value_type = net.input.type
    shape = (count,) + tuple(net.input.shape)
    if value_type.levels is not None:
        return rng.choice(np.array(value_type.levels, dtype=np.int64), size=shape)
    return rng.integers(value_type.lo, value_type.hi + 1, size=shape, dtype=np.int64)


def run(net, inputs, *, trace=False, check=True):
    """Evaluate ``net`` on a batch ``inputs`` of shape ``(N, *input.shape)``.

    Returns the outputs: ``(N,)`` class indices for ``argmax`` (ties to the lowest index), else
    ``(N, *output shape)`` values; with ``trace=True`` also a list of :class:`LayerTrace`, one
    per layer.
    """
    x = check_inputs(net, inputs) if check else np.asarray(inputs, dtype=np.int64)
    traces = []
    for layer, value_type in zip(net.layers, net.types[:-1], strict=True):
        bound = max(abs(value_type.lo), abs(value_type.hi))
        acc, x = arith.layer_forward(layer, x, bound)
        if trace:
            traces.append(LayerTrace(acc, x))
    if net.output == "argmax":
        result = np.argmax(x.reshape(x.shape[0], -1), axis=1).astype(np.int64)
    else:
        result = x
    return (result, traces) if trace else result


def analyze_ranges(net):
    """Range analysis: one :class:`LayerRange` per layer.

    Each input element ranges over its declared type, independently; the bounds propagate
    element by element (an all-zero row's constant output is known exactly, a threshold no
    accumulator can reach is never taken). For a network's first layer the accumulator bounds
    are exact: some legal input reaches each of them.
    """
    lo = np.full((1,) + net.input.shape, net.input.type.lo, dtype=np.int64)
    hi = np.full((1,) + net.input.shape, net.input.type.hi, dtype=np.int64)
    ranges = []
    for layer in net.layers:
        acc_lo, acc_hi, lo, hi = arith.layer_bounds(layer, lo, hi)
        if isinstance(layer, MaxPool):
            ranges.append(
                LayerRange(None, None, None, None, None, None, int(lo.min()), int(hi.max()))
            )
            continue
        per_lo = acc_lo.reshape(-1, layer.out).min(axis=0)
        per_hi = acc_hi.reshape(-1, layer.out).max(axis=0)
        bits, is_signed = width_of(per_lo.min(), per_hi.max())
        ranges.append(
            LayerRange(
                int(per_lo.min()),
                int(per_hi.max()),
                per_lo,
                per_hi,
                bits,
                is_signed,
                int(lo.min()),
                int(hi.max()),
            )
        )
    return ranges
