"""Folding a layer's affine chain and activation quantizer into integer thresholds, exactly as
the graph computes them in float32, with a certificate of exactness for every input.

For output ``j`` the graph computes the linear op's float32 value ``v`` from the integer
accumulator ``acc`` (ideally ``v = acc * g * s_j + c_j``: input step ``g``, weight scale ``s_j``,
bias ``c_j``), then the chain and the quantizer. :class:`ChainEvaluator` evaluates that chain with
the graph's own kernels: each standard node in an onnxruntime session of its own, fed the way
qonnx's ``execute_onnx`` feeds it, and each quantizer by qonnx's ``CustomOp.execute_node``. Every
step is monotone in its data, so the level index is a monotone function of ``acc``, and
:func:`gen.fold.fold_monotone` finds each threshold as the smallest accumulator at which the
graph's own float32 result reaches the next level: ties (round-half-to-even), FINN's ``>=`` and
float32 rounding near a boundary are decided exactly as the executor decides them.

Exactness of ``v`` itself: when every product ``x_i * w_ij`` and every partial sum is a float32
number (all are integer multiples of one power of two, and their total magnitude stays below
2**24 of it), the linear op's result is exactly ``acc * g * s_j + c_j`` in any summation order,
and the description agrees with the graph on every input. Otherwise the graph's ``v`` depends on
the order of its sums, within ``E_j = (gamma_{n+1} + u) * S_j`` (Higham's bound, ``u = 2**-24``,
``S_j`` the largest possible sum of magnitudes); :func:`certify` then checks, at the two
accumulators beside every threshold, that the whole interval ``v +- E_j`` gives the same level.
Thresholds where it does not are reported: there the float graph itself is ambiguous.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .. import fold

__all__ = ["ChainEvaluator", "Fold", "fold_layer", "error_bounds", "final_analysis"]

_U = 2.0**-24


class ChainEvaluator:
    """The float32 function from a linear op's output to its chain's end, per channel.

    Parameters
    ----------
    layer : patterns.Linear
    opset : int
        The model's standard opset (each node is run at it, as ``execute_onnx`` does).
    """

    def __init__(self, layer, opset):
        self.layer = layer
        self.channels = layer.out
        self.sessions = [
            self._session(op, opset) if op.kind == "ort" else None for op in layer.chain
        ]

    @staticmethod
    def _session(op, opset):
        import onnxruntime as rt
        from onnx import TensorProto, helper
        from qonnx.util.basic import qonnx_make_model

        node = op.node
        inputs = []
        for k, name in enumerate(node.input):
            if name == "":
                continue
            if k == op.data:
                shape = ["n"] + [None] * (op.rank - 1)
            else:
                shape = list(np.shape(op.consts[k]))
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        outputs = [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)]
        clone = helper.make_node(
            node.op_type, list(node.input), [node.output[0]], name=node.name, domain=node.domain
        )
        clone.attribute.extend(node.attribute)
        model = qonnx_make_model(helper.make_graph([clone], "chain-step", inputs, outputs))
        model.opset_import[0].version = opset
        return rt.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run(self, v):
        """Chain output for linear-op outputs ``v`` of shape ``(n, channels)`` (float32); the
        result has channels on axis 1 and the rank the chain ends with."""
        v = np.asarray(v, dtype=np.float32)
        n = v.shape[0]
        x = v.reshape((n, self.channels) + (1,) * (self.layer.out_rank - 2))
        for op, session in zip(self.layer.chain, self.sessions, strict=True):
            if op.kind == "reshape":
                x = x.reshape((n, self.channels) + (1,) * (op.rank - 2))
                continue
            feeds = {op.node.input[op.data]: x}
            for k, value in op.consts.items():
                feeds[op.node.input[k]] = np.asarray(value, dtype=np.float32)
            x = session.run(None, feeds)[0]
        return x

    def levels(self, v):
        """The quantizer's level index (int64, ``(n, channels)``) for linear-op outputs ``v``."""
        y = self.layer.quantizer.level_index(self.run(v))
        return y.reshape(y.shape[0], self.channels)


