"""`tnngen import` and the tool's float-input paths (predict, eval, flow on an .onnx file), and an
imported description through the compiler and simulators, bit-exact against the golden model."""

import json
import shutil
import sys

import numpy as np
import pytest

from gen import cli, compiler, network
from gen.learn.qonnx import import_model, inputspec
from gen.network import golden

graphs = pytest.importorskip("qonnx_graphs")  # needs the optional extra "import"
onnx = pytest.importorskip("onnx")

BATCH = 32
SIZES = [48, 24, 10]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    rng = np.random.default_rng(21)
    model, _ = graphs.mlp(rng, SIZES, batch=BATCH, act="ternary", tail="topk")
    path = tmp_path_factory.mktemp("onnx") / "mlp.onnx"
    onnx.save(model, str(path))
    return str(path), model


def floats(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, SIZES[0])).astype(np.float32)


def test_import_writes_the_description_and_input_spec(model_file, tmp_path, capsys):
    path, model = model_file
    out = tmp_path / "mlp.tnn.json"
    assert cli.main(["import", path, "-o", str(out), "--name", "mlp"]) == 0
    printed = capsys.readouterr().out
    assert "layer 0: dense 48->24 ternary" in printed and "thresholds" in printed
    assert "output  argmax (TopK)" in printed
    net = network.load(out)
    assert net.name == "mlp" and net.output == "argmax"
    spec = json.loads((tmp_path / "mlp.input.json").read_text())
    assert spec["format"] == "tnn-input/1" and spec["quantizer"]["op"] == "BipolarQuant"
    assert [op["op"] for op in spec["preamble"]] == ["Mul", "Sub"]
    # The same as the API gives.
    assert network.dumps(import_model(model, name="mlp").network) == out.read_text()


def test_predict_and_eval_on_float_inputs(model_file, tmp_path, capsys):
    path, model = model_file
    out = tmp_path / "mlp.tnn.json"
    assert cli.main(["import", path, "-o", str(out)]) == 0
    x = floats(BATCH, seed=4)
    np.save(tmp_path / "x.npy", x)
    assert (
        cli.main(
            [
                "predict",
                str(out),
                "--inputs",
                str(tmp_path / "x.npy"),
                "--output",
                str(tmp_path / "y.npy"),
                "--float-inputs",
            ]
        )
        == 0
    )
    predicted = np.load(tmp_path / "y.npy")
    graph_out, _, _ = graphs.reference(model, x)
    assert np.array_equal(predicted, graph_out.reshape(-1))
    np.save(tmp_path / "labels.npy", graph_out.reshape(-1).astype(np.int64))
    capsys.readouterr()
    assert (
        cli.main(
            [
                "eval",
                str(out),
                "--inputs",
                str(tmp_path / "x.npy"),
                "--labels",
                str(tmp_path / "labels.npy"),
                "--float-inputs",
            ]
        )
        == 0
    )
    assert f"accuracy 100.00% ({BATCH}/{BATCH})" in capsys.readouterr().out


def test_float_inputs_of_the_wrong_shape(model_file, tmp_path, capsys):
    path, _ = model_file
    out = tmp_path / "mlp.tnn.json"
    cli.main(["import", path, "-o", str(out)])
    np.save(tmp_path / "x.npy", np.zeros((3, 5), dtype=np.float32))
    status = cli.main(
        [
            "predict",
            str(out),
            "--inputs",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "y.npy"),
            "--float-inputs",
        ]
    )
    assert status == 2
    assert "float inputs must have shape (N, 48)" in capsys.readouterr().err


def test_refusal_is_one_line_with_exit_status_2(tmp_path, capsys):
    b = graphs.Builder((16,), batch=2)
    y = b.op("Gemm", [b.bipolar(b.input), b.const(np.ones((4, 16)) * 0.3)], transB=1)
    y = b.op("Gemm", [b.op("Relu", [y]), b.const(np.ones((2, 4)))], transB=1, name="/fc2/Gemm")
    path = tmp_path / "bad.onnx"
    onnx.save(b.model(y), str(path))
    assert cli.main(["import", str(path), "-o", str(tmp_path / "bad.tnn.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tnngen import: error: {path}: node '/fc2/Gemm'")


def test_missing_extra_names_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "qonnx", None)
    assert cli.main(["import", "model.onnx", "-o", str(tmp_path / "x.tnn.json")]) == 2
    err = capsys.readouterr().err
    assert (
        "needs the optional extra 'import' (qonnx is missing): pip install 'tnngen[import]'" in err
    )


def test_flow_accepts_an_onnx_file(model_file, tmp_path, capsys):
    path, _ = model_file
    out = tmp_path / "flow"
    status = cli.main(["flow", path, "-o", str(out), "--vectors", "16", "--no-sim", "--no-synth"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "== import" in printed and "== check" in printed and "== verilog" in printed
    # the description beside the accelerator folder, which holds the accelerator alone
    assert (tmp_path / "mlp.tnn.json").exists() and (tmp_path / "mlp.input.json").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        "test-graph.json",
        "test-graph.v",
        "vectors.npz",
    ]


def test_imported_description_in_the_amaranth_simulator(model_file):
    """Compiled into an accelerator, the imported description gives the golden model's bits."""
    from accel_sim import simulate

    _, model = model_file
    net = import_model(model).network
    inputs = inputspec.to_integers(import_model(model).input_spec, floats(24, seed=9))
    compiled = compiler.compile_network(net, "unrolled")
    assert np.array_equal(simulate(compiled, inputs, seed=2), golden.run(net, inputs))


@pytest.mark.tools
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog missing")
def test_tnngen_verilog_and_sim(model_file, tmp_path, capsys):
    path, _ = model_file
    description = tmp_path / "mlp.tnn.json"
    assert cli.main(["import", path, "-o", str(description)]) == 0
    out = tmp_path / "accel"
    assert cli.main(["verilog", str(description), "-o", str(out), "--vectors", "32"]) == 0
    assert cli.main(["sim", str(out), "--sim", "icarus"]) == 0
