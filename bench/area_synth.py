"""Synthesis and simulation helpers of the area benchmark: Yosys cell counts, Icarus checks."""

import os
import re
import shutil
import subprocess
import tempfile

__all__ = ["synth_counts", "iverilog_eval", "yosys_eval", "TARGETS"]

LC_PATTERN = re.compile(r"ICESTORM_LC:\s+(\d+)/")

# Per target: the Yosys script tail, and which cells are LUTs and which carry cells.
TARGETS = {
    "ice40": ("synth_ice40 -top {top}", ("SB_LUT4",), ("SB_CARRY",)),
    # PFUMX and L6MUX21, the slices' multiplexers above their LUT4s, are not LUTs.
    "ecp5": ("synth_ecp5 -top {top}", ("LUT4",), ("CCU2C",)),
    "xilinx": (
        "synth_xilinx -flatten -top {top}",
        # INV is a LUT1 on the device.
        ("INV", "LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"),
        ("CARRY4", "CARRY8"),
    ),
}


def synth_counts(verilog, top, target, *, workdir=None, timeout=3600):
    """LUT and carry cell counts of ``verilog`` (text) synthesized for ``target``.

    For ``ice40`` also ``lcs``: the logic cells (``ICESTORM_LC``) of the netlist as
    nextpnr-ice40 packs it (``--pack-only``; None without nextpnr-ice40). A logic cell holds one
    LUT4 and one carry; carries without a LUT, and the cells that feed a carry chain's carry-in
    and take out its carry-out, take logic cells too, so this is the area a device gives it.
    """
    script, luts, carries = TARGETS[target]
    own = workdir is None
    workdir = tempfile.mkdtemp(prefix="tnn-area-") if own else workdir
    try:
        path = os.path.join(workdir, f"{top}.v")
        with open(path, "w") as f:
            f.write(verilog)
        cmd = [
            "yosys",
            "-q",
            "-p",
            f"read_verilog {path}; {script.format(top=top)}; tee -o {workdir}/stat.txt stat"
            + ("; write_json netlist.json" if target == "ice40" else ""),
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout, cwd=workdir)
        with open(os.path.join(workdir, "stat.txt")) as f:
            stat = f.read()
        lcs = _pack_ice40(workdir, timeout) if target == "ice40" else None
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    if "=== design hierarchy ===" in stat:
        # Per-module sections come first; the totals follow this header.
        stat = stat.split("=== design hierarchy ===", 1)[1]
    cells = {}
    for name, count in re.findall(r"^\s+(\S+)\s+(\d+)\s*$", stat, re.M):
        cells[name] = cells.get(name, 0) + int(count)
    return {
        "luts": sum(cells.get(c, 0) for c in luts),
        "carry": sum(cells.get(c, 0) for c in carries),
        "cells": cells,
        **({"lcs": lcs} if target == "ice40" else {}),
    }


