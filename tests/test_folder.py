# amaranth: UnusedElaboratable=no

"""The accelerator folder (gen.folder) and the compiler's steps that produce it."""

import hashlib
import json
import os
import stat
import types

import numpy as np
import pytest
from amaranth.hdl import Fragment

from gen import compiler, folder, network
from gen.compiler import cycles
from gen.network import golden

MODELS = os.path.join(os.path.dirname(__file__), os.pardir, "models")
TINY = os.path.join(MODELS, "tiny-mlp.tnn.json")


def test_metadata_hashes_the_description_files_bytes(tmp_path):
    with open(TINY, "rb") as f:
        raw = f.read()
    net = network.load(TINY)
    # The shipped file is not in the canonical form save() writes, so the two hashes differ:
    # the metadata must give the file's (docs/accelerator.md).
    assert network.dumps(net).encode() != raw
    compiled, paths, _ = folder.compile_to_folder(net, tmp_path / "acc", vectors=8)
    assert compiled.metadata["description_sha256"] == hashlib.sha256(raw).hexdigest()
    with open(paths[1]) as f:
        assert json.load(f)["description_sha256"] == hashlib.sha256(raw).hexdigest()


def test_network_built_in_memory_hashes_its_canonical_text():
    with open(TINY) as f:
        net = network.from_dict(json.load(f))
    assert net.source_sha256 is None
    canonical = hashlib.sha256(network.dumps(net).encode()).hexdigest()
    assert network.description_sha256(net) == canonical
    assert compiler.compile_network(net).metadata["description_sha256"] == canonical


def test_compile_to_folder_writes_what_load_reads(tmp_path):
    net = network.load(TINY)
    compiled, paths, (inputs, outputs, source) = folder.compile_to_folder(
        net, tmp_path / "acc", fold="0:2,3;1:1,2", vectors=12, seed=4
    )
    assert [os.path.basename(p) for p in paths] == ["tiny-mlp.v", "tiny-mlp.json", "vectors.npz"]
    acc = folder.load(str(tmp_path / "acc"))
    assert acc.metadata == compiled.metadata
    assert (acc.latency, acc.initiation_interval) == compiled.timing[:2]
    with open(acc.verilog_path) as f:
        assert f.read() == compiled.verilog
    vectors = acc.load_vectors()
    assert np.array_equal(vectors.inputs, inputs)
    assert np.array_equal(vectors.outputs, golden.run(net, inputs))
    assert vectors.source == source == "corners+random:4"


def test_steps_run_alone_and_in_order():
    net = network.load(TINY)
    names = [name for name, _ in compiler.STEPS]
    assert names == ["plan", "build", "time", "emit"]
    state = compiler.Compilation(net, compiler.CompileOptions("0:2,3;1:1,2"))
    filled = []
    for _, step in compiler.STEPS:
        state = step(state)
        filled.append(
            [f for f in ("plan", "top", "timing", "verilog") if getattr(state, f) is not None]
        )
    assert filled == [
        ["plan"],
        ["plan", "top"],
        ["plan", "top", "timing"],
        ["plan", "top", "timing", "verilog"],
    ]
    whole = compiler.compile_network(net, "0:2,3;1:1,2")
    assert whole.verilog == state.verilog and whole.metadata == state.metadata
    planned = compiler.compile_network(net, "0:2,3;1:1,2", until="plan")
    assert planned.plan == state.plan and planned.top is None
    seen = []
    compiler.compile_network(net, on_step=lambda name, _: seen.append(name))
    assert seen == names
    with pytest.raises(ValueError, match="Step must be one of plan, build, time, emit"):
        compiler.compile_network(net, until="synth")


def test_stages_are_decided_in_the_plan_and_built_as_planned():
    net = network.load(os.path.join(MODELS, "digits-mlp.tnn.json"))
    compiled = compiler.compile_network(net, "0:4,16")
    by_layer = {lp.index: lp for lp in compiled.plan.layers}
    for stage in compiled.top.stages:
        if stage.name.endswith(("_dot", "_mvu")):
            assert stage.block.stages == by_layer[stage.layer].stages
        if stage.name == "argmax":
            assert stage.block.latency == compiled.plan.argmax_stages
    for entry in compiled.metadata["layers"]:
        assert entry["stages"] == by_layer[entry["index"]].stages


@pytest.mark.parametrize("fold, registered", [("1:5,4", True), ("0:4,16", False)])
def test_the_argmax_registers_its_scores_after_a_folded_last_layer(fold, registered):
    # a folded last layer's scores come out of its output queue's multiplexer, an unrolled
    # one's out of a register slice: only the first gets the argmax's input register
    net = network.load(os.path.join(MODELS, "digits-mlp.tnn.json"))
    count = net.layers[-1].weights.shape[0]
    the_plan = compiler.plan(net, fold)
    assert (the_plan.layers[-1].engine == "folded") == registered
    tournament = 2 * (count - 1).bit_length()
    assert the_plan.argmax_stages == tournament + registered
    compiled = compiler.compile_network(net, fold)
    (argmax,) = (s for s in compiled.top.stages if s.name == "argmax")
    assert argmax.block.latency == tournament + registered


def test_a_block_without_a_timing_model_stops_the_compiler():
    net = network.load(TINY)
    top, _ = compiler.build(compiler.plan(net))
    Fragment.get(top, None)  # elaborated: the blocks are used

    class Unknown:
        pass

    stages = top.stages
    stages[0] = compiler.Stage("l0_x", Unknown(), 0, 1, 1)
    with pytest.raises(AssertionError, match="no timing model for Unknown"):
        cycles.timing_blocks(net, types.SimpleNamespace(stages=stages))


def test_regenerating_replaces_the_folder_as_a_whole(tmp_path):
    net = network.load(TINY)
    out = tmp_path / "acc"
    folder.compile_to_folder(net, out, vectors=8)
    (out / "synth-ice40-up5k.json").write_text("{}")
    (out / "sim_build").mkdir()
    # The same Verilog: the simulator's builds and synthesis reports stay.
    folder.compile_to_folder(net, out, vectors=10)
    assert (out / "synth-ice40-up5k.json").exists() and (out / "sim_build").is_dir()
    assert len(folder.load(str(out)).load_vectors()) == 10
    # Another folding: they described another design, so they go.
    folder.compile_to_folder(net, out, fold="0:2,3;1:1,2", vectors=8)
    assert sorted(p.name for p in out.iterdir()) == ["tiny-mlp.json", "tiny-mlp.v", "vectors.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc"]


def test_a_failure_while_writing_leaves_the_old_folder(tmp_path, monkeypatch):
    net = network.load(TINY)
    out = tmp_path / "acc"
    folder.compile_to_folder(net, out, vectors=8)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # as a SIGTERM or Ctrl-C while the vectors are written

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(KeyboardInterrupt):
        folder.compile_to_folder(net, out, fold="0:2,3;1:1,2", vectors=8)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc"]


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_an_output_folder_that_is_or_lies_below_a_file_is_refused(tmp_path, where):
    (tmp_path / "file").write_text("precious")
    with pytest.raises(folder.FolderError, match="file"):
        folder.compile_to_folder(network.load(TINY), tmp_path / where, vectors=4)
    assert (tmp_path / "file").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize(
    "umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_written_files_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    net = network.load(os.path.join(MODELS, "tiny-mlp.tnn.json"))
    old = os.umask(umask)
    try:
        _, paths, _ = folder.compile_to_folder(net, tmp_path / "acc", vectors=4)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "acc").st_mode) == dir_mode
    for path in paths:
        assert stat.S_IMODE(os.stat(path).st_mode) == file_mode, path
