"""Reading the tools' outputs, and the synthesis report built from them.

Everything here is a pure function of text or JSON the tools wrote, so that it is tested on
saved real outputs as well as on fresh runs: Yosys's JSON netlist (cell counts per module and
their hierarchy), Yosys's ``stat -liberty`` text (cell area), nextpnr's ``--report`` JSON and its
log (Fmax, utilization), and the ``--version`` banners.

Cell categories
---------------
Each family's primitive cells are sorted into the report's figures by :data:`CELL_CATEGORIES`:
``luts`` (iCE40 ``SB_LUT4``, ECP5 ``LUT4``, Xilinx ``LUT1``..``LUT6``), ``carry`` (``SB_CARRY``,
``CCU2C``, ``CARRY4``), ``ffs``, ``bram`` (block RAM primitives), ``dsp``, ``lutram``
(distributed RAM), ``mux`` (wide-function multiplexers: ECP5 ``PFUMX``/``L6MUX21``, Xilinx
``MUXF7``/``MUXF8``), ``io`` (pad buffers) and, for the ``asic`` target, ``gates``. A cell of no
category counts under ``other``. An ECP5 ``CCU2C`` holds two LUT4s besides its carry logic; it is
counted once, under ``carry``.

NAND2 equivalents
-----------------
For the ``asic`` target without a Liberty file, Yosys maps the design to simple gates and
flip-flops, and each cell is weighted by :data:`NAND2_WEIGHTS`: the area of the matching X1 cell
of the Nangate 45 nm Open Cell Library divided by the area of its ``NAND2_X1`` (0.798 um^2).
Gates that library lacks are weighted as the cells that make them (``ANDNOT`` = ``INV`` +
``NOR2``).

=============================  ==========================  ======
Yosys cell                     library cell (area, um^2)   NAND2
=============================  ==========================  ======
``$_BUF_``                     ``BUF_X1`` (0.798)          1.00
``$_NOT_``                     ``INV_X1`` (0.532)          0.67
``$_NAND_``, ``$_NOR_``        ``NAND2_X1``, ``NOR2_X1``   1.00
``$_AND_``, ``$_OR_``          ``AND2_X1``, ``OR2_X1``     1.33
``$_ANDNOT_``, ``$_ORNOT_``    ``INV_X1`` + ``NOR2_X1``    1.67
``$_XOR_``, ``$_XNOR_``        ``XOR2_X1``, ``XNOR2_X1``   2.00
``$_MUX_``                     ``MUX2_X1`` (1.862)         2.33
``$_DFF_P_``                   ``DFF_X1`` (4.522)          5.67
``$_DFF_PP0_``, ``$_DFF_PP1_``  ``DFFR_X1``, ``DFFS_X1``    6.67
=============================  ==========================  ======

Synchronous resets and enables are turned into gates before mapping (``dfflegalize``), so every
flip-flop is one of the three above.
"""

import json
import math
import os
import re
from collections import Counter

__all__ = [
    "CATEGORIES",
    "CELL_CATEGORIES",
    "NAND2_WEIGHTS",
    "ReportError",
    "categorize",
    "format_markdown",
    "hierarchy_area",
    "hierarchy_totals",
    "liberty_sequential_cells",
    "nand2_equivalents",
    "parse_liberty_area",
    "parse_netlist",
    "parse_nextpnr_log",
    "parse_nextpnr_report",
    "parse_nextpnr_utilization",
    "parse_version",
]

CATEGORIES = ("luts", "carry", "ffs", "bram", "dsp", "lutram", "mux", "io", "gates", "other")

