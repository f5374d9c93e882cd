"""Quantizers of weights and activations, and the straight-through estimator.

Quantizers (each a small function on NumPy arrays):

- :func:`twn_ternarize`: Ternary Weight Networks (Li et al., 2016): per output row, the threshold
  ``delta = 0.7 * mean|W|`` and the scale ``alpha`` = the mean magnitude of the weights kept;
- :func:`xnor_binarize`: BNN / XNOR-Net ``sign(W)`` (``sign(0) = +1``) with XNOR-Net's per-row
  scale ``alpha = mean|W|``;
- :func:`ternary_activation` and :func:`binary_activation` (TNN, GXNOR) and
  :func:`uniform_activation` (QNN / DoReFa, ``n``-bit unsigned levels): all of them are
  :func:`quantize_levels` with a particular ``(levels, thresholds)`` from
  :func:`activation_levels`, ``y = levels[#{k : r >= thresholds[k]}]``, the same rule a
  ``tnn/1`` activation applies to integer accumulators;
- :func:`ste`: the straight-through estimator ``g_r = g_q * 1{lo <= r <= hi}`` (BNN's
  ``1{|r| <= 1}`` by default).

Folding the real factors around an integer layer into its thresholds is :mod:`gen.learn.fold`.
"""

import numpy as np

__all__ = [
    "TWN_DELTA",
    "twn_ternarize",
    "xnor_binarize",
    "quantize_weights",
    "activation_levels",
    "quantize_levels",
    "ternary_activation",
    "binary_activation",
    "uniform_activation",
    "ste",
]

TWN_DELTA = 0.7


# --- weight quantizers ---------------------------------------------------------------------------


