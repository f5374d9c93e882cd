"""QONNX test graphs built with onnx.helper and qonnx's own API, and the reference they are
checked against: qonnx's executor (``execute_onnx``) on the cleaned model.

:class:`Builder` makes graphs node by node the way exporters emit them (Brevitas' TorchScript
and dynamo shapes, FINN's older MultiThreshold dialect); :func:`reference` runs one through
``execute_onnx``; :func:`check_import` imports it and compares every layer's integer activations
and the final result of the description's golden model with the executor's.
"""

import copy

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.util.cleanup import cleanup_model

from gen.learn.qonnx import import_model, inputspec
from gen.network import golden

QONNX = "qonnx.custom_op.general"
FINN = "finn.custom_op.general"
QUANTIZERS = ("Quant", "BipolarQuant", "MultiThreshold")
LINEAR = ("Gemm", "MatMul", "Conv")


class Builder:
    """A graph under construction: ``x = b.op("Relu", [x])`` and so on, then :meth:`model`."""

    def __init__(self, input_shape, *, batch=1, name="test-graph", opset=13):
        self.nodes, self.inits = [], []
        self.name, self.opset = name, opset
        self.input_shape = (batch,) + tuple(input_shape)
        self.batch = batch
        self.input = "x"
        self._count = 0

    def _fresh(self, stem):
        self._count += 1
        return f"{stem}{self._count}"

    def const(self, value, dtype=np.float32):
        name = self._fresh("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type, inputs, *, domain="", outputs=1, name=None, **attrs):
        names = [self._fresh(op_type.lower()) for _ in range(outputs)]
        node = helper.make_node(op_type, list(inputs), names, domain=domain, **attrs)
        node.name = name or self._fresh(f"/{op_type}_")
        self.nodes.append(node)
        return names[0] if outputs == 1 else names

    def quant(self, x, scale, *, bits, signed=True, narrow=False, zero_point=0.0, rounding="ROUND"):
        ins = [x, self.const(scale), self.const(zero_point), self.const(bits)]
        return self.op(
            "Quant",
            ins,
            domain=QONNX,
            signed=int(signed),
            narrow=int(narrow),
            rounding_mode=rounding,
        )

    def bipolar(self, x, scale=1.0):
        return self.op("BipolarQuant", [x, self.const(scale)], domain=QONNX)

    def multithreshold(self, x, thresholds, *, out_scale=1.0, out_bias=0.0, domain=FINN):
        return self.op(
            "MultiThreshold",
            [x, self.const(thresholds)],
            domain=domain,
            out_dtype="INT8",
            out_scale=float(out_scale),
            out_bias=float(out_bias),
        )

    def weight(self, ints, scale, kind, rng, *, out_axis=0):
        """A weight tensor whose quantizer gives ``ints`` (in {-1, 0, 1}) times ``scale``.

        ``kind``: ``ternary`` (2-bit signed narrow Quant), ``binary`` (BipolarQuant), ``quant1``
        (1-bit signed Quant), ``plain`` (the initializer ``ints * scale``, FINN's dialect), or a
        name of :data:`INT_WEIGHTS` (an N-bit Quant; ``ints`` then in its range).
        """
        shape = [1] * ints.ndim
        shape[out_axis] = -1
        s = np.broadcast_to(np.asarray(scale, dtype=np.float32).reshape(shape), ints.shape)
        if kind == "plain":
            return self.const(ints * s)
        if kind in INT_WEIGHTS:
            bits, signed, narrow = INT_WEIGHTS[kind][:3]
            raw = s * (ints + rng.uniform(-0.45, 0.45, size=ints.shape))
            q_scale = np.asarray(scale, dtype=np.float32).reshape(shape)
            return self.quant(self.const(raw), q_scale, bits=bits, signed=signed, narrow=narrow)
        if kind == "ternary":
            raw = s * (ints + rng.uniform(-0.45, 0.45, size=ints.shape))
        else:
            raw = s * np.where(ints >= 0, 1, -1) * rng.uniform(0.05, 2, size=ints.shape)
        q_scale = np.asarray(scale, dtype=np.float32).reshape(shape)
        if kind == "ternary":
            return self.quant(self.const(raw), q_scale, bits=2, narrow=True)
        if kind == "quant1":
            return self.quant(self.const(raw), q_scale, bits=1)
        return self.bipolar(self.const(raw), q_scale)

    def dense(self, x, ints, scale, kind, rng, *, shape="dynamo", bias=None):
        """``x @ W.T`` for integer weights ``ints`` (out, in), as an exporter emits it."""
        if shape == "dynamo":
            w = self.weight(ints, scale, kind, rng, out_axis=0)
            inputs = [x, w] + ([self.const(bias)] if bias is not None else [])
            return self.op("Gemm", inputs, transB=1)
        if shape == "gemm0":
            w = self.weight(ints.T.copy(), scale, kind, rng, out_axis=1)
            inputs = [x, w] + ([self.const(bias)] if bias is not None else [])
            return self.op("Gemm", inputs, transB=0)
        if shape == "torchscript":
            w = self.op("Transpose", [self.weight(ints, scale, kind, rng)], perm=[1, 0])
        else:  # "matmul": the weights stored (in, out)
            w = self.weight(ints.T.copy(), scale, kind, rng, out_axis=1)
        y = self.op("MatMul", [x, w])
        return y if bias is None else self.op("Add", [y, self.const(bias)])

    def conv(self, x, ints, scale, kind, rng, *, pads=(0, 0), strides=(1, 1), bias=None):
        """``Conv`` with integer weights ``ints`` (out, in, kh, kw)."""
        w = self.weight(ints, scale, kind, rng, out_axis=0)
        inputs = [x, w] + ([self.const(bias)] if bias is not None else [])
        return self.op(
            "Conv",
            inputs,
            kernel_shape=list(ints.shape[2:]),
            strides=list(strides),
            pads=[pads[0], pads[1], pads[0], pads[1]],
        )

    def batch_norm(self, x, gamma, beta, mean, var, epsilon=1e-5):
        ins = [x] + [self.const(v) for v in (gamma, beta, mean, var)]
        return self.op("BatchNormalization", ins, epsilon=float(epsilon))

    def tensor_norm(self, x, mean, var, weight, bias, eps=1e-4):
        """FINN / BNN-PYNQ's TensorNorm as Brevitas exports it: Sub, Add, Pow, Div, Mul, Add."""
        root = self.op("Pow", [self.op("Add", [self.const(var), self.const(eps)]), self.const(0.5)])
        y = self.op("Div", [self.op("Sub", [x, self.const(mean)]), root])
        return self.op("Add", [self.op("Mul", [y, self.const(weight)]), self.const(bias)])

    def model(self, output, *, dtype=TensorProto.FLOAT):
        inputs = [helper.make_tensor_value_info(self.input, TensorProto.FLOAT, self.input_shape)]
        outputs = [helper.make_tensor_value_info(output, dtype, None)]
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, initializer=self.inits)
        domains = {n.domain for n in self.nodes if n.domain}
        opsets = [helper.make_opsetid("", self.opset)] + [
            helper.make_opsetid(d, 1) for d in sorted(domains)
        ]
        return helper.make_model(graph, opset_imports=opsets, producer_name="tnngen-tests")


