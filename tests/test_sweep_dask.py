"""Sweeps at scale: fold enumeration (--explore), the result cache, the engines (a local Dask
cluster, a separately started scheduler and workers, the process pool), retries of failed and
killed tasks, and the command line's new options."""

import copy
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import sweep_tasks

from gen import cli, network
from gen.compiler import fit
from gen.compiler.explore import explore, ii_grid
from gen.compiler.folds import CompileError, parse_fold
from gen.compiler.plan import plan
from gen.flow import cache, engine, sweep
from gen.flow.targets import TARGETS

ROOT = os.path.join(os.path.dirname(__file__), "..")
TINY = os.path.join(ROOT, "models", "tiny-mlp.tnn.json")
MODELS = os.path.join(ROOT, "models")
DIGITS = os.path.join(MODELS, "digits-mlp.tnn.json")
DIGITS_CNN = os.path.join(ROOT, "models", "digits-cnn.tnn.json")
# Two foldings of the tiny model that synthesize in a few seconds each.
FOLDS = ["unrolled", "0:1,3;1:1,2"]

needs_dask = pytest.mark.skipif(not engine.dask_available(), reason="needs the 'cluster' extra")


def figures(summary):
    """What a sweep found, without where it was written or how long the tools took."""
    keys = (
        "fold",
        "initiation_interval",
        "latency",
        "size",
        "luts",
        "ffs",
        "bram",
        "fmax_mhz",
        "throughput",
        "predicted_luts",
        "front",
        "error",
    )
    return [{k: p.get(k) for k in keys} for p in summary["points"]]


# --- --explore -----------------------------------------------------------------------------------


def test_ii_grid():
    assert ii_grid(1, 1) == [1]
    assert ii_grid(1, 24) == [1, 2, 4, 8, 16, 24]
    assert ii_grid(100, 4608) == [100, 128, 256, 512, 1024, 2048, 4096, 4608]
    assert ii_grid(8, 16) == [8, 16]
    with pytest.raises(ValueError, match="1 <= fastest <= slowest"):
        ii_grid(5, 4)


@pytest.mark.parametrize("model", [TINY, DIGITS, DIGITS_CNN])
def test_explore_candidates_are_distinct_valid_and_monotone(model):
    net = network.load(model)
    found = explore(net)
    assert found
    folds = [c.fold for c in found]
    assert len(set(folds)) == len(folds)
    # The fastest candidate is as fast as the fully unrolled network.
    assert found[0].initiation_interval == plan(net, "unrolled").initiation_interval
    for c in found:
        # Each spec fixes every weighted layer and compiles back into the plan it came from.
        assert "auto" not in parse_fold(c.fold, net).values()
        rebuilt = plan(net, c.fold)
        assert rebuilt.initiation_interval == c.initiation_interval
        assert rebuilt.predicted.luts == c.predicted_luts
        assert c.initiation_interval <= c.target_ii
    for faster, slower in zip(found, found[1:], strict=False):
        assert faster.initiation_interval < slower.initiation_interval
        assert faster.predicted_luts > slower.predicted_luts


def test_explore_counts():
    # The tiny model is cheapest unrolled: every slower folding costs more, so one candidate.
    assert [c.fold for c in explore(network.load(TINY))] == ["0:unrolled;1:unrolled"]
    digits = explore(network.load(DIGITS))
    assert len(digits) >= 5
    assert digits[-1].fold == "0:1,1;1:1,1"  # the slowest useful: everything at PE = SIMD = 1


def test_explore_prunes_beyond_the_part():
    net = network.load(DIGITS)
    everything = explore(net)
    limit = everything[2].predicted_luts
    kept = explore(net, max_luts=limit)
    assert [c.fold for c in kept] == [c.fold for c in everything[2:]]
    cheapest = min(c.predicted_luts for c in everything)
    assert cheapest == everything[-1].predicted_luts > 100
    with pytest.raises(
        CompileError, match=f"no folding fits 100 LUTs: the cheapest is predicted at {cheapest:,} "
    ):
        explore(net, max_luts=100)


