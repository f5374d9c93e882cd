"""The design-space sweep: the Pareto front, its table and plot, input checks, and real sweeps of
the shipped tiny model through the compiler and the tools."""

import json
import os
import random
import sys

import pytest

from gen import cli
from gen.flow import errors, sweep

MODEL = os.path.join(os.path.dirname(__file__), "..", "models", "tiny-mlp.tnn.json")


def ref_front(points):
    """The front by definition, over every pair: kept unless some point is as good in both and
    better in one."""
    kept = []
    for k, (size, speed) in enumerate(points):
        beaten = False
        for j, (s, t) in enumerate(points):
            if j != k and s <= size and t >= speed and (s, t) != (size, speed):
                beaten = True
        if not beaten:
            kept.append(k)
    return sorted(kept)


def test_pareto_front_cases():
    assert sweep.pareto_front([]) == []
    assert sweep.pareto_front([(10, 1.0)]) == [0]
    # Bigger and faster, smaller and slower: both on the front, in order of size.
    assert sweep.pareto_front([(100, 10.0), (10, 1.0)]) == [1, 0]
    # A point bigger and slower than another is off the front.
    assert sweep.pareto_front([(10, 1.0), (20, 0.5), (30, 5.0)]) == [0, 2]
    # Equal points do not beat each other.
    assert sweep.pareto_front([(10, 1.0), (10, 1.0)]) == [0, 1]


def test_pareto_front_random():
    rng = random.Random(7)
    for _ in range(200):
        points = [(rng.randint(1, 20), rng.randint(1, 20) / 4) for _ in range(rng.randint(1, 9))]
        assert sorted(sweep.pareto_front(points)) == ref_front(points)


def _summary(tmp_path):
    points = [
        {"fold": "unrolled", "initiation_interval": 1, "latency": 5, "size": 900, "ffs": 300,
         "bram": 0, "fmax_mhz": 40.0, "throughput": 40e6, "front": True, "lut_ratio": 1.25,
         "rebuild": "tnngen verilog m --fold unrolled -o d && tnngen synth d --target t"},
        {"fold": "0:4,8", "initiation_interval": 8, "latency": 20, "size": 300, "ffs": 200,
         "bram": 1, "fmax_mhz": 50.0, "throughput": 6.25e6, "front": True, "lut_ratio": 0.5,
         "seeds": [{"seed": 1}, {"seed": 2}], "fmax_spread_mhz": [47.25, 50.0],
         "rebuild": "tnngen verilog m --fold 0:4,8 -o e && tnngen synth e --target t"},
        {"fold": "0:1,1", "initiation_interval": 64, "latency": 90, "size": 320, "ffs": 210,
         "bram": 1, "fmax_mhz": 45.0, "throughput": 0.7e6, "front": False},
        {"fold": "0:3,3", "error": "fold: PE 3 must divide 4\nmore", "kind": "input"},
    ]  # fmt: skip
    return {
        "model": "toy",
        "target": "ice40-up5k",
        "cost_model": {
            "points": 2,
            "lut_ratio_min": 0.5,
            "lut_ratio_max": 1.25,
            "lut_ratio_mean": 0.875,
        },
        "engine": "local Dask cluster of 2 worker processes",
        "cache": {"directory": "/c", "hits": 1, "misses": 3},
        "size_unit": "LUTs",
        "throughput_unit": "inferences/s",
        "points": points,
        "plot": str(tmp_path / "sweep-ice40-up5k.png"),
    }


def test_markdown(tmp_path):
    text = sweep.format_markdown(_summary(tmp_path))
    lines = text.splitlines()
    assert lines[0] == "## Sweep of toy on ice40-up5k"
    header = (
        "| fold | II | latency | LUTs | LUTs / predicted | FFs | BRAM | Fmax (MHz) | "
        "inferences/s | front |"
    )
    assert header in lines
    assert "| `unrolled` | 1 | 5 | 900 | 1.25 | 300 | 0 | 40.0 | 40 M | ● |" in lines
    # Several seeds: the best Fmax, then the spread over the seeds.
    assert (
        "| `0:4,8` | 8 | 20 | 300 | 0.50 | 200 | 1 | 50.0 (47.2–50.0, 2 seeds) | 6.25 M | ● |"
        in lines
    )
    assert "| `0:1,1` | 64 | 90 | 320 | — | 210 | 1 | 45.0 | 700 k |  |" in lines
    assert "| `0:3,3` | failed: fold: PE 3 must divide 4 |||||||||" in lines
    assert "Cost model: measured / predicted LUTs 0.50 to 1.25 (mean 0.88) over 2 points." in lines
    # The front, smallest first, each with the command that rebuilds it; 0:1,1 is not on it.
    front = lines.index("### Front, and the commands that rebuild it")
    assert lines[front + 2 : front + 6] == [
        "- `0:4,8`: 300 LUTs, 6.25 M inferences/s",
        "  `tnngen verilog m --fold 0:4,8 -o e && tnngen synth e --target t`",
        "- `unrolled`: 900 LUTs, 40 M inferences/s",
        "  `tnngen verilog m --fold unrolled -o d && tnngen synth d --target t`",
    ]
    assert (
        "Ran on: local Dask cluster of 2 worker processes; cache /c: 1 of 4 runs reused." in lines
    )
    assert lines[-1] == "Plot: sweep-ice40-up5k.png"


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = str(tmp_path / "front.png")
    assert sweep.plot(_summary(tmp_path), path) == path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["front.png"]  # no temporary left behind


