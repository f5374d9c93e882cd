"""Post-training quantization of a float ONNX model into ``tnn/1`` (FGQ / TWN, no retraining).

A float model (``Gemm``/``MatMul``/``Conv`` with bias, ``BatchNormalization``, ``Relu``,
``MaxPool``, ``Flatten``, as PyTorch or Keras export it) is read with the importer's patterns
(:func:`.patterns.assemble` with ``float_weights``), then quantized layer by layer:

- the input: an unsigned (``uintN``) or signed (``intN``) quantizer whose scale maps the
  calibration data's largest magnitude to the top level (QONNX ``Quant`` semantics, written to
  the input specification);
- weights: per output row with the project's quantizers,
  :func:`gen.learn.quant.twn_ternarize` (``twn``) or :func:`gen.learn.quant.xnor_binarize`
  (``xnor``); one scale for the whole final layer, so that its argmax is that of the
  accumulators;
- each hidden layer's activation, chosen on the calibration data as the description built so
  far computes it (the layers before it already quantized). With ``z`` the float model's
  chain (bias, batch norm, ReLU) applied to ``acc * g * alpha_j + b_j``: after a ReLU
  (``z >= 0``), ``act_bits``-bit unsigned levels ``0 .. 2**bits - 1`` with the step that
  minimizes the mean squared error ``|z - q(z)|^2`` (searched over 200 candidates up to
  ``max z``, rounding to the nearest level); otherwise ternary levels with TNN/GXNOR's symmetric
  threshold ``delta = 0.7 * mean|z|`` (TWN's rule, applied to activations) and step
  ``mean(|z| : |z| > delta)``.

The thresholds are then folded exactly as the QONNX importer folds them
(:func:`.thresholds.fold_layer`): the description computes exactly the quantized model defined
by these rules on the float32 chain. A final per-class bias or batch norm cannot be an argmax of
accumulators; it is dropped, and the report says so.
"""

from fractions import Fraction

import numpy as np

from ... import network
from ...network import arith, golden
from .. import datasets, quant
from . import inputspec
from .convert import Folder, input_spec, layer_doc, levels_of_type
from .errors import UnsupportedGraph
from .graph import prepare
from .ir import Linear
from .patterns import assemble
from .quantizers import Levels
from .thresholds import ideal_value

__all__ = ["quantize_model", "float_inputs_of", "run_float"]

METHODS = {"twn": "ternary", "xnor": "binary"}


class _Calibrated:
    """A calibrated activation quantizer: ``levels[#{k : z >= thresholds[k]}]``, step ``g``."""

    kind = "calibrated"

    def __init__(self, levels, thresholds, step, rule):
        step32 = np.float32(step)
        self.levels = Levels(tuple(levels), Fraction(float(step32)), np.float32(levels) * step32)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.rule = rule

    def level_index(self, z):
        z = np.asarray(z, dtype=np.float64)
        return np.sum(z[..., None] >= self.thresholds, axis=-1)

    def describe(self):
        return f"{self.rule} (step {float(self.levels.step):.4g})"


def _calibrate_uint(z, bits):
    top = (1 << bits) - 1
    z = np.asarray(z, dtype=np.float64).ravel()
    high = float(z.max())
    if not high > 0:
        return _Calibrated(range(top + 1), np.arange(1, top + 1) - 0.5, 1.0, "uint")
    best, best_error = high / top, np.inf
    for step in np.linspace(high / top / 200, high / top, 200):
        error = np.mean((z - np.clip(np.round(z / step), 0, top) * step) ** 2)
        if error < best_error:
            best, best_error = step, error
    step = float(np.float32(best))
    rule = f"{bits}-bit unsigned, MSE-calibrated"
    return _Calibrated(range(top + 1), (np.arange(1, top + 1) - 0.5) * step, step, rule)