# Cell type -> category, per family. Patterns are full-match regular expressions.
CELL_CATEGORIES = {
    "ice40": [
        (r"SB_LUT4", "luts"),
        (r"SB_CARRY", "carry"),
        (r"SB_DFF\w*", "ffs"),
        (r"SB_RAM40_4K\w*|SB_SPRAM256KA", "bram"),
        (r"SB_MAC16", "dsp"),
        (r"SB_IO\w*|SB_GB_IO", "io"),
    ],
    "ecp5": [
        (r"LUT4", "luts"),
        (r"CCU2C", "carry"),
        (r"TRELLIS_FF", "ffs"),
        (r"DP16KD|PDPW16KD", "bram"),
        (r"MULT18X18D|ALU54B|MULT9X9D|ALU24B", "dsp"),
        (r"TRELLIS_DPR16X4|DPR16X4", "lutram"),
        (r"PFUMX|L6MUX21", "mux"),
        (r"TRELLIS_IO|[IO]B|BB", "io"),
    ],
    "xilinx": [
        (r"LUT[1-6]", "luts"),
        (r"CARRY4|CARRY8", "carry"),
        (r"FD[CPRS]E(_1)?|FD[CPRS]?(_1)?|LD[CP]E?", "ffs"),
        (r"RAMB(18|36)E[12]\w*", "bram"),
        (r"DSP48E[12]?", "dsp"),
        (r"RAM(16|32|64|128|256)X1[SD]\w*|RAM32M\w*|RAM64M\w*|SRL16E|SRLC32E", "lutram"),
        (r"MUXF[78]", "mux"),
        (r"[IO]BUF\w*|IOBUF\w*|BUFG\w*", "io"),
    ],
    "asic": [
        (r"\$_(DFF|DFFE|SDFF|SDFFE|SDFFCE|DFFSR|DFFSRE|ALDFF|ALDFFE|DLATCH)\w*_", "ffs"),
        (r"\$_\w+_", "gates"),
    ],
}

NAND2_WEIGHTS = {
    "$_BUF_": 1.0,
    "$_NOT_": 0.532 / 0.798,
    "$_NAND_": 1.0,
    "$_NOR_": 1.0,
    "$_AND_": 1.064 / 0.798,
    "$_OR_": 1.064 / 0.798,
    "$_ANDNOT_": (0.532 + 0.798) / 0.798,
    "$_ORNOT_": (0.532 + 0.798) / 0.798,
    "$_XOR_": 1.596 / 0.798,
    "$_XNOR_": 1.596 / 0.798,
    "$_MUX_": 1.862 / 0.798,
    "$_DFF_P_": 4.522 / 0.798,
    "$_DFF_PP0_": 5.32 / 0.798,
    "$_DFF_PP1_": 5.32 / 0.798,
}


class ReportError(ValueError):
    """A tool's output could not be read (malformed, or from an unexpected tool version)."""


# --- Yosys ---------------------------------------------------------------------------------------


def parse_version(text):
    """A tool's version from its ``-V``/``--version`` output, shortened.

    ``"Yosys 0.23 (git sha1 7ce5011c24b)"`` stays as it is (build details after the hash, as
    YoWASP's builds print them, are dropped); nextpnr's banner becomes
    ``"nextpnr-ice40 0.4-1+b1"``. Lines YoWASP adds while it prepares a tool ("Preparing to
    run ...") are skipped.
    """
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("Preparing to run"):
            continue
        yosys = re.match(r"(Yosys \S+)(?: \(git sha1 ([0-9a-f]+))?", line)
        if yosys:
            return yosys.group(1) + (f" (git sha1 {yosys.group(2)})" if yosys.group(2) else "")
        nextpnr = re.match(
            r'"?(?:yowasp-)?(nextpnr-\w+)"? -- .*\(Version (?:nextpnr-)?([^)]+)\)', line
        )
        if nextpnr:
            return f"{nextpnr.group(1)} {nextpnr.group(2)}"
        return line
    raise ReportError("no version in the tool's output")


def parse_netlist(netlist):
    """Cell counts of each module of a Yosys JSON netlist (``write_json``).

    Parameters
    ----------
    netlist : dict or str
        The parsed JSON document, or its text.

    Returns
    -------
    dict
        ``{module name: {"cells": Counter(cell type -> count), "ports": {name: (direction,
        width)}}}`` for each module that is not a black box (library primitives are black
        boxes). Names lose a leading backslash. A cell whose type is another such module is an
        instance of it (hierarchy).

    Raises
    ------
    ReportError
        If the document is not a Yosys netlist.
    """
    if isinstance(netlist, str):
        try:
            netlist = json.loads(netlist)
        except json.JSONDecodeError as exc:
            raise ReportError(f"netlist is not JSON: {exc}") from None
    if not isinstance(netlist, dict) or not isinstance(netlist.get("modules"), dict):
        raise ReportError("netlist has no 'modules' (not a Yosys JSON netlist)")
    modules = {}
    for name, module in netlist["modules"].items():
        attributes = module.get("attributes", {})
        if _truthy(attributes.get("blackbox")) or _truthy(attributes.get("whitebox")):
            continue
        cells = Counter(_unescape(cell["type"]) for cell in module.get("cells", {}).values())
        ports = {
            _unescape(p): (d.get("direction"), len(d.get("bits", [])))
            for p, d in module.get("ports", {}).items()
        }
        modules[_unescape(name)] = {"cells": cells, "ports": ports}
    return modules


