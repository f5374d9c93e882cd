"""The NumPy golden model of a ``tnn/1`` or ``tnn/2`` network: exact integer outputs of a batch
of inputs.

:func:`run` evaluates a description on a batch of inputs with exact integer arithmetic
(vectorized over the batch and over neurons, :mod:`gen.network.arith`); the range analysis of
the same arithmetic is :mod:`gen.network.ranges`.
"""

from dataclasses import dataclass

import numpy as np

from . import arith

__all__ = ["InputError", "LayerTrace", "check_inputs", "random_inputs", "run"]


class InputError(ValueError):
    """Inputs that do not fit the network's declared input shape or type."""


@dataclass(frozen=True)
class LayerTrace:
    """One layer's results on a batch: accumulators (None for maxpool) and outputs."""

    acc: np.ndarray | None
    out: np.ndarray


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
    value_type = net.input.type
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise InputError("inputs must be integers; found values with a fraction part")
        outside = (x < value_type.lo) | (x > value_type.hi)
    else:
        # Compared in the array's own type, before any cast: a uint64 2**64 - 1 must not become
        # -1, a legal ternary value.
        info = np.iinfo(x.dtype)
        lo = np.array(max(value_type.lo, info.min), dtype=x.dtype)
        hi = np.array(min(value_type.hi, info.max), dtype=x.dtype)
        outside = (x < lo) | (x > hi)
    if np.any(outside):
        _refuse(x, outside, value_type)
    x = x.astype(np.int64)
    ok = value_type.contains(x)
    if not np.all(ok):
        _refuse(x, ~ok, value_type)
    return x


def _refuse(x, bad, value_type):
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    value = x[where]
    shown = int(value) if np.issubdtype(x.dtype, np.integer) else float(value)
    if isinstance(shown, float) and shown == int(shown) and abs(shown) < 2**53:
        shown = int(shown)
    raise InputError(
        f"input {where[0]} holds {shown} at index {list(where[1:])}, which is not a "
        f"{value_type.name} value ({_allowed(value_type)})"
    )


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

    Returns the outputs: ``(N,)`` class indices for ``argmax`` (ties to the lowest index),
    ``(N, h, w)`` class indices for ``class_map`` (per position, ties to the lowest channel), else
    ``(N, *output shape)`` values; with ``trace=True`` also a list of :class:`LayerTrace`, one
    per layer.
    """
    x = check_inputs(net, inputs) if check else np.asarray(inputs, dtype=np.int64)
    if trace:
        return _run(net, x, trace=True)
    # In batches whose largest tensor stays near BATCH_VALUES: the memory of a large batch is
    # that of its outputs, not of every layer's accumulators at once.
    step = max(1, BATCH_VALUES // _values_per_input(net))
    if len(x) <= step:
        return _run(net, x)
    return np.concatenate([_run(net, x[k : k + step]) for k in range(0, len(x), step)])


#: Values of the largest intermediate tensor of one batch of :func:`run`.
BATCH_VALUES = 1 << 24


def _values_per_input(net):
    """The largest tensor one input makes: a layer's accumulators or a conv2d's windows."""
    largest = int(np.prod(net.input.shape))
    for layer, shape in zip(net.layers, net.shapes[1:], strict=True):
        size = int(np.prod(shape))
        if layer.type != "maxpool":
            size = max(size, size // layer.out * layer.fan_in)
        largest = max(largest, size)
    return largest


def _run(net, x, *, trace=False):
    traces = []
    for layer, value_type in zip(net.layers, net.types[:-1], strict=True):
        bound = max(abs(value_type.lo), abs(value_type.hi))
        acc, x = arith.layer_forward(layer, x, bound)
        if trace:
            traces.append(LayerTrace(acc, x))
    if net.output == "argmax":
        flat = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
        result = np.argmax(flat, axis=1).astype(np.int64)
    elif net.output == "class_map":
        result = np.argmax(x, axis=-1).astype(np.int64)  # (N, h, w), ties to the lowest channel
    else:
        result = x
    return (result, traces) if trace else result
