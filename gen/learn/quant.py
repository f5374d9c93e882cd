"""Quantizers of weights and activations, and the straight-through estimator.

Quantizers (each a small function on NumPy arrays):

- :func:`twn_ternarize`: Ternary Weight Networks (Li et al., 2016): per output row, the threshold
  ``delta = 0.7 * mean|W|`` and the scale ``alpha`` = the mean magnitude of the weights kept;
- :func:`xnor_binarize`: BNN / XNOR-Net ``sign(W)`` (``sign(0) = +1``) with XNOR-Net's per-row
  scale ``alpha = mean|W|``;
- :func:`ttq_quantize`: Trained Ternary Quantization (Zhu et al., 2016): per layer, learned
  positive and negative scales ``Wp``, ``Wn``, threshold ``delta = t * max|W|``; the ratio
  ``Wp / Wn`` is quantized to small integers ``p / n`` (:func:`ttq_ratio`) so that the weights
  are exactly ``s * {-n, 0, +p}``, integers of an ``intN`` layer;
- :func:`dorefa_quantize`: DoReFa / QNN ``N``-bit weights, ``tanh`` normalized by its maximum
  and rounded to the symmetric grid ``{-M .. M} / M``, ``M = 2**(N-1) - 1``;
- :func:`ternary_activation` and :func:`binary_activation` (TNN, GXNOR) and
  :func:`uniform_activation` (QNN / DoReFa, ``n``-bit unsigned levels): all of them are
  :func:`quantize_levels` with a particular ``(levels, thresholds)`` from
  :func:`activation_levels`, ``y = levels[#{k : r >= thresholds[k]}]``, the same rule a
  ``tnn/1`` activation applies to integer accumulators;
- :func:`ste`: the straight-through estimator ``g_r = g_q * 1{lo <= r <= hi}`` (BNN's
  ``1{|r| <= 1}`` by default).

Folding the real factors around an integer layer into its thresholds is :mod:`gen.learn.fold`.
"""

import math

import numpy as np

__all__ = [
    "TWN_DELTA",
    "twn_ternarize",
    "xnor_binarize",
    "quantize_weights",
    "TTQ_THRESHOLD",
    "TTQ_BITS",
    "ttq_ratio",
    "ttq_quantize",
    "dorefa_quantize",
    "int_weight_top",
    "int_weight_bits",
    "ttq_bands",
    "dorefa_gradient",
    "activation_levels",
    "quantize_levels",
    "ternary_activation",
    "binary_activation",
    "uniform_activation",
    "ste",
]

TWN_DELTA = 0.7
#: TTQ's threshold factor ``t`` of ``delta = t * max|w|`` (the paper's 0.05).
TTQ_THRESHOLD = 0.05
#: The ``intN`` type TTQ weights are exported as by default: ``p, n <= 7``.
TTQ_BITS = 4


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


def int_weight_top(bits):
    """``M = 2**(bits-1) - 1``: the largest magnitude of the symmetric ``intN`` grid the trainer
    uses (``-2**(bits-1)`` is left out, so that a row negated by folding stays in the type)."""
    if not (isinstance(bits, int) and 2 <= bits <= 8):
        raise ValueError(f"Integer weights must have 2 to 8 bits, not {bits!r}")
    return (1 << (bits - 1)) - 1


def _reduced_fractions(top):
    """``(p, n, log(p / n))`` over the reduced fractions with ``1 <= p, n <= top``, ordered by
    ``p + n`` then ``p`` (the order in which ties are broken)."""
    pairs = sorted(
        ((p, n) for p in range(1, top + 1) for n in range(1, top + 1) if math.gcd(p, n) == 1),
        key=lambda pn: (pn[0] + pn[1], pn[0]),
    )
    p = np.array([pn[0] for pn in pairs], dtype=np.int64)
    n = np.array([pn[1] for pn in pairs], dtype=np.int64)
    return p, n, np.log(p) - np.log(n)


def ttq_ratio(wp, wn, top):
    """The integers ``(p, n)``, ``1 <= p, n <= top``, whose ratio is nearest ``wp / wn``.

    Nearest in ``|log(p / n) - log(wp / wn)|``: the relative error of the ratio, the same for
    ``wp / wn`` and ``wn / wp``. Only reduced fractions are candidates, and a tie goes to the
    smaller ``p + n``, then the smaller ``p``; ``wp = wn`` gives ``(1, 1)``. Ratios beyond
    ``top`` or below ``1 / top`` get ``(top, 1)`` or ``(1, top)``.

    The worst error of the ratio inside ``[1/top, top]`` is half the widest gap between
    neighbouring fractions: 22.5% for ``top = 3`` (``int3``), 11.8% for 7 (``int4``: between 4/1
    and 5/1), 6.1% for 15, 3.1% for 31, 1.6% for 63 and 0.8% for 127 (``int8``).
    """
    if not (wp > 0 and wn > 0 and math.isfinite(wp) and math.isfinite(wn)):
        raise ValueError(f"TTQ scales must be finite and positive, not {wp!r} and {wn!r}")
    p, n, logs = _reduced_fractions(top)
    target = math.log(wp) - math.log(wn)
    best = int(np.argmin(np.abs(logs - target)))  # the first of equal distances
    return int(p[best]), int(n[best])


