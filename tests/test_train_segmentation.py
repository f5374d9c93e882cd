"""Segmentation: the digits-seg data set, pixel accuracy and mean IoU, class_map training."""

import json
import os
from collections import Counter

import numpy as np
import pytest

from gen import cli, network
from gen.learn import datasets, train
from gen.learn.config import ConfigError, parse_config
from gen.learn.evaluate import evaluate_map
from gen.network import golden

FCN = {
    "name": "t-fcn",
    "data": "digits-seg",
    "input": "uint4",
    "layers": [
        {"type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
        {"type": "maxpool", "kernel": 2},
        {"type": "conv2d", "out": 11, "kernel": 1},
    ],
    "epochs": 2,
    "batch_size": 32,
    "output_kind": "class_map",
    "output": "t-fcn.tnn.json",
}


def _config(**changes):
    doc = json.loads(json.dumps(FCN))
    doc.update(changes)
    return parse_config(doc, source="cfg.json")


# --- the data set --------------------------------------------------------------------------------


def _reference_split(split):
    """digits-seg re-derived from its documented recipe, one pixel at a time, from scikit-learn's
    own ``load_digits`` (not the CSV reader of gen.learn.datasets)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    chosen = order[:1437] if split == "train" else order[1437:]
    images, digits = bunch.images[chosen].astype(int), bunch.target[chosen].astype(int)
    partner = np.random.default_rng(1).permutation(len(digits))
    canvases = np.zeros((len(digits), 8, 16), dtype=int)
    labels = np.zeros((len(digits), 8, 16), dtype=int)
    for k in range(len(digits)):
        for y in range(8):
            for x in range(16):
                source = k if x < 8 else int(partner[k])
                value = int(images[source, y, x % 8])
                canvases[k, y, x] = value
                labels[k, y, x] = int(digits[source]) if value >= 8 else 10
    return canvases, labels


def _reference_downsample(labels, h, w):
    """Each block's most common label, ties to the lowest, counted one block at a time."""
    n, big_h, big_w = labels.shape
    bh, bw = big_h // h, big_w // w
    out = np.zeros((n, h, w), dtype=int)
    for k in range(n):
        for y in range(h):
            for x in range(w):
                block = labels[k, y * bh : (y + 1) * bh, x * bw : (x + 1) * bw].ravel().tolist()
                counts = Counter(block)
                best = max(counts.values())
                out[k, y, x] = min(c for c, m in counts.items() if m == best)
    return out


@pytest.mark.parametrize("split", ["test", "train"])
def test_digits_seg_is_its_documented_recipe(split):
    pytest.importorskip("sklearn")
    data = datasets.load("digits-seg", split)
    canvases, labels = _reference_split(split)
    assert data.segmentation and data.pixel_max == 16
    assert np.array_equal(data.images, canvases)
    assert np.array_equal(data.labels, labels)
    # deterministic: a second load gives the same arrays
    again = datasets.load("digits-seg", split)
    assert np.array_equal(again.images, data.images) and np.array_equal(again.labels, data.labels)


def test_digits_seg_splits_are_disjoint_and_hold_every_digit_twice():
    train_set, test_set = datasets.load("digits-seg", "train"), datasets.load("digits-seg", "test")
    assert len(train_set.labels) == 1437 and len(test_set.labels) == 360
    digits = datasets.load("digits", "test")
    left = {d.tobytes() for d in test_set.images[:, :, :8]}
    right = {d.tobytes() for d in test_set.images[:, :, 8:]}
    assert left == right == {d.tobytes() for d in digits.images}
    train_left = {d.tobytes() for d in train_set.images[:, :, :8]}
    assert not (left & train_left)


def test_label_map_is_the_majority_of_each_block():
    labels = datasets.load("digits-seg", "test").labels[:40]
    for h, w in ((8, 16), (4, 8), (2, 4), (1, 2), (4, 16)):
        assert np.array_equal(
            datasets.label_map(labels, (h, w)), _reference_downsample(labels, h, w)
        )
    # a 2x2 block with two stroke pixels of digit 3 and two background pixels is the digit's
    block = np.array([[[3, 10], [10, 3]]])
    assert datasets.label_map(block, (1, 1)).tolist() == [[[3]]]
    with pytest.raises(datasets.DataError, match="cannot be downsampled to a 3x8 output map"):
        datasets.label_map(labels, (3, 8))


# --- scores ---------------------------------------------------------------------------------------


def test_pixel_accuracy_and_mean_iou_of_a_hand_worked_example():
    labels = np.array([[[0, 0], [1, 2]]])
    predicted = np.array([[[0, 1], [1, 1]]])
    score = evaluate_map(predicted, labels, 4)
    # class 0: predicted {a}, labelled {a, b}: 1/2; class 1: predicted {b, c, d}, labelled {c}:
    # 1/3; class 2: labelled {d}, never predicted: 0/1; class 3: absent from both, left out.
    assert score.correct == 2 and score.positions == 4
    assert score.pixel_accuracy == 0.5
    assert score.iou == [0.5, pytest.approx(1 / 3), 0.0, None]
    assert score.mean_iou == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert score.accuracy_text() == "50.00% (2/4)"
    assert score.iou_text() == "27.78% (3 classes)"
    with pytest.raises(ValueError, match="labels must be class indices 0..3"):
        evaluate_map(predicted, labels + 3, 4)
    with pytest.raises(ValueError, match="labels of shape"):
        evaluate_map(predicted, labels[:, :1], 4)


# --- training ---------------------------------------------------------------------------------


def _small(config, n_train=240, n_test=60):
    spec, (x_train, y_train), (x_test, y_test) = train.prepare_data(config)
    return spec, (x_train[:n_train], y_train[:n_train]), (x_test[:n_test], y_test[:n_test])


def test_class_map_training_exports_the_trainers_own_predictions():
    config = _config()
    data = _small(config)
    result = train.train(config, data=data, progress=None)
    net = result.network
    assert net.output == "class_map" and net.format == "tnn/2"
    assert net.input.shape == (8, 16, 1) and net.output_shape == (4, 8, 11)
    again = network.from_dict(network.to_dict(net))  # a valid description, through the validator
    x_test, y_test = data[2]
    predicted, outputs = result.model.infer(x_test)
    assert predicted.shape == (60, 4, 8)
    assert np.array_equal(golden.run(again, x_test.astype(np.int64)), predicted)
    # the last layer's integer accumulators, not only their argmax
    _, traces = golden.run(again, x_test.astype(np.int64), trace=True)
    assert np.array_equal(traces[-1].acc, outputs[-1])
    # the reported figure is the golden model's pixel accuracy on these labels
    assert result.test_accuracy == pytest.approx(np.mean(predicted == y_test))
    assert result.test_score.positions == y_test.size


def test_class_map_labels_follow_the_output_map():
    config = _config(
        layers=[
            {"type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
            {"type": "conv2d", "out": 11, "kernel": 1},
        ]
    )
    _, (_, y_train), _ = train.prepare_data(config)
    assert y_train.shape == (1437, 8, 16)
    assert np.array_equal(y_train, datasets.load("digits-seg", "train").labels)


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"layers": [{"type": "conv2d", "out": 4, "kernel": 3}, {"type": "dense", "out": 11}]},
            "cfg.json: layers[1]: output_kind 'class_map' needs a conv2d last layer",
        ),
        ({"data": "digits"}, "cfg.json: data: 'digits' labels whole images: it needs output_kind"),
        ({"output_kind": "argmax"}, "cfg.json: data: 'digits-seg' labels pixels: it needs"),
        ({"output_kind": "pixels"}, "cfg.json: output_kind: must be 'argmax' or 'class_map'"),
    ],
)
def test_class_map_config_errors(changes, message):
    with pytest.raises(ConfigError) as info:
        _config(**changes)
    assert str(info.value).startswith(message)


