"""The shipped post-training model: the float ONNX file its script writes, its TWN import, and
the figures of models/README.md's table of imported models."""

import os
import subprocess
import sys

import numpy as np
import pytest

from gen import cli, network
from gen.learn import datasets
from gen.learn.qonnx import inputspec
from gen.network import golden

pytest.importorskip("qonnx_graphs")  # needs the optional extra "import"
pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
FLOAT = os.path.join(MODELS, "digits-float-mlp.onnx")
TERNARY = os.path.join(MODELS, "digits-twn-mlp.tnn.json")


def readme_row(name):
    with open(os.path.join(MODELS, "README.md"), encoding="utf-8") as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells and cells[0] == f"`{name}`":
                return cells
    raise AssertionError(f"no row for {name} in models/README.md")


def test_readme_figures(capsys):
    import onnx

    from gen.learn.qonnx.ptq import float_inputs_of, run_float

    row = readme_row("digits-twn-mlp")
    net = network.load(TERNARY)
    spec = inputspec.load(inputspec.spec_path(TERNARY))
    test = datasets.load("digits", "test")
    predicted = golden.run(net, inputspec.to_integers(spec, inputspec.from_pixels(spec, test)))
    correct = int(np.sum(predicted == test.labels))
    assert row[4] == f"{100 * correct / 360:.2f}% ({correct}/360)"
    nonzero = sum(int(np.count_nonzero(layer.weights)) for layer in net.layers)
    assert row[3].startswith(f"{nonzero} of ")
    logits = run_float(onnx.load(FLOAT), float_inputs_of(test, (64,)))
    float_correct = int(np.sum(np.argmax(logits, axis=1) == test.labels))
    assert row[5] == f"{100 * float_correct / 360:.2f}% ({float_correct}/360)"
    assert correct >= float_correct - 0.02 * 360  # within 2 points
    assert cli.main(["eval", TERNARY, "--data", "digits"]) == 0
    assert f"accuracy {100 * correct / 360:.2f}% ({correct}/360)" in capsys.readouterr().out


def test_the_recipe_rebuilds_both_files(tmp_path):
    onnx_path = tmp_path / "digits-float-mlp.onnx"
    subprocess.run(
        [sys.executable, os.path.join(MODELS, "digits_float_mlp.py"), "--output", str(onnx_path)],
        check=True,
        capture_output=True,
    )
    with open(FLOAT, "rb") as f:
        assert onnx_path.read_bytes() == f.read()
    out = tmp_path / "digits-twn-mlp.tnn.json"
    argv = [
        "import",
        str(onnx_path),
        "--quantize",
        "twn",
        "--calibrate",
        "digits",
        "--input-type",
        "uint4",
        "--name",
        "digits-twn-mlp",
        "-o",
        str(out),
    ]
    assert cli.main(argv) == 0
    with open(TERNARY, encoding="utf-8") as f:
        assert out.read_text() == f.read()
    spec = inputspec.spec_path(TERNARY)
    with open(spec, encoding="utf-8") as f:
        assert (tmp_path / "digits-twn-mlp.input.json").read_text() == f.read()
