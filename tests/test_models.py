"""The shipped models: their figures in models/README.md, their limits, and their retraining."""

import functools
import gzip
import os
import re

import numpy as np
import pytest

from gen import cli, network
from gen.learn import datasets, train
from gen.learn.config import load_config
from gen.network import golden

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")
TRAINED = ["digits-mlp", "mnist-mlp", "digits-cnn"]
#: Few-bit integer weights (tnn/2 intN): TTQ and DoReFa/QNN, digits-mlp's shape.
INT_WEIGHTS = ["digits-mlp-ttq", "digits-mlp-w4"]
#: Binarized (w1a1) networks of FINN's benchmark shapes: no bound against the float baseline.
BINARIZED = ["tfc-w1a1", "sfc-w1a1"]
#: Fully convolutional segmentation (tnn/2 class_map): pixel accuracy and mean IoU.
SEGMENTATION = ["digits-bfcn"]
DATA = {
    "digits-bfcn": "digits-seg",
    "digits-mlp": "digits",
    "digits-mlp-ttq": "digits",
    "digits-mlp-w4": "digits",
    "mnist-mlp": "mnist5k",
    "digits-cnn": "digits",
    "tfc-w1a1": "mnist5k",
    "sfc-w1a1": "mnist5k",
}


def _readme_rows():
    """Rows of the figures table of models/README.md (its first table), by model name."""
    with open(os.path.join(MODELS, "README.md"), encoding="utf-8") as f:
        text = f.read()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (
            len(cells) >= 6
            and cells[0].strip("`") in TRAINED + INT_WEIGHTS + BINARIZED + SEGMENTATION
        ):
            rows.setdefault(cells[0].strip("`"), cells)  # later tables: hardware figures
    return rows


@functools.cache
def _test_split(name):
    """A data set's test split, loaded once for all the tests of this file."""
    return datasets.load(name, "test")


def _load(name):
    return network.load(os.path.join(MODELS, f"{name}.tnn.json"))


def _nonzero(net):
    weighted = [layer for layer in net.layers if not isinstance(layer, network.MaxPool)]
    return sum(int(np.count_nonzero(layer.weights)) for layer in weighted)


@pytest.mark.parametrize("name", TRAINED + INT_WEIGHTS + BINARIZED)
def test_readme_figures_are_what_eval_measures(name, capsys):
    net = _load(name)
    data = _test_split(DATA[name])
    predicted = golden.run(net, datasets.to_inputs(data, net.input))
    correct = int(np.sum(predicted == data.labels))
    figure = f"{100 * correct / len(data.labels):.2f}% ({correct}/{len(data.labels)})"
    row = _readme_rows()[name]
    # columns: model, input, layers, nonzero weights, ternary accuracy, float accuracy, time
    assert row[4] == figure
    assert row[3].startswith(f"{_nonzero(net)} of ")
    float_accuracy = float(re.match(r"([\d.]+)%", row[5]).group(1))
    if name in TRAINED + INT_WEIGHTS:
        assert 100 * correct / len(data.labels) >= float_accuracy - 2
    assert cli.main(["eval", os.path.join(MODELS, f"{name}.tnn.json"), "--data", DATA[name]]) == 0
    assert f"accuracy {figure}" in capsys.readouterr().out


def _map_scores(predicted, labels, classes):
    """Pixel accuracy and mean IoU, counted here from their definitions (gen.learn.evaluate)."""
    correct = int(np.sum(predicted == labels))
    ious = []
    for k in range(classes):
        union = int(np.sum((predicted == k) | (labels == k)))
        if union:
            ious.append(int(np.sum((predicted == k) & (labels == k))) / union)
    return correct, float(np.mean(ious)), len(ious)


