"""ECP5 block RAM output registers: flip-flops behind a DP16KD moved into the block.

Yosys 0.23 maps every DP16KD with ``REGMODE = "NOREG"``: the read data leaves the block 5.8 ns
after the clock edge, and the register the folded engine puts right behind it (``hw.folded``,
``weight_word`` and ``threshold_word``) sits in the fabric, often far from the block. A
DP16KD's own output register does the same job at the block's edge. :func:`absorb` rewrites a
Yosys JSON netlist (``write_json``) so that, for every read port whose data bits each drive one
flip-flop and nothing else, those flip-flops become the port's output register:
``REGMODE_x = "OUTREG"``, their clock enable on ``OCEx`` (inverted through ``OCExMUX`` where the
flip-flops' is), and each flip-flop's output net driven by the block's data pin instead.

A port is absorbed only where that keeps the circuit the same, cycle for cycle:

- every connected data bit of the port drives exactly one cell input, the ``DI`` of a
  ``TRELLIS_FF``, and is not a port of its module;
- those flip-flops share the block port's clock (same net, both on its rising edge) and one
  clock enable (the same net and polarity, or none);
- they have no set or reset (``LSR`` unused or tied to 0, reset value 0), nor has the port
  (``RSTx`` tied to 0), and global set/reset is disabled on both;
- up to 18 bits wide, ports A and B are absorbed one by one; in the 36-bit (pseudo dual-port)
  mode the read port is B and its register holds all 36 bits, so all of them or none.

Everything else is left as it was. The rewrite touches only the netlist handed to nextpnr; the
simulated Verilog is the compiler's, with the register in the fabric, and the test suite
simulates both netlists with one DP16KD model to show they agree.
"""

import json
import os
import tempfile

__all__ = ["absorb", "absorb_file"]

_DATA_BITS = 18  # DOx0 .. DOx17


def _string(value):
    """A string parameter of Yosys's JSON (a trailing space marks one made of 0s and 1s)."""
    return value.rstrip(" ") if isinstance(value, str) else value


def _number(value):
    """An integer parameter of Yosys's JSON (a binary string)."""
    return int(value, 2) if isinstance(value, str) else int(value)


def _receivers(module):
    """Net bit -> the (cell name, port) inputs it drives, and the set of bits on module ports."""
    receivers = {}
    for name, cell in module.get("cells", {}).items():
        directions = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            if directions.get(port) != "input":
                continue
            for bit in bits:
                if isinstance(bit, int):
                    receivers.setdefault(bit, []).append((name, port))
    on_ports = {
        bit
        for port in module.get("ports", {}).values()
        for bit in port.get("bits", [])
        if isinstance(bit, int)
    }
    return receivers, on_ports


def _flip_flop_enable(cell):
    """``(enable bit, inverted)`` of a TRELLIS_FF, or ``None`` without an enable, or the
    string ``"no"`` if it cannot go into a block's output register."""
    params = cell.get("parameters", {})
    conns = cell.get("connections", {})
    if _string(params.get("CLKMUX", "CLK")) != "CLK":
        return "no"
    if _string(params.get("GSR", "DISABLED")) != "DISABLED":
        return "no"
    if _string(params.get("REGSET", "RESET")) != "RESET":
        return "no"
    lsr = conns.get("LSR", ["0"])
    lsr_mux = _string(params.get("LSRMUX", "LSR"))
    if not ((lsr_mux == "LSR" and lsr == ["0"]) or (lsr_mux == "INV" and lsr == ["1"])):
        return "no"
    ce_mux = _string(params.get("CEMUX", "1"))
    ce = conns.get("CE")
    if ce_mux in ("1", "") or ce is None or (ce_mux == "CE" and ce == ["1"]):
        return None
    if ce_mux == "INV" and ce == ["0"]:
        return None
    if ce_mux in ("CE", "INV") and len(ce) == 1:
        return (ce[0], ce_mux == "INV")
    return "no"


