"""The description formats tnn/1 and tnn/2: validation messages, limits, saving and loading."""

import copy
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from netgen import networks

from gen import network
from gen.network import DescriptionError, validate

MLP = {
    "format": "tnn/1",
    "name": "t",
    "input": {"shape": [4], "type": "ternary"},
    "layers": [
        {
            "type": "dense",
            "out": 2,
            "weights": ["+0-+", "0000"],
            "activation": {"levels": [-1, 0, 1], "thresholds": [[-1, 1], [0, 0]]},
        },
        {"type": "dense", "out": 2, "weights": ["+-", "-+"], "activation": None},
    ],
    "output": "argmax",
}

#: tnn/2: an int4 dense layer after an int2 convolution, its output per position.
FCN = {
    "format": "tnn/2",
    "name": "f",
    "input": {"shape": [3, 3, 1], "type": "uint2"},
    "layers": [
        {
            "type": "conv2d",
            "out": 2,
            "kernel": [2, 2],
            "weight_type": "int2",
            "weights": [[1, -2, 0, 1], [-2, -2, -2, -2]],
            "activation": {"levels": [0, 1, 2], "thresholds": [[-1, 2], [-6, 0]]},
        },
        {
            "type": "conv2d",
            "out": 3,
            "kernel": [1, 1],
            "weight_type": "int4",
            "weights": [[7, -8], [0, 0], [-3, 5]],
            "activation": None,
        },
    ],
    "output": "class_map",
}

CNN = {
    "format": "tnn/1",
    "name": "c",
    "input": {"shape": [5, 5, 1], "type": "binary"},
    "layers": [
        {
            "type": "conv2d",
            "out": 2,
            "kernel": [3, 3],
            "padding": 1,
            "pad": -1,
            "weights": ["+-+-+-+-+", "+++++++++"],
            "activation": {"levels": [-1, 1], "thresholds": [[0], [1]]},
        },
        {"type": "maxpool", "kernel": 2},
        {
            "type": "dense",
            "out": 3,
            "weights": ["+-+-+-+-", "--------", "+0+0+0+0"],
            "activation": None,
        },
    ],
    "output": "values",
}


def broken(base, change):
    doc = copy.deepcopy(base)
    change(doc)
    return doc


def expect(doc, where, problem, tmp_path):
    path = tmp_path / "model.tnn.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DescriptionError) as info:
        network.load(path)
    assert info.value.source == str(path)
    assert info.value.where == where
    assert info.value.problem == problem
    assert str(info.value) == f"{path}: {where}: {problem}" if where else f"{path}: {problem}"


def set_in(doc, keys, value):
    for key in keys[:-1]:
        doc = doc[key]
    doc[keys[-1]] = value


def drop(doc, keys):
    for key in keys[:-1]:
        doc = doc[key]
    del doc[keys[-1]]