def test_explore_prunes_by_the_parts_family_figures():
    # A model too large for an UP5K unrolled: --explore keeps exactly the candidates whose
    # prediction in iCE40 units, pin wrapper included, fits the whole part, in every figure
    # (logic cells: LUT4s and the flip-flops that do not pair with one, in the LUTs' sites).
    net = network.load(os.path.join(MODELS, "digits-twn-mlp.tnn.json"))
    everything = explore(net)
    capacity = TARGETS["ice40-up5k"].capacity
    outside = fit.wrapper(net, "ice40")
    assert outside.ffs > 0 and outside.luts > 0
    expected = []
    for c in everything:
        p = fit.predict(plan(net, c.fold), "ice40")
        luts, ffs = p.luts + outside.luts, p.ffs + outside.ffs
        cells = p.cells + outside.cells
        if (
            luts <= capacity["luts"]
            and cells <= capacity["luts"]
            and ffs <= capacity["ffs"]
            and p.bram <= capacity["bram"]
        ):
            expected.append(c.fold)
    kept = [c.fold for c in explore(net, part="ice40-up5k")]
    assert kept == expected
    assert 0 < len(kept) < len(everything)
    with pytest.raises(CompileError, match="no folding fits ice40-up5k: the cheapest is"):
        explore(network.load(os.path.join(MODELS, "mnist-mlp.tnn.json")), part="ice40-up5k")
    with pytest.raises(CompileError, match="--part takes a part with known resources"):
        explore(net, part="asic")


# --- the cache -----------------------------------------------------------------------------------


def test_cache_round_trip_and_info(tmp_path):
    store = cache.Cache(str(tmp_path / "c"))
    assert store.info() == {"directory": str(tmp_path / "c"), "entries": 0, "bytes": 0}
    material = {"fold": "unrolled", "target": "asic"}
    key = cache.point_key(material)
    assert store.get(key) is None
    result = {
        "report": {"resources": {"luts": 3}},
        "directory": "/w/x",
        "artifacts": {"a.v": b"module a;\n", "vectors.npz": bytes(range(256))},
    }
    store.put(key, material, result)
    assert store.get(key) == result
    info = store.info()
    assert info["entries"] == 1
    assert info["bytes"] == os.path.getsize(store.path(key))
    # No temporary file is left beside the entry.
    assert os.listdir(os.path.dirname(store.path(key))) == [f"{key}.json"]
    # An entry that is not JSON, or is another key's, is a miss.
    with open(store.path(key), "w") as f:
        f.write("{not json")
    assert store.get(key) is None
    other = cache.point_key({"fold": "1,1", "target": "asic"})
    store.put(other, {}, result)
    shutil.copyfile(store.path(other), store.path(key))
    assert store.get(key) is None


def test_cache_key_depends_on_every_field():
    base = {"fold": [[0, "unrolled"]], "target": "asic", "tools": {"yosys": "native 0.23"}}
    keys = {cache.point_key(base)}
    for field, value in (("fold", [[0, [1, 3]]]), ("target", "ice40-up5k"), ("tools", {})):
        keys.add(cache.point_key(dict(base, **{field: value})))
    assert len(keys) == 4
    assert cache.point_key(dict(reversed(list(base.items())))) == cache.point_key(base)
    assert len(cache.sources()) == 64


def test_cache_folder_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(cache.CacheError, match="not a folder"):
        cache.Cache(str(tmp_path / "file"))


def test_default_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.default_directory() == os.path.join(str(tmp_path), "tnngen")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_directory() == os.path.join(str(tmp_path), "home", ".cache", "tnngen")


# --- engines and options -------------------------------------------------------------------------


