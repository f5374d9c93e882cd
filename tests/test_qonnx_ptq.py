"""Post-training ternarization (TWN) and binarization (XNOR) of a float ONNX MLP fitted here on
scikit-learn's digits: the float model's accuracy by onnxruntime next to the description's, and
the description agreeing exactly with the calibrated quantized model it stands for."""

import numpy as np
import pytest

from gen.learn import datasets
from gen.learn.qonnx import inputspec, quantize_model
from gen.learn.qonnx.ptq import float_inputs_of, run_float
from gen.network import golden

graphs = pytest.importorskip("qonnx_graphs")  # needs the optional extra "import"
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits_model():
    train = datasets.load("digits", "train")
    x = float_inputs_of(train, (64,)).astype(np.float64)
    params = graphs.train_float_mlp(x, train.labels, 64, epochs=30, seed=1)
    u = x @ params[0].T
    return params, (u.mean(axis=0), u.var(axis=0))


@pytest.mark.parametrize("method", ["twn", "xnor"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_ptq_of_a_float_mlp(digits_model, method, batch_norm):
    params, stats = digits_model
    model = graphs.float_mlp_model(params, batch_norm=stats if batch_norm else None)
    result = quantize_model(model, method=method, calibrate="digits", input_type="uint4")
    acc = result.accuracy
    assert acc["count"] == 360
    test = datasets.load("digits", "test")
    logits = run_float(model, float_inputs_of(test, (64,)))
    assert acc["float"] == pytest.approx(np.mean(np.argmax(logits, axis=1) == test.labels))
    assert acc["float"] > 0.9
    # A small float model loses more than the shipped one (models/README.md): TWN a few
    # points, XNOR (binary weights, no retraining) many.
    assert acc["quantized"] > acc["float"] - (0.08 if method == "twn" else 0.3)
    net = result.network
    weight_type = "ternary" if method == "twn" else "binary"
    assert [layer.weight_type for layer in net.layers] == [weight_type] * 2
    assert net.layers[0].activation.levels == (0, 1, 2, 3)  # after a ReLU: 2-bit unsigned
    assert any("bias is dropped" in w for w in result.warnings)
    ints = inputspec.to_integers(result.input_spec, float_inputs_of(test, (64,)))
    predicted, trace = golden.run(net, ints, trace=True)
    assert np.mean(predicted == test.labels) == acc["quantized"]
    assert len(np.unique(trace[0].out)) == 4  # every level of the hidden layer is used


def test_ptq_of_a_float_cnn():
    train = datasets.load("digits", "train")
    rng = np.random.default_rng(2)
    model = graphs.float_cnn_model(
        float_inputs_of(train, (64,)).astype(np.float64), train.labels, rng
    )
    result = quantize_model(model, method="twn", calibrate="digits", input_type="uint4")
    net = result.network
    assert [layer.type for layer in net.layers] == ["conv2d", "maxpool", "dense"]
    assert net.input.shape == (8, 8, 1) and net.layers[0].padding == (1, 1)
    acc = result.accuracy
    # Eight random 3x3 filters ternarize coarsely: the path is tested, not the accuracy target.
    assert acc["float"] > 0.9 and acc["quantized"] > acc["float"] - 0.15, acc