def ttq_quantize(w, wp, wn, *, threshold=TTQ_THRESHOLD, bits=TTQ_BITS):
    """TTQ weights with the ratio of their scales quantized: ``s * T``, ``T`` in ``{-n, 0, p}``.

    Parameters
    ----------
    w : array of shape (out, fan_in)
        The layer's latent real weights.
    wp, wn : float
        The learned positive and negative scales (both positive).
    threshold : float
        ``t`` of ``delta = t * max|w|`` (the whole layer): weights above ``delta`` become
        ``+p``, below ``-delta`` ``-n``, the rest 0.
    bits : int
        The ``intN`` type of the export: ``p, n <= 2**(bits-1) - 1`` (:func:`ttq_ratio`).

    Returns
    -------
    T : int8 array of shape (out, fan_in)
        Values in ``{-n, 0, +p}``.
    alpha : float64 array of shape (out,)
        ``s = sqrt(wp * wn / (p * n))``, the same for every row: the geometric mean of
        ``wp / p`` and ``wn / n``, so that ``p * s`` and ``n * s`` miss ``wp`` and ``wn`` by
        the same factor, ``sqrt`` of the ratio's error, in opposite directions (none when
        ``wp / wn = p / n``).
    """
    rows = _rows(w, True)
    p, n = ttq_ratio(wp, wn, int_weight_top(bits))
    delta = threshold * (np.abs(rows).max() if rows.size else 0.0)
    ternary = np.where(rows > delta, p, np.where(rows < -delta, -n, 0)).astype(np.int8)
    s = math.sqrt(wp * wn / (p * n))
    return ternary, np.full(rows.shape[0], s)


def ttq_bands(w, threshold=TTQ_THRESHOLD):
    """The boolean masks ``(w > delta, w < -delta)`` of :func:`ttq_quantize`."""
    rows = _rows(w, True)
    delta = threshold * (np.abs(rows).max() if rows.size else 0.0)
    return rows > delta, rows < -delta


def dorefa_quantize(w, bits, *, per_row=True):
    """DoReFa / QNN ``bits``-bit weights on the symmetric integer grid ``-M .. M``.

    ``T = round(M * tanh(w) / max|tanh(w)|)``, halves rounded away from zero (``M = 2**(bits-1)
    - 1``), and the real weight is ``T / M`` in ``[-1, 1]``, as DoReFa's. DoReFa's own grid
    ``2 * round_k(tanh(w) / (2 max|tanh w|) + 1/2) - 1`` has ``2**k`` levels and no zero (odd
    integers ``-(2**k - 1) .. 2**k - 1``, which need ``k + 1`` bits); this grid has
    ``2**bits - 1`` levels including 0 in ``bits`` bits, and its negation stays in the type.

    Parameters
    ----------
    w : array of shape (out, fan_in)
    bits : int
        2 to 8: the ``intN`` type of the export.
    per_row : bool
        The maximum per output row (folded into that row's thresholds), or over the layer (where
        no threshold follows, as before an ``argmax``).

    Returns
    -------
    T : int8 array of shape (out, fan_in)
    alpha : float64 array of shape (out,)
        ``1 / M``.
    """
    top = int_weight_top(bits)
    rows = _rows(w, per_row)
    t = np.tanh(rows)
    peak = np.abs(t).max(axis=1, keepdims=True)
    scaled = np.divide(top * t, peak, out=np.zeros_like(t), where=peak > 0)
    levels = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    ints = np.clip(levels, -top, top).astype(np.int8).reshape(np.shape(w))
    return ints, np.full(np.shape(w)[0], 1.0 / top)


def dorefa_gradient(w, *, per_row=True):
    """``d(T / M) / dw`` of :func:`dorefa_quantize` with the rounding passed straight through
    and the maximum held constant: ``(1 - tanh(w)**2) / max|tanh(w)|``."""
    rows = _rows(w, per_row)
    t = np.tanh(rows)
    peak = np.abs(t).max(axis=1, keepdims=True)
    slope = np.divide(1 - t * t, peak, out=np.zeros_like(t), where=peak > 0)
    return slope.reshape(np.shape(w))


def quantize_weights(w, kind, *, delta_factor=TWN_DELTA, per_row=True):
    """:func:`twn_ternarize` (``kind="ternary"``), :func:`xnor_binarize` (``"binary"``) or
    :func:`dorefa_quantize` (``"intN"``, N = 2..8). TTQ needs its learned scales:
    :func:`ttq_quantize`."""
    if kind == "ternary":
        return twn_ternarize(w, delta_factor=delta_factor, per_row=per_row)
    if kind == "binary":
        return xnor_binarize(w, per_row=per_row)
    bits = int_weight_bits(kind)
    if bits is not None:
        return dorefa_quantize(w, bits, per_row=per_row)
    raise ValueError(
        f"Weight quantization must be 'ternary', 'binary' or 'intN' (N = 2..8), not {kind!r}"
    )


def int_weight_bits(kind):
    """N of a weight kind ``intN`` with N = 2..8, else None."""
    if isinstance(kind, str) and kind.startswith("int") and kind[3:].isdigit():
        bits = int(kind[3:])
        if 2 <= bits <= 8 and kind == f"int{bits}":
            return bits
    return None


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
