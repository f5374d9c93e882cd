"""What the QONNX importer refuses, and the message of each refusal (node name, op type, why)."""

import numpy as np
import pytest

from gen.learn.qonnx import UnsupportedGraph, import_model

# The tests need the optional extra "import" (onnx, qonnx, onnxruntime).
graphs = pytest.importorskip("qonnx_graphs")


RNG = np.random.default_rng(0)


def start(shape=(16,), *, binary=True):
    b = graphs.Builder(shape, batch=2)
    x = b.op("Sub", [b.op("Mul", [b.input, b.const(2.0)]), b.const(1.0)])
    x = b.bipolar(x) if binary else b.quant(x, 1.0, bits=2, narrow=True)
    return b, x


def dense(b, x, out=8, fan_in=16, kind="ternary", scale=0.5):
    return b.dense(x, graphs.random_ternary(RNG, (out, fan_in)), np.full(out, scale), kind, RNG)


def hidden(b, x, out=8, fan_in=16):
    return b.quant(dense(b, x, out, fan_in), 1.0, bits=2, narrow=True)


def refused(model, pattern, **options):
    with pytest.raises(UnsupportedGraph, match=pattern) as info:
        import_model(model, **options)
    return info.value


def test_weight_zero_point():
    b, x = start()
    w = b.quant(b.const(RNG.normal(size=(8, 16))), 0.5, bits=2, narrow=True, zero_point=1.0)
    error = refused(
        b.model(b.op("Gemm", [x, w], transB=1)),
        r"node '/Quant_\d+' \(Quant\): "
        r"weight zero points other than 0 are not supported",
    )
    assert error.op_type == "Quant" and error.node.startswith("/Quant_")


@pytest.mark.parametrize(
    "bits, signed, narrow, pattern",
    [
        (9, True, True, r"\(Quant\): signed weights of 9 bits are not supported \(tnn/2 weights"),
        (8, False, False, r"\(Quant\): unsigned weights of 8 bits are not supported .* at most 7"),
        (2.5, True, False, r"\(Quant\): signed weights of 2.5 bits are not supported"),
    ],
)
def test_weight_widths(bits, signed, narrow, pattern):
    b, x = start()
    w = b.quant(b.const(RNG.normal(size=(8, 16))), 0.5, bits=bits, signed=signed, narrow=narrow)
    refused(b.model(b.op("Gemm", [x, w], transB=1)), pattern)


def test_residual_add_of_two_activations():
    b, x = start()
    y = hidden(b, x, 16, 16)
    z = b.op("Add", [y, x])
    refused(
        b.model(dense(b, z)),
        r"node '/Add_\d+' \(Add\): a residual Add of two activations does not map onto tnn/1",
    )


def test_branch():
    b, x = start()
    y = b.op("Relu", [x])
    z = b.op("Mul", [x, b.const(2.0)])
    del y
    refused(b.model(z), r"\(BipolarQuant\): its output .* feeds 2 nodes .*: branches and residual")


@pytest.mark.parametrize("op", ["AveragePool", "GlobalAveragePool"])
def test_average_pooling(op):
    b, x = start((2, 6, 6), binary=False)
    attrs = {"kernel_shape": [2, 2]} if op == "AveragePool" else {}
    y = b.op(op, [x], name="/features/pool", **attrs)
    refused(b.model(y), rf"node '/features/pool' \({op}\): average pooling does not map onto tnn/1")


def test_trunc():
    b, x = start((2, 6, 6), binary=False)
    y = b.op(
        "Trunc",
        [x] + [b.const(v) for v in (1.0, 0.0, 4.0, 2.0)],
        domain="qonnx.custom_op.general",
        rounding_mode="FLOOR",
    )
    refused(b.model(y), r"\(Trunc\): Trunc \(the truncation after average pooling\) does not map")


def test_grouped_convolution():
    b, x = start((4, 6, 6), binary=False)
    w = b.weight(graphs.random_ternary(RNG, (4, 2, 3, 3)), np.full(4, 0.5), "ternary", RNG)
    y = b.op("Conv", [x, w], kernel_shape=[3, 3], group=2)
    refused(b.model(y), r"\(Conv\): depthwise or grouped convolution \(group=2\) does not map")


def test_unquantized_activation_between_layers():
    b, x = start()
    y = b.op("Relu", [dense(b, x, 16, 16)])
    refused(
        b.model(dense(b, y)),
        r"node '/Gemm_\d+' \(Gemm\): its input comes from '/Gemm_\d+' \(Gemm\) without an "
        r"activation quantizer between them \(an unquantized activation between two layers\)",
    )


