"""The synthesis report: the tools' figures per wrapper, accelerator and layer, utilization,
timing and throughput, next to the compiler's predictions; as JSON and as Markdown.
"""

import json
import os
from collections import Counter

from ..files import write_text_atomic
from .errors import SynthError
from .parse import (
    CATEGORIES,
    categorize,
    hierarchy_area,
    hierarchy_totals,
    lut_sites,
    nand2_equivalents,
)

__all__ = ["REPORT_FORMAT", "build_report", "write_report", "format_markdown", "fraction"]

REPORT_FORMAT = "tnngen-synth/1"


def _figures(cells, family, *, area=None, sequential=None):
    figures = categorize(cells, family, sequential=sequential)
    if family == "asic":
        figures["nand2"] = None if area is not None else round(nand2_equivalents(cells), 1)
        if area is not None:
            figures["area"] = area
    return figures


def build_report(
    *,
    accelerator,
    target,
    top,
    netlist,
    layer_modules,
    verilog_modules,
    wrapper,
    pnr,
    tools_used,
    liberty,
    liberty_area,
    sequential,
    workdir,
    hierarchy,
    absorbed=None,
):
    meta = accelerator.metadata
    acc_top = meta["top"]
    family = target.family
    if top not in netlist:
        raise SynthError(f"the netlist has no module {top!r}")

    def area_of(name):
        if liberty_area is None:
            return None
        return round(hierarchy_area(netlist, name, liberty_area), 3)

    def figures(cells, area=None):
        return _figures(cells, family, area=area, sequential=sequential)

    total_cells = hierarchy_totals(netlist, top)
    resources = {"total": figures(total_cells, area=area_of(top))}
    separated = acc_top in netlist
    notes = []
    if separated:
        acc_cells = hierarchy_totals(netlist, acc_top)
        resources["accelerator"] = figures(acc_cells, area=area_of(acc_top))
        if wrapper is not None:
            wrapper_cells = total_cells - acc_cells
            resources["wrapper"] = figures(wrapper_cells)
            if liberty_area is not None:
                resources["wrapper"]["area"] = (area_of(top) or 0) - (area_of(acc_top) or 0)
        else:
            resources["wrapper"] = None
    else:
        # Flattened: the accelerator's cells are no longer apart from the wrapper's.
        resources["accelerator"] = None if wrapper is not None else resources["total"]
        resources["wrapper"] = None
        if wrapper is not None:
            notes.append("flattened: the wrapper's cells are counted with the accelerator's")

    # I/O: pad cells where synthesis made them (Xilinx), else the top's port bits; replaced
    # below by the pads nextpnr placed.
    if resources["total"]["io"] == 0:
        resources["total"]["io"] = sum(w for _, w in netlist[top]["ports"].values())
    if wrapper is not None and resources["wrapper"] is not None:
        resources["wrapper"]["io"] = resources["total"]["io"]
        resources["accelerator"]["io"] = None

    # Per layer.
    layers_out = []
    if separated and hierarchy and meta.get("layers"):
        in_layers = {}
        for layer in meta["layers"]:
            index = layer.get("index")
            label = f"{index} {layer.get('type', '')}".strip()
            if layer.get("engine"):
                engine = layer["engine"]
                if (
                    layer.get("type") in ("dense", "conv2d")
                    and layer.get("pe")
                    and layer.get("simd")
                ):
                    engine += f" {layer['pe']}x{layer['simd']}"
                label += f" ({engine})"
            held = layer_modules.get(index, [])
            short = ", ".join(m[len(acc_top) + 1 :] for m in held) or None
            entry = {"index": index, "label": label, "module": short}
            entry["predicted"] = layer.get("predicted")
            if held and all(m in netlist for m in held):
                cells = Counter()
                for module in held:
                    cells += hierarchy_totals(netlist, module)
                    in_layers[module] = hierarchy_totals(netlist, module)
                area = None
                if liberty_area is not None:
                    area = round(sum(area_of(m) for m in held), 3)
                entry.update(figures(cells, area=area))
            layers_out.append(entry)
        rest = Counter()
        if in_layers:
            rest = hierarchy_totals(netlist, acc_top)
            for cells in in_layers.values():
                rest = rest - cells
        held_blocks = {m for held in layer_modules.values() for m in held}
        others = sorted(
            {
                m[len(acc_top) + 1 :].split(".")[0]
                for m in verilog_modules
                if m.startswith(acc_top + ".")
            }
            - {m[len(acc_top) + 1 :].split(".")[0] for m in held_blocks}
        )
        glue = {
            "index": None,
            "label": "outside the layers",
            "module": ", ".join(others) or None,
            "predicted": meta.get("predicted_outside_layers"),  # the final argmax
        }
        glue.update(figures(rest))
        # Pad cells Yosys put in the top (Xilinx) are I/O, not logic between the layers.
        if any(glue[k] for k in CATEGORIES if k != "io"):
            if liberty_area is not None:
                glue["area"] = round(area_of(acc_top) - sum(area_of(m) for m in in_layers), 3)
            layers_out.append(glue)
        if not in_layers and hierarchy:
            notes.append(
                "no layer modules found in the accelerator's hierarchy (a layer's modules are "
                "its metadata 'blocks', its 'module', or the submodule layer<index>)"
            )
    resources["layers"] = layers_out
    if absorbed and absorbed["ports"]:
        notes.append(
            f"{absorbed['flip_flops']:,} flip-flops behind block RAM moved into the output "
            f"registers of {absorbed['ports']} DP16KD read ports (gen.flow.outreg); the counts "
            "above are of the netlist nextpnr placed"
        )

    # Utilization.
    utilization = {}
    capacity = dict(target.capacity)
    logic = {}
    if pnr is not None:
        used = pnr["report"]["utilization"]
        # nextpnr knows the die's block RAMs and DSPs. Its count of I/O sites is the die's
        # (96 on an UP5K, 365 on an LFE5U-85F), not the package's, so the package's pin count
        # stays from the data sheet.
        for bel, key in (
            ("ICESTORM_RAM", "bram"),
            ("ICESTORM_DSP", "dsp"),
            ("DP16KD", "bram"),
            ("MULT18X18D", "dsp"),
        ):
            if bel in used:
                capacity[key] = used[bel]["available"]
        for bel in ("ICESTORM_LC", "TRELLIS_COMB", "TRELLIS_FF"):
            if bel in used:
                logic[bel] = used[bel]
        io_used = sum(used[b]["used"] for b in ("SB_IO", "TRELLIS_IO") if b in used)
        if io_used:
            resources["total"]["io"] = io_used
            if resources.get("wrapper") is not None:
                resources["wrapper"]["io"] = io_used
    for key in ("luts", "ffs", "bram", "dsp", "io"):
        total = resources["total"]
        used = lut_sites(total, target.family) if key == "luts" else total.get(key)
        entry = fraction(used, capacity.get(key))
        if entry is not None:
            utilization[key] = entry

    # Timing and throughput.
    latency = meta["latency"]
    interval = meta["initiation_interval"]
    performance = {"latency_cycles": latency, "initiation_interval": interval, "fmax_mhz": None}
    pnr_out = None
    if pnr is not None and pnr.get("failed"):
        pnr_out = {
            "failed": pnr["failed"],
            "constraint_mhz": pnr["constraint_mhz"],
            "seed": pnr["seed"],
            "pins_file": pnr["pins_file"],
            "fmax": {},
            "utilization": pnr["report"]["utilization"],
            "logic": logic,
        }
    elif pnr is not None:
        fmax = pnr["report"]["fmax"] or {
            c: {"achieved_mhz": v["achieved_mhz"], "constraint_mhz": v["constraint_mhz"]}
            for c, v in pnr["log_fmax"].items()
        }
        if not fmax:
            raise SynthError(
                "nextpnr reported no clock (no Fmax in its report or log); full log: "
                + tools_used[-1]["log"]
            )
        clock, worst = min(fmax.items(), key=lambda kv: kv[1]["achieved_mhz"])
        f_mhz = worst["achieved_mhz"]
        performance.update(
            {
                "clock": clock,
                "fmax_mhz": f_mhz,
                "constraint_mhz": pnr["constraint_mhz"],
                "constraint_met": f_mhz >= pnr["constraint_mhz"],
                "latency_us": latency / f_mhz,
                "inferences_per_second": f_mhz * 1e6 / interval,
            }
        )
        if wrapper is not None:
            pin_interval = max(interval, wrapper["pin_interval"])
            performance["pin_interval"] = pin_interval
            performance["pin_inferences_per_second"] = f_mhz * 1e6 / pin_interval
            performance["pin_latency_cycles"] = latency + wrapper["latency"]
        pnr_out = {
            "constraint_mhz": pnr["constraint_mhz"],
            "extra_args": pnr.get("extra_args", []),
            "seed": pnr["seed"],
            "pins_file": pnr["pins_file"],
            "fmax": fmax,
            "utilization": pnr["report"]["utilization"],
            "logic": logic,
        }

    predicted = meta.get("predicted")
    in_units = (meta.get("predicted_by_family") or {}).get(family)
    if predicted and in_units:
        # LUTs, flip-flops, block RAMs and DSPs in this family's units; carry cells in iCE40's
        predicted = {**predicted, **in_units, "units": family}
    comparison = []
    if predicted and resources.get("accelerator"):
        for key in ("luts", "carry", "ffs", "bram", "dsp"):
            measured = resources["accelerator"].get(key)
            if key in predicted and measured is not None:
                pred = predicted[key]
                comparison.append(
                    {
                        "figure": key,
                        "measured": measured,
                        "predicted": pred,
                        "ratio": (measured / pred) if pred else None,
                    }
                )

    return {
        "format": REPORT_FORMAT,
        "target": {
            "name": target.name,
            "family": family,
            "part": target.part,
            "capacity": capacity,
        },
        "accelerator": {
            "name": meta["name"],
            "top": acc_top,
            "metadata": accelerator.metadata_path,
            "verilog": accelerator.verilog_path,
            "description_sha256": meta.get("description_sha256"),
            "generator": meta.get("generator"),
        },
        "tools": tools_used,
        "workdir": workdir,
        "hierarchy": hierarchy,
        "liberty": None if liberty is None else os.path.abspath(liberty),
        "wrapper": wrapper,
        "resources": resources,
        "utilization": utilization,
        "place_and_route": pnr_out,
        "performance": performance,
        "predicted": predicted,
        "comparison": comparison,
        "block_ram_output_registers": absorbed,
        "notes": notes,
    }


def write_report(report, directory):
    """Write ``synth-<target>.json`` and ``synth-<target>.md`` into ``directory``.

    Each goes through a temporary file moved into place. Returns the two paths.
    """
    name = report["target"]["name"]
    json_path = os.path.join(directory, f"synth-{name}.json")
    md_path = os.path.join(directory, f"synth-{name}.md")
    write_text_atomic(json_path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    write_text_atomic(md_path, format_markdown(report))
    return json_path, md_path


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
        ("luts", "LUT4 (utilization: with the CCU2Cs' LUT4s)"),
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

_PREDICTED = {"luts": "luts", "carry": "carry", "ffs": "ffs", "bram": "bram", "dsp": "dsp"}


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
        if key == "bram" and "bram" not in predicted and predicted.get("rom_bits") is not None:
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
        elif report["predicted"].get("units") == family:
            lines.append(
                f"- LUT, flip-flop and block RAM predictions in {family} units "
                "(gen.compiler.fit, calibrated by bench/cost_fit.py); carry cells in iCE40's"
            )
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