def test_class_map_needs_a_channel_per_class(tmp_path, capsys):
    path = tmp_path / "cfg.json"
    doc = json.loads(json.dumps(FCN))
    doc["layers"][-1]["out"] = 10
    path.write_text(json.dumps(doc))
    assert cli.main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "must give 11 class scores per position, not 10" in err and len(err.splitlines()) == 1


# --- tnngen eval ----------------------------------------------------------------------------------


def test_eval_reports_pixel_accuracy_and_mean_iou(tmp_path, capsys):
    config = _config()
    result = train.train(config, data=_small(config), progress=None)
    path = tmp_path / "fcn.tnn.json"
    network.save(result.network, str(path))
    assert cli.main(["eval", str(path), "--data", "digits-seg"]) == 0
    out = capsys.readouterr().out
    data = datasets.load("digits-seg", "test")
    predicted = golden.run(result.network, datasets.to_inputs(data, result.network.input))
    labels = _reference_downsample(data.labels, 4, 8)
    correct = int(np.sum(predicted == labels))
    assert f"pixel accuracy {100 * correct / labels.size:.2f}% ({correct}/{labels.size})" in out
    ious = []
    for k in range(11):
        union = np.sum((predicted == k) | (labels == k))
        if union:
            ious.append(np.sum((predicted == k) & (labels == k)) / union)
    assert f"mean IoU       {100 * np.mean(ious):.2f}% ({len(ious)} classes)" in out
    # an image-labelled data set for a class_map network: one line, exit status 2
    assert cli.main(["eval", str(path), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "it needs pixel labels" in err and len(err.splitlines()) == 1


def test_eval_of_pixel_labels_on_an_argmax_network_is_refused(capsys):
    model = os.path.join(os.path.dirname(__file__), os.pardir, "models", "digits-mlp.tnn.json")
    assert cli.main(["eval", model, "--data", "digits-seg"]) == 2
    err = capsys.readouterr().err
    assert "labels pixels" in err and "'class_map'" in err and len(err.splitlines()) == 1
