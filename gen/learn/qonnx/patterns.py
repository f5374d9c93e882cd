"""The graph patterns that map onto ``tnn/1``: one handler per operator type, registered in a
table, assembling the walk of a cleaned QONNX graph into a :class:`Plan` of layers.

A layer is a linear op (``Gemm``, ``MatMul``, ``Conv``) on quantized inputs, the chain of
elementwise ops after it (bias ``Add``, ``BatchNormalization``, ``Mul``/``Div``/``Add``/``Sub``
by constants, ``Relu``, ``Clip``, shape ops), and the activation quantizer ending it (none for
the final layer). Before the first layer, a preamble of elementwise ops and an input quantizer
say how float inputs become the description's integer inputs; ``MaxPool`` may follow an
activation; ``TopK``/``ArgMax`` may end the graph. Anything else is refused by name.

Tensors are tracked in the graph's layout (``N, C, H, W`` or ``N, F``) and in the description's
(``h, w, c`` or a vector): a flatten of an image permutes the next dense layer's columns.
"""

import numpy as np

from . import chain
from .errors import UnsupportedGraph, display_name
from .ir import Linear, Plan, Pool, handler
from .quantizers import Weights, activation_quantizer, weights_of

__all__ = ["HANDLERS", "assemble"]

_LAYERS = {}


_REFUSED = {
    "AveragePool": "average pooling does not map onto tnn/1 (only max pooling)",
    "GlobalAveragePool": "average pooling does not map onto tnn/1 (only max pooling)",
    "QuantAvgPool2d": "average pooling does not map onto tnn/1 (only max pooling)",
    "Trunc": "Trunc (the truncation after average pooling) does not map onto tnn/1",
    "GlobalMaxPool": "global max pooling is not supported; use MaxPool with the full window",
}


def assemble(graph, *, input_levels=None, float_weights=False):
    """The :class:`Plan` of a :class:`~.graph.Graph`; ``input_levels`` declares the input's
    levels when the graph has no input quantizer.

    ``float_weights`` reads a float model for post-training quantization (:mod:`.ptq`): weights
    are plain float initializers, and a layer ends where the next linear op, pooling or flatten
    begins (its activation quantizer is chosen later, by calibration).
    """
    asm = _Assembler(graph, input_levels)
    asm.float = float_weights
    for step in graph.steps:
        if asm.stage == "done":
            raise UnsupportedGraph.at(step.node, "no node may follow the final TopK or ArgMax")
        function = HANDLERS.get(step.op_type)
        if function is None:
            reason = _REFUSED.get(step.op_type) or (
                f"the operator {step.op_type} is not supported here; supported: "
                + ", ".join(sorted(HANDLERS))
            )
            raise UnsupportedGraph.at(step.node, reason)
        function(asm, step)
    if not any(isinstance(layer, Linear) for layer in asm.plan.layers):
        raise UnsupportedGraph("the graph has no linear layer (Gemm, MatMul or Conv)")
    return asm.plan