def _unescape(name):
    return name[1:] if name.startswith("\\") else name


def _truthy(value):
    # Yosys writes attribute values as binary strings ("00000000000000000000000000000001").
    if isinstance(value, str):
        return value.strip("0") != ""
    return bool(value)


def hierarchy_totals(modules, top):
    """Primitive cell counts of ``top`` with everything instantiated under it.

    Parameters
    ----------
    modules : dict
        From :func:`parse_netlist`.
    top : str
        Module name.

    Returns
    -------
    Counter
        Cell type -> count over the whole subtree; submodule instances are replaced by their
        contents.
    """
    memo = {}

    def total(name, stack):
        if name in memo:
            return memo[name]
        if name in stack:
            raise ReportError(f"netlist hierarchy is recursive at module {name!r}")
        counts = Counter()
        for cell_type, count in modules[name]["cells"].items():
            if cell_type in modules:
                for sub_type, sub_count in total(cell_type, stack | {name}).items():
                    counts[sub_type] += sub_count * count
            else:
                counts[cell_type] += count
        memo[name] = counts
        return counts

    if top not in modules:
        raise ReportError(f"module {top!r} is not in the netlist")
    return Counter(total(top, frozenset()))


def categorize(cells, family, *, sequential=None):
    """Sum cell counts into the report's categories for ``family``.

    ``sequential``, for the ``asic`` family mapped to a Liberty library, names the library's
    cells that hold state (:func:`liberty_sequential_cells`): those count as ``ffs``, the
    library's other cells as ``gates``.

    Returns
    -------
    dict
        ``{category: count}`` for every name in :data:`CATEGORIES`, plus ``"cells"``: the
        counts per cell type, sorted by name.
    """
    rules = [(re.compile(pattern), category) for pattern, category in CELL_CATEGORIES[family]]
    figures = dict.fromkeys(CATEGORIES, 0)
    for cell_type, count in cells.items():
        if sequential is not None and not cell_type.startswith("$"):
            figures["ffs" if cell_type in sequential else "gates"] += count
            continue
        for pattern, category in rules:
            if pattern.fullmatch(cell_type):
                figures[category] += count
                break
        else:
            figures["other"] += count
    figures["cells"] = dict(sorted(cells.items()))
    return figures


def nand2_equivalents(cells):
    """NAND2 equivalents of simple gates and flip-flops, by :data:`NAND2_WEIGHTS`.

    Raises
    ------
    ReportError
        If a cell type has no weight (the mapping left a cell the table does not know).
    """
    unknown = sorted(set(cells) - set(NAND2_WEIGHTS))
    if unknown:
        raise ReportError(f"no NAND2 weight for cell types {', '.join(unknown)}")
    return sum(NAND2_WEIGHTS[t] * n for t, n in cells.items())


_AREA = re.compile(r"Chip area for module '\\?([^']+)':\s*([0-9.eE+-]+)")


def parse_liberty_area(text):
    """Each module's own cell area from Yosys ``stat -liberty`` output.

    Returns
    -------
    dict
        ``{module: area}`` in the Liberty file's area unit, for the cells of each module itself
        (not its submodules; :func:`hierarchy_area` adds those up). Yosys leaves out modules
        with no cells of their own, or gives them 0.
    """
    areas = {name: float(value) for name, value in _AREA.findall(text)}
    if not areas:
        raise ReportError("no 'Chip area for module' lines in the Yosys stat output")
    return areas


def hierarchy_area(modules, top, areas):
    """The area of ``top`` with its submodules, from :func:`parse_liberty_area`'s figures."""

    def total(name):
        own = areas.get(name, 0.0)
        for cell_type, count in modules[name]["cells"].items():
            if cell_type in modules:
                own += count * total(cell_type)
        return own

    if top not in modules:
        raise ReportError(f"module {top!r} is not in the netlist")
    return total(top)