def test_plot_labels_join_coincident_points_and_failures_are_named(tmp_path):
    points = _summary(tmp_path)["points"]
    twin = dict(points[1], fold="0:8,4")  # the same size and throughput as 0:4,8
    labels = sweep.plot_labels(points + [twin])
    assert sorted(text for _, _, text in labels) == ["0:1,1", "0:4,8, 0:8,4", "unrolled"]
    assert sweep.failed_note(points) == "failed, not drawn: 0:3,3 (fold: PE 3 must divide 4)"
    assert sweep.failed_note(points[:3]) is None
    many = [dict(points[3], fold=f"f{k}") for k in range(6)]
    assert sweep.failed_note(many).endswith("f3 (fold: PE 3 must divide 4) and 2 more")


def test_plot_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert sweep.plot(_summary(tmp_path), str(tmp_path / "x.png")) is None
    assert not (tmp_path / "x.png").exists()


def test_input_checks(tmp_path):
    out = str(tmp_path / "out")
    with pytest.raises(sweep.SweepError, match="give at least one folding"):
        sweep.sweep(MODEL, "asic", [], output=out)
    with pytest.raises(sweep.SweepError, match="a folding is given twice"):
        sweep.sweep(MODEL, "asic", ["unrolled", "unrolled"], output=out)
    with pytest.raises(sweep.SweepError, match=r"fold '0:3,6': .*PE 3 must divide"):
        sweep.sweep(MODEL, "asic", ["0:3,6"], output=out)
    with pytest.raises(sweep.SweepError, match="jobs must be a positive integer, not 0"):
        sweep.sweep(MODEL, "asic", ["unrolled"], output=out, jobs=0)
    with pytest.raises(errors.SynthInputError, match="unknown target 'fpga'"):
        sweep.sweep(MODEL, "fpga", ["unrolled"], output=out)
    assert not os.path.exists(out)


def test_cli_bad_input(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert cli.main(["sweep", MODEL, "--target", "asic", "--folds", "0:3,6", "-o", out]) == 2
    assert "must divide" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", MODEL, "--target", "fpga", "--folds", "unrolled"])
    assert exit_info.value.code == 2


@pytest.mark.tools
def test_sweep_ice40(tmp_path):
    folds = ["unrolled", "0:1,3;1:1,2"]
    summary = sweep.sweep(MODEL, "ice40-up5k", folds, output=str(tmp_path), jobs=2)
    assert [p["fold"] for p in summary["points"]] == folds
    assert (summary["size_unit"], summary["throughput_unit"]) == ("LUTs", "inferences/s")
    for point in summary["points"]:
        assert "error" not in point, point.get("error")
        with open(point["report"]) as f:
            report = json.load(f)
        # Each point's figures are its own synthesis report's.
        assert point["size"] == report["resources"]["accelerator"]["luts"]
        assert point["throughput"] == report["performance"]["inferences_per_second"]
        assert point["initiation_interval"] == report["performance"]["initiation_interval"]
    unrolled, folded = summary["points"]
    assert folded["initiation_interval"] > unrolled["initiation_interval"]
    front = sweep.pareto_front([(p["size"], p["throughput"]) for p in summary["points"]])
    assert [p["front"] for p in summary["points"]] == [k in front for k in range(2)]
    with open(tmp_path / "sweep-ice40-up5k.json") as f:
        assert json.load(f) == summary
    assert (tmp_path / "sweep-ice40-up5k.md").read_text() == sweep.format_markdown(summary)
    if summary["plot"] is not None:
        assert (tmp_path / "sweep-ice40-up5k.png").exists()
    else:
        assert "matplotlib is not installed" in summary["plot_message"]


@pytest.mark.tools
def test_cli_sweep_asic(tmp_path, capsys):
    out = str(tmp_path / "out")
    args = ["sweep", MODEL, "--target", "asic", "--folds", "unrolled", "1,1", "-o", out]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "## Sweep of tiny-mlp on asic" in printed
    assert "| fold | II | latency | NAND2 equivalents |" in printed
    assert os.path.isfile(os.path.join(out, "unrolled", "synth-asic.json"))
    assert os.path.isfile(os.path.join(out, "1_1", "tiny-mlp.v"))
