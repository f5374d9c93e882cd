"""Lint of emitted Verilog: Verilator's lint and Yosys's hierarchy check, where installed."""

import shutil
import subprocess


def lint(verilog_path, top):
    if shutil.which("verilator"):
        proc = subprocess.run(
            [
                "verilator",
                "--lint-only",
                "-Wno-fatal",
                "-Wno-WIDTH",
                "--top-module",
                top,
                str(verilog_path),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    yosys = shutil.which("yosys")
    if yosys:
        proc = subprocess.run(
            [yosys, "-q", "-p", f"read_verilog {verilog_path}; hierarchy -check -top {top}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
