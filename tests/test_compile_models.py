"""Every shipped model compiles, unrolled and folded, into Verilog that lints cleanly."""

import os
import shutil

import numpy as np
import pytest
from accel_sim import simulate
from lint import lint

from gen import compiler, network
from gen.learn import datasets
from gen.network import golden

MODELS = os.path.join(os.path.dirname(__file__), os.pardir, "models")

CASES = [
    ("digits-mlp", "unrolled"),
    ("digits-mlp", "0:4,16;1:2,4"),
    ("digits-mlp-ttq", "unrolled"),
    ("digits-mlp-ttq", "0:4,16;1:2,4"),
    ("digits-mlp-w4", "unrolled"),
    ("digits-mlp-w4", "0:4,16;1:2,4"),
    ("digits-cnn", "unrolled"),
    ("digits-cnn", "0:2,3;2:4,8;3:2,8"),
    ("mnist-mlp", "0:8,49;1:4,32;2:1,8"),
    ("digits-bfcn", "unrolled"),
    ("digits-bfcn", "0:8,9;2:1,72"),
]


@pytest.mark.tools
@pytest.mark.parametrize(("model", "fold"), CASES)
def test_shipped_model_compiles_and_lints(model, fold, tmp_path):
    net = network.load(os.path.join(MODELS, f"{model}.tnn.json"))
    compiled = compiler.compile_network(net, fold)
    meta = compiled.metadata
    assert meta["name"] == model
    assert meta["initiation_interval"] >= 1 and meta["latency"] >= 1
    if fold != "unrolled":
        assert "folded" in {layer["engine"] for layer in meta["layers"]}
    path = tmp_path / f"{model}.v"
    path.write_text(compiled.verilog)
    if not (shutil.which("verilator") or shutil.which("yosys")):
        pytest.skip("neither verilator nor yosys is installed")
    lint(path, meta["top"])


def test_digits_mlp_folded_matches_golden_on_test_images():
    net = network.load(os.path.join(MODELS, "digits-mlp.tnn.json"))
    data = datasets.load("digits", "test")
    inputs = datasets.to_inputs(data, net.input)[:24]
    compiled = compiler.compile_network(net, "0:5,16;1:5,5")
    got = simulate(compiled, inputs, seed=3)
    assert np.array_equal(got, golden.run(net, inputs))