def ideal_value(layer, acc):
    """``acc * g * s_j + c_j`` (float64; exact whenever the graph's linear op is) for int64
    accumulators ``acc`` of shape ``(n, out)``."""
    unit = float(layer.inputs.step) * layer.weight_scale.astype(np.float64)
    v = np.asarray(acc, dtype=np.float64) * unit
    if layer.bias is not None:
        v = v + layer.bias.astype(np.float64)
    return v


def _float32_near(v):
    """float32 of float64 ``v``, and the float32 one step below and above it."""
    f = v.astype(np.float32)
    return f, np.nextafter(f, np.float32(-np.inf)), np.nextafter(f, np.float32(np.inf))


# --- exactness of the linear op ------------------------------------------------------------------


def _binary(x):
    """``(mantissa, exponent)`` of a finite float with an odd integer mantissa; (0, big) for 0."""
    if x == 0:
        return 0, 1 << 30
    m, e = math.frexp(abs(x))
    mantissa, exponent = int(m * (1 << 53)), e - 53
    while mantissa % 2 == 0:
        mantissa //= 2
        exponent += 1
    return mantissa, exponent


def error_bounds(layer):
    """Per output, how far the graph's float32 linear op can be from :func:`ideal_value`.

    0 where every product and partial sum is exact in float32 (then the graph computes the ideal
    value in any order), else Higham's bound for a dot product of ``fan_in + 1`` terms.
    """
    values = [float(y) for y in np.unique(np.abs(layer.inputs.values)) if y != 0]
    inputs_exact = layer.inputs.exact
    l1 = np.abs(layer.weights.astype(np.int64)).sum(axis=1)
    ymax = max(values, default=0.0)
    # Products y * s are float32 numbers when the odd mantissas' product has at most 24 bits;
    # every product is a multiple of 2 ** (lowest y exponent + s exponent).
    binaries = [_binary(y) for y in values]
    y_mantissa = max((m for m, _ in binaries), default=1)
    y_exponent = min((e for _, e in binaries), default=0)
    n = layer.weights.shape[1] + 1
    gamma = n * _U / (1 - n * _U)
    bounds = np.empty(layer.out, dtype=np.float64)
    for j in range(layer.out):
        s = float(layer.weight_scale[j])
        c = 0.0 if layer.bias is None else float(layer.bias[j])
        total = Fraction(int(l1[j])) * Fraction(ymax) * Fraction(s) + abs(Fraction(c))
        s_mantissa, s_exponent = _binary(s)
        unit = Fraction(2) ** min(y_exponent + s_exponent, _binary(c)[1])
        exact = inputs_exact and y_mantissa * s_mantissa < (1 << 24)
        exact = exact and total < (1 << 24) * unit
        bounds[j] = 0.0 if exact else float((gamma + _U) * total) * (1 + 1e-6)
    return bounds


# --- folding -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Fold:
    """A hidden layer folded: rows to negate, integer thresholds, and their certificate.

    ``bounds`` are the per-output error bounds of the linear op (all 0: exact on every input);
    ``uncertain`` marks the thresholds (out, m) the certificate could not prove: inputs whose
    accumulator is at one of them or one below may be decided otherwise by the float graph.
    """

    sign: np.ndarray
    thresholds: np.ndarray
    bounds: np.ndarray
    uncertain: np.ndarray

    @property
    def fragile(self):
        return int(np.sum(self.uncertain))


