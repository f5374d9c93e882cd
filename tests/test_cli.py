"""The ``tnngen`` command line, end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from reference import evaluate

from gen import cli, compiler, folder, network

EXAMPLES = os.path.join(os.path.dirname(__file__), "examples")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = f"{EXAMPLES}/tiny_mlp.tnn.json"


def tnngen(*args):
    """Run the installed console script; returns (exit status, stdout, stderr)."""
    exe = os.path.join(os.path.dirname(sys.executable), "tnngen")
    proc = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_check_prints_summary(capsys):
    assert cli.main(["check", f"{EXAMPLES}/tiny_cnn.tnn.json"]) == 0
    out = capsys.readouterr().out
    assert "model   tiny_cnn" in out
    assert "conv2d 3x3/1" in out and "maxpool 2x2/2" in out
    assert "[-9, 12] s5" in out  # accumulator range and width of the conv layer
    assert "weights 34 (23 nonzero, 32.4% zero)" in out
    assert "synaptic operations per inference: 304 (188 with a nonzero weight)" in out


@pytest.mark.parametrize("name", ["tiny_mlp", "tiny_cnn"])
def test_predict_agrees_with_the_independent_evaluator(name, tmp_path):
    model = f"{EXAMPLES}/{name}.tnn.json"
    with open(model) as f:
        doc = json.load(f)
    rng = np.random.default_rng(7)
    shape = doc["input"]["shape"]
    lo, hi = (0, 3) if doc["input"]["type"] == "uint2" else (-1, 1)
    x = rng.integers(lo, hi + 1, size=[300] + shape)
    np.save(tmp_path / "x.npy", x)
    status, out, err = tnngen(
        "predict", model, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy"
    )
    assert status == 0, err
    y = np.load(tmp_path / "y.npy")
    assert np.array_equal(y, evaluate(doc, x))
    with open(f"{EXAMPLES}/{name}.vectors.json") as f:
        vectors = json.load(f)
    np.save(tmp_path / "v.npy", np.array(vectors["inputs"]))
    assert (
        cli.main(
            [
                "predict",
                model,
                "--inputs",
                str(tmp_path / "v.npy"),
                "--output",
                str(tmp_path / "w.npy"),
            ]
        )
        == 0
    )
    assert np.array_equal(np.load(tmp_path / "w.npy"), np.array(vectors["outputs"]))


def test_predict_refuses_inputs_outside_the_type(tmp_path):
    np.save(tmp_path / "x.npy", np.array([[0, 0, 0, 0, 0, 2]]))
    status, out, err = tnngen(
        "predict", MODEL, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy"
    )
    assert status == 2
    assert "input 0 holds 2 at index [5], which is not a ternary value" in err
    assert "Traceback" not in err
    assert not (tmp_path / "y.npy").exists()


def test_predict_keeps_the_old_output_on_failure(tmp_path):
    (tmp_path / "y.npy").write_bytes(b"precious")
    np.save(tmp_path / "x.npy", np.zeros((1, 5), dtype=np.int64))
    status, _, err = tnngen(
        "predict", MODEL, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy"
    )
    assert status == 2 and "inputs must have shape (N, 6)" in err
    assert (tmp_path / "y.npy").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npy"]


def test_bad_description_exit_status_and_message(tmp_path):
    with open(MODEL) as f:
        doc = json.load(f)
    doc["layers"][0]["weights"][2] = "-0+0+"
    (tmp_path / "m.tnn.json").write_text(json.dumps(doc))
    status, _, err = tnngen("check", tmp_path / "m.tnn.json")
    assert status == 2
    assert err.strip() == (
        f"tnngen check: error: {tmp_path / 'm.tnn.json'}: layers[0] (dense)"
        ".weights[2]: has length 5, expected 6 (the layer's fan-in)"
    )


def test_missing_inputs_file(tmp_path):
    status, _, err = tnngen(
        "predict", MODEL, "--inputs", tmp_path / "none.npy", "--output", tmp_path / "y.npy"
    )
    assert status == 2 and "none.npy: no such file (--inputs)" in err


def test_eval_with_arrays(tmp_path, capsys):
    with open(f"{EXAMPLES}/tiny_mlp.vectors.json") as f:
        vectors = json.load(f)
    x = np.array(vectors["inputs"])
    labels = np.array(vectors["outputs"])
    labels[:4] = (labels[:4] + 1) % 3  # four wrong on purpose
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "l.npy", labels)
    assert (
        cli.main(
            [
                "eval",
                MODEL,
                "--inputs",
                str(tmp_path / "x.npy"),
                "--labels",
                str(tmp_path / "l.npy"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "accuracy 75.00% (12/16)" in out
    assert "true\\pred" in out


def test_eval_with_a_named_data_set_that_does_not_fit(capsys):
    assert cli.main(["eval", MODEL, "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "the data set 'digits' has images of 64 pixels (8x8)" in err
    assert "input.shape [6] holds 6 values" in err


def test_eval_unknown_data_set(capsys):
    assert cli.main(["eval", MODEL, "--data", "cifar"]) == 2
    assert "unknown data set 'cifar'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "predict", "eval", "flow"])
def test_help_for_every_command(command):
    status, out, _ = tnngen(command, "--help")
    assert status == 0 and f"usage: tnngen {command}" in out


def test_bad_arguments_exit_2():
    status, _, err = tnngen("predict", MODEL)
    assert status == 2 and "required" in err
    status, _, err = tnngen("frobnicate")
    assert status == 2


def test_flow_runs_each_step(capsys):
    assert cli.main(["flow", MODEL, "--vectors", "20"]) == 0
    out = capsys.readouterr().out
    assert "== check" in out and "model   tiny_mlp" in out
    assert "== golden model" in out and "20 random inputs (seed 0)" in out


def test_target_ii_alone_implies_auto(tmp_path, capsys):
    out, model = tmp_path / "acc", os.path.join(ROOT, "models", "digits-mlp.tnn.json")
    assert cli.main(["verilog", model, "-o", str(out), "--target-ii", "8", "--vectors", "4"]) == 0
    net = network.load(model)
    wanted = compiler.plan(net, "auto", target_ii=8).initiation_interval
    assert 1 < wanted <= 8  # the auto plan folds; unrolled would have II 1
    assert folder.load(str(out)).initiation_interval == wanted
    capsys.readouterr()
    # with a folding that fixes every layer, the target is refused, naming the cause
    assert cli.main(["verilog", MODEL, "-o", str(tmp_path / "b"), "--fold", "unrolled",
                     "--target-ii", "8"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "applies to 'auto' layers" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def digits_fcn():
    """A class_map network on digits-shaped input (8x8x1 uint4), 3 classes per pixel."""
    return {
            "format": "tnn/2",
            "name": "digits-fcn",
            "input": {"shape": [8, 8, 1], "type": "uint4"},
            "layers": [
                {"type": "conv2d", "out": 3, "kernel": 3, "padding": 1,
                 "weights": ["+0-+0-+0-", "0+0+-+0+0", "---------"], "activation": None},
            ],
            "output": "class_map",
    }  # fmt: skip


def test_class_map_on_a_data_set_reports_shapes_not_accuracy(capsys):
    cli.golden_step(network.from_dict(digits_fcn()), data="digits", vectors=0, seed=0)
    out = capsys.readouterr().out
    assert "digits test split: 360 inputs; class_map results of shape (8, 8)" in out
    assert "accuracy " not in out.replace("no accuracy:", "")


def test_predict_writes_class_maps(tmp_path, capsys):
    doc = digits_fcn()
    with open(tmp_path / "fcn.tnn.json", "w") as f:
        json.dump(doc, f)
    x = np.random.default_rng(1).integers(0, 16, size=(5, 8, 8, 1))
    np.save(tmp_path / "x.npy", x)
    args = ["predict", tmp_path / "fcn.tnn.json", "--inputs", tmp_path / "x.npy"]
    assert cli.main([*map(str, args), "--output", str(tmp_path / "y.npy")]) == 0
    got = np.load(tmp_path / "y.npy")
    assert got.shape == (5, 8, 8)
    assert np.array_equal(got, evaluate(doc, x))
    assert "(shape (5, 8, 8), class_map)" in capsys.readouterr().out
