"""gen.flow.outreg: flip-flops behind a DP16KD moved into its output register.

The rewrite is checked on small hand-made netlists (what it moves, and that it leaves every
netlist it must not touch exactly as it was), then on a real one: Yosys's netlist of a folded
network with its ROMs in block RAM, before and after, each simulated at gate level (Yosys's
ECP5 cell models and a DP16KD model) against the golden vectors.
"""

import copy
import os
import shutil

import pytest
from gatesim import gate_folder, yosys_share

from gen import folder, network
from gen.flow import outreg, synth
from sim import runner

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

CLK, CE, RST, OTHER_CLK = 2, 3, 4, 5


def _ff(d, q, *, ce=CE, cemux="INV", clk=CLK, lsr=None, lsrmux="LSR", regset="RESET"):
    connections = {"CLK": [clk], "DI": [d], "Q": [q]}
    if ce is not None:
        connections["CE"] = [ce]
    if lsr is not None:
        connections["LSR"] = [lsr]
    return {
        "type": "TRELLIS_FF",
        "parameters": {
            "CEMUX": cemux,
            "CLKMUX": "CLK",
            "GSR": "DISABLED",
            "LSRMUX": lsrmux,
            "REGSET": regset,
        },
        "port_directions": {
            "CLK": "input",
            "CE": "input",
            "DI": "input",
            "LSR": "input",
            "Q": "output",
        },
        "connections": connections,
    }


def _block(width=18, *, port="A", data=100, bits=4):
    """A DP16KD reading ``bits`` data bits on ``port`` (36: both sides, read on B)."""
    connections = {f"CLK{p}": [CLK] for p in "AB"}
    connections.update({f"RST{p}": ["0"] for p in "AB"})
    connections.update({f"OCE{p}": ["1"] for p in "AB"})
    directions = {name: "input" for name in connections}
    pins = (
        [f"DOA{k}" for k in range(18)] + [f"DOB{k}" for k in range(18)]
        if width == 36
        else [f"DO{port}{k}" for k in range(18)]
    )
    for k, pin in enumerate(pins[:bits]):
        connections[pin] = [data + k]
        directions[pin] = "output"
    return {
        "type": "DP16KD",
        "parameters": {
            "DATA_WIDTH_A": format(width, "032b"),
            "DATA_WIDTH_B": format(width, "032b"),
            "REGMODE_A": "NOREG",
            "REGMODE_B": "NOREG",
            "CLKAMUX": "CLKA",
            "CLKBMUX": "CLKB",
            "GSR": "DISABLED",
        },
        "port_directions": directions,
        "connections": connections,
    }, pins[:bits]


def _netlist(block, flip_flops, *, ports=None):
    cells = {"rom": block}
    cells.update(flip_flops)
    return {"modules": {"top": {"ports": ports or {}, "cells": cells, "netnames": {}}}}


def _register(pins, data=100, q=200, **ff):
    return {f"ff{k}": _ff(data + k, q + k, **ff) for k in range(len(pins))}


def test_a_port_whose_bits_each_drive_one_flip_flop_takes_them_into_its_register():
    block, pins = _block()
    netlist = _netlist(block, _register(pins))
    assert outreg.absorb(netlist) == {"ports": 1, "flip_flops": 4}
    cells = netlist["modules"]["top"]["cells"]
    assert list(cells) == ["rom"]
    rom = cells["rom"]
    assert rom["parameters"]["REGMODE_A"] == "OUTREG"
    assert rom["parameters"]["REGMODE_B"] == "NOREG"
    # the flip-flops loaded while CE was low (CEMUX INV): so does the output register
    assert rom["connections"]["OCEA"] == [CE]
    assert rom["parameters"]["OCEAMUX"] == "INV"
    assert [rom["connections"][p] for p in pins] == [[200], [201], [202], [203]]


def test_flip_flops_without_an_enable_load_every_cycle():
    block, pins = _block(port="B")
    netlist = _netlist(block, _register(pins, ce=None, cemux="1"))
    assert outreg.absorb(netlist)["ports"] == 1
    rom = netlist["modules"]["top"]["cells"]["rom"]
    assert rom["parameters"]["REGMODE_B"] == "OUTREG"
    assert rom["connections"]["OCEB"] == ["1"]
    assert rom["parameters"]["OCEBMUX"] == "OCEB"


def test_the_36_bit_mode_moves_both_sides_into_the_read_port_register():
    block, pins = _block(36, bits=36)
    netlist = _netlist(block, _register(pins, cemux="CE"))
    assert outreg.absorb(netlist) == {"ports": 1, "flip_flops": 36}
    rom = netlist["modules"]["top"]["cells"]["rom"]
    assert rom["parameters"]["REGMODE_A"] == rom["parameters"]["REGMODE_B"] == "OUTREG"
    assert rom["connections"]["OCEB"] == [CE]
    assert rom["parameters"]["OCEBMUX"] == "OCEB"
    assert rom["connections"]["DOB17"] == [235]


