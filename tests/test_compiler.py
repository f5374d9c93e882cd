"""The compiler: folding specs, planning, generated accelerators against the golden model."""

import json
import os
import re
import shutil

import numpy as np
import pytest
from accel_sim import simulate
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lint import lint
from netgen import inputs_for, int_mlp, mlp, networks
from timing_oracle import measure_timing

from gen import compiler, folder, network
from gen.compiler import CompileError
from gen.network import golden

EXAMPLES = os.path.join(os.path.dirname(__file__), "examples")
MODELS = os.path.join(os.path.dirname(__file__), os.pardir, "models")


def load_example(name, **changes):
    with open(os.path.join(EXAMPLES, f"{name}.tnn.json")) as f:
        doc = json.load(f)
    doc.update(changes)
    return network.from_dict(doc)


# --- folding specs --------------------------------------------------------------------------------


def test_fold_spec_forms():
    net = mlp([12, 6, 4])
    assert compiler.parse_fold("unrolled", net) == {0: "unrolled", 1: "unrolled"}
    assert compiler.parse_fold("2,3", net) == {0: (2, 3), 1: (2, 3)}
    assert compiler.parse_fold("1:2,3", net) == {0: "auto", 1: (2, 3)}
    assert compiler.parse_fold("0:3,4;1:unrolled", net) == {0: (3, 4), 1: "unrolled"}
    assert compiler.parse_fold({"1": [4, 6]}, net) == {0: "auto", 1: (4, 6)}
    assert compiler.parse_fold(["unrolled", [1, 1]], net) == {0: "unrolled", 1: (1, 1)}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("5,3", "fold: layer 0 (dense): PE 5 must divide its 6 output rows (divisors: 1, 2, 3, 6)"),
        (
            "0:2,5",
            "fold: layer 0 (dense): SIMD 5 must divide its fan-in of 12 (divisors: 1, 2, 3, "
            "4, 6, 12)",
        ),
        ("3:1,1", "fold: layer 3 is not a dense or conv2d layer of this network (those are 0, 1)"),
        ("x:1,1", "fold: 'x' is not a layer index"),
        ("0:fast", "fold: layer 0: expected 'unrolled', 'auto' or 'PE,SIMD', not 'fast'"),
        (
            {"0": [1, 2, 3]},
            "fold: layer 0: expected 'unrolled', 'auto' or [PE, SIMD], not [1, 2, 3]",
        ),
    ],
)
def test_fold_spec_errors(spec, message):
    with pytest.raises(CompileError) as info:
        compiler.parse_fold(spec, mlp([12, 6, 4]))
    assert str(info.value) == message


def test_auto_folding_meets_the_target_and_balances():
    net = mlp([64, 32, 10])
    the_plan = compiler.plan(net, "auto", target_ii=8)
    assert the_plan.initiation_interval <= 8
    for lp in the_plan.layers:
        assert lp.initiation_interval <= 8
    # a looser target never costs more
    looser = compiler.plan(net, "auto", target_ii=64)
    assert looser.predicted.luts <= the_plan.predicted.luts
    with pytest.raises(CompileError, match="out of reach"):
        compiler.plan(net, "0:1,1;1:auto", target_ii=8)


def test_a_target_with_nothing_to_choose_is_an_error():
    net = mlp([64, 32, 10])
    for spec in ("unrolled", "0:1,1;1:unrolled", "2,4"):
        with pytest.raises(CompileError, match="applies to 'auto' layers"):
            compiler.plan(net, spec, target_ii=8)
        with pytest.raises(CompileError, match="applies to 'auto' layers"):
            compiler.plan(net, spec, max_luts=1000)


def test_rom_option_sets_the_rom_style_of_every_folded_rom():
    net = mlp([16, 8, 4])
    fold = "0:2,4;1:2,4"  # two row folds: weight and threshold ROMs in layer 0
    plain = compiler.compile_network(net, fold).verilog
    assert "rom_style" not in plain
    for choice, style in (("block", "block"), ("lut", "distributed"), ("logic", "logic")):
        compiled = compiler.compile_network(net, fold, rom=choice)
        # layer 0: weights and thresholds; layer 1: weights (no activation)
        assert compiled.verilog.count(f'(* rom_style = "{style}" *)') == 3
        assert compiled.metadata["generator"]["options"]["rom"] == choice
        # the same circuit: only the attribute differs (block RAM's read data is registered
        # once more, hw.folded, so its latency is one cycle more per layer)
        stripped = re.sub(r'[ \t]*\(\* rom_style = "\w+" \*\)\n', "", compiled.verilog)
        if choice == "block":
            layers = compiled.metadata["layers"]
            plain_layers = compiler.compile_network(net, fold).metadata["layers"]
            assert [lp["latency"] for lp in layers] == [lp["latency"] + 1 for lp in plain_layers]
        else:
            assert stripped == plain
    with pytest.raises(CompileError, match="rom: expected one of auto, block, lut, logic"):
        compiler.compile_network(net, fold, rom="bram")


