"""Exact integer thresholds from the real factors around an integer layer (scale, bias, BN).

Between two integer layers a network computes, for output ``j``, the accumulator
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
    "BatchNorm",
    "Affine",
    "preactivation",
    "accumulator_range",
    "fold_thresholds",
    "fold_monotone",
    "fold_layer",
]


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
    acc_lo = np.asarray(acc_lo, dtype=np.int64)
    acc_hi = np.asarray(acc_hi, dtype=np.int64)
    if acc_lo.shape != (affine.out,) or acc_hi.shape != (affine.out,):
        raise ValueError(f"The accumulator range must be two vectors of {affine.out} with lo <= hi")
    return fold_monotone(lambda acc: preactivation(acc, affine), thresholds, acc_lo, acc_hi)


def fold_monotone(f, thresholds, acc_lo, acc_hi):
    """Integer thresholds equivalent to ``f(acc) >= thresholds`` for a monotone ``f``.

    The mechanism behind :func:`fold_thresholds`, for any per-output function of the
    accumulator that is monotone over the range (non-decreasing or non-increasing, each output
    its own way): the trainer's float64 :func:`preactivation`, or an importer's float32
    evaluation of a graph's own operators. Nothing is assumed of ``f`` beyond monotonicity, so
    the result reproduces ``f``'s rounding exactly.

    Parameters
    ----------
    f : callable
        ``f(acc) -> z``: int64 accumulators of shape ``(n, out)`` to real values of the same
        shape, column ``j`` through output ``j``'s function. It is called once for the
        direction and once per step of the binary search (about ``log2`` of the range).
    thresholds : array of shape (m,) or (out, m)
        Ascending real thresholds on ``z``.
    acc_lo, acc_hi : int arrays of shape (out,)
        The range each accumulator can reach.

    Returns
    -------
    sign, int_thresholds
        As :func:`fold_thresholds` returns them: for every integer ``a`` in
        ``[acc_lo, acc_hi]`` and every ``k``, ``sign * a >= int_thresholds[:, k]`` exactly when
        ``f(a) >= thresholds[k]``.
    """
    acc_lo = np.asarray(acc_lo, dtype=np.int64)
    acc_hi = np.asarray(acc_hi, dtype=np.int64)
    if acc_lo.ndim != 1 or acc_hi.shape != acc_lo.shape or np.any(acc_lo > acc_hi):
        raise ValueError(
            f"The accumulator range must be two vectors of {acc_lo.shape[-1]} with lo <= hi"
        )
    out = acc_lo.shape[0]
    theta = np.asarray(thresholds, dtype=np.float64)
    theta = np.broadcast_to(theta, (out, theta.shape[-1]))
    if not np.all(np.isfinite(theta)) or np.any(np.diff(theta, axis=1) < 0):
        raise ValueError("Activation thresholds must be finite and ascending")

    # f is monotone, so its values at the two ends of the range give its direction.
    ends = np.asarray(f(np.stack([acc_lo, acc_hi])), dtype=np.float64)
    sign = np.where(ends[1] < ends[0], -1, 1).astype(np.int8)
    # In the (possibly negated) accumulator a' = sign * acc, f never falls. All thresholds of
    # all outputs are searched at once: one call of f per step, on (m, out) accumulators.
    m = theta.shape[1]
    lo = np.broadcast_to(np.where(sign > 0, acc_lo, -acc_hi), (m, out))
    hi = np.broadcast_to(np.where(sign > 0, acc_hi, -acc_lo), (m, out))
    row_sign = sign.astype(np.int64)
    found = _first_true(lambda a: np.asarray(f(row_sign * a)) >= theta.T, lo, hi)
    return sign, np.ascontiguousarray(found.T, dtype=np.int64)


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
    weights : int16 array
        ``weights`` with the rows negated where the pre-activation falls with the accumulator
        (int16: a negated int8 -128 is +128, which the caller must fit into a weight type).
    int_thresholds : int64 array of shape (out, len(levels) - 1)
        So that ``levels[#{k : acc >= int_thresholds[j, k]}]`` on the returned weights equals
        ``levels[#{k : preactivation(acc) >= thresholds[k]}]`` on the given ones, for every
        input.
    """
    weights = np.asarray(weights, dtype=np.int16)
    theta = np.asarray(thresholds, dtype=np.float64)
    if theta.shape[-1] != len(levels) - 1:
        raise ValueError(
            f"{len(levels)} levels need {len(levels) - 1} thresholds, not {theta.shape[-1]}"
        )
    acc_lo, acc_hi = accumulator_range(weights, *input_range)
    sign, int_thresholds = fold_thresholds(affine, theta, acc_lo, acc_hi)
    return (weights * sign[:, None]).astype(np.int16), int_thresholds