class _Assembler:
    def __init__(self, graph, input_levels):
        shape = tuple(graph.input_shape[1:])
        spatial = len(shape) == 3
        self.plan = Plan(
            tuple(graph.input_shape),
            (shape[1], shape[2], shape[0]) if spatial else (int(np.prod(shape)),),
            "NCHW" if spatial else "flat",
            [],
            None,
            input_levels,
            [],
            notes=list(graph.notes),
        )
        self.stage = "preamble"
        self.levels = None
        self.layer = None
        self.declared = input_levels
        self.float = False
        self._set_layout(shape)

    # --- layout ----------------------------------------------------------------------------------

    def _set_layout(self, shape, order=None):
        self.shape = tuple(shape)
        self.spatial = len(shape) == 3
        if not self.spatial:
            size = int(np.prod(shape))
            self.order = np.arange(size) if order is None else order

    def reshape(self, step):
        new = tuple(step.out_shape[1:])
        size = int(np.prod(new))
        if self.spatial and len(new) != 3:
            c, h, w = self.shape
            if h * w > 1 and len(new) != 1:
                raise UnsupportedGraph.at(
                    step.node, f"it reshapes an image {list(self.shape)} to {list(new)}"
                )
            # A flatten of (c, h, w) in the graph's order: the description holds (h, w, c).
            order = np.arange(size).reshape(c, h, w).transpose(1, 2, 0).ravel()
            self._set_layout(new, order)
        elif not self.spatial and len(new) == 3:
            if not np.array_equal(self.order, np.arange(size)) or new[1] * new[2] > 1:
                raise UnsupportedGraph.at(
                    step.node, f"it reshapes a vector to an image {list(new)}: not supported"
                )
            self._set_layout(new)
        elif self.spatial:
            if new != self.shape:
                raise UnsupportedGraph.at(step.node, f"it reshapes an image to {list(new)}")
        else:
            self._set_layout(new, self.order)

    def close_layer(self):
        """Float models: the current layer ends here; calibration will choose its quantizer."""
        self.layer.calibrate = True
        self.stage = "quantized"
        self.levels = None

    # --- helpers ---------------------------------------------------------------------------------

    @property
    def channels(self):
        return self.shape[0]

    def per_channel(self, step, index):
        """The constant input ``index`` of ``step`` as one value per channel, shaped to broadcast
        against ``(n, channels, 1, ...)`` of the data's rank."""
        const = np.asarray(step.static[index].value, dtype=np.float32)
        data_shape = (1,) + tuple(step.in_shape[1:])
        try:
            fits = np.broadcast_shapes(data_shape, const.shape) == data_shape
        except ValueError:
            fits = False
        if not fits:
            raise UnsupportedGraph.at(
                step.node, f"its constant of shape {list(const.shape)} broadcasts the data"
            )
        full = np.broadcast_to(const, data_shape).reshape(1, data_shape[1], -1)
        if not np.all(full == full[:, :, :1]):
            raise UnsupportedGraph.at(
                step.node,
                "its constant varies within a channel (per position); thresholds are per channel",
            )
        rank = len(data_shape)
        return full[0, :, 0].reshape((1, -1) + (1,) * (rank - 2)).copy()


# --- quantizers ----------------------------------------------------------------------------------


@handler(_LAYERS, "Quant", "BipolarQuant", "MultiThreshold")
def _quantizer(asm, step):
    q = activation_quantizer(step)
    if q.kind == "MultiThreshold":
        rows = np.asarray(step.static[1].value).shape[0]
        if rows not in (1, asm.channels):
            raise UnsupportedGraph.at(
                step.node, f"it has {rows} rows of thresholds for {asm.channels} channels"
            )
    if asm.stage == "preamble":
        if asm.declared is not None:
            raise UnsupportedGraph.at(
                step.node, "--input-type is only for graphs without an input quantizer"
            )
        asm.plan.input_quantizer = q
        asm.plan.input_levels = q.levels
    elif asm.stage == "linear":
        asm.layer.quantizer = q
        asm.layer.out_levels = q.levels
        asm.layer.nodes.append(step.name)
    else:
        again = q.outputs(asm.levels.values)
        if not np.array_equal(again, asm.levels.values):
            raise UnsupportedGraph.at(
                step.node, "a second activation quantizer that changes the first one's values"
            )
        asm.plan.notes.append(f"{step.name}: repeats the quantizer before it (no change)")
        return
    asm.levels = q.levels
    asm.stage = "quantized"


# --- linear ops ----------------------------------------------------------------------------------