def _rows(w, per_row):
    """``w`` as a 2-D array of rows over which the scale is shared."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"Weights must be a 2-D array (out, fan_in), not of shape {w.shape}")
    return w if per_row else w.reshape(1, -1)


def twn_ternarize(w, *, delta_factor=TWN_DELTA, per_row=True):
    """Ternary Weight Networks: ``T = sign(w) * 1{|w| > delta}`` and the scale ``alpha``.

    Parameters
    ----------
    w : array of shape (out, fan_in)
        Real weights, one row per output.
    delta_factor : float
        ``delta = delta_factor * mean|w|`` (TWN's 0.7 approximates the optimal threshold for
        Gaussian or uniform weights); larger values give sparser ``T``.
    per_row : bool
        One ``delta`` and ``alpha`` per output row (the default; the row scale is then folded
        into that row's thresholds), or one for the whole layer (needed where no threshold
        follows, as before an ``argmax``, which a per-row scale would change).

    Returns
    -------
    T : int8 array of shape (out, fan_in)
        Values in {-1, 0, +1}.
    alpha : float64 array of shape (out,)
        The mean of ``|w|`` over the weights kept (0 where a row keeps none), so that
        ``alpha * T`` is TWN's approximation of ``w``.
    """
    rows = _rows(w, per_row)
    magnitude = np.abs(rows)
    delta = delta_factor * magnitude.mean(axis=1, keepdims=True)
    kept = magnitude > delta
    count = kept.sum(axis=1)
    alpha = np.where(kept, magnitude, 0.0).sum(axis=1) / np.maximum(count, 1)
    ternary = (np.sign(rows) * kept).astype(np.int8).reshape(np.shape(w))
    return ternary, np.broadcast_to(alpha, (np.shape(w)[0],)).copy()


def xnor_binarize(w, *, per_row=True):
    """BNN / XNOR-Net: ``B = sign(w)`` with ``sign(0) = +1``, and the scale ``alpha = mean|w|``.

    Parameters
    ----------
    w : array of shape (out, fan_in)
        Real weights.
    per_row : bool
        One scale per output row (XNOR-Net) or one for the layer (see :func:`twn_ternarize`).

    Returns
    -------
    B : int8 array of shape (out, fan_in)
        Values in {-1, +1}.
    alpha : float64 array of shape (out,)
    """
    rows = _rows(w, per_row)
    alpha = np.abs(rows).mean(axis=1)
    binary = np.where(np.asarray(w) >= 0, 1, -1).astype(np.int8)
    return binary, np.broadcast_to(alpha, (np.shape(w)[0],)).copy()


def quantize_weights(w, kind, *, delta_factor=TWN_DELTA, per_row=True):
    """:func:`twn_ternarize` (``kind="ternary"``) or :func:`xnor_binarize` (``"binary"``)."""
    if kind == "ternary":
        return twn_ternarize(w, delta_factor=delta_factor, per_row=per_row)
    if kind == "binary":
        return xnor_binarize(w, per_row=per_row)
    raise ValueError(f"Weight quantization must be 'ternary' or 'binary', not {kind!r}")


# --- activation quantizers -----------------------------------------------------------------------


def activation_levels(kind, *, delta=0.5, bits=2):
    """The integer ``levels``, real ``thresholds`` and real ``scale`` of an activation kind.

    Parameters
    ----------
    kind : str
        ``"ternary"`` (TNN / GXNOR: -1 below ``-delta``, +1 from ``delta`` on, else 0),
        ``"binary"`` (BNN: +1 from 0 on, else -1) or ``"uint"`` (QNN / DoReFa: ``r`` clipped to
        [0, 1] and rounded, half up, to ``k / (2**bits - 1)``).
    delta : float
        The ternary threshold.
    bits : int
        The width of ``"uint"`` levels.

    Returns
    -------
    levels : tuple of int
        Ascending output values, as a ``tnn/1`` activation writes them.
    thresholds : float64 array
        Ascending, one fewer than ``levels``.
    scale : float
        The real value of one level step: the next layer sees ``scale * level`` (1 for ternary
        and binary; ``1 / (2**bits - 1)`` for ``uint``), a factor folded into its thresholds.
    """
    if kind == "ternary":
        if not delta > 0:
            raise ValueError(f"The ternary threshold must be positive, not {delta!r}")
        return (-1, 0, 1), np.array([-delta, delta]), 1.0
    if kind == "binary":
        return (-1, 1), np.array([0.0]), 1.0
    if kind == "uint":
        if not (isinstance(bits, int) and 1 <= bits <= 8):
            raise ValueError(f"The activation width must be an integer 1 to 8, not {bits!r}")
        top = (1 << bits) - 1
        return tuple(range(top + 1)), (np.arange(1, top + 1) - 0.5) / top, 1.0 / top
    raise ValueError(f"Activation kind must be 'ternary', 'binary' or 'uint', not {kind!r}")


def quantize_levels(r, levels, thresholds):
    """``levels[k]`` with ``k`` the number of ``thresholds`` that ``r`` reaches (``r >= t``).

    ``thresholds`` is one ascending vector shared by all of ``r``, or an array of shape
    ``(out, len(levels) - 1)`` for the last axis of ``r``. Returns float64.
    """
    r = np.asarray(r, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    count = np.zeros(r.shape, dtype=np.int64)
    for k in range(thresholds.shape[-1]):
        count += r >= thresholds[..., k]
    return np.asarray(levels, dtype=np.float64)[count]


def ternary_activation(r, delta=0.5):
    """TNN / GXNOR ternary activation: -1 where ``r < -delta``, +1 where ``r >= delta``, else 0."""
    levels, thresholds, _ = activation_levels("ternary", delta=delta)
    return quantize_levels(r, levels, thresholds)


def binary_activation(r):
    """BNN binary activation: +1 where ``r >= 0``, else -1."""
    levels, thresholds, _ = activation_levels("binary")
    return quantize_levels(r, levels, thresholds)


def uniform_activation(r, bits):
    """QNN / DoReFa ``bits``-bit activation as integer levels ``0 .. 2**bits - 1``.

    ``k = round(clip(r, 0, 1) * (2**bits - 1))`` with halves rounded up; the real value is
    ``k / (2**bits - 1)``.
    """
    levels, thresholds, _ = activation_levels("uint", bits=bits)
    return quantize_levels(r, levels, thresholds)


def ste(grad, r, lo=-1.0, hi=1.0):
    """The straight-through estimator: ``grad * 1{lo <= r <= hi}``.

    The gradient of a quantizer ``q(r)`` is taken as that of ``clip(r, lo, hi)``: passed through
    unchanged where ``r`` is inside the clipping range, cancelled outside it (BNN's
    ``g_r = g_q * 1{|r| <= 1}``; ``lo=0`` for unsigned levels).
    """
    r = np.asarray(r)
    return grad * ((r >= lo) & (r <= hi))
