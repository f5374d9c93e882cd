"""The integer arithmetic of ``tnn/1`` and ``tnn/2``, vectorized over a batch.

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
    return view.reshape(view.shape[:3] + (kh * kw * x.shape[3],))


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
    """Max over ``kernel`` windows with ``stride`` of ``x`` (batch, h, w, c), per channel.

    Separable, one axis at a time, and each axis by doubling (the max of a window of ``k`` is
    the max of two overlapping windows of the largest power of two up to ``k``): about
    ``log2(k)`` passes over the tensor per axis, not ``kh * kw``, so that a large window costs
    no more than a small one.
    """
    for axis, (k, s) in enumerate(zip(kernel, stride, strict=True), start=1):
        x = _sliding_max(x, k, axis)
        x = np.take(x, np.arange(0, x.shape[axis], s), axis=axis)
    return x


def _sliding_max(x, k, axis):
    """``out[i] = max(x[i : i + k])`` along ``axis`` (length ``n - k + 1``)."""
    n = x.shape[axis]
    span, block = 1, x
    while 2 * span <= k:  # block[i] = max(x[i : i + 2 * span])
        block = np.maximum(
            _slice(block, 0, block.shape[axis] - span, axis),
            _slice(block, span, block.shape[axis], axis),
        )
        span *= 2
    # block[i] covers x[i : i + span]; two of them cover a window of k (span <= k < 2 * span)
    count = n - k + 1
    return np.maximum(
        _slice(block, 0, count, axis), _slice(block, k - span, k - span + count, axis)
    )


def _slice(x, start, stop, axis):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


#: Window values made at once (per block of output rows): bounds the memory of a conv2d layer.
BLOCK_VALUES = 1 << 20


def _products(layer, inputs, products):
    """``products(*cols)`` over the dot-product inputs of ``layer`` for each tensor of
    ``inputs`` (all of one shape, batch first), as one array (batch, ..., out).

    A conv2d layer's windows are made one block of output rows at a time, so that memory stays
    near :data:`BLOCK_VALUES` however large the feature map.
    """
    if layer.type == "dense":
        return products(*(x.reshape(x.shape[0], int(np.prod(x.shape[1:]))) for x in inputs))
    (kh, _), (sh, _), (ph, pw) = layer.kernel, layer.stride, layer.padding
    pad = getattr(layer, "pad", 0)
    padded = [
        np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=pad) if ph or pw else x
        for x in inputs
    ]
    batch, height = padded[0].shape[:2]
    rows = (height - kh) // sh + 1
    per_row = batch * layer.fan_in * ((padded[0].shape[2] - layer.kernel[1]) // layer.stride[1] + 1)
    step = max(1, BLOCK_VALUES // max(1, per_row))
    blocks = []
    for first in range(0, rows, step):
        last = min(rows, first + step)
        part = [x[:, first * sh : (last - 1) * sh + kh] for x in padded]
        cols = [windows(x, layer.kernel, layer.stride, (0, 0), pad) for x in part]
        blocks.append(products(*cols))
    return np.concatenate(blocks, axis=1)


def layer_forward(layer, x, bound):
    """One layer on a batch of values: returns ``(acc, y)`` (``acc`` is None for maxpool).

    ``bound`` is the largest magnitude any input value can have (for :func:`exact_matmul`).
    """
    if layer.type == "maxpool":
        return None, maxpool(x, layer.kernel, layer.stride)
    limit = int(bound) * layer.max_row_weight
    acc = _products(layer, [x], lambda cols: exact_matmul(cols, layer.weights, limit))
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
    w = layer.weights.astype(np.int64)
    w_pos, w_neg = np.maximum(w, 0), np.maximum(-w, 0)
    # Exact products, in float BLAS where the bounds allow it (as the golden model's).
    magnitude = max(int(np.abs(lo).max(initial=0)), int(np.abs(hi).max(initial=0)))
    if layer.type == "conv2d":
        magnitude = max(magnitude, abs(int(layer.pad)))
    limit = magnitude * int(np.abs(w).sum(axis=1).max(initial=0))

    def bounds(cols_lo, cols_hi):
        acc_lo = exact_matmul(cols_lo, w_pos, limit) - exact_matmul(cols_hi, w_neg, limit)
        acc_hi = exact_matmul(cols_hi, w_pos, limit) - exact_matmul(cols_lo, w_neg, limit)
        return np.concatenate([acc_lo, acc_hi])  # along the batch axis

    both = _products(layer, [lo.astype(np.int64), hi.astype(np.int64)], bounds)
    acc_lo, acc_hi = both[: len(lo)], both[len(lo) :]
    return acc_lo, acc_hi, activate(acc_lo, layer.activation), activate(acc_hi, layer.activation)