def test_max_luts_picks_the_fastest_that_fits():
    net = mlp([64, 32, 10])
    unrolled = compiler.plan(net, "unrolled")
    fits = compiler.plan(net, "auto", max_luts=unrolled.predicted.luts // 3)
    assert fits.predicted.luts <= unrolled.predicted.luts // 3
    assert fits.initiation_interval > 1
    with pytest.raises(CompileError, match="no folding fits in 10 predicted LUTs"):
        compiler.plan(net, "auto", max_luts=10)


# --- generated accelerators in Amaranth's simulator ----------------------------------------------


def check_against_golden(net, fold, inputs, **kwargs):
    compiled = compiler.compile_network(net, fold, **kwargs)
    expected = golden.run(net, inputs)
    got = simulate(compiled, inputs, seed=len(inputs))
    assert np.array_equal(got, expected)
    return compiled


@pytest.mark.parametrize("fold", ["unrolled", "1,1"])
def test_accumulator_of_range_minus_one_to_zero(fold):
    """A row whose accumulator is -1 or 0 (one binary '-' weight on {0, 1} inputs): its values
    leave the layer as 2-bit ints, the narrowest int a stream carries (hypothesis found it)."""
    net = network.from_dict(
        {
            "format": "tnn/1",
            "name": "minus-one",
            "input": {"shape": [1], "type": "ternary"},
            "layers": [
                {"type": "dense", "out": 1, "weight_type": "binary", "weights": ["+"],
                 "activation": {"levels": [0, 1], "thresholds": [[0]]}},
                {"type": "dense", "out": 1, "weight_type": "binary", "weights": ["-"],
                 "activation": None},
            ],
            "output": "values",
        }
    )  # fmt: skip
    compiled = check_against_golden(net, fold, np.array([[-1], [0], [1], [1], [-1]]))
    assert compiled.metadata["output"]["element_width"] == 2


@pytest.mark.parametrize("fold", ["unrolled", "0:2,3;1:1,2", "0:4,6;1:3,1"])
def test_example_mlp(fold):
    net = load_example("tiny_mlp")
    with open(os.path.join(EXAMPLES, "tiny_mlp.vectors.json")) as f:
        vectors = json.load(f)
    inputs = np.array(vectors["inputs"])
    compiled = check_against_golden(net, fold, inputs)
    assert np.array_equal(golden.run(net, inputs), vectors["outputs"])
    assert compiled.metadata["output"] == {
        "kind": "argmax",
        "shape": [],
        "count": 1,
        "encoding": "uint",
        "element_width": 2,
    }


@pytest.mark.parametrize("in_type", ["ternary", "binary", "uint3", "int4"])
def test_random_mlp_every_input_type(in_type):
    net = mlp([10, 7, 5], in_type=in_type, seed=3)
    inputs = np.concatenate([folder.corner_inputs(net), golden.random_inputs(net, 40, 5)])
    check_against_golden(net, "unrolled", inputs)
    check_against_golden(net, "0:7,5;1:1,7", inputs)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("in_type", ["ternary", "binary", "uint3", "int4"])
def test_int_weight_mlp_every_input_type(in_type, bits):
    """intN layers unrolled (signed-digit planes) and folded (N-bit ROM words)."""
    net = int_mlp([10, 7, 5], bits, in_type, seed=bits)
    inputs = np.concatenate([folder.corner_inputs(net), golden.random_inputs(net, 30, 5)])
    check_against_golden(net, "unrolled", inputs)
    check_against_golden(net, "0:7,5;1:1,7", inputs)


def test_ttq_row_scales():
    """TTQ's {-n, 0, +p} with p != n, unrolled and folded: the row is p * sum(x where w > 0)
    - n * sum(x where w < 0)."""
    rng = np.random.default_rng(11)
    w = rng.choice([-3, 0, 5], size=(6, 12))
    w[0] = 0
    doc = {
        "format": "tnn/2",
        "name": "ttq",
        "input": {"shape": [12], "type": "ternary"},
        "layers": [
            {"type": "dense", "out": 6, "weight_type": "int4", "weights": w.tolist(),
             "activation": None},
        ],
        "output": "values",
    }  # fmt: skip
    net = network.from_dict(doc)
    inputs = np.concatenate([folder.corner_inputs(net), golden.random_inputs(net, 30, 2)])
    x = inputs.astype(np.int64)
    expected = 5 * (x @ (w == 5).T) - 3 * (x @ (w == -3).T)
    assert np.array_equal(golden.run(net, inputs), expected)
    for fold in ("unrolled", "2,4", "6,1"):
        check_against_golden(net, fold, inputs)


def fcn(layers, shape=(4, 3, 2), in_type="ternary"):
    return network.from_dict(
        {
            "format": "tnn/2",
            "name": "fcn",
            "input": {"shape": list(shape), "type": in_type},
            "layers": layers,
            "output": "class_map",
        }
    )


THREE = {"levels": [-1, 0, 1], "thresholds": [[-1, 1]] * 3}


@pytest.mark.parametrize(
    "name, net, folds",
    [
        (
            "two convs, ties and an all-zero channel",
            fcn(
                [
                    {
                        "type": "conv2d",
                        "out": 3,
                        "kernel": 3,
                        "padding": 1,
                        "activation": THREE,
                        "weights": [
                            "+-0+-0+-0+-0+-0+-0",
                            "0+-++-0+-++-0+-0+-",
                            "--++00--++00--++00",
                        ],
                    },
                    {
                        "type": "conv2d",
                        "out": 4,
                        "kernel": 1,
                        "activation": None,
                        "weights": ["+-0", "-+0", "00+", "000"],
                    },
                ]
            ),
            ["unrolled", "1,1", "0:3,6;1:2,3"],
        ),
        (
            "one position (a 1x1 map)",
            fcn(
                [
                    {
                        "type": "conv2d",
                        "out": 5,
                        "kernel": 2,
                        "activation": None,
                        "weight_type": "int4",
                        "weights": [
                            [7, -8, 0, 1, 3, -3, 0, 0],
                            [0] * 8,
                            [-8] * 8,
                            [7] * 8,
                            [1] * 8,
                        ],
                    }
                ],
                shape=(2, 2, 2),
                in_type="uint3",
            ),
            ["unrolled", "1,1", "5,8"],
        ),
        (
            "one class (every index 0)",
            fcn([{"type": "conv2d", "out": 1, "kernel": 1, "activation": None, "weights": ["+-"]}]),
            ["unrolled", "1,2"],
        ),
        (
            "a max pool last",
            fcn(
                [
                    {
                        "type": "conv2d",
                        "out": 3,
                        "kernel": 1,
                        "activation": THREE,
                        "weights": ["+-", "-+", "++"],
                    },
                    {"type": "maxpool", "kernel": 2},
                ],
                shape=(4, 4, 2),
            ),
            ["unrolled", "3,1"],
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_class_map_output(name, net, folds):
    """The per-position argmax on the last layer's pixel stream, one map per output transfer,
    unrolled and folded."""
    inputs = np.concatenate([folder.corner_inputs(net), golden.random_inputs(net, 20, 3)])
    for fold in folds:
        compiled = check_against_golden(net, fold, inputs)
        h, w, c = net.output_shape
        assert compiled.metadata["output"] == {
            "kind": "class_map",
            "shape": [h, w],
            "count": h * w,
            "encoding": "uint",
            "element_width": max(1, (c - 1).bit_length()),
        }


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_random_class_map_descriptions(data):
    """Random fully convolutional tnn/2 networks with a class_map output."""
    doc = data.draw(networks(max_layers=3, spatial=True, wide=True, output="class_map"))
    try:
        net = network.from_dict(doc)
    except network.DescriptionError:
        assume(False)  # it ends in a dense layer: no [h, w, c] tensor to map
    inputs = np.concatenate([folder.corner_inputs(net), data.draw(inputs_for(doc, 6))])
    fold = data.draw(st.sampled_from(["unrolled", "1,1"]))
    check_against_golden(net, fold, inputs)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_random_int_weight_descriptions(data):
    """Random tnn/2 networks with intN weights, dense and spatial, unrolled and folded."""
    output = data.draw(st.sampled_from(["argmax", "values"]))
    doc = data.draw(networks(max_layers=3, wide=True, output=output))
    net = network.from_dict(doc)
    inputs = np.concatenate([folder.corner_inputs(net), data.draw(inputs_for(doc, 6))])
    fold = data.draw(st.sampled_from(["unrolled", "1,1"]))
    check_against_golden(net, fold, inputs)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_random_dense_descriptions(data):
    doc = data.draw(networks(max_layers=3, spatial=False))
    net = network.from_dict(doc)
    inputs = np.concatenate([folder.corner_inputs(net), data.draw(inputs_for(doc, 12))])
    fold = data.draw(st.sampled_from(["unrolled", "1,1"]))
    check_against_golden(net, fold, inputs)


@pytest.mark.parametrize("fold", ["unrolled", "0:1,3;2:1,2", "0:2,9;2:2,8"])
def test_example_cnn(fold):
    net = load_example("tiny_cnn")
    with open(os.path.join(EXAMPLES, "tiny_cnn.vectors.json")) as f:
        vectors = json.load(f)
    inputs = np.array(vectors["inputs"])
    compiled = check_against_golden(net, fold, inputs)
    assert np.array_equal(golden.run(net, inputs), vectors["outputs"])
    assert compiled.metadata["timing_model"] == "analytic"
    modeled = compiled.metadata["initiation_interval"]
    if fold == "unrolled":  # the planner's interval is the windows' scan length
        assert compiled.plan.initiation_interval == modeled
    else:  # a folded engine's windows also wait for the scan between frames
        assert compiled.plan.initiation_interval <= modeled


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_random_spatial_descriptions(data):
    doc = data.draw(networks(max_layers=3, spatial=True))
    net = network.from_dict(doc)
    inputs = np.concatenate([folder.corner_inputs(net), data.draw(inputs_for(doc, 6))])
    fold = data.draw(st.sampled_from(["unrolled", "1,1"]))
    check_against_golden(net, fold, inputs)


@pytest.mark.parametrize("fold", ["unrolled", "0:2,3;1:3,1", "1,1"])
def test_analytic_cycle_model_matches_simulation(fold):
    net = mlp([12, 6, 6, 3], seed=4)
    compiled = compiler.compile_network(net, fold)
    meta = compiled.metadata
    assert meta["timing_model"] == "analytic"
    measured = measure_timing(compiled.top, golden.random_inputs(net, 12, seed=1))
    assert measured == (meta["latency"], meta["initiation_interval"])


# --- outputs ---------------------------------------------------------------------------------


def test_verilog_is_deterministic():
    net = mlp([16, 8, 4], seed=9)
    a = compiler.compile_network(net, "unrolled").verilog
    b = compiler.compile_network(mlp([16, 8, 4], seed=9), "unrolled").verilog
    assert a == b
    assert "module mlp(" in a and "/work" not in a


def test_metadata_follows_the_contract():
    net = mlp([16, 8, 4], in_type="uint4", output="values", seed=2)
    meta = compiler.compile_network(net, "0:2,4;1:unrolled").metadata
    assert meta["format"] == "tnngen-accelerator/1"
    assert meta["top"] == "mlp" and meta["verilog"] == "mlp.v"
    assert meta["ports"]["i"] == {
        "payload": "i__payload",
        "valid": "i__valid",
        "ready": "i__ready",
        "width": 64,
    }
    assert meta["input"] == {
        "shape": [16],
        "count": 16,
        "type": "uint4",
        "encoding": "uint",
        "element_width": 4,
    }
    assert meta["ports"]["o"]["width"] == 4 * meta["output"]["element_width"]
    assert [layer["engine"] for layer in meta["layers"]] == ["folded", "unrolled"]
    assert meta["initiation_interval"] == 4 * 4  # 8/2 row folds x 16/4 column folds
    assert meta["latency"] == sum(layer["latency"] for layer in meta["layers"])


def test_write_outputs_moves_files_into_place(tmp_path):
    net = mlp([8, 4, 3])
    compiled = compiler.compile_network(net)
    vectors = folder.make_vectors(net, 20, seed=1)
    out = tmp_path / "acc"
    paths = folder.write_folder(compiled, out, vectors)
    assert sorted(os.path.basename(p) for p in paths) == ["mlp.json", "mlp.v", "vectors.npz"]
    saved = np.load(out / "vectors.npz")
    assert np.array_equal(saved["outputs"], golden.run(net, saved["inputs"]))
    assert str(saved["source"]) == "corners+random:1"
    (out / "keep.txt").write_text("user file")
    # The folder is replaced as a whole, so one holding a file of the user's is refused.
    with pytest.raises(folder.FolderError, match=r"acc: holds files that are not an .*keep.txt"):
        folder.write_folder(compiled, out, vectors)
    assert (out / "keep.txt").read_text() == "user file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc"]  # no temporary left


@pytest.mark.tools
@pytest.mark.parametrize("fold", ["unrolled", "1,1"])
def test_verilog_passes_lint_and_hierarchy_check(fold, tmp_path):
    if not (shutil.which("verilator") or shutil.which("yosys")):
        pytest.skip("neither verilator nor yosys is installed")
    net = load_example("tiny_mlp")
    compiled = compiler.compile_network(net, fold)
    path = tmp_path / "tiny_mlp.v"
    path.write_text(compiled.verilog)
    lint(path, compiled.metadata["top"])