def fold_layer(layer, evaluator, acc_lo, acc_hi, *, certify=True):
    """Fold the chain and quantizer of ``layer`` into integer thresholds (a :class:`Fold`).

    ``certify=False`` skips the certificate, for a layer whose reference is the ideal value
    itself (post-training quantization defines its model that way; there is no float graph).
    """
    m = len(layer.quantizer.levels.levels) - 1

    def level_index(acc):
        return evaluator.levels(ideal_value(layer, acc).astype(np.float32)).astype(np.float64)

    theta = np.arange(1, m + 1, dtype=np.float64) - 0.5
    sign, thresholds = fold.fold_monotone(level_index, theta, acc_lo, acc_hi)
    bounds = error_bounds(layer) if certify else np.zeros(layer.out)
    uncertain = np.zeros(thresholds.shape, dtype=bool)
    if np.any(bounds > 0):
        uncertain = _certify(layer, evaluator, sign, thresholds, bounds, acc_lo, acc_hi)
    return Fold(sign, thresholds, bounds, uncertain)


def _certify(layer, evaluator, sign, thresholds, bounds, acc_lo, acc_hi):
    """Which thresholds (out, m) the interval ``v +- E`` does not decide the same way."""
    lo = np.where(sign > 0, acc_lo, -acc_hi)
    hi = np.where(sign > 0, acc_hi, -acc_lo)
    uncertain = np.zeros(thresholds.shape, dtype=bool)
    for before, need_below in ((thresholds - 1, True), (thresholds, False)):
        inside = (before >= lo[:, None]) & (before <= hi[:, None])
        acc = (sign[:, None].astype(np.int64) * np.clip(before, lo[:, None], hi[:, None])).T
        ideal = ideal_value(layer, acc)
        _, down, _ = _float32_near(ideal - bounds)
        _, _, up = _float32_near(ideal + bounds)
        k = np.arange(1, thresholds.shape[1] + 1)[:, None]
        for v in (down, up):
            got = evaluator.levels(v)
            wrong = got >= k if need_below else got < k
            uncertain |= (wrong & inside.T).T
    return uncertain


# --- the final layer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FinalInfo:
    """The final layer's chain, as the choice of ``argmax`` needs it.

    ``uniform``: one function for every output; ``direction``: +1 rising, -1 falling, 0 flat;
    ``strict``: different accumulators always give different graph values (so argmax of the
    graph's values is argmax of the accumulators, ties included).
    """

    uniform: bool
    direction: int
    strict: bool
    reason: str


def final_analysis(layer, evaluator, acc_lo, acc_hi, *, limit=1 << 23):
    """:class:`FinalInfo` of the final layer ``layer`` (no quantizer) over its range."""
    constants = [np.asarray(c) for op in layer.chain for c in op.consts.values()]
    uniform = (
        np.all(layer.weight_scale == layer.weight_scale[0])
        and (layer.bias is None or np.all(layer.bias == layer.bias[0]))
        and all(np.all(c == c.reshape(-1)[0]) for c in constants)
    )
    if not uniform:
        return FinalInfo(False, 0, False, "its scales or offsets differ between outputs")
    lo, hi = int(np.min(acc_lo)), int(np.max(acc_hi))
    if hi - lo + 1 > limit:
        return FinalInfo(True, 0, False, f"its range of {hi - lo + 1} accumulators is too large")
    # Every output computes the same function: the range is laid out over all of them.
    count, out = hi - lo + 1, layer.out
    acc = np.arange(lo, lo + -(-count // out) * out, dtype=np.int64).reshape(-1, out)
    ideal = ideal_value(layer, acc)
    bound = float(error_bounds(layer).max())

    def values(v):
        return evaluator.run(v).reshape(-1).astype(np.float64)[:count]

    mid = values(ideal.astype(np.float32))
    direction = int(np.sign(mid[-1] - mid[0])) if count > 1 else 1
    if direction == 0:
        return FinalInfo(True, 0, False, "its values are constant")
    if bound == 0:
        strict = bool(np.all(np.diff(mid) * direction > 0))
        return FinalInfo(True, direction, strict, "" if strict else "different sums tie")
    _, down, _ = _float32_near(ideal - bound)
    _, _, up = _float32_near(ideal + bound)
    low, high = (values(down), values(up)) if direction > 0 else (values(up), values(down))
    strict = bool(np.all((low[1:] - high[:-1]) * direction > 0))
    return FinalInfo(True, direction, strict, "" if strict else "float32 rounding can tie them")