#: N-bit weight quantizers: (bits, signed, narrow, the description's weight type).
INT_WEIGHTS = {
    "int2w": (2, True, False, "int2"),
    "int3w": (3, True, False, "int3"),
    "int4": (4, True, True, "int4"),
    "int4w": (4, True, False, "int4"),
    "int8w": (8, True, False, "int8"),
    "uint3": (3, False, False, "int4"),
}


def int_range(kind):
    """The integer levels ``(lo, hi)`` of an N-bit weight quantizer of :data:`INT_WEIGHTS`."""
    bits, signed, narrow = INT_WEIGHTS[kind][:3]
    if not signed:
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1


def random_int_weights(rng, shape, kind):
    """Integer weights of an N-bit quantizer, both ends of its range included in every row."""
    lo, hi = int_range(kind)
    ints = rng.integers(lo, hi + 1, size=shape)
    ints[:, 0], ints[:, -1] = lo, hi
    return ints


def random_ternary(rng, shape, zero=0.3):
    return rng.choice([-1, 0, 1], size=shape, p=[(1 - zero) / 2, zero, (1 - zero) / 2]).astype(
        np.int8
    )


def random_binary(rng, shape):
    return rng.choice([-1, 1], size=shape).astype(np.int8)


# --- the reference -------------------------------------------------------------------------------


