"""The integer arithmetic of ``tnn/1``, vectorized over a batch.

Small named steps shared by the golden model (on values) and by range analysis (on per-element
lower and upper bounds): window extraction for conv2d, exact integer matrix products, threshold
activations and max-pooling. Each function works on a batch: the first axis is the batch, the
rest is a tensor of the shape the description gives (``[n]`` or ``[h, w, c]``).

Layers are passed as duck-typed objects with the fields of ``gen.network`` layers, so that this
module needs nothing but NumPy.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "windows",
    "exact_matmul",
    "activate",
    "maxpool",
    "layer_forward",
    "layer_bounds",
]

# Float products are exact while every partial sum stays below the format's integer range.
_FLOAT32_EXACT = 1 << 24
_FLOAT64_EXACT = 1 << 53


def windows(x, kernel, stride, padding, pad):
    """The conv2d input windows of ``x`` (batch, h, w, c): (batch, oh, ow, kh*kw*c).

    The last axis is in ``ky, kx, c`` order, the order of a conv2d weight string; the borders are
    filled with ``pad``.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=pad)
    view = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    # view: (batch, oh, ow, c, kh, kw) -> (batch, oh, ow, kh, kw, c)
    view = view.transpose(0, 1, 2, 4, 5, 3)
    return view.reshape(view.shape[:3] + (-1,))


def exact_matmul(x, weights, bound):
    """``x @ weights.T`` in exact integers, as int64.

    ``bound`` is an upper bound on ``sum_i |w_i| * |x_i|`` for every row, so on every partial
    sum. Below 2**24 the product runs in float32 BLAS, below 2**53 in float64 BLAS (both exact
    on such integers, and far faster than NumPy's integer product); otherwise in int64.
    """
    if bound < _FLOAT32_EXACT:
        dtype = np.float32
    elif bound < _FLOAT64_EXACT:
        dtype = np.float64
    else:
        return np.matmul(x.astype(np.int64), weights.T.astype(np.int64))
    product = np.matmul(x.astype(dtype), weights.T.astype(dtype))
    return product.astype(np.int64)


def activate(acc, activation):
    """The threshold activation of accumulators ``acc`` (batch, ..., out), or ``acc`` itself.

    ``y = levels[k]`` with ``k`` the number of thresholds of that output that ``acc`` reaches.
    """
    if activation is None:
        return acc
    thresholds = activation.thresholds
    k = np.zeros(acc.shape, dtype=np.int64)
    for t in range(thresholds.shape[1]):  # one pass per threshold, not per neuron
        k += acc >= thresholds[:, t]
    return np.asarray(activation.levels, dtype=np.int64)[k]


def maxpool(x, kernel, stride):
    """Max over ``kernel`` windows with ``stride`` of ``x`` (batch, h, w, c), per channel."""
    view = sliding_window_view(x, kernel, axis=(1, 2))[:, :: stride[0], :: stride[1]]
    return view.max(axis=(-2, -1))


def _dot_inputs(layer, x, pad):
    """The vectors each output of ``layer`` is a dot product with: (batch, ..., fan_in)."""
    if layer.type == "dense":
        return x.reshape(x.shape[0], -1)
    return windows(x, layer.kernel, layer.stride, layer.padding, pad)


def layer_forward(layer, x, bound):
    """One layer on a batch of values: returns ``(acc, y)`` (``acc`` is None for maxpool).

    ``bound`` is the largest magnitude any input value can have (for :func:`exact_matmul`).
    """
    if layer.type == "maxpool":
        return None, maxpool(x, layer.kernel, layer.stride)
    cols = _dot_inputs(layer, x, getattr(layer, "pad", 0))
    acc = exact_matmul(cols, layer.weights, int(bound) * layer.fan_in)
    return acc, activate(acc, layer.activation)


def layer_bounds(layer, lo, hi):
    """Range analysis of one layer on per-element bounds ``lo <= x <= hi`` (batch axis 1).

    Returns ``(acc_lo, acc_hi, y_lo, y_hi)``: bounds of every accumulator (None for maxpool) and
    of every output. The accumulator bounds are exact when the inputs vary independently (a
    network's first layer); later they are sound over-approximations.
    """
    if layer.type == "maxpool":
        return (
            None,
            None,
            maxpool(lo, layer.kernel, layer.stride),
            maxpool(hi, layer.kernel, layer.stride),
        )
    pad = getattr(layer, "pad", 0)
    cols_lo = _dot_inputs(layer, lo, pad).astype(np.int64)
    cols_hi = _dot_inputs(layer, hi, pad).astype(np.int64)
    w = layer.weights.astype(np.int64)
    w_pos, w_neg = np.maximum(w, 0), np.maximum(-w, 0)
    # Integer products: bounds may exceed what floats hold exactly, and there is no batch here.
    acc_lo = cols_lo @ w_pos.T - cols_hi @ w_neg.T
    acc_hi = cols_hi @ w_pos.T - cols_lo @ w_neg.T
    return acc_lo, acc_hi, activate(acc_lo, layer.activation), activate(acc_hi, layer.activation)
