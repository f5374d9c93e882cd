"""Quantizers, the straight-through estimator, and folding of float factors into thresholds.

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

Folding. Between two integer layers a network computes, for output ``j``, the accumulator
``acc[j] = sum_i T[j, i] * x[i]`` of integer (ternary or binary) weights ``T`` and integer inputs
``x``, and then real-valued factors: the weight scale ``alpha[j]``, the scale ``s`` of the input
values, a bias, a batch norm. :class:`Affine` holds them and :func:`preactivation` is the one
float computation of the pre-activation ``z = f(acc)`` from them (the trainer uses it too). Each
step of ``f`` is a monotone float operation, so ``f`` is monotone in ``acc`` (non-decreasing when
``gamma * alpha >= 0``, else non-increasing) even with rounding. :func:`fold_thresholds` finds,
by binary search over every integer the accumulator can reach, the integer thresholds ``t`` with
``acc >= t  <=>  f(acc) >= theta`` exactly, with no rounding question left: a ``ceil`` computed
in floats can be one off, the search cannot. A row on which ``f`` decreases has its weights
negated (``acc' = -acc``), so that ``acc' >= t`` keeps the direction ``tnn/1`` needs. A row on
which ``f`` is constant (a zero scale, or all-zero weights) gets thresholds at the ends of the
range, so that its output is the constant ``f`` gives.
"""

from dataclasses import dataclass

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
    "BatchNorm",
    "Affine",
    "preactivation",
    "accumulator_range",
    "fold_thresholds",
    "fold_layer",
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