def reference(model, x):
    """qonnx's executor on the cleaned ``model``: (context, quantizer outputs, linear outputs)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapper = cleanup_model(ModelWrapper(copy.deepcopy(model)))
        name = wrapper.graph.input[0].name
        context = execute_onnx(wrapper, {name: np.asarray(x, dtype=np.float32)}, True)
    quants, linears = [], []
    for node in wrapper.graph.node:
        if wrapper.get_initializer(node.input[0]) is not None:
            continue
        if node.op_type in QUANTIZERS:
            quants.append(context[node.output[0]])
        elif node.op_type in LINEAR:
            linears.append(context[node.output[0]])
    return context[wrapper.graph.output[0].name], quants, linears


def _to_description_layout(values):
    values = np.asarray(values)
    if values.ndim == 4:
        values = values.transpose(0, 2, 3, 1)
    return values.reshape(values.shape[0], -1)


def _index(levels, values):
    """Positions of ``values`` in the ascending ``levels``."""
    return np.searchsorted(np.asarray(levels), np.asarray(values))


def check_import(model, x, *, result=None, **options):
    """Import ``model`` and compare with ``execute_onnx`` on float inputs ``x``, layer by layer.

    Returns ``(result, golden outputs, trace)``. Compared: the input quantizer's levels, every
    hidden layer's integer outputs (as positions among their levels: ops after a quantizer may
    rename levels, never reorder them), the final accumulators (against the last linear op's
    float32 output through the folded scale and bias, where that is exact) and the argmax.
    """
    result = result or import_model(model, **options)
    net = result.network
    ints = inputspec.to_integers(result.input_spec, x)
    outputs, trace = golden.run(net, ints, trace=True)
    graph_out, quants, linears = reference(model, x)
    steps = result.levels
    k = 0
    if result.input_spec["quantizer"] is not None:
        graph_index = _to_description_layout(steps[0].index(quants[0]))
        mine = _index(net.input.type.enumerate(), ints.reshape(len(ints), -1))
        expect = _index(net.input.type.enumerate(), np.asarray(result.input_spec["levels"]))
        assert np.array_equal(expect[graph_index], mine), "input"
        k = 1
    weighted = [i for i, layer in enumerate(net.layers) if layer.type != "maxpool"]
    for position, index in enumerate(weighted):
        layer = net.layers[index]
        if layer.activation is None:
            break
        graph_index = steps[index + 1].index(quants[k + position])
        mine = _index(layer.activation.levels, trace[index].out.reshape(len(ints), -1))
        assert np.array_equal(_to_description_layout(graph_index), mine), f"layer {index}"
    final = weighted[-1]
    if net.layers[final].activation is None and result.final_unit is not None:
        unit, bias = result.final_unit
        acc = trace[final].acc.reshape(len(ints), -1, net.layers[final].out).astype(np.float64)
        value = acc * result.final_sign * unit + (0 if bias is None else bias)
        graph_value = _to_description_layout(linears[-1]).reshape(value.shape)
        if not np.any(result.final_bound):  # exact: the same float32 numbers
            assert np.array_equal(value.astype(np.float32), graph_value)
        else:  # within the error bound the certificate uses
            assert np.all(np.abs(value - graph_value) <= result.final_bound), "final sums"
    if net.output == "argmax":
        if graph_out.ndim == 2 and graph_out.shape[1] > 1:
            expect = np.argmax(graph_out, axis=1)
        else:
            expect = graph_out.reshape(-1)
        differ = outputs != expect.astype(np.int64)
        if result.final_bound is not None and np.any(result.final_bound) and np.any(differ):
            # Rounded final sums: only a tie of the top accumulators may be decided otherwise.
            acc = trace[final].acc.reshape(len(ints), -1)
            top = np.sort(acc, axis=1)[:, -2:]
            assert np.all(top[differ, 0] == top[differ, 1]), "argmax"
        else:
            assert not np.any(differ), "argmax"
    return result, outputs, trace


# --- graphs with their thresholds on reachable accumulators ---------------------------------------

INPUT_KINDS = {
    # name: (input levels, float inputs giving each level after the preamble 2x - 1)
    "binary": (-1, 1),
    "ternary": (-1, 0, 1),
    "uint4": tuple(range(16)),
}
ACTIVATIONS = {
    # name: (levels, boundaries of the quantizer's input in units of its scale)
    "ternary": ((-1, 0, 1), (-0.5, 0.5)),
    "binary": ((-1, 1), (0.0,)),
    "quant1": ((-1, 1), (0.0,)),
    "uint2": ((0, 1, 2, 3), (0.5, 1.5, 2.5)),
    "int3": ((-4, -3, -2, -1, 0, 1, 2, 3), (-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5)),
    "mt-ternary": ((-1, 0, 1), (-0.5, 0.5)),
    "mt-bipolar": ((-1, 1), (0.0,)),
}


def input_stage(b, kind):
    """The preamble and input quantizer of a graph of ``kind`` inputs (floats in [0, 1])."""
    x = b.input
    if len(b.input_shape) > 2:
        x = b.op("Flatten", [x], axis=1) if kind != "conv" else x
    if kind == "uint4":
        return b.quant(x, 1 / 16, bits=4, signed=False), 1.0 / 16
    x = b.op("Sub", [b.op("Mul", [x, b.const(2.0)]), b.const(1.0)])
    if kind == "binary":
        return b.bipolar(x), 1.0
    return b.quant(x, 1.0, bits=2, narrow=True), 1.0


def float_inputs(kind, levels):
    """Float inputs (in [0, 1]) that :func:`input_stage` quantizes to the integer ``levels``."""
    levels = np.asarray(levels, dtype=np.float32)
    if kind == "uint4":
        return levels / np.float32(16)
    return (levels + 1) / 2


def activation(b, x, kind, scale):
    if kind == "ternary":
        return b.quant(x, scale, bits=2, narrow=True)
    if kind == "binary":
        return b.bipolar(x, scale)
    if kind == "quant1":
        return b.quant(x, scale, bits=1)
    if kind == "uint2":
        return b.quant(x, scale, bits=2, signed=False)
    if kind == "int3":
        return b.quant(x, scale, bits=3)
    raise ValueError(kind)


def affine_on_boundaries(rng, weights, in_mean, unit, kind, *, tie_offset=0.0):
    """Per-channel ``u = alpha * acc + beta`` putting the quantizer boundaries of ``kind`` on
    integer accumulators near the middle of their distribution, as exact float32 ties.

    Returns ``(alpha, beta)`` for ``u`` in units of the quantizer's scale, and the
    accumulators the boundaries sit on. ``tie_offset`` (in units of the scale) moves every
    boundary off the tie by that much (float32 rounding then decides).
    """
    out = weights.shape[0]
    _, boundaries = ACTIVATIONS[kind]
    spacing = 1.0 if len(boundaries) < 2 else boundaries[1] - boundaries[0]
    width = rng.choice([1, 2, 4], size=out)
    direction = rng.choice([-1, 1], size=out, p=[0.3, 0.7])
    alpha = direction * spacing / width
    centre = np.round(in_mean * weights.sum(axis=1)) + rng.integers(-1, 2, size=out)
    first = centre - direction * width * (len(boundaries) - 1) // 2
    beta = boundaries[0] - alpha * first + tie_offset
    on = first[:, None] + direction[:, None] * width[:, None] * np.arange(len(boundaries))
    return alpha / unit, beta, on


def hidden_chain(b, x, style, alpha, beta, scale, rng, *, spatial=False):
    """The ops between a linear op and its quantizer, computing ``scale * (alpha*v + beta)``."""
    a = (alpha * scale).astype(np.float32)
    c = (beta * scale).astype(np.float32)
    out = len(alpha)
    if spatial and style != "bn":
        a, c = a.reshape(-1, 1, 1), c.reshape(-1, 1, 1)
    if style == "bn":
        eps = 2.0**-10
        return b.batch_norm(x, a, c, np.zeros(out), np.full(out, 1 - eps), epsilon=eps)
    if style == "mul-add":
        return b.op("Add", [b.op("Mul", [x, b.const(a)]), b.const(c)])
    if style == "div-sub":
        return b.op("Sub", [b.op("Div", [x, b.const(1 / a)]), b.const(-c)])
    if style == "bn-relu":  # before an unsigned quantizer, Relu changes nothing it keeps
        eps = 2.0**-10
        return b.op(
            "Relu", [b.batch_norm(x, a, c, np.zeros(out), np.full(out, 1 - eps), epsilon=eps)]
        )
    if style == "mul-add-clip":
        y = b.op("Add", [b.op("Mul", [x, b.const(a)]), b.const(c)])
        return b.op("Clip", [y, b.const(-8.0), b.const(8.0)])
    if style == "reshape-bn-squeeze":
        eps = 2.0**-10
        y = b.op("Reshape", [x, b.const([-1, out, 1, 1], np.int64)])
        y = b.batch_norm(y, a, c, np.zeros(out), np.full(out, 1 - eps), epsilon=eps)
        return b.op("Squeeze", [y, b.const([2, 3], np.int64)])
    if style == "unsqueeze-bn":
        eps = 2.0**-10
        y = b.op("Unsqueeze", [x, b.const([2, 3], np.int64)])
        y = b.batch_norm(y, a, c, np.zeros(out), np.full(out, 1 - eps), epsilon=eps)
        return b.op("Flatten", [y], axis=1)
    raise ValueError(style)


def mlp(
    rng,
    sizes,
    *,
    batch,
    input_kind="binary",
    weights="ternary",
    per_channel=False,
    shape="dynamo",
    act="ternary",
    style="bn",
    tail=None,
    act_scale=0.5,
    tie_offset=0.0,
    weight_scale=None,
    bias=False,
):
    """A quantized MLP with every hidden threshold on a reachable accumulator.

    Returns ``(model, boundaries)``: ``boundaries[l]`` (out, m) are the accumulators of hidden
    layer ``l`` at which its quantizer's input is exactly on a boundary.
    """
    b = Builder((sizes[0],), batch=batch)
    x, unit_in = input_stage(b, input_kind)
    in_mean = np.mean(INPUT_KINDS[input_kind]) if input_kind in INPUT_KINDS else 0
    boundaries = []
    for i, (fan_in, out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        if weights in INT_WEIGHTS:
            t = random_int_weights(rng, (out, fan_in), weights)
        elif weights in ("binary", "quant1", "plain-binary"):
            t = random_binary(rng, (out, fan_in))
        else:
            t = random_ternary(rng, (out, fan_in))
        if weight_scale is not None:
            s = np.full(out, weight_scale, dtype=np.float32)
        else:
            s = 2.0 ** rng.integers(-3, 2, size=out) if per_channel else np.full(out, 0.25)
        s = s.astype(np.float32)
        if last:
            s = np.full(out, s[0], dtype=np.float32)
        kind = "plain" if weights.startswith("plain") else weights
        shift = rng.integers(-3, 4, size=out) if bias and not last else None
        # A bias of whole accumulator steps: the linear op computes (acc + shift) * unit.
        c = None if shift is None else (shift * unit_in * s).astype(np.float32)
        x = b.dense(x, t, s, kind, rng, shape=shape, bias=c)
        if last:
            break
        alpha, beta, on = affine_on_boundaries(
            rng, t.astype(np.int64), in_mean, unit_in * s, act, tie_offset=tie_offset
        )
        if shift is not None:
            beta = beta - alpha * unit_in * s * shift
        boundaries.append(on)
        if act.startswith("mt-"):
            levels, bounds = ACTIVATIONS[act]
            u = hidden_chain(b, x, style, alpha, beta, 1.0, rng)
            thresholds = np.tile(np.asarray(bounds, dtype=np.float32), (out, 1))
            if act == "mt-bipolar":
                x = b.multithreshold(u, thresholds, out_scale=2.0, out_bias=-1.0)
            else:
                x = b.multithreshold(u, thresholds, out_scale=1.0, out_bias=-1.0)
            unit_in = 1.0
        else:
            u = hidden_chain(b, x, style, alpha, beta, act_scale, rng)
            x = activation(b, u, act, act_scale)
            unit_in = act_scale
        levels = ACTIVATIONS[act][0]
        in_mean = float(np.mean(levels))
    if tail == "topk":
        x = b.op("TopK", [x, b.const([1], np.int64)], outputs=2, axis=-1)[1]
        return b.model(x, dtype=TensorProto.INT64), boundaries
    if tail == "argmax":
        x = b.op("ArgMax", [x], axis=1, keepdims=0)
        return b.model(x, dtype=TensorProto.INT64), boundaries
    if tail == "tensornorm":
        x = b.tensor_norm(x, 0.3, 2.0, 0.7, 0.1)
    return b.model(x), boundaries


def cnn(
    rng,
    *,
    batch,
    image=(2, 8, 8),
    input_kind="ternary",
    convs=((4, 3, 1, 1, True),),
    dense=10,
    weights="ternary",
    per_channel=True,
    act="ternary",
    style="bn",
):
    """A quantized CNN: convs ``(out, kernel, padding, stride, pool 2x2 after)``, a flatten of
    the NCHW image, and a final dense layer; thresholds on reachable accumulators."""
    b = Builder(image, batch=batch)
    x = b.op("Sub", [b.op("Mul", [b.input, b.const(2.0)]), b.const(1.0)])
    x = b.bipolar(x) if input_kind == "binary" else b.quant(x, 1.0, bits=2, narrow=True)
    unit_in, in_mean, channels = 1.0, 0.0, image[0]
    size = image[1]
    for out, k, pad, stride, pool in convs:
        t = random_ternary(rng, (out, channels, k, k))
        if weights == "binary":
            t = random_binary(rng, (out, channels, k, k))
        s = 2.0 ** rng.integers(-2, 2, size=out) if per_channel else np.full(out, 0.5)
        x = b.conv(x, t, s.astype(np.float32), weights, rng, pads=(pad, pad), strides=(stride,) * 2)
        alpha, beta, _ = affine_on_boundaries(
            rng, t.reshape(out, -1).astype(np.int64), in_mean, unit_in * s, act
        )
        u = hidden_chain(b, x, style, alpha, beta, 0.5, rng, spatial=True)
        x = activation(b, u, act, 0.5)
        unit_in, in_mean, channels = 0.5, float(np.mean(ACTIVATIONS[act][0])), out
        size = (size + 2 * pad - k) // stride + 1
        if pool:
            x = b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
            size //= 2
    x = b.op("Flatten", [x], axis=1)
    t = random_ternary(rng, (dense, channels * size * size))
    x = b.dense(x, t, np.full(dense, 0.25, dtype=np.float32), "ternary", rng, shape="dynamo")
    return b.model(x)


def boundary_hits(net, trace):
    """Per hidden layer, the fraction of (input, output) pairs whose accumulator is at a
    threshold or one below it: how often the inputs test a boundary."""
    hits = []
    for layer, t in zip(net.layers, trace, strict=True):
        if layer.type == "maxpool" or layer.activation is None:
            continue
        acc = t.acc.reshape(-1, layer.out)
        th = layer.activation.thresholds
        near = np.zeros(acc.shape, dtype=bool)
        for k in range(th.shape[1]):
            near |= (acc == th[:, k]) | (acc == th[:, k] - 1)
        hits.append(float(near.mean()))
    return hits


def inputs_hitting(weights, targets, levels, rng):
    """Integer input vectors (one per target) with ``weights[j] @ x == target`` for row ``j``.

    ``targets`` is a list of ``(row, accumulator)``; ``levels`` the input's allowed values
    (consecutive integers, or -1 and 1). Targets no input can reach are left out.
    """
    levels = np.asarray(sorted(levels))
    found = []
    for row, target in targets:
        w = weights[row].astype(np.int64)
        x = rng.choice(levels, size=w.shape)
        total = int(w @ x)
        order = rng.permutation(np.flatnonzero(w))
        for i in np.concatenate([order, order]):
            if total == target:
                break
            rest = total - w[i] * x[i]
            best = levels[np.argmin(np.abs(levels - (target - rest) / w[i]))]
            total, x[i] = rest + w[i] * best, best
        if total == target:
            found.append(x)
    return np.array(found)


# --- BNN-PYNQ's TFC, as Brevitas exports it ---------------------------------------------------


def tfc(
    rng, *, wbits, abits, dialect="qonnx", shape="torchscript", batch, sizes=None, finn_domain=FINN
):
    """TFC (784-64-64-64-10) as Brevitas exports BNN-PYNQ's model: ``x.view(N, -1)``,
    ``2x - 1``, an input QuantIdentity (1 bit for w1a1, else 2), per hidden layer QuantLinear
    (no bias), BatchNorm1d and QuantIdentity, then QuantLinear and TensorNorm. Weights and
    activations have scale 1 (CommonWeightQuant, CommonActQuant: narrow, signed).

    ``dialect="qonnx"``: Quant/BipolarQuant nodes (``export_qonnx``), ``shape`` the TorchScript
    (Transpose + MatMul) or dynamo (Gemm) form. ``dialect="finn"``: the older FINN-ONNX export
    (``export_finn_onnx``): weights as plain +-1 (0) initializers, activations as MultiThreshold
    in ``finn_domain``, a 2-bit one followed by Add (its lowest level) and Mul (its scale).
    """
    sizes = sizes or (784, 64, 64, 64, 10)
    side = int(round(np.sqrt(sizes[0])))
    b = Builder((1, side, side), batch=batch, name=f"tfc-w{wbits}a{abits}")
    n = b.op("Gather", [b.op("Shape", [b.input]), b.const(0, np.int64)], axis=0)
    target = b.op(
        "Concat", [b.op("Unsqueeze", [n, b.const([0], np.int64)]), b.const([-1], np.int64)], axis=0
    )
    x = b.op("Reshape", [b.input, target])
    x = b.op("Sub", [b.op("Mul", [x, b.const(2.0)]), b.const([1.0])])
    in_bits = 1 if abits == 1 else 2

    def quantize(x, bits, channels):
        if dialect == "qonnx":
            return b.bipolar(x) if bits == 1 else b.quant(x, 1.0, bits=2, narrow=True)
        if bits == 1:
            th = np.zeros((channels, 1), dtype=np.float32)
            return b.multithreshold(x, th, out_scale=2.0, out_bias=-1.0, domain=finn_domain)
        th = np.tile(np.array([[-0.5, 0.5]], dtype=np.float32), (channels, 1))
        y = b.multithreshold(x, th, domain=finn_domain)
        return b.op("Mul", [b.op("Add", [y, b.const(-1.0)]), b.const(1.0)])

    x = quantize(x, in_bits, 1)
    in_mean = 0.0
    kind = ("binary" if wbits == 1 else "ternary") if dialect == "qonnx" else "plain"
    for i, (fan_in, out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        t = random_binary(rng, (out, fan_in)) if wbits == 1 else random_ternary(rng, (out, fan_in))
        s = np.ones(out, dtype=np.float32)
        layer_shape = shape if dialect == "qonnx" else "matmul"
        x = b.dense(x, t, s, kind, rng, shape=layer_shape)
        if i == len(sizes) - 2:
            break
        act = "binary" if abits == 1 else "ternary"
        alpha, beta, _ = affine_on_boundaries(rng, t.astype(np.int64), in_mean, s, act)
        eps = 2.0**-10
        x = b.batch_norm(x, alpha, beta, np.zeros(out), np.full(out, 1 - eps), epsilon=eps)
        x = quantize(x, abits, out)
    x = b.tensor_norm(x, 0.3, 2.0, 0.7, 0.1)
    return b.model(x)


# --- a float MLP, trained here with NumPy, as PyTorch would export it -----------------------------


def train_float_mlp(x, labels, hidden, *, epochs=40, seed=0, lr=0.01, batch=64):
    """A float 2-layer MLP (ReLU) fitted with Adam on softmax cross-entropy; returns its
    parameters ``(w1, b1, w2, b2)`` (rows per output, as torch.nn.Linear stores them)."""
    rng = np.random.default_rng(seed)
    classes = int(labels.max()) + 1
    params = [
        rng.normal(0, np.sqrt(2 / x.shape[1]), (hidden, x.shape[1])),
        np.zeros(hidden),
        rng.normal(0, np.sqrt(1 / hidden), (classes, hidden)),
        np.zeros(classes),
    ]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    onehot = np.eye(classes)[labels]
    step = 0
    for _ in range(epochs):
        for start in range(0, len(x), batch):
            idx = rng.permutation(len(x))[:batch] if start else np.arange(min(batch, len(x)))
            xb, yb = x[idx], onehot[idx]
            w1, b1, w2, b2 = params
            u = xb @ w1.T + b1
            h = np.maximum(u, 0)
            logits = h @ w2.T + b2
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            d = (p - yb) / len(xb)
            dh = (d @ w2) * (u > 0)
            grads = [dh.T @ xb, dh.sum(0), d.T @ h, d.sum(0)]
            step += 1
            for param, grad, (m, v) in zip(params, grads, moments, strict=True):
                m[:] = 0.9 * m + 0.1 * grad
                v[:] = 0.999 * v + 0.001 * grad**2
                param -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return params


def float_mlp_model(params, *, batch_norm=None):
    """The float MLP as an ONNX graph with a symbolic batch axis: Gemm (transB=1) with bias,
    optionally a BatchNormalization (``(mean, var)`` of the hidden pre-activations, with gamma
    and beta chosen so that the graph computes the same function), Relu, Gemm."""
    w1, b1, w2, b2 = (np.asarray(p, dtype=np.float32) for p in params)
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    if batch_norm is None:
        nodes.append(
            helper.make_node("Gemm", ["x", const("w1", w1), const("b1", b1)], ["u"], transB=1)
        )
        hidden = "u"
    else:
        mean, var = (np.asarray(v, dtype=np.float32) for v in batch_norm)
        eps = 1e-5
        gamma = np.sqrt(var + np.float32(eps))
        nodes.append(helper.make_node("Gemm", ["x", const("w1", w1)], ["u"], transB=1))
        nodes.append(
            helper.make_node(
                "BatchNormalization",
                [
                    "u",
                    const("gamma", gamma),
                    const("beta", mean + b1),
                    const("mean", mean),
                    const("var", var),
                ],
                ["z"],
                epsilon=eps,
            )
        )
        hidden = "z"
    nodes.append(helper.make_node("Relu", [hidden], ["h"]))
    nodes.append(
        helper.make_node("Gemm", ["h", const("w2", w2), const("b2", b2)], ["logits"], transB=1)
    )
    graph = helper.make_graph(
        nodes,
        "float-mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", w1.shape[1]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", w2.shape[0]])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _softmax_regression(feats, labels, rng, epochs=60, lr=0.01):
    w = rng.normal(0, 0.01, size=(10, feats.shape[1]))
    onehot = np.eye(10)[labels]
    m, v = np.zeros_like(w), np.zeros_like(w)
    for step in range(1, epochs + 1):
        logits = feats @ w.T
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot).T @ feats / len(feats)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return w


def float_cnn_model(train_x, train_labels, rng, channels=8):
    """A float CNN as an ONNX graph (symbolic batch): Conv 3x3 pad 1 with bias, Relu, MaxPool
    2x2, Flatten, Gemm. Random filters; the final layer is fitted by softmax regression on the
    train features (enough to classify digits well, and fast)."""
    w = rng.normal(0, 0.5, size=(channels, 1, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, size=channels).astype(np.float32)
    x = train_x.reshape(-1, 1, 8, 8)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([padded[:, 0, i : i + 8, j : j + 8] for i in range(3) for j in range(3)], -1)
    u = np.maximum(
        np.einsum("nhwk,ck->nchw", cols, w.reshape(channels, 9)) + bias[:, None, None], 0
    )
    feats = u.reshape(-1, channels, 4, 2, 4, 2).max(axis=(3, 5)).reshape(len(x), -1)
    w2 = _softmax_regression(feats, train_labels, rng)
    inits = [
        numpy_helper.from_array(w, "conv.weight"),
        numpy_helper.from_array(bias, "conv.bias"),
        numpy_helper.from_array(w2.astype(np.float32), "fc.weight"),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["x", "conv.weight", "conv.bias"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc.weight"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "float-cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