def test_open_engine_errors(monkeypatch):
    with pytest.raises(engine.EngineError, match="expected an address like tcp://HOST:PORT"):
        engine.open_engine("dask", scheduler="localhost")
    with pytest.raises(engine.EngineError, match="--scheduler needs the Dask engine"):
        engine.open_engine("pool", scheduler="tcp://127.0.0.1:1")
    with pytest.raises(engine.EngineError, match="--engine must be"):
        engine.open_engine("threads")
    monkeypatch.setattr(engine, "dask_available", lambda: False)
    with pytest.raises(engine.EngineError, match="pip install 'tnngen\\[cluster\\]'"):
        engine.open_engine("dask")
    monkeypatch.setenv(engine.SCHEDULER_ENV, "tcp://127.0.0.1:1")
    with pytest.raises(engine.EngineError, match="needs the 'cluster' extra"):
        engine.open_engine("auto")
    monkeypatch.delenv(engine.SCHEDULER_ENV)
    fallback = engine.open_engine("auto", jobs=1)
    try:
        assert fallback.description == (
            "process pool of 1 worker (Dask is not installed: pip install 'tnngen[cluster]')"
        )
    finally:
        fallback.close()


@needs_dask
def test_unreachable_scheduler():
    with pytest.raises(engine.EngineError, match="--scheduler tcp://127.0.0.1:9: cannot connect"):
        engine.open_engine("dask", scheduler="tcp://127.0.0.1:9")


def test_sweep_input_checks(tmp_path):
    out = str(tmp_path / "out")
    with pytest.raises(sweep.SweepError, match="either --folds or --explore, not both"):
        sweep.sweep(TINY, "asic", ["unrolled"], explore=True, output=out)
    with pytest.raises(sweep.SweepError, match="--seeds applies to place and route"):
        sweep.sweep(TINY, "asic", ["unrolled"], seeds=2, output=out)
    with pytest.raises(sweep.SweepError, match="--seeds applies to place and route"):
        sweep.sweep(TINY, "ice40-up5k", ["unrolled"], seeds=2, place_and_route=False, output=out)
    with pytest.raises(sweep.SweepError, match="--retries must be an integer of at least 0"):
        sweep.sweep(TINY, "asic", ["unrolled"], retries=-1, output=out)
    assert not os.path.exists(out)