_LIBERTY_CELL = re.compile(r"\bcell\s*\(\s*\"?([^\s\")]+)\"?\s*\)")
_LIBERTY_STATE = re.compile(r"\b(ff|latch|ff_bank|latch_bank)\s*\(")


def liberty_sequential_cells(text):
    """Names of the cells of a Liberty library that hold state (an ``ff`` or ``latch`` group).

    A plain scan: each ``cell (NAME)`` group runs to the next one, and holds state if an
    ``ff``/``latch`` group appears in it.
    """
    starts = [(m.start(), m.group(1)) for m in _LIBERTY_CELL.finditer(text)]
    sequential = set()
    for (start, name), (end, _) in zip(starts, [*starts[1:], (len(text), "")], strict=True):
        if _LIBERTY_STATE.search(text, start, end):
            sequential.add(name)
    return sequential


# --- nextpnr -------------------------------------------------------------------------------------


def parse_nextpnr_report(report):
    """Fmax and utilization from nextpnr's ``--report`` JSON.

    Returns
    -------
    dict
        ``{"fmax": {clock: {"achieved_mhz": float, "constraint_mhz": float}}, "utilization":
        {bel type: {"used": int, "available": int}}}``.

    Raises
    ------
    ReportError
        If the document has neither section.
    """
    if isinstance(report, str):
        try:
            report = json.loads(report)
        except json.JSONDecodeError as exc:
            raise ReportError(f"nextpnr report is not JSON: {exc}") from None
    if not isinstance(report, dict) or ("fmax" not in report and "utilization" not in report):
        raise ReportError("nextpnr report has no 'fmax' or 'utilization'")
    fmax = {
        clock: {
            "achieved_mhz": float(entry["achieved"]),
            "constraint_mhz": float(entry["constraint"]),
        }
        for clock, entry in report.get("fmax", {}).items()
    }
    utilization = {
        bel: {"used": int(entry["used"]), "available": int(entry["available"])}
        for bel, entry in report.get("utilization", {}).items()
    }
    return {"fmax": fmax, "utilization": utilization}


_FMAX_LINE = re.compile(
    r"Max frequency for clock\s+'([^']+)':\s*([0-9.]+)\s*MHz\s*\((PASS|FAIL) at ([0-9.]+) MHz\)"
)


def parse_nextpnr_log(text):
    """Final Fmax per clock from a nextpnr log.

    nextpnr prints an estimate after placement and the figure after routing; the last line
    per clock is the routed one.

    Returns
    -------
    dict
        ``{clock: {"achieved_mhz": float, "constraint_mhz": float, "passed": bool}}``, empty if
        the log has no timing lines (e.g. a design without a clock).
    """
    fmax = {}
    for clock, achieved, verdict, constraint in _FMAX_LINE.findall(text):
        fmax[clock] = {
            "achieved_mhz": float(achieved),
            "constraint_mhz": float(constraint),
            "passed": verdict == "PASS",
        }
    return fmax


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$")


def parse_nextpnr_utilization(text):
    """Device utilization from a nextpnr log (its last "Device utilisation" table).

    nextpnr prints the table after packing, before it places; when a design is too big it
    stops there, so this is the figure a failed run still has.

    Returns
    -------
    dict
        ``{bel type: {"used": int, "available": int}}``, empty if the log has no table.
    """
    utilization = {}
    for block in text.split("Device utilisation:")[1:]:
        utilization = {}
        for line in block.splitlines()[1:]:
            match = _UTIL_LINE.match(line.strip("\n"))
            if not match:
                break
            bel, used, available = match.groups()
            utilization[bel] = {"used": int(used), "available": int(available)}
    return utilization


# --- Markdown ------------------------------------------------------------------------------------