def _unchanged(netlist):
    before = copy.deepcopy(netlist)
    assert outreg.absorb(netlist) == {"ports": 0, "flip_flops": 0}
    assert netlist == before


def _one_changed(change, width=18, bits=4):
    """A netlist like the absorbable one, with ``change(cells, pins)`` applied to it."""
    block, pins = _block(width, bits=bits)
    netlist = _netlist(block, _register(pins))
    change(netlist["modules"]["top"], pins)
    return netlist


CASES = {
    # one flip-flop with another enable, or the same enable of the other polarity
    "enable": lambda top, pins: top["cells"]["ff2"]["connections"].update(CE=[9]),
    "enable polarity": lambda top, pins: top["cells"]["ff1"]["parameters"].update(CEMUX="CE"),
    "clock": lambda top, pins: top["cells"]["ff0"]["connections"].update(CLK=[OTHER_CLK]),
    # a reset on a flip-flop (the block's own is tied off), or on the block's read port
    "flip-flop reset": lambda top, pins: top["cells"]["ff3"]["connections"].update(LSR=[RST]),
    "block reset": lambda top, pins: top["cells"]["rom"]["connections"].update(RSTA=[RST]),
    "set value": lambda top, pins: top["cells"]["ff0"]["parameters"].update(REGSET="SET"),
    "global reset": lambda top, pins: top["cells"]["ff0"]["parameters"].update(GSR="ENABLED"),
    # a data bit read by a second cell, by a LUT instead, or leaving the module
    "second reader": lambda top, pins: top["cells"].update(
        extra={
            "type": "LUT4",
            "parameters": {},
            "port_directions": {"A": "input", "Z": "output"},
            "connections": {"A": [101], "Z": [300]},
        }
    ),
    "lut": lambda top, pins: top["cells"]["ff1"].update(type="LUT4"),
    "module port": lambda top, pins: top["ports"].update(
        out={"direction": "output", "bits": [102]}
    ),
    "register already used": lambda top, pins: top["cells"]["rom"]["parameters"].update(
        REGMODE_A="OUTREG"
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_port_that_does_not_qualify_is_left_as_it_was(case):
    _unchanged(_one_changed(CASES[case]))


def test_in_the_36_bit_mode_one_bit_that_does_not_qualify_keeps_all():
    _unchanged(_one_changed(CASES["enable"], width=36, bits=36))
    netlist = _one_changed(
        lambda top, pins: top["cells"]["ff30"]["connections"].update(CE=[9]), width=36, bits=36
    )
    _unchanged(netlist)


def test_the_file_is_replaced_only_by_a_complete_netlist(tmp_path):
    import json

    block, pins = _block()
    path = tmp_path / "netlist.json"
    path.write_text(json.dumps(_netlist(block, _register(pins))))
    assert outreg.absorb_file(path, path) == {"ports": 1, "flip_flops": 4}
    assert list(json.loads(path.read_text())["modules"]["top"]["cells"]) == ["rom"]
    assert os.listdir(tmp_path) == ["netlist.json"]


SHARE = yosys_share()


@pytest.mark.skipif(
    SHARE is None or shutil.which("iverilog") is None, reason="native Yosys or iverilog missing"
)
def test_a_folded_network_is_the_same_circuit_with_its_block_rams_registers(tmp_path):
    # digits-mlp folded 2x4 with every ROM in block RAM: 18- and 36-bit DP16KD read ports
    net = network.load(os.path.join(ROOT, "models", "digits-mlp.tnn.json"))
    acc_dir = str(tmp_path / "acc")
    folder.compile_to_folder(net, acc_dir, fold="2,4", rom="block", vectors=10)
    report = synth.run(acc_dir, "ecp5-25k", place_and_route=False, force=True)
    work = os.path.join(acc_dir, "synth-ecp5-25k")
    absorbed = report["block_ram_output_registers"]
    assert absorbed["ports"] == 3 and absorbed["flip_flops"] > 0
    assert any("DP16KD read ports" in note for note in report["notes"])
    for tag, netlist in (("yosys", "netlist-yosys.json"), ("absorbed", "netlist.json")):
        gate = gate_folder(acc_dir, os.path.join(work, netlist), str(tmp_path / tag), SHARE)
        result = runner.run(gate, sim="icarus")
        assert result.passed and result.mismatches == 0, (tag, result.summary())