CASES = [
    # (id, base, change, where, problem)
    (
        "format",
        MLP,
        lambda d: set_in(d, ["format"], "tnn/9"),
        "format",
        "unknown format 'tnn/9'; this tool reads 'tnn/1' and 'tnn/2'",
    ),
    (
        "layer type",
        MLP,
        lambda d: set_in(d, ["layers", 1, "type"], "lstm"),
        "layers[1].type",
        "unknown layer type 'lstm'; expected 'dense', 'conv2d' or 'maxpool'",
    ),
    (
        "weight length",
        MLP,
        lambda d: set_in(d, ["layers", 0, "weights", 1], "000"),
        "layers[0] (dense).weights[1]",
        "has length 3, expected 4 (the layer's fan-in)",
    ),
    (
        "weight char",
        MLP,
        lambda d: set_in(d, ["layers", 0, "weights", 0], "+0x+"),
        "layers[0] (dense).weights[0]",
        "character 'x' at position 2 is not one of '+', '0', '-'",
    ),
    (
        "weight non-ascii",
        MLP,
        lambda d: set_in(d, ["layers", 0, "weights", 0], "+0\u2212+"),
        "layers[0] (dense).weights[0]",
        "character '\u2212' at position 2 is not one of '+', '0', '-'",
    ),
    (
        "weight rows",
        MLP,
        lambda d: set_in(d, ["layers", 0, "weights"], ["+0-+"]),
        "layers[0] (dense).weights",
        "has 1 rows, expected 2 (out)",
    ),
    (
        "binary zero",
        MLP,
        lambda d: (
            set_in(d, ["layers", 1, "weight_type"], "binary")
            or set_in(d, ["layers", 1, "weights"], ["+-", "0+"])
        ),
        "layers[1] (dense).weights[1]",
        "'0' at position 0 in a binary layer (weight_type 'binary' allows only '+' and '-')",
    ),
    (
        "weight type",
        MLP,
        lambda d: set_in(d, ["layers", 1, "weight_type"], "quaternary"),
        "layers[1] (dense).weight_type",
        "must be 'ternary', 'binary' or 'int2' to 'int8', not 'quaternary'",
    ),
    (
        "thresholds order",
        MLP,
        lambda d: set_in(d, ["layers", 0, "activation", "thresholds", 0], [2, 1]),
        "layers[0] (dense).activation.thresholds[0]",
        "thresholds must be ascending, but 1 follows 2",
    ),
    (
        "thresholds count",
        MLP,
        lambda d: set_in(d, ["layers", 0, "activation", "thresholds", 1], [0]),
        "layers[0] (dense).activation.thresholds[1]",
        "must be a list of 2 integers (one fewer than the levels), not [0]",
    ),
    (
        "thresholds rows",
        MLP,
        lambda d: set_in(d, ["layers", 0, "activation", "thresholds"], [[0, 1]]),
        "layers[0] (dense).activation.thresholds",
        "has 1 rows, expected 2 (out)",
    ),
    (
        "threshold type",
        MLP,
        lambda d: set_in(d, ["layers", 0, "activation", "thresholds", 0], [0, 1.5]),
        "layers[0] (dense).activation.thresholds[0][1]",
        "must be an integer, not 1.5",
    ),
    (
        "levels order",
        MLP,
        lambda d: set_in(d, ["layers", 0, "activation", "levels"], [-1, 1, 0]),
        "layers[0] (dense).activation.levels",
        "levels must be strictly ascending, but 0 follows 1",
    ),
    (
        "levels equal",
        MLP,
        lambda d: set_in(d, ["layers", 0, "activation", "levels"], [0, 0, 1]),
        "layers[0] (dense).activation.levels",
        "levels must be strictly ascending, but 0 follows 0",
    ),
    (
        "levels short",
        MLP,
        lambda d: set_in(d, ["layers", 0, "activation", "levels"], [1]),
        "layers[0] (dense).activation.levels",
        "must be a list of at least two integers, not [1]",
    ),
    (
        "shapes chain",
        MLP,
        lambda d: set_in(d, ["layers", 1, "weights"], ["+-+", "-+-"]),
        "layers[1] (dense).weights[0]",
        "has length 3, expected 2 (the layer's fan-in)",
    ),
    (
        "conv needs hwc",
        MLP,
        lambda d: d["layers"].insert(0, {"type": "maxpool", "kernel": 2}),
        "layers[0] (maxpool)",
        "needs an [h, w, c] input, but its input has shape [4]",
    ),
    (
        "conv window",
        CNN,
        lambda d: set_in(d, ["layers", 0, "kernel"], [8, 3]),
        "layers[0] (conv2d).kernel",
        "kernel height 8 is larger than the padded input's 7",
    ),
    (
        "pool window",
        CNN,
        lambda d: set_in(d, ["layers", 1, "kernel"], [2, 7]),
        "layers[1] (maxpool).kernel",
        "window width 7 is larger than the input's 5",
    ),
    (
        "binary pad",
        CNN,
        lambda d: drop(d, ["layers", 0, "pad"]),
        "layers[0] (conv2d).pad",
        "a layer with binary input and padding must give 'pad' as -1 or +1",
    ),
    (
        "pad value",
        CNN,
        lambda d: set_in(d, ["layers", 0, "pad"], 0),
        "layers[0] (conv2d).pad",
        "pad value 0 is not a value of the layer's input type (binary)",
    ),
    (
        "unknown field",
        MLP,
        lambda d: set_in(d, ["layers", 0, "bias"], [0, 0]),
        "layers[0] (dense)",
        "unknown field 'bias'; expected one of ['activation', 'out', 'type', 'weight_type', "
        "'weights']",
    ),
    (
        "missing field",
        MLP,
        lambda d: drop(d, ["layers", 0, "activation"]),
        "layers[0] (dense)",
        "missing field 'activation'",
    ),
    (
        "input type",
        MLP,
        lambda d: set_in(d, ["input", "type"], "uint17"),
        "input.type",
        "'uint17': the width of uintN must be 1 to 16, not 17",
    ),
    (
        "input type name",
        MLP,
        lambda d: set_in(d, ["input", "type"], "float"),
        "input.type",
        "unknown type 'float'; expected ternary, binary, uintN or intN (N = 1..16)",
    ),
    (
        "input shape",
        MLP,
        lambda d: set_in(d, ["input", "shape"], [2, 2]),
        "input.shape",
        "must be [n] or [h, w, c], not [2, 2]",
    ),
    (
        "input extent",
        MLP,
        lambda d: set_in(d, ["input", "shape"], [0]),
        "input.shape[0]",
        "must be at least 1, not 0",
    ),
    (
        "size limit",
        MLP,
        lambda d: set_in(d, ["input", "shape"], [100000]),
        "input.shape[0]",
        "must be at most 65536, not 100000",
    ),
    (
        "tensor limit",
        CNN,
        lambda d: set_in(d, ["input", "shape"], [65536, 65536, 1]),
        "input.shape",
        "a tensor of shape [65536, 65536, 1] has 4294967296 values, beyond the limit of 4194304",
    ),
    (
        "out limit",
        MLP,
        lambda d: set_in(d, ["layers", 0, "out"], 70000),
        "layers[0] (dense).out",
        "must be at most 65536, not 70000",
    ),
    (
        "output",
        MLP,
        lambda d: set_in(d, ["output"], "softmax"),
        "output",
        "must be 'argmax', 'values' or 'class_map', not 'softmax'",
    ),
    (
        "name",
        MLP,
        lambda d: set_in(d, ["name"], "../x"),
        "name",
        "'../x' may hold only letters, digits, '-', '_' and '.', and must not start with '-' or "
        "'.' (it names files and the Verilog top module)",
    ),
    (
        "stride",
        CNN,
        lambda d: set_in(d, ["layers", 0, "stride"], 0),
        "layers[0] (conv2d).stride",
        "must be at least 1, not 0",
    ),
    (
        "no layers",
        MLP,
        lambda d: set_in(d, ["layers"], []),
        "layers",
        "must be a non-empty list of layers",
    ),
    (
        "tnn/1 with int weights",
        FCN,
        lambda d: set_in(d, ["format"], "tnn/1"),
        "format",
        "layers[0] (conv2d) has weight_type 'int2', which needs format 'tnn/2'",
    ),
    (
        "class_map of a vector",
        MLP,
        lambda d: set_in(d, ["output"], "class_map"),
        "output",
        "'class_map' needs a final [h, w, c] tensor (a fully convolutional network), but the "
        "last layer's output has shape [2]",
    ),
    (
        "tnn/1 class_map",
        FCN,
        lambda d: (
            set_in(d, ["format"], "tnn/1"),
            [set_in(d, ["layers", k, "weight_type"], "ternary") for k in (0, 1)],
            set_in(d, ["layers", 0, "weights"], ["+-0+", "----"]),
            set_in(d, ["layers", 1, "weights"], ["+-", "00", "-+"]),
        ),
        "format",
        "output 'class_map' needs format 'tnn/2'",
    ),
    (
        "int weight out of range",
        FCN,
        lambda d: set_in(d, ["layers", 1, "weights", 2, 1], 8),
        "layers[1] (conv2d).weights[2]",
        "8 at position 1 is not an int4 weight (an integer from -8 to 7)",
    ),
    (
        "int weight below range",
        FCN,
        lambda d: set_in(d, ["layers", 0, "weights", 0, 3], -3),
        "layers[0] (conv2d).weights[0]",
        "-3 at position 3 is not an int2 weight (an integer from -2 to 1)",
    ),
    (
        "bool int weight",
        FCN,
        lambda d: set_in(d, ["layers", 0, "weights", 1, 0], True),
        "layers[0] (conv2d).weights[1]",
        "True at position 0 is not an int2 weight (an integer from -2 to 1)",
    ),
    (
        "float int weight",
        FCN,
        lambda d: set_in(d, ["layers", 0, "weights", 1, 0], 1.0),
        "layers[0] (conv2d).weights[1]",
        "1.0 at position 0 is not an int2 weight (an integer from -2 to 1)",
    ),
    (
        "string rows for int weights",
        FCN,
        lambda d: set_in(d, ["layers", 1, "weights", 0], "+-"),
        "layers[1] (conv2d).weights[0]",
        "must be a list of integers (int4 weights), not '+-'",
    ),
    (
        "int row length",
        FCN,
        lambda d: set_in(d, ["layers", 1, "weights", 0], [1, 2, 3]),
        "layers[1] (conv2d).weights[0]",
        "has length 3, expected 2 (the layer's fan-in)",
    ),
    (
        "int rows count",
        FCN,
        lambda d: set_in(d, ["layers", 1, "weights"], [[1, 2]]),
        "layers[1] (conv2d).weights",
        "has 1 rows, expected 3 (out)",
    ),
    (
        "int9",
        FCN,
        lambda d: set_in(d, ["layers", 1, "weight_type"], "int9"),
        "layers[1] (conv2d).weight_type",
        "must be 'ternary', 'binary' or 'int2' to 'int8', not 'int9'",
    ),
    (
        "int1",
        FCN,
        lambda d: set_in(d, ["layers", 1, "weight_type"], "int1"),
        "layers[1] (conv2d).weight_type",
        "must be 'ternary', 'binary' or 'int2' to 'int8', not 'int1'",
    ),
    (
        "list weight type",
        FCN,
        lambda d: set_in(d, ["layers", 1, "weight_type"], ["int4"]),
        "layers[1] (conv2d).weight_type",
        "must be 'ternary', 'binary' or 'int2' to 'int8', not ['int4']",
    ),
    (
        "bool out",
        MLP,
        lambda d: set_in(d, ["layers", 0, "out"], True),
        "layers[0] (dense).out",
        "must be a positive integer, not True",
    ),
]