def test_cli_sweep_options(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cli.main(["sweep", "--cache-info"]) == 0
    assert capsys.readouterr().out == (f"cache {tmp_path / 'xdg' / 'tnngen'}: 0 entries, 0 bytes\n")
    assert cli.main(["sweep", TINY, "--folds", "unrolled"]) == 2
    assert capsys.readouterr().err == (
        "tnngen sweep: error: give MODEL and --target (or --cache-info)\n"
    )
    args = ["sweep", TINY, "--target", "asic", "-o", str(tmp_path / "o")]
    assert cli.main(args + ["--folds", "unrolled", "--scheduler", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tnngen sweep: error: --scheduler: expected an address like")
    assert err.count("\n") == 1
    assert cli.main(args) == 2
    assert "give at least one folding (--folds), or --explore" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args + ["--explore", "--seeds", "0"])
    assert exit_info.value.code == 2
    assert "--seeds: must be a positive integer, not '0'" in capsys.readouterr().err


def test_rebuild_command():
    command = sweep.rebuild_command(
        "m.tnn.json",
        "0:1,3;1:1,2",
        "ice40-up5k",
        "out/x",
        seed=3,
        vectors=16,
        options={"freq": 30.0, "pin_width": 8, "place_and_route": True},
        routed=True,
    )
    assert command == (
        "tnngen verilog m.tnn.json --fold '0:1,3;1:1,2' --vectors 16 -o out/x && "
        "tnngen synth out/x --target ice40-up5k --seed 3 --freq 30"
    )


# --- real sweeps ---------------------------------------------------------------------------------


def _by_value(module):
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)


@pytest.fixture(scope="module")
def local_cluster():
    """A local Dask cluster of two worker processes, shared by the tests below."""
    if not engine.dask_available():
        pytest.skip("needs the 'cluster' extra")
    cluster = engine.DaskEngine(workers=2, retries=1)
    yield cluster
    cluster.close()


@pytest.mark.tools
def test_dask_and_pool_agree(tmp_path, local_cluster):
    dask_summary = sweep.sweep(
        TINY, "ice40-up5k", FOLDS, output=str(tmp_path / "dask"), engine=local_cluster
    )
    assert dask_summary["engine"] == "local Dask cluster of 2 worker processes"
    pool = engine.PoolEngine(2)
    try:
        pool_summary = sweep.sweep(
            TINY, "ice40-up5k", FOLDS, output=str(tmp_path / "pool"), engine=pool
        )
    finally:
        pool.close()
    assert pool_summary["engine"] == "process pool of 2 workers"
    assert figures(dask_summary) == figures(pool_summary)
    for point in dask_summary["points"]:
        assert "error" not in point, point.get("error")
        with open(point["report"]) as f:
            report = json.load(f)
        # The worker's folder is gone; the report names the sweep's.
        assert report["accelerator"]["verilog"] == os.path.join(point["directory"], "tiny-mlp.v")
        assert os.path.isfile(report["accelerator"]["verilog"])
        assert point["lut_ratio"] == point["luts"] / report["predicted"]["luts"]
        assert not os.path.exists(
            os.path.join(point["directory"], "synth-ice40-up5k", "netlist.json")
        )
        assert os.path.isfile(os.path.join(point["directory"], "synth-ice40-up5k", "yosys.log"))


@pytest.mark.tools
def test_retry_after_a_failure(tmp_path, local_cluster):
    _by_value(sweep_tasks)
    flaky = copy.copy(local_cluster)  # the same cluster, another task function
    flaky.task = sweep_tasks.FailOnce(str(tmp_path))
    summary = sweep.sweep(TINY, "asic", FOLDS, output=str(tmp_path / "o"), engine=flaky)
    assert [p.get("error") for p in summary["points"]] == [None, None]
    assert sorted(os.listdir(tmp_path)) == ["0_1_3_1_1_2-1.tried", "o", "unrolled-1.tried"]
    # Without retries the first try's failure is the point's, with its reason; the sweep goes on.
    broken = engine.PoolEngine(2, retries=0, task=sweep_tasks.FailAlways(["unrolled"]))
    try:
        summary = sweep.sweep(TINY, "asic", FOLDS, output=str(tmp_path / "p"), engine=broken)
    finally:
        broken.close()
    failed, good = summary["points"]
    assert failed["error"] == "injected failure of unrolled"
    assert (failed["kind"], failed["tries"]) == ("failure", 1)
    assert "error" not in good and good["front"]
    assert "| `unrolled` | failed: injected failure of unrolled |" in sweep.format_markdown(summary)


@pytest.mark.tools
@pytest.mark.parametrize("kind", ["dask", "pool"])
def test_retry_after_a_killed_worker(tmp_path, kind):
    _by_value(sweep_tasks)
    task = sweep_tasks.DieOnce(str(tmp_path))
    if kind == "dask":
        if not engine.dask_available():
            pytest.skip("needs the 'cluster' extra")
        runner = engine.DaskEngine(workers=1, retries=2, task=task)
    else:
        runner = engine.PoolEngine(1, retries=2, task=task)
    try:
        summary = sweep.sweep(TINY, "asic", ["unrolled"], output=str(tmp_path / "o"), engine=runner)
    finally:
        runner.close()
    assert "error" not in summary["points"][0], summary["points"][0].get("error")
    assert os.path.exists(tmp_path / "unrolled-1.tried")


@pytest.fixture
def counted_yosys(tmp_path, monkeypatch):
    """Yosys behind a wrapper that logs each invocation; returns the log's path."""
    real = shutil.which("yosys")
    if real is None:
        pytest.skip("needs a native Yosys")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "yosys-calls.txt"
    wrapper = bin_dir / "yosys"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def _synth_runs(log):
    return sum("synth.ys" in line for line in log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.tools
@pytest.mark.parametrize("kind", ["dask", "pool"])
def test_second_run_comes_from_the_cache(tmp_path, counted_yosys, kind):
    if kind == "dask" and not engine.dask_available():
        pytest.skip("needs the 'cluster' extra")
    store = cache.Cache(str(tmp_path / "cache"))
    options = dict(cache=store, engine_kind=kind, jobs=2, tools="native")
    first = sweep.sweep(TINY, "ice40-up5k", FOLDS, output=str(tmp_path / "a"), **options)
    assert _synth_runs(counted_yosys) == 2
    assert first["cache"]["hits"] == 0 and first["cache"]["misses"] == 2
    assert store.info()["entries"] == 2
    second = sweep.sweep(TINY, "ice40-up5k", FOLDS, output=str(tmp_path / "b"), **options)
    assert _synth_runs(counted_yosys) == 2  # no Yosys run the second time
    assert second["cache"] == {"directory": store.directory, "hits": 2, "misses": 0}
    assert figures(second) == figures(first)
    assert all(p["cached"] for p in second["points"])
    for point in second["points"]:
        with open(point["report"]) as f:
            assert json.load(f)["accelerator"]["metadata"].startswith(str(tmp_path / "b"))
    # A new seed is a new point: only it runs.
    third = sweep.sweep(
        TINY, "ice40-up5k", ["unrolled"], seeds=2, output=str(tmp_path / "c"), **options
    )
    assert _synth_runs(counted_yosys) == 3
    assert third["cache"]["hits"] == 1 and third["cache"]["misses"] == 1
    (point,) = third["points"]
    assert [s["seed"] for s in point["seeds"]] == [1, 2]
    low, high = point["fmax_spread_mhz"]
    assert low <= point["fmax_mhz"] == high


@pytest.mark.tools
def test_cli_explore_on_dask_then_cache(tmp_path, capsys, monkeypatch, counted_yosys, run_slow):
    if not engine.dask_available():
        pytest.skip("needs the 'cluster' extra")
    # By default the tiny model (one candidate); with --run-slow the digits model's three
    # fastest candidates, in --explore's own order.
    model = DIGITS if run_slow else TINY
    monkeypatch.setattr(sweep, "explore_folds", lambda net, **kw: explore(net)[:3])
    count = len(explore(network.load(model))[:3])
    args = ["sweep", model, "--target", "asic", "--explore", "--jobs", "2"]
    args += ["--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "o")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    # No more workers than points.
    workers = "2 worker processes" if count > 1 else "1 worker process"
    assert out.splitlines()[0] == f"engine: local Dask cluster of {workers}"
    assert f"cache {tmp_path / 'cache'}: 0 of {count} runs reused" in out
    assert _synth_runs(counted_yosys) == count
    assert cli.main(args) == 0
    assert f": {count} of {count} runs reused" in capsys.readouterr().out
    assert _synth_runs(counted_yosys) == count
    assert cli.main(["sweep", "--cache-info", "--cache", str(tmp_path / "cache")]) == 0
    assert f": {count} entries, " in capsys.readouterr().out


def _start(args, env):
    return subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "dask"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.tools
def test_separate_scheduler_and_workers_give_the_same_front(tmp_path, local_cluster):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.abspath(ROOT), *sys.path]))
    address_file = tmp_path / "scheduler.json"
    started = [
        _start(["scheduler", "--scheduler-file", str(address_file), "--port", "0",
                "--no-dashboard"], env)
    ]  # fmt: skip
    try:
        for _ in range(2):
            started.append(
                _start(["worker", "--scheduler-file", str(address_file), "--nthreads", "1",
                        "--no-dashboard", "--local-directory", str(tmp_path / "w")], env)
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        remote = engine.open_engine("dask", scheduler=address)
        try:
            while remote.workers < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert remote.workers == 2
            there = sweep.sweep(
                TINY, "ice40-up5k", FOLDS, output=str(tmp_path / "r"), engine=remote
            )
        finally:
            remote.close()
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            process.wait(timeout=30)
    assert there["engine"].startswith(f"Dask scheduler at {address} (2 worker threads")
    here = sweep.sweep(TINY, "ice40-up5k", FOLDS, output=str(tmp_path / "l"), engine=local_cluster)
    assert figures(there) == figures(here)
    assert [p["fold"] for p in there["points"] if p["front"]] == [
        p["fold"] for p in here["points"] if p["front"]
    ]