# --- folding -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BatchNorm:
    """Batch norm in inference form, per output: ``gamma * (u - mean) / sqrt(var + eps) + beta``."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5


@dataclass(frozen=True, eq=False)
class Affine:
    """The real factors between a layer's integer accumulators and its activation.

    ``u = acc * (alpha * input_scale) + bias``, then ``z = batch_norm(u)`` if any (see
    :func:`preactivation`).

    Attributes
    ----------
    alpha : ndarray of shape (out,)
        Weight scale per output (TWN, XNOR-Net); zero or positive.
    input_scale : float
        The real value of one integer step of the layer's input (positive).
    bias : ndarray of shape (out,) or None
    bn : BatchNorm or None
    """

    alpha: np.ndarray
    input_scale: float = 1.0
    bias: np.ndarray | None = None
    bn: BatchNorm | None = None

    def check(self):
        """Raise ``ValueError`` for factors that would make :func:`preactivation` non-monotone."""
        alpha = np.asarray(self.alpha, dtype=np.float64)
        if alpha.ndim != 1 or not np.all(np.isfinite(alpha)) or np.any(alpha < 0):
            raise ValueError("Weight scales (alpha) must be a vector of finite values >= 0")
        if not (np.isfinite(self.input_scale) and self.input_scale > 0):
            raise ValueError(f"The input scale must be finite and positive, not {self.input_scale}")
        parts = [] if self.bias is None else [("bias", self.bias)]
        if self.bn is not None:
            bn = self.bn
            parts += [("gamma", bn.gamma), ("beta", bn.beta), ("mean", bn.mean), ("var", bn.var)]
            if np.any(np.asarray(bn.var) < 0) or not bn.eps > 0:
                raise ValueError("Batch norm needs var >= 0 and eps > 0")
        for name, value in parts:
            value = np.asarray(value, dtype=np.float64)
            if value.shape != alpha.shape or not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be {alpha.shape[0]} finite values")

    @property
    def out(self):
        return len(self.alpha)


def preactivation(acc, affine):
    """The pre-activation ``z`` (float64) of integer accumulators ``acc`` (..., out).

    ``z = ((acc * k + bias) - mean) / sqrt(var + eps) * gamma + beta`` with
    ``k = alpha * input_scale``; the bias and batch-norm steps are skipped when absent. This is
    the single definition both the trainer's inference pass and :func:`fold_thresholds` use, so
    that folding is exact: every step is one correctly rounded, monotone float operation.
    """
    u = np.asarray(acc, dtype=np.float64) * (np.asarray(affine.alpha) * affine.input_scale)
    if affine.bias is not None:
        u = u + affine.bias
    bn = affine.bn
    if bn is not None:
        u = (u - bn.mean) / np.sqrt(np.asarray(bn.var, dtype=np.float64) + bn.eps) * bn.gamma
        u = u + bn.beta
    return u


def accumulator_range(weights, lo, hi):
    """Per-row ``(acc_lo, acc_hi)`` (int64) of ``weights @ x`` over inputs ``lo <= x_i <= hi``.

    Every integer between them is reachable when the inputs vary independently.
    """
    w = np.asarray(weights, dtype=np.int64)
    pos, neg = np.maximum(w, 0).sum(axis=1), np.maximum(-w, 0).sum(axis=1)
    return pos * lo - neg * hi, pos * hi - neg * lo


def _first_true(predicate, lo, hi):
    """Per element, the smallest integer ``a`` in ``[lo, hi]`` with ``predicate(a)``, else
    ``hi + 1``; ``predicate`` is non-decreasing (False then True) on that range."""
    left, right = lo.copy(), hi + 1  # the answer lies in [left, right]
    while np.any(left < right):
        middle = left + (right - left) // 2
        ok = predicate(middle)
        active = left < right
        right = np.where(active & ok, middle, right)
        left = np.where(active & ~ok, middle + 1, left)
    return left


def fold_thresholds(affine, thresholds, acc_lo, acc_hi):
    """Integer thresholds equivalent to ``preactivation(acc, affine) >= thresholds``.

    Parameters
    ----------
    affine : Affine
        The real factors of an ``out``-output layer.
    thresholds : array of shape (m,) or (out, m)
        Ascending real activation thresholds on ``z``.
    acc_lo, acc_hi : int arrays of shape (out,)
        The range each accumulator can reach (see :func:`accumulator_range`).

    Returns
    -------
    sign : int8 array of shape (out,)
        +1 for rows kept as they are, -1 for rows whose weights must be negated (``z`` falls
        as ``acc`` rises: a negative batch-norm scale).
    int_thresholds : int64 array of shape (out, m)
        Ascending per row. For every integer ``a`` in ``[acc_lo, acc_hi]`` and every ``k``:
        ``sign * a >= int_thresholds[:, k]`` exactly when
        ``preactivation(a, affine) >= thresholds[k]``. Thresholds lie in
        ``[lo', hi' + 1]`` of the (possibly negated) range; a row constant over the range has
        all of them at one end.
    """
    affine.check()
    out = affine.out
    acc_lo = np.asarray(acc_lo, dtype=np.int64)
    acc_hi = np.asarray(acc_hi, dtype=np.int64)
    if acc_lo.shape != (out,) or acc_hi.shape != (out,) or np.any(acc_lo > acc_hi):
        raise ValueError(f"The accumulator range must be two vectors of {out} with lo <= hi")
    theta = np.asarray(thresholds, dtype=np.float64)
    theta = np.broadcast_to(theta, (out, theta.shape[-1]))
    if not np.all(np.isfinite(theta)) or np.any(np.diff(theta, axis=1) < 0):
        raise ValueError("Activation thresholds must be finite and ascending")

    # f is monotone, so its values at the two ends of the range give its direction.
    z_lo, z_hi = _z_at(affine, acc_lo), _z_at(affine, acc_hi)
    sign = np.where(z_hi < z_lo, -1, 1).astype(np.int8)
    # In the (possibly negated) accumulator a' = sign * acc the pre-activation never falls.
    lo = np.where(sign > 0, acc_lo, -acc_hi)
    hi = np.where(sign > 0, acc_hi, -acc_lo)
    result = np.empty(theta.shape, dtype=np.int64)
    for k in range(theta.shape[1]):
        result[:, k] = _first_true(
            lambda a, k=k: _z_at(affine, sign.astype(np.int64) * a) >= theta[:, k], lo, hi
        )
    return sign, result


def _z_at(affine, acc):
    """``preactivation`` of one accumulator value per row: ``acc`` (out,) -> ``z`` (out,)."""
    return preactivation(acc[None, :], affine)[0]


def fold_layer(weights, affine, levels, thresholds, input_range):
    """Fold a layer's real factors into ``tnn/1`` weights and activation thresholds.

    Parameters
    ----------
    weights : int array of shape (out, fan_in)
        The layer's integer (ternary or binary) weights.
    affine : Affine
        Its real factors.
    levels : sequence of int
        The activation's ascending output values.
    thresholds : array of shape (len(levels) - 1,) or (out, len(levels) - 1)
        The activation's real thresholds on the pre-activation.
    input_range : (int, int)
        The smallest and largest value one input element can take.

    Returns
    -------
    weights : int8 array
        ``weights`` with the rows negated where the pre-activation falls with the accumulator.
    int_thresholds : int64 array of shape (out, len(levels) - 1)
        So that ``levels[#{k : acc >= int_thresholds[j, k]}]`` on the returned weights equals
        ``levels[#{k : preactivation(acc) >= thresholds[k]}]`` on the given ones, for every
        input.
    """
    weights = np.asarray(weights, dtype=np.int8)
    theta = np.asarray(thresholds, dtype=np.float64)
    if theta.shape[-1] != len(levels) - 1:
        raise ValueError(
            f"{len(levels)} levels need {len(levels) - 1} thresholds, not {theta.shape[-1]}"
        )
    acc_lo, acc_hi = accumulator_range(weights, *input_range)
    sign, int_thresholds = fold_thresholds(affine, theta, acc_lo, acc_hi)
    return (weights * sign[:, None]).astype(np.int8), int_thresholds