@pytest.mark.parametrize("name", SEGMENTATION)
def test_readme_segmentation_figures_are_what_eval_measures(name, capsys):
    net = _load(name)
    assert net.output == "class_map" and net.format == "tnn/2"
    data = _test_split(DATA[name])
    predicted = golden.run(net, datasets.to_inputs(data, net.input))
    h, w, classes = net.output_shape
    # the documented rule: each block's most common label, ties to the lowest class
    n, big_h, big_w = data.labels.shape
    blocks = data.labels.reshape(n, h, big_h // h, w, big_w // w).transpose(0, 1, 3, 2, 4)
    counts = np.stack([np.sum(blocks == k, axis=(-1, -2)) for k in range(classes)], axis=-1)
    labels = np.argmax(counts, axis=-1)
    correct, miou, present = _map_scores(predicted, labels, classes)
    pixel = f"{100 * correct / labels.size:.2f}% ({correct}/{labels.size})"
    row = _readme_rows()[name]
    # columns: model, input, layers, nonzero weights, pixel accuracy, mean IoU, float, time
    assert row[4] == pixel
    assert row[5] == f"{100 * miou:.2f}%"
    assert row[3].startswith(f"{_nonzero(net)} of ")
    float_pixel = float(re.match(r"([\d.]+)%", row[6]).group(1))
    assert 100 * correct / labels.size >= float_pixel - 15  # the stated gap (models/README.md)
    assert cli.main(["eval", os.path.join(MODELS, f"{name}.tnn.json"), "--data", DATA[name]]) == 0
    out = capsys.readouterr().out
    assert f"pixel accuracy {pixel}" in out
    assert f"mean IoU       {100 * miou:.2f}% ({present} classes)" in out


def test_models_meet_their_hardware_limits():
    digits_mlp = _load("digits-mlp")
    assert digits_mlp.input.shape == (64,) and _nonzero(digits_mlp) <= 1000
    mnist = _load("mnist-mlp")
    assert [layer.out for layer in mnist.layers] == [256, 256, 10]
    assert mnist.input.shape == (784,)
    cnn = _load("digits-cnn")
    kinds = [layer.type for layer in cnn.layers]
    assert kinds.count("conv2d") >= 2 and "maxpool" in kinds
    for net in (digits_mlp, mnist, cnn):
        weighted = [layer for layer in net.layers if not isinstance(layer, network.MaxPool)]
        assert all(layer.weight_type == "ternary" for layer in weighted)
        assert all(layer.activation.levels == (-1, 0, 1) for layer in weighted[:-1])
        assert weighted[-1].activation is None and net.output == "argmax"
    bfcn = _load("digits-bfcn")
    assert all(isinstance(layer, (network.Conv2d, network.MaxPool)) for layer in bfcn.layers)
    assert bfcn.input.shape == (8, 16, 1) and bfcn.output_shape[-1] == 11
    assert all(layer.weight_type == "ternary" for layer in bfcn.layers if layer.type == "conv2d")


def _accuracy(name):
    net = _load(name)
    data = _test_split(DATA[name])
    return np.mean(golden.run(net, datasets.to_inputs(data, net.input)) == data.labels)


def test_integer_weight_models_are_digits_mlp_with_their_weight_types():
    reference = _load("digits-mlp")
    for name, weight_type in (("digits-mlp-ttq", "int3"), ("digits-mlp-w4", "int4")):
        net = _load(name)
        assert net.format == "tnn/2" and net.input == reference.input
        assert [layer.out for layer in net.layers] == [layer.out for layer in reference.layers]
        assert all(layer.weight_type == weight_type for layer in net.layers)
        assert net.layers[0].activation.levels == (-1, 0, 1)
        assert net.layers[-1].activation is None and net.output == "argmax"
    # TTQ: one positive and one negative value per layer (a row negated by folding swaps them)
    for layer in _load("digits-mlp-ttq").layers:
        magnitudes = {abs(v) for v in np.unique(layer.weights).tolist()} - {0}
        assert 1 <= len(magnitudes) <= 2
    # issue 17: TTQ at least as accurate as the ternary (TWN) model of the same shape
    assert _accuracy("digits-mlp-ttq") >= _accuracy("digits-mlp")


@pytest.mark.parametrize("name", ["digits-mlp", "tfc-w1a1", "digits-mlp-ttq", "digits-mlp-w4"])
def test_retraining_small_models_gives_the_shipped_description(name, tmp_path):
    config = os.path.join(MODELS, f"{name}.json")
    output = tmp_path / f"{name}.tnn.json"
    result, _ = train.run_config(config, output=str(output), progress=None)
    with open(os.path.join(MODELS, f"{name}.tnn.json"), "rb") as f:
        assert output.read_bytes() == f.read()
    # The trainer's inference pass and the golden model of the shipped description agree on
    # every test image, layer by layer.
    _, _, (x_test, _) = train.prepare_data(load_config(config))
    train.check_exact(result.model, _load(name), x_test)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist-mlp", "digits-cnn", "sfc-w1a1", "digits-bfcn"])
def test_retraining_gives_the_shipped_description(name, tmp_path):
    output = tmp_path / f"{name}.tnn.json"
    config = os.path.join(MODELS, f"{name}.json")
    result, _ = train.run_config(config, output=str(output), progress=None)
    with open(os.path.join(MODELS, f"{name}.tnn.json"), "rb") as f:
        assert output.read_bytes() == f.read()
    _, _, (x_test, _) = train.prepare_data(load_config(config))
    train.check_exact(result.model, _load(name), x_test)


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_eval_mnist_mlp_on_idx_files(tmp_path, capsys):
    data = _test_split("mnist5k")
    images, labels = data.images[:200], data.labels[:200]
    for stem in ("train", "t10k"):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", labels)
    net = _load("mnist-mlp")
    predicted = golden.run(net, datasets.to_inputs(data, net.input)[:200])
    correct = int(np.sum(predicted == labels))
    model = os.path.join(MODELS, "mnist-mlp.tnn.json")
    assert cli.main(["eval", model, "--data", f"idx:{tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert f"accuracy {100 * correct / 200:.2f}% ({correct}/200)" in out
