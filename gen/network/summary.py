"""The text ``tnngen check`` prints: a description's layers, shapes, weights and accumulators."""

import numpy as np

from .description import MaxPool
from .ranges import analyze_ranges

__all__ = ["summarize", "format_table"]


def format_table(header, rows):
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if k else c.ljust(w)
                for k, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _shape_text(shape):
    return "x".join(str(d) for d in shape)


def _type_text(value_type):
    if value_type.name == "levels":
        return "levels " + ",".join(str(v) for v in value_type.levels)
    if value_type.name == "integer":
        return f"int [{value_type.lo}, {value_type.hi}]"
    return value_type.name


def summarize(net):
    """The text ``tnngen check`` prints for ``net``."""
    ranges = analyze_ranges(net)
    rows = []
    total_weights = total_nonzero = total_ops = total_nonzero_ops = 0
    for index, (layer, r) in enumerate(zip(net.layers, ranges, strict=True)):
        shape_in, shape_out = net.shapes[index], net.shapes[index + 1]
        if isinstance(layer, MaxPool):
            kind = f"maxpool {layer.kernel[0]}x{layer.kernel[1]}/{layer.stride[0]}"
            rows.append(
                [
                    index,
                    kind,
                    _shape_text(shape_in),
                    _shape_text(shape_out),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    _type_text(net.types[index + 1]),
                ]
            )
            continue
        positions = int(np.prod(shape_out[:-1])) if len(shape_out) == 3 else 1
        weights = layer.weights.size
        nonzero = int(np.count_nonzero(layer.weights))
        ops, nonzero_ops = positions * weights, positions * nonzero
        total_weights += weights
        total_nonzero += nonzero
        total_ops += ops
        total_nonzero_ops += nonzero_ops
        kind = (
            layer.type
            if layer.type == "dense"
            else (f"conv2d {layer.kernel[0]}x{layer.kernel[1]}/{layer.stride[0]}")
        )
        if layer.weight_type == "binary":
            kind += " (bin)"
        elif layer.weight_type != "ternary":
            kind += f" ({layer.weight_type})"
        zero = 1 - nonzero / weights
        acc = f"[{r.acc_min}, {r.acc_max}] {'s' if r.acc_signed else 'u'}{r.acc_bits}"
        rows.append(
            [
                index,
                kind,
                _shape_text(shape_in),
                _shape_text(shape_out),
                weights,
                nonzero,
                f"{100 * zero:.1f}%",
                ops,
                acc,
                _type_text(net.types[index + 1]),
            ]
        )
    header = [
        "#",
        "layer",
        "in",
        "out",
        "weights",
        "nonzero",
        "zero",
        "synops",
        "accumulator",
        "output",
    ]
    lines = [
        f"model   {net.name}",
        f"input   {_shape_text(net.input.shape)} {net.input.type.name}",
        f"output  {net.output} of {_shape_text(net.output_shape)}",
        "",
        format_table(header, rows),
        "",
        f"weights {total_weights} ({total_nonzero} nonzero, "
        f"{100 * (1 - total_nonzero / max(1, total_weights)):.1f}% zero)",
        f"synaptic operations per inference: {total_ops} ({total_nonzero_ops} with a nonzero "
        "weight)",
    ]
    return "\n".join(lines)
