"""The NumPy golden model of a ``tnn/1`` network: exact integer outputs of a batch of inputs.

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
