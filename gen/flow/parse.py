"""Reading the tools' outputs: netlists, cell categories and areas, Fmax, utilization, versions.

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
import re
from collections import Counter

__all__ = [
    "CATEGORIES",
    "CELL_CATEGORIES",
    "NAND2_WEIGHTS",
    "ReportError",
    "categorize",
    "hierarchy_area",
    "hierarchy_totals",
    "liberty_sequential_cells",
    "lut_sites",
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


def lut_sites(figures, family):
    """The part's LUT sites that :func:`categorize`'s ``figures`` take: ``luts``, and on ECP5 two
    more per ``carry`` cell (a CCU2C holds two LUT4s besides its carry logic)."""
    if figures.get("luts") is None:
        return None
    extra = 2 * (figures.get("carry") or 0) if family == "ecp5" else 0
    return figures["luts"] + extra


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