def _calibrate_ternary(z):
    magnitude = np.abs(np.asarray(z, dtype=np.float64).ravel())
    delta = quant.TWN_DELTA * float(magnitude.mean())
    kept = magnitude[magnitude > delta]
    step = float(kept.mean()) if kept.size else max(delta, 1e-6)
    if not delta > 0:
        delta = step / 2
    rule = f"ternary, delta {delta:.4g} = 0.7 mean|z|"
    return _Calibrated((-1, 0, 1), (-delta, delta), float(np.float32(step)), rule)


def float_inputs_of(data, shape):
    """A data set's images as float inputs of a graph input of ``shape`` (without its batch
    axis): each pixel divided by the largest pixel value."""
    x = data.images.astype(np.float32) / np.float32(data.pixel_max)
    return x.reshape((len(x),) + tuple(shape))


def _calibration(calibrate, shape):
    """Float calibration inputs and, for a named data set, its test split and labels."""
    if isinstance(calibrate, np.ndarray) or str(calibrate).endswith(".npy"):
        x = calibrate if isinstance(calibrate, np.ndarray) else np.load(calibrate)
        return np.asarray(x, dtype=np.float32).reshape((len(x),) + tuple(shape)), None
    train = datasets.load(calibrate, "train")
    test = datasets.load(calibrate, "test")
    return float_inputs_of(train, shape), (float_inputs_of(test, shape), test.labels)


def run_float(model, x):
    """The float model's outputs on ``x`` with onnxruntime (in chunks of a fixed batch)."""
    import onnxruntime as rt

    session = rt.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    info = session.get_inputs()[0]
    batch = info.shape[0] if isinstance(info.shape[0], int) and info.shape[0] > 0 else len(x)
    outputs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
        outputs.append(session.run(None, {info.name: chunk.astype(np.float32)})[0])
    return np.concatenate(outputs)[: len(x)]


def _classes(outputs):
    outputs = np.asarray(outputs)
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return np.argmax(outputs, axis=1)
    return outputs.reshape(len(outputs), -1)[:, 0].astype(np.int64)


def _input_quantizer(x, input_type):
    levels = levels_of_type(input_type)
    name = input_type
    if not (name.startswith("uint") or name.startswith("int")):
        raise UnsupportedGraph(f"--input-type for --quantize must be uintN or intN, not {name}")
    signed = name.startswith("int")
    bits = int(name[3:] if signed else name[4:])
    top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    peak = float(np.max(np.abs(x))) if signed else float(np.max(x))
    if not signed and float(np.min(x)) < 0:
        raise UnsupportedGraph(f"the calibration inputs go below 0: use --input-type int{bits}")
    scale = float(np.float32((peak if peak > 0 else 1.0) / top))
    params = {
        "op": "Quant",
        "scale": scale,
        "zero_point": 0.0,
        "bit_width": bits,
        "signed": signed,
        "narrow": False,
        "rounding_mode": "ROUND",
    }
    values = np.float32(levels.levels) * np.float32(scale)
    return Levels(levels.levels, Fraction(scale), values), params