def test_final_per_channel_affine_under_argmax():
    b, x = start()
    y = b.dense(
        x, graphs.random_ternary(RNG, (4, 16)), np.array([0.5, 0.25, 0.5, 1.0]), "ternary", RNG
    )
    model = b.model(y)
    refused(
        model,
        r"\(Gemm\): the final layer's affine is per channel .* argmax of A_j\*acc\+B_j with "
        r"unequal A_j or nonzero B_j is not an argmax of the accumulators; use --output values",
        output="argmax",
    )
    assert import_model(model).network.output == "values"  # the default where argmax is wrong
    assert import_model(model, output="values").network.output == "values"


def test_final_bias_before_topk():
    b, x = start()
    y = b.dense(
        x,
        graphs.random_ternary(RNG, (4, 16)),
        np.full(4, 0.5),
        "ternary",
        RNG,
        bias=np.array([0.0, 0.5, 0.0, 0.0]),
    )
    y = b.op("TopK", [y, b.const([1], np.int64)], outputs=2, axis=-1)[1]
    from onnx import TensorProto

    refused(b.model(y, dtype=TensorProto.INT64), r"use --output values")


def test_binary_input_padding():
    b, x = start((2, 6, 6), binary=True)
    y = b.conv(
        x, graphs.random_ternary(RNG, (3, 2, 3, 3)), np.full(3, 0.5), "ternary", RNG, pads=(1, 1)
    )
    refused(
        b.model(y),
        r"\(Conv\): it pads with 0, which its input \(levels \[-1, 1\]\) cannot "
        r"hold \(a binary input: pad is -1 or \+1 in tnn/1\)",
    )


def test_no_input_quantizer_needs_input_type():
    b = graphs.Builder((16,), batch=2)
    y = dense(b, b.input)
    model = b.model(y)
    refused(model, r"\(Gemm\): the graph has no input quantizer .* --input-type")
    net = import_model(model, input_type="uint4").network
    assert net.input.type.name == "uint4"


def test_arithmetic_without_input_quantizer():
    b = graphs.Builder((16,), batch=2)
    y = dense(b, b.op("Mul", [b.input, b.const(0.5)]))
    refused(
        b.model(y),
        r"\(Mul\): arithmetic on the graph input without an input quantizer",
        input_type="uint4",
    )


def test_float_weights():
    b, x = start()
    y = b.op("Gemm", [x, b.const(RNG.normal(size=(8, 16)))], transB=1)
    refused(b.model(y), r"\(Gemm\): its weights are plain floats, not quantized .* --quantize")


def test_per_channel_activation_scale():
    b, x = start()
    y = b.quant(dense(b, x), np.linspace(0.5, 1, 8).astype(np.float32), bits=2, narrow=True)
    refused(b.model(dense(b, y, 4, 8)), r"\(Quant\): its scale has shape \[8\]; only one scale")


def test_maxpool_before_the_quantizer():
    b, x = start((2, 6, 6), binary=False)
    y = b.conv(x, graphs.random_ternary(RNG, (3, 2, 3, 3)), np.full(3, 0.5), "ternary", RNG)
    y = b.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    refused(b.model(y), r"\(MaxPool\): MaxPool must follow an activation quantizer")


def test_unknown_operator():
    b, x = start()
    y = b.op("Sigmoid", [dense(b, x)], name="/head/Sigmoid")
    error = refused(b.model(y), r"node '/head/Sigmoid' \(Sigmoid\): the operator Sigmoid is not")
    assert error.node == "/head/Sigmoid"  # the file's own name, not the one cleanup gives


def test_softmax_at_the_end():
    b, x = start()
    y = b.op("Softmax", [dense(b, x)], axis=1)
    refused(b.model(y), r"\(Softmax\): Softmax at the end does not map exactly .* up to its logits")


def test_strict_refuses_what_it_cannot_prove():
    b, x = start((64,))
    # A weight scale that is not a power of two makes the sums round; with thresholds tied to
    # the rounding, exactness on every input cannot be proved.
    y = b.dense(x, graphs.random_ternary(RNG, (8, 64)), np.full(8, 0.1), "ternary", RNG)
    y = b.quant(b.op("Add", [y, b.const(0.05)]), 0.1, bits=2, narrow=True)
    model = b.model(dense(b, y, 4, 8))
    result = import_model(model)
    if result.exact:
        pytest.skip("this random layer happened to be provable")
    refused(
        model, r"not provably exact on every input: \d+ thresholds lie within float32", strict=True
    )