def _linear_inputs(asm, step):
    if asm.stage == "linear" and asm.float:
        asm.close_layer()
    if asm.stage == "linear":
        before = asm.layer.node
        raise UnsupportedGraph.at(
            step.node,
            f"its input comes from {display_name(before)!r} ({before.op_type}) without an "
            "activation quantizer between them (an unquantized activation between two layers)",
        )
    if asm.stage == "preamble":
        if asm.declared is None:
            raise UnsupportedGraph.at(
                step.node,
                "the graph has no input quantizer (Quant, BipolarQuant or MultiThreshold) before "
                "its first layer: declare the input's integer type with --input-type",
            )
        if asm.plan.preamble:
            raise UnsupportedGraph.at(
                asm.plan.preamble[0].node,
                "arithmetic on the graph input without an input quantizer: tnn/1 inputs are "
                "integers; quantize the input (Quant) or remove the preprocessing",
            )
        asm.levels = asm.declared
    if step.data != 0:
        raise UnsupportedGraph.at(step.node, "its data must be its first input")
    return asm.levels


def _weights(asm, step, out_axis):
    """The layer's weights: quantized (``weights_of``) or, for a float model, as they are."""
    if not asm.float:
        return weights_of(step.static[1], step.node, out_axis)
    static = step.static[1]
    if static.producer is not None:
        raise UnsupportedGraph.at(
            step.node, "its weights are already quantized: import it without --quantize"
        )
    value = np.asarray(static.value, dtype=np.float32)
    ones = np.ones(value.shape[out_axis], dtype=np.float32)
    return Weights(value, ones, "float", "float")


def _bias(asm, step, index, out):
    if index not in step.static:
        return None
    const = np.asarray(step.static[index].value, dtype=np.float32)
    return np.broadcast_to(const.reshape(-1) if const.size == out else const, (out,)).copy()


@handler(_LAYERS, "Gemm", "MatMul")
def _dense(asm, step):
    levels = _linear_inputs(asm, step)
    node = step.node
    if asm.spatial or len(step.in_shape) != 2:
        raise UnsupportedGraph.at(
            node, f"its input must be (batch, features), not {list(step.in_shape)}"
        )
    trans_b = 0
    if node.op_type == "Gemm":
        attrs = {a.name: a for a in node.attribute}
        if attrs.get("transA") and attrs["transA"].i:
            raise UnsupportedGraph.at(node, "transA=1 is not supported")
        for name in ("alpha", "beta"):
            if name in attrs and attrs[name].f != 1.0:
                raise UnsupportedGraph.at(node, f"{name} other than 1 is not supported")
        trans_b = attrs["transB"].i if "transB" in attrs else 0
    if 1 not in step.static or step.static[1].value.ndim != 2:
        raise UnsupportedGraph.at(node, "its weights must be a static 2-D tensor")
    w = _weights(asm, step, 0 if trans_b else 1)
    matrix = w.ints if trans_b else w.ints.T
    out = matrix.shape[0]
    bias = _bias(asm, step, 2, out)
    asm.layer = Linear(
        node, "dense", matrix[:, asm.order], w.scale, w.weight_type, w.source, bias, levels, 2
    )
    _start_layer(asm, step, (out,))


@handler(_LAYERS, "Conv")
def _conv(asm, step):
    levels = _linear_inputs(asm, step)
    node = step.node
    if not asm.spatial or len(step.in_shape) != 4:
        raise UnsupportedGraph.at(node, f"it needs an NCHW input, not {list(step.in_shape)}")
    attrs = {a.name: a for a in node.attribute}
    group = attrs["group"].i if "group" in attrs else 1
    if group != 1:
        raise UnsupportedGraph.at(
            node, f"depthwise or grouped convolution (group={group}) does not map onto tnn/1"
        )
    auto_pad = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
    if auto_pad not in ("NOTSET", "VALID"):
        raise UnsupportedGraph.at(node, f"auto_pad={auto_pad} is not supported; give pads")
    if any(d != 1 for d in (attrs["dilations"].ints if "dilations" in attrs else ())):
        raise UnsupportedGraph.at(node, "dilated convolution is not supported")
    pads = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
    if pads[:2] != pads[2:]:
        raise UnsupportedGraph.at(node, f"asymmetric padding {pads} is not supported")
    strides = tuple(attrs["strides"].ints) if "strides" in attrs else (1, 1)
    if 1 not in step.static or step.static[1].value.ndim != 4:
        raise UnsupportedGraph.at(node, "its weights must be a static 4-D tensor")
    w = _weights(asm, step, 0)
    out, _, kh, kw = w.ints.shape
    if max(pads) > 0 and levels is not None and 0 not in levels.levels:
        raise UnsupportedGraph.at(
            node,
            f"it pads with 0, which its input (levels {list(levels.levels)}) cannot hold"
            + (" (a binary input: pad is -1 or +1 in tnn/1)" if len(levels.levels) == 2 else ""),
        )
    matrix = w.ints.transpose(0, 2, 3, 1).reshape(out, -1)
    bias = _bias(asm, step, 2, out)
    asm.layer = Linear(
        node,
        "conv2d",
        matrix,
        w.scale,
        w.weight_type,
        w.source,
        bias,
        levels,
        4,
        (kh, kw),
        strides,
        tuple(pads[:2]),
    )
    _start_layer(asm, step, tuple(step.out_shape[1:]))