def _pack_ice40(workdir, timeout):
    """nextpnr-ice40's packed logic cells of ``workdir/netlist.json``, or None."""
    if shutil.which("nextpnr-ice40") is None:
        return None
    # Packing does not depend on the part's size: the count is printed even when it exceeds it.
    res = subprocess.run(
        ["nextpnr-ice40", "--hx8k", "--package", "ct256", "--json", "netlist.json"]
        + ["--pack-only", "--pcf-allow-unconstrained"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=workdir,
    )
    found = LC_PATTERN.search(res.stdout + res.stderr)
    return int(found.group(1)) if found else None


def yosys_eval(verilog, top, inputs, outputs, vectors, *, timeout=3600):
    """Evaluate a combinational Verilog module on ``vectors`` with Yosys's ``eval``.

    The same interface as :func:`iverilog_eval`. Icarus takes tens of minutes to compile
    designs of several megabytes of Verilog; Yosys reads and evaluates them in about a minute.
    """
    workdir = tempfile.mkdtemp(prefix="tnn-ev-")
    try:
        path = os.path.join(workdir, "dut.v")
        with open(path, "w") as f:
            f.write(verilog)
        commands = [f"read_verilog {path}", f"hierarchy -top {top}", "proc", "flatten"]
        for v in vectors:
            sets = " ".join(
                f"-set {n} {w}'h{int(x) & ((1 << w) - 1):x}"
                for (n, w), x in zip(inputs, v, strict=True)
            )
            shows = " ".join(f"-show {n}" for n, _ in outputs)
            commands.append(f"tee -q -a {workdir}/eval.txt eval {sets} {shows}")
        script = os.path.join(workdir, "eval.ys")
        with open(script, "w") as f:
            f.write("\n".join(commands) + "\n")
        subprocess.run(
            ["yosys", "-q", "-s", script], check=True, capture_output=True, timeout=timeout
        )
        with open(os.path.join(workdir, "eval.txt")) as f:
            text = f.read()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    found = re.findall(r"Eval result: \\(\S+) = (\d+)'([01xz]+)\.", text)
    names = [n for n, _ in outputs]
    results = []
    for k in range(0, len(found), len(names)):
        row = {name: bits for name, _, bits in found[k : k + len(names)]}
        results.append([int(row[n].replace("x", "0").replace("z", "0"), 2) for n in names])
    if len(results) != len(vectors) or any("x" in bits or "z" in bits for _, _, bits in found):
        raise RuntimeError(f"Yosys eval of {top} gave {len(results)} results with undefined bits")
    return results


def iverilog_eval(verilog, top, inputs, outputs, vectors, *, workdir=None):
    """Evaluate a combinational Verilog module on ``vectors`` with Icarus.

    ``inputs`` and ``outputs`` are lists of ``(port name, width)``; each vector is a list of
    unsigned input words in the order of ``inputs``. Returns one list of unsigned output words
    per vector.
    """
    own = workdir is None
    workdir = tempfile.mkdtemp(prefix="tnn-iv-") if own else workdir
    try:
        dut = os.path.join(workdir, "dut.v")
        with open(dut, "w") as f:
            f.write(verilog)
        vec = os.path.join(workdir, "vectors.hex")
        total_in = sum(w for _, w in inputs)
        with open(vec, "w") as f:
            for v in vectors:
                word = 0
                shift = 0
                for (_, w), x in zip(inputs, v, strict=True):
                    word |= (int(x) & ((1 << w) - 1)) << shift
                    shift += w
                f.write(f"{word:x}\n")
        decl = "\n".join(f"  reg [{w - 1}:0] {n};" for n, w in inputs)
        decl += "\n" + "\n".join(f"  wire [{w - 1}:0] {n};" for n, w in outputs)
        conns = ", ".join(f".{n}({n})" for n, _ in inputs + outputs)
        unpack = []
        shift = 0
        for n, w in inputs:
            unpack.append(f"    {n} = mem[i][{shift + w - 1}:{shift}];")
            shift += w
        fmt = " ".join("%0h" for _ in outputs)
        outs = ", ".join(n for n, _ in outputs)
        tb = f"""
module tb;
{decl}
  reg [{total_in - 1}:0] mem [0:{len(vectors) - 1}];
  integer i;
  {top} dut ({conns});
  initial begin
    $readmemh("{vec}", mem);
    for (i = 0; i < {len(vectors)}; i = i + 1) begin
{chr(10).join(unpack)}
      #1 $display("{fmt}", {outs});
    end
    $finish;
  end
endmodule
"""
        tbp = os.path.join(workdir, "tb.v")
        with open(tbp, "w") as f:
            f.write(tb)
        exe = os.path.join(workdir, "sim.vvp")
        subprocess.run(
            ["iverilog", "-g2012", "-o", exe, "-s", "tb", tbp, dut],
            check=True,
            capture_output=True,
        )
        res = subprocess.run(["vvp", "-n", exe], check=True, capture_output=True, text=True)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    lines = [ln for ln in res.stdout.splitlines() if ln and not ln.startswith(("VCD", "$"))]
    lines = [ln for ln in lines if re.fullmatch(r"[0-9a-fA-FxXzZ ]+", ln)]
    return [[int(t, 16) for t in ln.split()] for ln in lines[: len(vectors)]]
