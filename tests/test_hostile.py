"""Hostile and broken inputs: every one is refused with the project's own error, quickly.

The fuzz mutates real descriptions (keys deleted, values replaced by wrong types, huge numbers,
long strings, shapes blown up, text cut or keys doubled) and hands each case to a worker
process (``tests/hostile_worker.py``) that loads it under an address-space limit and a
time-out, as ``tnngen check`` would, and runs the golden model on one input. Every failure must
be a ``DescriptionError``, and no case may take more than 2 s of processor time or allocate more
than 1 GB.
"""

import copy
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, os.pardir)
SOURCES = [
    os.path.join(ROOT, "models", "tiny-mlp.tnn.json"),
    os.path.join(ROOT, "models", "digits-cnn.tnn.json"),
    os.path.join(HERE, "examples", "tiny_cnn.tnn.json"),
    os.path.join(HERE, "examples", "tiny_mlp.tnn.json"),
]
SECONDS, PEAK = 2.0, 1 << 30
MAX_CASE_CHARS = 8 << 20
# The worker's whole address space: the interpreter, NumPy and BLAS, and a case's 1 GB.
ADDRESS_SPACE = 3 << 30


def _documents():
    docs = []
    for path in SOURCES:
        with open(path) as f:
            docs.append(json.load(f))
    return docs


DOCS = _documents()


class Worker:
    """The worker process, started once per test run."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "hostile_worker.py"), str(ADDRESS_SPACE),
             str(SECONDS + 1)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )  # fmt: skip

    def run(self, text):
        self.process.stdin.write(json.dumps(text) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the worker died on this case: {text[:300]!r}"
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


def check_case(worker, text):
    answer = worker.run(text)
    assert answer["outcome"] in ("ok", "DescriptionError"), (answer, text[:300])
    assert answer["seconds"] < SECONDS, (answer, text[:300])
    assert answer["peak"] < PEAK, (answer, text[:300])
    return answer


# --- mutations -------------------------------------------------------------------------------

HUGE = [2**63, -(2**63) - 1, 10**30, 2**40 + 1, 65536, 65537, 4096, 16777217, 0, -1]
VALUES = st.one_of(
    st.sampled_from(HUGE),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["+" * 100_000, "ternary", "uint16", "int1", "binary", "uint²", "x" * 5000]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-5, 5000), max_size=4),
    st.sampled_from([[4096, 4096, 1], [65536], [1, 1, 16777216], [2048, 2048, 4], []]),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(value, prefix=()):
    """Every path to a value inside a JSON document (lists cut at a few items)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for k, item in enumerate(value[:3]):
            yield from _paths(item, prefix + (k,))


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw):
    doc = copy.deepcopy(draw(st.sampled_from(DOCS)))
    paths = [p for p in _paths(doc) if p]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        try:
            parent = _get(doc, path[:-1])
            kind = draw(st.sampled_from(["replace", "delete", "grow"]))
            if kind == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            elif kind == "grow" and isinstance(parent[path[-1]], (list, str)):
                value = parent[path[-1]]
                factor = draw(st.sampled_from([2, 50, 4096]))
                if len(value) * factor <= 1 << 16:  # cases of at most a few MB of text
                    parent[path[-1]] = value * factor
            else:
                # a copy: sampled values are shared objects, and a later mutation could write
                # into one (a list put inside itself cannot be serialized)
                parent[path[-1]] = copy.deepcopy(draw(VALUES))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the path
    text = json.dumps(doc)
    # Growths compound (a list of grown strings grown again): keep the cases at a few MB, which
    # parse well within the bound; longer texts are refused by size (test_network)
    assume(len(text) <= MAX_CASE_CHARS)
    cut = draw(st.sampled_from(["none", "none", "none", "truncate", "double-key"]))
    if cut == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif cut == "double-key":
        text = text.replace('"name":', '"name": "twice", "name":', 1)
    return text


def test_fuzz_of_the_loader(worker, run_slow):
    count = 10_000 if run_slow else 2_000
    failures = []

    @settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated())
    def case(text):
        try:
            check_case(worker, text)
        except AssertionError as exc:
            failures.append(str(exc)[:2000])
            raise

    try:
        case()
    except Exception:
        pytest.fail(f"a case broke the bounds: {failures[-1] if failures else '?'}")