def _start_layer(asm, step, shape):
    asm.layer.nodes.append(step.name)
    asm.plan.layers.append(asm.layer)
    asm.stage = "linear"
    asm._set_layout(shape)


@handler(_LAYERS, "MaxPool")
def _maxpool(asm, step):
    node = step.node
    if asm.stage == "linear" and asm.float:
        asm.close_layer()
    if asm.stage != "quantized" or not asm.spatial:
        raise UnsupportedGraph.at(
            node,
            "MaxPool must follow an activation quantizer on an image (max pooling commutes with "
            "a positive-scale quantizer, not with the affine chain before it)",
        )
    attrs = {a.name: a for a in node.attribute}
    kernel = tuple(attrs["kernel_shape"].ints)
    stride = tuple(attrs["strides"].ints) if "strides" in attrs else (1, 1)
    pads = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
    if any(pads) or any(d != 1 for d in (attrs["dilations"].ints if "dilations" in attrs else ())):
        raise UnsupportedGraph.at(node, "MaxPool with padding or dilation is not supported")
    ceil = attrs["ceil_mode"].i if "ceil_mode" in attrs else 0
    if ceil and any((n - k) % s for n, k, s in zip(asm.shape[1:], kernel, stride, strict=True)):
        raise UnsupportedGraph.at(node, "ceil_mode=1 with a partial window is not supported")
    asm.plan.layers.append(Pool(node, kernel, stride))
    asm._set_layout(tuple(step.out_shape[1:]))


@handler(_LAYERS, "TopK", "ArgMax")
def _tail(asm, step):
    node = step.node
    attrs = {a.name: a for a in node.attribute}
    axis = attrs["axis"].i if "axis" in attrs else (-1 if node.op_type == "TopK" else 0)
    ok = len(step.in_shape) == 2 and axis in (1, -1) and asm.stage in ("linear", "quantized")
    if node.op_type == "TopK":
        k = step.static.get(1)
        ok = ok and k is not None and int(np.asarray(k.value).reshape(-1)[0]) == 1
        ok = ok and (attrs["largest"].i if "largest" in attrs else 1) == 1
    else:
        ok = ok and not (attrs["select_last_index"].i if "select_last_index" in attrs else 0)
    if not ok:
        raise UnsupportedGraph.at(
            node,
            "only a TopK with k=1 (largest) or an ArgMax (first index) over the classes of a "
            "(batch, classes) tensor may end the graph",
        )
    asm.plan.tail = node
    asm.stage = "done"


@handler(_LAYERS, "Softmax", "LogSoftmax")
def _softmax(asm, step):
    if not (asm.float and asm.stage == "linear"):
        raise UnsupportedGraph.at(
            step.node,
            f"{step.op_type} at the end does not map exactly (its float32 outputs can tie where "
            "the logits do not); import the graph up to its logits (argmax is unchanged)",
        )
    asm.plan.tail = step.node
    asm.stage = "done"


HANDLERS = {**chain.HANDLERS, **_LAYERS}
