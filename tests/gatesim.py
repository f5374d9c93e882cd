"""Gate-level simulation of an ECP5 netlist: a Yosys JSON netlist as an accelerator folder.

:func:`gate_folder` writes a copy of an accelerator folder whose Verilog is the netlist's
(``write_verilog``), Yosys's ECP5 cell models (``cells_sim.v``, its DP16KD declaration left out)
and ``tests/data/dp16kd_model.v``; ``sim.runner.run`` then checks it against the folder's golden
vectors like any accelerator.
"""

import os
import re
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
DP16KD_MODEL = os.path.join(HERE, "data", "dp16kd_model.v")


def yosys_share():
    """The data folder of the native Yosys on PATH (``PREFIX/share/yosys``), or None."""
    yosys = shutil.which("yosys")
    if yosys is None:
        return None
    share = os.path.join(
        os.path.dirname(os.path.dirname(os.path.realpath(yosys))), "share", "yosys"
    )
    return share if os.path.isfile(os.path.join(share, "ecp5", "cells_sim.v")) else None


def ecp5_cells(share):
    """``cells_sim.v`` of Yosys's ECP5 library with its includes inlined and the DP16KD
    module (a declaration without behaviour) taken out."""
    folder = os.path.join(share, "ecp5")
    with open(os.path.join(folder, "cells_sim.v")) as f:
        text = f.read()

    def inline(match):
        with open(os.path.join(folder, match.group(1))) as f:
            return f.read()

    text = re.sub(r'`include "([^"]+)"', inline, text)
    text, count = re.subn(r"\bmodule DP16KD\b.*?\bendmodule\b", "", text, flags=re.S)
    assert count == 1, "cells_sim.v has no DP16KD module to replace"
    return text


def gate_folder(accelerator_dir, netlist_json, destination, share):
    """A copy of ``accelerator_dir`` in ``destination`` simulating ``netlist_json``."""
    os.makedirs(destination, exist_ok=True)
    verilog_name = None
    for name in os.listdir(accelerator_dir):
        if name.endswith(".v"):
            verilog_name = name
        elif name.endswith((".json", ".npz")) and os.path.isfile(
            os.path.join(accelerator_dir, name)
        ):
            shutil.copy(os.path.join(accelerator_dir, name), destination)
    assert verilog_name, f"{accelerator_dir} holds no Verilog"
    netlist_v = os.path.join(destination, "netlist.v")
    subprocess.run(
        ["yosys", "-q", "-p", f"read_json {netlist_json}; write_verilog -noattr {netlist_v}"],
        check=True,
        capture_output=True,
    )
    with open(netlist_v) as f:
        netlist = f.read()
    with open(DP16KD_MODEL) as f:
        model = f.read()
    with open(os.path.join(destination, verilog_name), "w") as f:
        f.write(netlist + "\n" + ecp5_cells(share) + "\n" + model)
    return destination