# --- the cases found by hand ---------------------------------------------------------------------


def _doc(**changes):
    doc = copy.deepcopy(DOCS[0])
    doc.update(changes)
    return doc


def _conv(height, width, channels, out, kernel):
    return {
        "format": "tnn/1",
        "name": "bomb",
        "input": {"shape": [height, width, channels], "type": "uint8"},
        "layers": [
            {"type": "conv2d", "out": out, "kernel": kernel,
             "weights": ["+" * (kernel * kernel * channels)] * out, "activation": None},
        ],
        "output": "values",
    }  # fmt: skip


def _pools(count, kernel, stride):
    return {
        "format": "tnn/1",
        "name": "bomb",
        "input": {"shape": [2048, 2048, 1], "type": "ternary"},
        "layers": [{"type": "maxpool", "kernel": kernel, "stride": stride}] * count,
        "output": "values",
    }


# Small files, within every per-field limit, whose evaluation would take minutes or gigabytes.
COST_BOMBS = {
    "conv of many channels": (_conv(256, 256, 16, 64, 3), "operations per inference"),
    "conv of huge windows": (_conv(2048, 2048, 1, 1, 3), "window values per input"),
    "stacked maxpools": (_pools(100, 1, 1), "operations per inference"),
    "too large a feature map": (_conv(4096, 4096, 1, 1, 1), "beyond the limit of 4194304"),
}


@pytest.mark.parametrize("name", sorted(COST_BOMBS))
def test_cost_bombs_are_refused_before_any_evaluation(worker, name):
    doc, message = COST_BOMBS[name]
    answer = check_case(worker, json.dumps(doc))
    assert answer["outcome"] == "DescriptionError" and message in answer["message"], answer


def test_a_maxpool_of_a_huge_window_is_cheap(worker):
    # It was quadratic (every window position times the window's area): now each axis takes
    # about log2 of the window in passes, so it is accepted, and quick.
    answer = check_case(worker, json.dumps(_pools(1, 1024, 1)))
    assert answer["outcome"] == "ok", answer


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"format": "tnn/1", "x": ' + "1" * 5000 + "}", "an integer of 5000 digits"),
        (json.dumps(_doc(input={"shape": [6], "type": "uint²"})), "unknown type 'uint²'"),
        (json.dumps(_doc(input={"shape": [6], "type": "uint" + "9" * 5000})), "unknown type"),
        (json.dumps(_doc()).replace('"name":', '"name": "a", "name":', 1), "given twice"),
        (json.dumps(_doc(name="x" * 100_000)), "characters)"),
    ],
)
def test_malformed_text_is_a_description_error(worker, text, message):
    answer = check_case(worker, text)
    assert answer["outcome"] == "DescriptionError" and message in answer["message"], answer
    assert len(answer["message"]) < 300


# --- the command line on bad input: exit status 2, one line naming what is wrong --------------

TINY = SOURCES[0]