def _read_ports(block):
    """The read ports of a DP16KD: ``(clock pin, enable pin, data pins, REGMODE parameters)``.

    Up to 18 bits wide, ports A and B are each one. In the 36-bit (pseudo dual-port) mode, the
    read port is B and its data the 36 pins of both sides, behind one output register (as
    nextpnr maps a ``PDPW16KD``: both REGMODEs from one, the read enable on ``OCEB``).
    """
    params = block["parameters"]
    widths = [_number(params.get(f"DATA_WIDTH_{p}", _DATA_BITS)) for p in "AB"]
    pins = {p: [f"DO{p}{k}" for k in range(_DATA_BITS)] for p in "AB"}
    if widths == [36, 36]:
        return [("B", pins["A"] + pins["B"], ["REGMODE_A", "REGMODE_B"])]
    return [
        (p, pins[p], [f"REGMODE_{p}"]) for p, w in zip("AB", widths, strict=True) if w <= _DATA_BITS
    ]


def _absorb_port(module, block, port, pins, regmodes, receivers, on_ports):
    """Move the flip-flops behind ``pins`` of ``block``'s read port ``port`` ("A" or "B")
    into its output register; returns the names of the flip-flops removed (empty if the port
    does not qualify)."""
    cells = module["cells"]
    params, conns = block["parameters"], block["connections"]
    if any(_string(params.get(r, "NOREG")) != "NOREG" for r in regmodes):
        return []
    if _string(params.get(f"CLK{port}MUX", f"CLK{port}")) != f"CLK{port}":
        return []
    if _string(params.get("GSR", "DISABLED")) != "DISABLED":
        return []
    if any(conns.get(f"RST{p}", ["0"]) != ["0"] for p in "AB"):
        return []
    clock = conns.get(f"CLK{port}", ["0"])
    if len(clock) != 1 or not isinstance(clock[0], int):
        return []
    moved, enable = [], "unset"
    for pin in pins:
        bits = conns.get(pin)
        if not bits:
            continue
        (bit,) = bits
        if not isinstance(bit, int):
            return []
        targets = receivers.get(bit, [])
        if not targets:
            continue  # a bit nobody reads
        if len(targets) != 1 or bit in on_ports:
            return []
        (name, ff_pin), ff = targets[0], cells[targets[0][0]]
        if ff["type"] != "TRELLIS_FF" or ff_pin != "DI":
            return []
        if ff["connections"].get("CLK") != clock:
            return []
        this = _flip_flop_enable(ff)
        if this == "no" or (enable != "unset" and this != enable):
            return []
        enable = this
        moved.append((pin, name))
    if not moved:
        return []
    for pin, name in moved:
        ff = cells.pop(name)
        conns[pin] = ff["connections"]["Q"]
    if enable is None:
        conns[f"OCE{port}"] = ["1"]
        params[f"OCE{port}MUX"] = f"OCE{port}"
    else:
        conns[f"OCE{port}"] = [enable[0]]
        params[f"OCE{port}MUX"] = "INV" if enable[1] else f"OCE{port}"
    for regmode in regmodes:
        params[regmode] = "OUTREG"
    return [name for _, name in moved]


def absorb(netlist):
    """Rewrite a Yosys JSON netlist (a dict, changed in place) as the module docstring says.

    Returns ``{"ports": read ports absorbed, "flip_flops": flip-flops removed}``.
    """
    ports = flip_flops = 0
    for module in netlist.get("modules", {}).values():
        cells = module.get("cells", {})
        blocks = [name for name, cell in cells.items() if cell.get("type") == "DP16KD"]
        if not blocks:
            continue
        receivers, on_ports = _receivers(module)
        for name in blocks:
            for port, pins, regmodes in _read_ports(cells[name]):
                removed = _absorb_port(
                    module, cells[name], port, pins, regmodes, receivers, on_ports
                )
                if removed:
                    ports += 1
                    flip_flops += len(removed)
    return {"ports": ports, "flip_flops": flip_flops}


def absorb_file(source, destination):
    """:func:`absorb` on the JSON netlist file ``source``, written to ``destination`` (which
    may be the same file: it is replaced only once the new netlist is complete)."""
    with open(source) as f:
        netlist = json.load(f)
    counts = absorb(netlist)
    folder = os.path.dirname(os.path.abspath(destination))
    fd, scratch = tempfile.mkstemp(dir=folder, suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(netlist, f)
        os.replace(scratch, destination)
    except BaseException:
        os.unlink(scratch)
        raise
    return counts