# Report rows: (figure key, label) for the resource table.
_ROWS = {
    "ice40": [
        ("luts", "LUT4"),
        ("carry", "carry (SB_CARRY)"),
        ("ffs", "flip-flops"),
        ("bram", "block RAM (4 kbit)"),
        ("dsp", "DSP (SB_MAC16)"),
        ("io", "I/O pins"),
    ],
    "ecp5": [
        ("luts", "LUT4"),
        ("carry", "carry (CCU2C, 2 LUT4 each)"),
        ("mux", "wide muxes (PFUMX, L6MUX21)"),
        ("ffs", "flip-flops"),
        ("lutram", "LUT RAM (DPR16X4)"),
        ("bram", "block RAM (DP16KD, 18 kbit)"),
        ("dsp", "DSP (MULT18X18D, ALU54B)"),
        ("io", "I/O pins"),
    ],
    "xilinx": [
        ("luts", "LUT6 (LUT1..LUT6)"),
        ("carry", "carry (CARRY4)"),
        ("mux", "wide muxes (MUXF7, MUXF8)"),
        ("ffs", "flip-flops"),
        ("lutram", "LUT RAM / SRL"),
        ("bram", "block RAM (RAMB18/36)"),
        ("dsp", "DSP (DSP48E1)"),
        ("io", "I/O buffers"),
    ],
    "asic": [("gates", "gates"), ("ffs", "flip-flops"), ("nand2", "NAND2 equivalents")],
}

_PREDICTED = {"luts": "luts", "carry": "carry", "ffs": "ffs"}


def _num(value, digits=0):
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer() or digits:
        return f"{value:,.{digits or 1}f}"
    return f"{int(value):,}"


def _ratio(measured, predicted):
    if measured is None or not predicted:
        return None
    return measured / predicted


def _ratio_text(ratio):
    return "—" if ratio is None else f"{ratio:.2f}"


def _rate_text(per_second):
    if per_second is None:
        return "—"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_second >= scale:
            return f"{per_second / scale:.3g} {unit}"
    return f"{per_second:.3g}"


def _cycles(n):
    return f"{n} cycle" if n == 1 else f"{n} cycles"


def _row_for(key, label, report):
    """One row of the resource table: figure, total, [wrapper], [accelerator, pred., ratio], %."""
    res = report["resources"]
    predicted = report.get("predicted") or {}
    digits = 1 if key in ("nand2", "area") else 0
    row = [label, _num(res["total"].get(key), digits)]
    if res.get("wrapper") is not None:
        row.append(_num(res["wrapper"].get(key), digits))
    if res.get("accelerator") is not None:
        measured = res["accelerator"].get(key)
        row.append(_num(measured, digits))
        pkey = _PREDICTED.get(key)
        if key == "bram" and predicted.get("rom_bits") is not None:
            row += [f"{_num(predicted['rom_bits'])} ROM bits", "—"]
        else:
            pred = predicted.get(pkey) if pkey else None
            row += [_num(pred), _ratio_text(_ratio(measured, pred))]
    entry = report.get("utilization", {}).get(key)
    row.append(
        "—" if entry is None else f"{100 * entry['fraction']:.1f}% of {_num(entry['available'])}"
    )
    return row