def _cli(capsys, *argv):
    from gen import cli

    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        status = exc.code
    err = capsys.readouterr().err
    return status, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["verilog", TINY, "-o", "{tmp}/a", "--vectors", "0"], "--vectors: must be a positive"),
        (["verilog", TINY, "-o", "{tmp}/a", "--vectors", "-5"], "--vectors: must be a positive"),
        (["verilog", TINY, "-o", "{tmp}/a", "--seed", "-1"], "--seed: must be an integer of at"),
        (["verilog", TINY, "-o", "{tmp}/file"], "a file, not a folder"),
        (["verilog", TINY, "-o", "{tmp}/file/sub"], "is a file, so no folder can be made"),
        (["verilog", TINY, "-o", "{tmp}/a", "--fold", "0:2,3;0:1,1"], "layer 0 is given twice"),
        (["predict", TINY, "--inputs", "{tmp}/x.npy", "--output", "{tmp}"], "a folder; give"),
        (["predict", TINY, "--inputs", "{tmp}/x.npy", "--output", "{tmp}/no/y.npy"], "not exist"),
        (["predict", TINY, "--inputs", "{tmp}/huge.npy", "--output", "{tmp}/y.npy"], "declares"),
        (["predict", TINY, "--inputs", "{tmp}/wrap.npy", "--output", "{tmp}/y.npy"],
         "holds 18446744073709551615 at index [0]"),
        (["predict", TINY, "--inputs", "{tmp}/big.npy", "--output", "{tmp}/y.npy"], "holds 1e+19"),
        (["flow", TINY, "--target", "bogus"], "unknown target 'bogus'"),
        (["sim", "{tmp}/badtop"], "field 'top': must be a plain Verilog name"),
        (["sim", "{tmp}/corrupt"], "corrupt.json: not JSON"),
        (["sim", "{tmp}/a", "--stall", "2"], "--stall: must be a number from 0 to 1"),
    ],
)  # fmt: skip
def test_bad_input_on_the_command_line(tmp_path, capsys, argv, message):
    import numpy as np

    from gen import folder, network

    (tmp_path / "file").write_text("precious")
    np.save(tmp_path / "x.npy", np.zeros((2, 6), dtype=np.int64))
    np.save(tmp_path / "wrap.npy", np.full((1, 6), 2**64 - 1, dtype=np.uint64))
    np.save(tmp_path / "big.npy", np.full((1, 6), 1e19))
    with open(tmp_path / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<i8", "fortran_order": False, "shape": (10**12, 6)}
        )
    net = network.load(TINY)
    for name in ("badtop", "corrupt"):
        folder.compile_to_folder(net, tmp_path / name, vectors=4)
    meta = tmp_path / "badtop" / "tiny-mlp.json"
    meta.write_text(meta.read_text().replace('"top": "tiny_mlp"', '"top": "tiny mlp; x"'))
    (tmp_path / "corrupt" / "tiny-mlp.json").rename(tmp_path / "corrupt" / "corrupt.json")
    (tmp_path / "corrupt" / "corrupt.json").write_text("{not json")
    before = sorted(p.name for p in tmp_path.iterdir())
    status, err = _cli(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert status == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written or lost
    assert (tmp_path / "file").read_text() == "precious"


def test_a_design_predicted_beyond_the_part_stops_before_yosys(tmp_path, capsys):
    from gen import compiler, network
    from gen.flow import synth
    from gen.flow.errors import SynthInputError

    net = network.load(os.path.join(ROOT, "models", "digits-twn-mlp.tnn.json"))
    predicted = compiler.plan(net).predicted  # unrolled: about 39,000 LUTs, for 5,280
    assert predicted.luts > 5280
    with pytest.raises(SynthInputError, match=r"predicted at [\d,]+ LUTs, [\d.]+ times the 5,280"):
        synth.check_fit({"predicted": predicted.asdict()}, "ice40-up5k")
    synth.check_fit({"predicted": predicted.asdict()}, "ecp5-85k")  # it fits there
    # and in the flow, the check comes before any simulation or synthesis
    status, err = _cli(
        capsys,
        "flow",
        os.path.join(ROOT, "models", "digits-twn-mlp.tnn.json"),
        "-o",
        tmp_path / "f",
        "--vectors",
        "2",
    )
    assert status == 2 and "times the 5,280 of ice40-up5k" in err and "--force" in err, err
    assert not (tmp_path / "f" / "sim_build").exists()


def test_version(capsys):
    status, _ = _cli(capsys, "--version")
    assert status == 0


def test_sigterm_leaves_no_temporary_and_the_old_folder(tmp_path):
    import signal
    import time

    from gen import folder, network

    out = tmp_path / "acc"
    folder.compile_to_folder(network.load(TINY), out, vectors=4)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    tnngen = os.path.join(os.path.dirname(sys.executable), "tnngen")
    model = os.path.join(ROOT, "models", "mnist-mlp.tnn.json")  # unrolled: minutes to compile
    proc = subprocess.Popen(
        [tnngen, "verilog", model, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "interrupted" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc"]  # no .tnngen-* left
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