def quantize_model(source, *, method="twn", calibrate, input_type=None, act_bits=2, name=None):
    """Ternarize (``twn``) or binarize (``xnor``) the float ONNX model ``source``.

    Parameters
    ----------
    calibrate : str or ndarray
        A data set (``digits``, ``mnist5k``, ``idx:DIR``: its train split calibrates, its test
        split measures accuracy) or float inputs (an array or an ``.npy`` file) in the graph
        input's layout.
    input_type : str
        ``uintN`` or ``intN`` (default ``uint8``).
    act_bits : int
        Bits of the unsigned activations after a ReLU.

    Returns
    -------
    ImportResult
        With ``accuracy``: ``{"float": ..., "quantized": ..., "count": ...}`` on the test split
        of a named data set (else None).
    """
    if method not in METHODS:
        raise ValueError(f"method must be 'twn' or 'xnor', not {method!r}")
    graph = prepare(source)
    shape = graph.input_shape[1:]
    x_cal, evaluation = _calibration(calibrate, shape)
    input_type = input_type or "uint8"
    in_levels, params = _input_quantizer(x_cal, input_type)
    plan = assemble(graph, input_levels=in_levels, float_weights=True)
    describe = f"Quant ({params['bit_width']}-bit, scale {params['scale']:.4g}, calibrated)"
    spec = {"params": params, "describe": describe}
    folder = Folder(plan, graph, input_type, "argmax", quantizer_spec=spec, certify=False)
    kind = METHODS[method]
    ints = _integer_inputs(folder, x_cal)
    shadow = _description_layout(plan, x_cal)
    levels = in_levels
    for layer in plan.layers:
        if isinstance(layer, Linear):
            levels, shadow = _quantize_layer(folder, layer, levels, kind, act_bits, ints, shadow)
        else:
            shadow = arith.maxpool(shadow, layer.kernel, layer.stride)
        folder.add(layer)
    result = folder.finish(name)
    result.input_spec["data"] = {"divisor": "pixel_max"}
    if evaluation is not None:
        x_test, labels = evaluation
        float_pred = _classes(run_float(graph.model.model, x_test))
        quantized = golden.run(result.network, inputspec.to_integers(result.input_spec, x_test))
        result.accuracy = {
            "float": float(np.mean(float_pred == labels)),
            "quantized": float(np.mean(quantized == labels)),
            "count": int(len(labels)),
        }
        result.report.append(
            f"accuracy on the {calibrate} test split ({len(labels)} inputs): float "
            f"{100 * result.accuracy['float']:.2f}% (onnxruntime), {kind} "
            f"{100 * result.accuracy['quantized']:.2f}% (golden model)"
        )
    return result


def _integer_inputs(folder, x):
    spec = input_spec(folder.plan, folder.graph, folder.in_type, folder.quantizer_spec)
    return inputspec.to_integers(spec, x)


def _description_layout(plan, x):
    """Float inputs in the description's layout (NCHW images become h, w, c)."""
    x = np.asarray(x, dtype=np.float64)
    if plan.input_layout == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    return x.reshape((len(x),) + tuple(plan.input_shape))


def _columns(layer, x):
    """The vectors the layer's rows multiply: (positions, fan_in)."""
    if layer.kind == "conv2d":
        cols = arith.windows(x, layer.kernel, layer.stride, layer.padding, 0)
        return cols.reshape(-1, cols.shape[-1])
    return x.reshape(len(x), -1)


def _quantize_layer(folder, layer, levels, kind, act_bits, ints, shadow):
    """Quantize ``layer``'s weights and choose its activation.

    ``shadow`` is the float model's own input to this layer (its float layers run on the float
    calibration inputs): the weights are fitted so that the quantized layer, on the quantized
    network's inputs, best reproduces the float layer on the float inputs. Returns the layer's
    output levels and the float model's output of the layer (the next shadow).
    """
    last = layer is folder.last
    float_weights = layer.weights.astype(np.float64)
    float_bias = None if layer.bias is None else layer.bias.astype(np.float64)
    evaluator = folder.evaluator(layer)
    target = _columns(layer, shadow) @ float_weights.T
    inputs = _columns(layer, _layer_inputs(folder, ints)) * float(levels.step)
    weights, alpha, offset, delta = _fit_weights(float_weights, inputs, target, kind, last)
    layer.weights = weights
    layer.weight_scale = alpha.astype(np.float32)
    layer.weight_type = kind
    rule = f"TWN, delta {delta:.2f} mean|W|" if kind == "ternary" else "XNOR-Net sign"
    scale = "one scale" if last else "a scale and offset per row"
    layer.weight_source = f"{rule}, {scale} fitted by least squares"
    layer.inputs = levels
    out_shape = (len(shadow),) + (_out_positions(layer, shadow)) + (layer.out,)
    u = (target + (0 if float_bias is None else float_bias)).astype(np.float32)
    next_shadow = evaluator.run(u).reshape(out_shape).astype(np.float64)
    if last:
        _drop_final_affine(folder, layer)
        return None, next_shadow
    layer.bias = ((0 if float_bias is None else float_bias) + offset).astype(np.float32)
    acc = _accumulators(folder, layer, ints)
    z = evaluator.run(ideal_value(layer, acc).astype(np.float32)).reshape(len(acc), layer.out)
    layer.quantizer = _calibrate_uint(z, act_bits) if np.all(z >= 0) else _calibrate_ternary(z)
    layer.out_levels = layer.quantizer.levels
    layer.nodes.append("(calibrated)")
    return layer.out_levels, next_shadow