def format_markdown(report):
    """The report as Markdown: a resource table, timing and throughput, and layers.

    Parameters
    ----------
    report : dict
        As written to ``DIR/synth-<target>.json`` (see :func:`gen.synth.run`).
    """
    target = report["target"]
    family = target["family"]
    res = report["resources"]
    has_wrapper = res.get("wrapper") is not None
    has_acc = res.get("accelerator") is not None
    liberty = report.get("liberty")
    part = target["part"] if not liberty else f"cells of {os.path.basename(liberty)}"
    lines = [
        f"## {report['accelerator']['name']} on {target['name']} ({part})",
        "",
        "Tools: "
        + "; ".join(f"{t['version']} ({t['kind']}, {t['seconds']:.1f} s)" for t in report["tools"]),
    ]
    pnr = report.get("place_and_route")
    if pnr:
        pins = f"pins from {pnr['pins_file']}" if pnr.get("pins_file") else "pins placed by nextpnr"
        extra = " ".join(pnr.get("extra_args") or [])
        lines.append(
            f"Clock constraint {pnr['constraint_mhz']:g} MHz; nextpnr seed {pnr['seed']}"
            + (f", options {extra}" if extra else "")
            + f"; {pins}"
        )
    if has_wrapper:
        w = report["wrapper"]
        lines.append(
            f"Pins: {w['pin_width']}-bit streams (valid/ready each way), {w['in_words']} words "
            f"in and {w['out_words']} out per inference; {w['pins']} pins with clock and reset"
        )
    lines.append("")

    header = ["figure", "total"]
    if has_wrapper:
        header.append("wrapper")
    if has_acc:
        header += ["accelerator", "predicted", "ratio"]
    header.append("of the part")
    rows = []
    keys = list(_ROWS[family])
    if family == "asic" and liberty:
        keys = [("gates", "logic cells"), ("ffs", "flip-flops"), ("area", "cell area (Liberty)")]
    for key, label in keys:
        rows.append(_row_for(key, label, report))
    if pnr:
        blank = (["—"] if has_wrapper else []) + (["—", "—", "—"] if has_acc else [])
        for bel, entry in pnr.get("logic", {}).items():
            share = f"{100 * entry['used'] / entry['available']:.1f}% of {_num(entry['available'])}"
            rows.append([f"{bel} (nextpnr)", _num(entry["used"]), *blank, share])
    lines += _markdown_table(header, rows)
    lines.append("")

    perf = report["performance"]
    if pnr and pnr.get("failed"):
        lines.append(f"- place and route failed: {pnr['failed'].split('; full log')[0]}")
    elif perf.get("fmax_mhz") is not None:
        met = "met" if perf["constraint_met"] else "not met"
        lines += [
            f"- Fmax {perf['fmax_mhz']:.2f} MHz (nextpnr; constraint "
            f"{perf['constraint_mhz']:g} MHz {met})",
            f"- latency {_cycles(perf['latency_cycles'])} = {perf['latency_us']:.3f} us",
            f"- initiation interval {_cycles(perf['initiation_interval'])} → "
            f"{_rate_text(perf['inferences_per_second'])} inferences/s",
        ]
        if perf.get("pin_inferences_per_second") is not None:
            lines.append(
                f"- through the {report['wrapper']['pin_width']}-bit pins: one inference per "
                f"{_cycles(perf['pin_interval'])} → "
                f"{_rate_text(perf['pin_inferences_per_second'])} inferences/s"
            )
    else:
        lines.append(
            "- synthesis only (no place and route, so no Fmax): latency "
            f"{_cycles(perf['latency_cycles'])}, initiation interval "
            f"{_cycles(perf['initiation_interval'])}"
        )
    if has_acc and report.get("predicted"):
        if family == "asic":
            lines.append("- predictions are iCE40 figures: only flip-flops compare here")
        elif family != "ice40":
            lines.append("- predictions are iCE40 LUT4s: LUT ratios on this fabric are indicative")

    layers = res.get("layers") or []
    if layers:
        lines += ["", "### Layers", ""]
        if family == "asic":
            size = ("area", "area") if liberty else ("nand2", "NAND2")
            header = ["layer", "modules", size[1], "FFs", "pred. FFs"]
        else:
            header = ["layer", "modules", "LUTs", "pred.", "ratio", "carry", "pred."]
            header += ["FFs", "pred.", "BRAM"]
        rows = []
        for layer in layers:
            pred = layer.get("predicted") or {}
            row = [layer["label"], layer.get("module") or "—"]
            if family == "asic":
                row += [
                    _num(layer.get(size[0]), 1),
                    _num(layer.get("ffs")),
                    _num(pred.get("ffs")),
                ]
            else:
                row += [
                    _num(layer.get("luts")),
                    _num(pred.get("luts")),
                    _ratio_text(_ratio(layer.get("luts"), pred.get("luts"))),
                    _num(layer.get("carry")),
                    _num(pred.get("carry")),
                    _num(layer.get("ffs")),
                    _num(pred.get("ffs")),
                    _num(layer.get("bram")),
                ]
            rows.append(row)
        lines += _markdown_table(header, rows, left=2)
    for note in report.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def _markdown_table(header, rows, *, left=1):
    cells = [header] + rows
    widths = [max(len(str(r[k])) for r in cells) for k in range(len(header))]

    def line(row):
        parts = []
        for k, (c, w) in enumerate(zip(row, widths, strict=True)):
            parts.append(str(c).ljust(w) if k < left else str(c).rjust(w))
        return "| " + " | ".join(parts) + " |"

    sep = "|" + "|".join(
        (":" + "-" * (w + 1)) if k < left else ("-" * (w + 1) + ":") for k, w in enumerate(widths)
    )
    return [line(header), sep + "|"] + [line(r) for r in rows]


def fraction(used, available):
    """``used / available`` as a utilization entry, or ``None`` when the part has none."""
    if used is None or not available:
        return None
    return {"used": used, "available": available, "fraction": used / available}


def ceil_div(a, b):
    """``ceil(a / b)`` for positive integers."""
    return -(-a // b) if b else math.inf