@pytest.mark.parametrize(
    ("base", "change", "where", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_description_is_named(base, change, where, problem, tmp_path):
    expect(broken(base, change), where, problem, tmp_path)


def test_weight_budget_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(validate, "MAX_WEIGHTS", 10)
    expect(
        copy.deepcopy(MLP),
        "layers[1] (dense).weights",
        "2 x 2 weights exceed the limit of 10 weights in a description",
        tmp_path,
    )


def test_accumulator_limit(tmp_path):
    def dense(out, row):
        return {"type": "dense", "out": out, "weights": [row] * out, "activation": None}

    doc = copy.deepcopy(MLP)
    doc["layers"] = [
        {
            "type": "dense",
            "out": 2,
            "weights": ["++++", "++++"],
            "activation": {"levels": [-(1 << 40), 1 << 40], "thresholds": [[0], [0]]},
        },
        dense(2048, "++"),  # |acc| <= 2**41
        dense(2, "+" * 2048),  # 2**52
        dense(1024, "++"),  # 2**53
        dense(2, "+" * 1024),  # 2**63
    ]
    expect(
        doc,
        "layers[4] (dense)",
        "accumulators could reach 9223372036854775808, beyond the limit of "
        "4611686018427387904 (2**62)",
        tmp_path,
    )


def test_invalid_json(tmp_path):
    path = tmp_path / "bad.tnn.json"
    path.write_text('{"format": "tnn/1",\n "name": }')
    with pytest.raises(DescriptionError) as info:
        network.load(path)
    assert str(info.value) == f"{path}: invalid JSON: Expecting value at line 2, column 10"


def test_not_an_object(tmp_path):
    path = tmp_path / "bad.tnn.json"
    path.write_text("[1, 2]")
    with pytest.raises(DescriptionError, match=r"the document must be a JSON object, not list"):
        network.load(path)


def test_file_size_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(validate, "MAX_FILE_BYTES", 10)
    path = tmp_path / "big.tnn.json"
    path.write_text(json.dumps(MLP))
    with pytest.raises(DescriptionError, match=r"beyond the limit of 10$"):
        network.load(path)
    with pytest.raises(DescriptionError, match=r"^t.json: the text has \d+ characters, beyond "):
        network.loads(json.dumps(MLP), source="t.json")
    text = json.dumps({"format": "tnn/1"})[:10]
    with pytest.raises(DescriptionError, match="invalid JSON"):  # within the limit: parsed
        network.loads(text)


def test_missing_file(tmp_path):
    with pytest.raises(DescriptionError, match=r"cannot read the file: No such file"):
        network.load(tmp_path / "none.tnn.json")


def test_examples_load_and_roundtrip(tmp_path):
    for name in ("tiny_mlp", "tiny_cnn"):
        net = network.load(os.path.join(os.path.dirname(__file__), "examples", f"{name}.tnn.json"))
        network.save(net, tmp_path / "x.tnn.json")
        assert network.load(tmp_path / "x.tnn.json") == net


def test_shapes_and_types():
    net = network.from_dict(CNN)
    assert net.shapes == ((5, 5, 1), (5, 5, 2), (2, 2, 2), (3,))
    assert [t.name for t in net.types] == ["binary", "binary", "binary", "integer"]
    assert net.layers[1].stride == (2, 2)


def test_save_is_canonical_and_diffable(tmp_path):
    net = network.from_dict(MLP)
    text = network.dumps(net)
    assert '   "+0-+",\n' in text  # one weight row per line
    assert '"thresholds": [\n     [-1, 1],\n' in text
    assert network.dumps(network.loads(text)) == text


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    net = network.from_dict(MLP)
    target = tmp_path / "m.tnn.json"
    target.write_text("old")
    network.save(net, target)
    assert network.load(target) == net
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tnn.json"]


@settings(max_examples=60, deadline=None)
@given(networks())
def test_save_then_load_is_identity(doc):
    net = network.from_dict(doc)
    again = network.loads(network.dumps(net))
    assert again == net
    assert again.shapes == net.shapes and again.types == net.types
    for a, b in zip(net.layers, again.layers, strict=True):
        if hasattr(a, "weights"):
            assert np.array_equal(a.weights, b.weights)


@settings(max_examples=60, deadline=None)
@given(networks(wide=True))
def test_tnn2_save_then_load_is_identity(doc):
    net = network.from_dict(doc)
    text = network.dumps(net)
    again = network.loads(text)
    assert again == net
    assert again.shapes == net.shapes and again.types == net.types
    # saved as tnn/2 exactly when it uses intN weights or class_map
    assert json.loads(text)["format"] == doc["format"]
    for a, b in zip(net.layers, again.layers, strict=True):
        if hasattr(a, "weights"):
            assert a.weight_type == b.weight_type
            assert np.array_equal(a.weights, b.weights)


def test_tnn2_document_layout(tmp_path):
    net = network.from_dict(copy.deepcopy(FCN))
    assert net.format == "tnn/2" and net.output == "class_map"
    assert net.layers[1].weight_type == "int4"
    assert net.layers[1].weights.tolist() == [[7, -8], [0, 0], [-3, 5]]
    assert net.layers[1].max_row_weight == 15
    path = tmp_path / "f.tnn.json"
    network.save(net, path)
    text = path.read_text()
    assert '"format": "tnn/2"' in text
    assert "[7, -8],\n" in text  # one integer row per line
    assert network.load(path) == net
    # a tnn/1 network keeps saving as tnn/1
    assert json.loads(network.dumps(network.from_dict(copy.deepcopy(MLP))))["format"] == "tnn/1"


def test_int_weight_work_counts_digit_planes(monkeypatch, tmp_path):
    """An intN weight's work is its ceil(N / 2) digit planes: with int8 instead of int4 weights
    the second layer takes twice the work, and the limit counts it."""
    net = network.from_dict(copy.deepcopy(FCN))
    first = validate.layer_work(net.layers[0], (3, 3, 1), (2, 2, 2))[0]
    second = validate.layer_work(net.layers[1], (2, 2, 2), (2, 2, 3))[0]
    assert (first, second) == (4 * 4 * 2 * 1, 4 * 2 * 3 * 2)  # positions x fan-in x out x planes
    doc = copy.deepcopy(FCN)
    doc["layers"][1]["weight_type"] = "int8"
    monkeypatch.setattr(validate, "MAX_WORK", first + 2 * second - 1)
    expect(
        doc,
        "layers[1] (conv2d)",
        f"the layers up to this one take {first + 2 * second} operations per inference, beyond "
        f"the limit of {first + 2 * second - 1} (2**27)",
        tmp_path,
    )


def test_check_summary_names_int_weight_types():
    from gen.network.summary import summarize

    text = summarize(network.from_dict(copy.deepcopy(FCN)))
    assert "conv2d 2x2/1 (int2)" in text and "conv2d 1x1/1 (int4)" in text
    assert "output  class_map of" in text