def _out_positions(layer, x):
    if layer.kind != "conv2d":
        return ()
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    return ((x.shape[1] + 2 * ph - kh) // sh + 1, (x.shape[2] + 2 * pw - kw) // sw + 1)


DELTA_FACTORS = np.round(np.arange(0.4, 1.21, 0.05), 2)


def _fit_weights(w, inputs, target, kind, last):
    """The project's weight quantizer, fitted by least squares: with ``x`` the quantized
    network's inputs to the layer and ``u`` the float model's sums on its own inputs, for TWN
    the threshold factor (``delta = f * mean|W|``, ``f`` from 0.4 to 1.2) and for both the
    scale and offset per row (hidden layers; one scale and no offset for the final layer) that
    minimize ``|u - (alpha * x @ T.T + offset)|^2``. A scale that does not come out positive
    keeps the quantizer's own."""
    factors = DELTA_FACTORS if kind == "ternary" else (None,)
    best = None
    for factor in factors:
        if kind == "ternary":
            weights, alpha = quant.twn_ternarize(w, delta_factor=factor, per_row=not last)
        else:
            weights, alpha = quant.xnor_binarize(w, per_row=not last)
        sums = inputs @ weights.T.astype(np.float64)
        if last:
            num, den = float((target * sums).sum()), float((sums * sums).sum())
            fitted = np.full(alpha.shape, num / den if den > 0 else 0.0)
            offset = np.zeros(alpha.shape)
        else:
            s_mean, t_mean = sums.mean(axis=0), target.mean(axis=0)
            cov = ((sums - s_mean) * (target - t_mean)).mean(axis=0)
            var = ((sums - s_mean) ** 2).mean(axis=0)
            fitted = np.where(var > 0, cov / np.maximum(var, 1e-300), 0.0)
        alpha = np.where(fitted > 0, fitted, alpha)
        if not last:
            offset = t_mean - alpha * s_mean
        error = float(np.mean((target - (sums * alpha + offset)) ** 2))
        if best is None or error < best[0]:
            best = (error, weights, alpha, offset, factor)
    return best[1:]


def _layer_inputs(folder, ints):
    """The quantized network's integer inputs to the next layer, by the description so far."""
    doc = folder.doc(None)
    if not doc["layers"]:
        return ints
    doc["output"] = "values"
    return golden.run(network.from_dict(doc), ints)


def _accumulators(folder, layer, ints):
    """The layer's accumulators on the calibration inputs, by the description built so far."""
    doc = folder.doc(None)
    doc["layers"].append(layer_doc(layer, layer.weights, None))
    doc["output"] = "values"
    net = network.from_dict(doc)
    _, trace = golden.run(net, ints, trace=True)
    return trace[-1].acc.reshape(-1, layer.out)


def _drop_final_affine(folder, layer):
    """Keep only what an argmax of accumulators can honour: a shared positive scale."""
    dropped = []
    if layer.bias is not None and np.any(layer.bias != layer.bias[0]):
        dropped.append("bias")
    layer.bias = None
    ops = [op for op in layer.chain if op.kind == "ort"]
    varying = [op for op in ops if any(np.ptp(np.asarray(c)) > 0 for c in op.consts.values())]
    if varying:
        dropped.append(", ".join(op.node.op_type for op in varying))
    layer.chain = [op for op in layer.chain if op not in varying]
    if dropped:
        folder.result.warnings.append(
            f"the final layer's per-class {' and '.join(dropped)} is dropped: tnn/1's argmax is "
            "over the accumulators"
        )
        folder.result.report.append(f"note: final layer: {folder.result.warnings[-1]}")
