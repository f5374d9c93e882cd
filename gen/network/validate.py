"""Validation of a parsed ``tnn/1`` or ``tnn/2`` document into a :class:`Network`, within
documented limits.

Limits
------
So that a hostile file cannot exhaust memory or time, a description is refused when it exceeds:

- ``MAX_FILE_BYTES`` (256 MiB) on disk;
- ``MAX_LAYERS`` (256) layers;
- ``MAX_DIM`` (65,536) for any one size (an input extent, ``out``, a kernel extent);
- ``MAX_TENSOR`` (2**22 values) for any one feature map or vector;
- ``MAX_WEIGHTS`` (2**27) weights in all;
- ``MAX_LEVELS`` (256) levels per activation;
- ``MAX_ABS_VALUE`` (2**40) for the magnitude of any level, threshold or pad value;
- ``MAX_ACCUMULATOR`` (2**62) for the magnitude any accumulator could reach;
- ``MAX_WORK`` (2**27) operations per inference, summed over the layers: a dense or conv2d
  layer's multiply-accumulates (positions x fan-in x outputs; an ``intN`` weight counts as its
  ``ceil(N / 2)`` signed-digit planes, the terms the hardware and the compiler's estimates
  handle), a max pool's compares (its input values x about ``log2`` of its window per axis);
  range analysis, the golden model and compilation all grow with it;
- ``MAX_WINDOW_VALUES`` (2**24) for the windows a conv2d layer's evaluation makes per input
  (positions x fan-in).

Every figure is computed from the shapes before anything is evaluated, and the error names the
layer and the figure.
"""

import numpy as np

from .description import (
    FORMAT,
    FORMAT_2,
    FORMATS,
    INT_WEIGHT_TYPES,
    OUTPUTS,
    WEIGHT_TYPES,
    Activation,
    Conv2d,
    Dense,
    DescriptionError,
    InputSpec,
    MaxPool,
    Network,
    ValueType,
    int_weight_bits,
    shown,
)
from .ranges import propagate

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_LAYERS",
    "MAX_DIM",
    "MAX_TENSOR",
    "MAX_WEIGHTS",
    "MAX_LEVELS",
    "MAX_ABS_VALUE",
    "MAX_ACCUMULATOR",
    "MAX_WORK",
    "MAX_WINDOW_VALUES",
    "layer_work",
    "WEIGHT_CODES",
    "from_dict",
]

MAX_FILE_BYTES = 256 << 20
MAX_LAYERS = 256
MAX_DIM = 1 << 16
MAX_TENSOR = 1 << 22
MAX_WEIGHTS = 1 << 27
MAX_LEVELS = 256
MAX_ABS_VALUE = 1 << 40
MAX_ACCUMULATOR = 1 << 62
MAX_WORK = 1 << 27
MAX_WINDOW_VALUES = 1 << 24

#: The character of each ternary weight value in a weight string.
WEIGHT_CODES = {"+": 1, "0": 0, "-": -1}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value, where, *, lo=None, hi=None, what="an integer"):
    if not _is_int(value):
        raise DescriptionError(f"must be {what}, not {shown(value)}", where=where)
    if lo is not None and value < lo:
        raise DescriptionError(f"must be at least {lo}, not {value}", where=where)
    if hi is not None and value > hi:
        raise DescriptionError(f"must be at most {hi}, not {value}", where=where)
    return value


def _pair(value, where, *, lo, hi=MAX_DIM):
    """An int or a two-element list of ints, as a tuple ``(a, b)``."""
    if _is_int(value):
        _int(value, where, lo=lo, hi=hi)
        return (value, value)
    if isinstance(value, list) and len(value) == 2:
        return tuple(_int(v, f"{where}[{k}]", lo=lo, hi=hi) for k, v in enumerate(value))
    raise DescriptionError(
        f"must be an integer or a list of two integers, not {shown(value)}", where=where
    )


def _object(doc, where, required, optional=()):
    if not isinstance(doc, dict):
        raise DescriptionError(f"must be an object, not {type(doc).__name__}", where=where)
    for key in required:
        if key not in doc:
            raise DescriptionError(f"missing field {shown(key)}", where=where)
    allowed = set(required) | set(optional)
    for key in doc:
        if key not in allowed:
            raise DescriptionError(
                f"unknown field {shown(key)}; expected one of {sorted(allowed)}", where=where
            )
    return doc


def _parse_input(doc):
    _object(doc, "input", ("shape", "type"))
    shape = doc["shape"]
    if not isinstance(shape, list) or len(shape) not in (1, 3):
        raise DescriptionError(f"must be [n] or [h, w, c], not {shown(shape)}", where="input.shape")
    shape = tuple(
        _int(v, f"input.shape[{k}]", lo=1, hi=MAX_DIM, what="a positive integer")
        for k, v in enumerate(shape)
    )
    _check_tensor(shape, "input.shape")
    return InputSpec(shape, ValueType.parse(doc["type"]))


def _check_tensor(shape, where):
    size = int(np.prod(shape, dtype=np.int64))
    if size > MAX_TENSOR:
        raise DescriptionError(
            f"a tensor of shape {list(shape)} has {size} values, beyond the limit of {MAX_TENSOR}",
            where=where,
        )


def _parse_weights(rows, out, fan_in, weight_type, where, budget):
    if weight_type in INT_WEIGHT_TYPES:
        return _parse_int_weights(rows, out, fan_in, weight_type, where, budget)
    if not isinstance(rows, list):
        raise DescriptionError(
            f"must be a list of {out} weight strings, not {type(rows).__name__}", where=where
        )
    if len(rows) != out:
        raise DescriptionError(f"has {len(rows)} rows, expected {out} (out)", where=where)
    if out * fan_in > budget:
        raise DescriptionError(
            f"{out} x {fan_in} weights exceed the limit of {MAX_WEIGHTS} weights in a description",
            where=where,
        )
    matrix = np.empty((out, fan_in), dtype=np.int8)
    table = np.full(256, 2, dtype=np.int8)
    for char, code in WEIGHT_CODES.items():
        table[ord(char)] = code
    for j, row in enumerate(rows):
        at = f"{where}[{j}]"
        if not isinstance(row, str):
            raise DescriptionError(f"must be a string of '+', '0', '-', not {shown(row)}", where=at)
        if len(row) != fan_in:
            raise DescriptionError(
                f"has length {len(row)}, expected {fan_in} (the layer's fan-in)", where=at
            )
        raw = row.encode("utf-8", errors="replace")
        if len(raw) != fan_in:
            bad = next(k for k, c in enumerate(row) if c not in WEIGHT_CODES)
            raise DescriptionError(
                f"character {shown(row[bad])} at position {bad} is not one of '+', '0', '-'",
                where=at,
            )
        codes = table[np.frombuffer(raw, dtype=np.uint8)]
        if np.any(codes == 2):
            bad = int(np.argmax(codes == 2))
            raise DescriptionError(
                f"character {shown(row[bad])} at position {bad} is not one of '+', '0', '-'",
                where=at,
            )
        if weight_type == "binary" and np.any(codes == 0):
            bad = int(np.argmax(codes == 0))
            raise DescriptionError(
                f"'0' at position {bad} in a binary layer (weight_type 'binary' allows only "
                "'+' and '-')",
                where=at,
            )
        matrix[j] = codes
    return matrix


def _parse_int_weights(rows, out, fan_in, weight_type, where, budget):
    """``intN`` weights: a list of ``out`` rows, each a list of ``fan_in`` integers in range."""
    bits = int_weight_bits(weight_type)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not isinstance(rows, list):
        raise DescriptionError(
            f"must be a list of {out} lists of integers, not {type(rows).__name__}", where=where
        )
    if len(rows) != out:
        raise DescriptionError(f"has {len(rows)} rows, expected {out} (out)", where=where)
    if out * fan_in > budget:
        raise DescriptionError(
            f"{out} x {fan_in} weights exceed the limit of {MAX_WEIGHTS} weights in a description",
            where=where,
        )
    matrix = np.empty((out, fan_in), dtype=np.int8)
    for j, row in enumerate(rows):
        at = f"{where}[{j}]"
        if not isinstance(row, list):
            raise DescriptionError(
                f"must be a list of integers ({weight_type} weights), not {shown(row)}", where=at
            )
        if len(row) != fan_in:
            raise DescriptionError(
                f"has length {len(row)}, expected {fan_in} (the layer's fan-in)", where=at
            )
        for k, value in enumerate(row):
            if not _is_int(value) or not lo <= value <= hi:
                raise DescriptionError(
                    f"{shown(value)} at position {k} is not an {weight_type} weight "
                    f"(an integer from {lo} to {hi})",
                    where=at,
                )
        matrix[j] = row
    return matrix


def _parse_activation(doc, out, where):
    if doc is None:
        return None
    _object(doc, where, ("levels", "thresholds"))
    levels = doc["levels"]
    if not isinstance(levels, list) or len(levels) < 2:
        raise DescriptionError(
            f"must be a list of at least two integers, not {shown(levels)}", where=f"{where}.levels"
        )
    if len(levels) > MAX_LEVELS:
        raise DescriptionError(
            f"has {len(levels)} levels, beyond the limit of {MAX_LEVELS}",
            where=f"{where}.levels",
        )
    for k, v in enumerate(levels):
        _int(v, f"{where}.levels[{k}]", lo=-MAX_ABS_VALUE, hi=MAX_ABS_VALUE)
    for k in range(1, len(levels)):
        if levels[k] <= levels[k - 1]:
            raise DescriptionError(
                f"levels must be strictly ascending, but {levels[k]} follows {levels[k - 1]}",
                where=f"{where}.levels",
            )
    count = len(levels) - 1
    thresholds = doc["thresholds"]
    at = f"{where}.thresholds"
    if not isinstance(thresholds, list):
        raise DescriptionError(
            f"must be a list of {out} lists, not {type(thresholds).__name__}", where=at
        )
    if len(thresholds) != out:
        raise DescriptionError(f"has {len(thresholds)} rows, expected {out} (out)", where=at)
    matrix = np.empty((out, count), dtype=np.int64)
    for j, row in enumerate(thresholds):
        if not isinstance(row, list) or len(row) != count:
            raise DescriptionError(
                f"must be a list of {count} integers (one fewer than the levels), not {shown(row)}",
                where=f"{at}[{j}]",
            )
        for k, t in enumerate(row):
            _int(t, f"{at}[{j}][{k}]", lo=-MAX_ABS_VALUE, hi=MAX_ABS_VALUE)
        for k in range(1, count):
            if row[k] < row[k - 1]:
                raise DescriptionError(
                    f"thresholds must be ascending, but {row[k]} follows {row[k - 1]}",
                    where=f"{at}[{j}]",
                )
        matrix[j] = row
    return Activation(tuple(levels), matrix)


def _output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _parse_layer(doc, index, shape, budget):
    where = f"layers[{index}]"
    if not isinstance(doc, dict):
        raise DescriptionError(f"must be an object, not {type(doc).__name__}", where=where)
    kind = doc.get("type")
    if kind not in ("dense", "conv2d", "maxpool"):
        raise DescriptionError(
            f"unknown layer type {shown(kind)}; expected 'dense', 'conv2d' or 'maxpool'",
            where=f"{where}.type",
        )
    where = f"layers[{index}] ({kind})"
    if kind == "maxpool":
        _object(doc, where, ("type", "kernel"), ("stride",))
        if len(shape) != 3:
            raise DescriptionError(
                f"needs an [h, w, c] input, but its input has shape {list(shape)}", where=where
            )
        kernel = _pair(doc["kernel"], f"{where}.kernel", lo=1)
        stride = _pair(doc.get("stride", doc["kernel"]), f"{where}.stride", lo=1)
        for axis, name in ((0, "height"), (1, "width")):
            if kernel[axis] > shape[axis]:
                raise DescriptionError(
                    f"window {name} {kernel[axis]} is larger than the input's {shape[axis]}",
                    where=f"{where}.kernel",
                )
        out_shape = tuple(_output_size(shape[a], kernel[a], stride[a], 0) for a in (0, 1)) + (
            shape[2],
        )
        return MaxPool(kernel, stride), out_shape

    common = ("type", "out", "weights", "activation")
    weight_type = doc.get("weight_type", "ternary")
    if not isinstance(weight_type, str) or weight_type not in WEIGHT_TYPES:
        raise DescriptionError(
            f"must be 'ternary', 'binary' or 'int2' to 'int8', not {shown(weight_type)}",
            where=f"{where}.weight_type",
        )
    if kind == "dense":
        _object(doc, where, common, ("weight_type",))
        out = _int(doc["out"], f"{where}.out", lo=1, hi=MAX_DIM, what="a positive integer")
        fan_in = int(np.prod(shape))
        weights = _parse_weights(
            doc["weights"], out, fan_in, weight_type, f"{where}.weights", budget
        )
        activation = _parse_activation(doc["activation"], out, f"{where}.activation")
        layer = Dense(out, weights, activation, weight_type)
        out_shape = (out,)
    else:
        _object(doc, where, common + ("kernel",), ("stride", "padding", "pad", "weight_type"))
        if len(shape) != 3:
            raise DescriptionError(
                f"needs an [h, w, c] input, but its input has shape {list(shape)}", where=where
            )
        out = _int(doc["out"], f"{where}.out", lo=1, hi=MAX_DIM, what="a positive integer")
        kernel = _pair(doc["kernel"], f"{where}.kernel", lo=1)
        stride = _pair(doc.get("stride", 1), f"{where}.stride", lo=1)
        padding = _pair(doc.get("padding", 0), f"{where}.padding", lo=0)
        for axis, name in ((0, "height"), (1, "width")):
            if kernel[axis] > shape[axis] + 2 * padding[axis]:
                raise DescriptionError(
                    f"kernel {name} {kernel[axis]} is larger than the padded input's "
                    f"{shape[axis] + 2 * padding[axis]}",
                    where=f"{where}.kernel",
                )
        pad = 0
        if "pad" in doc:
            pad = _int(doc["pad"], f"{where}.pad", lo=-MAX_ABS_VALUE, hi=MAX_ABS_VALUE)
        fan_in = kernel[0] * kernel[1] * shape[2]
        weights = _parse_weights(
            doc["weights"], out, fan_in, weight_type, f"{where}.weights", budget
        )
        activation = _parse_activation(doc["activation"], out, f"{where}.activation")
        layer = Conv2d(out, weights, activation, weight_type, kernel, stride, padding, pad)
        out_shape = tuple(
            _output_size(shape[a], kernel[a], stride[a], padding[a]) for a in (0, 1)
        ) + (out,)
    _check_tensor(out_shape, where)
    return layer, out_shape


def _check_pad(layer, pad_given, value_type, where):
    """A conv2d's pad value must be a value of its input type (known only after the range
    analysis of the layers before it)."""
    padding = max(layer.padding)
    if pad_given:
        if not value_type.contains(layer.pad):
            raise DescriptionError(
                f"pad value {layer.pad} is not a value of the layer's input type "
                f"({_type_text(value_type)})",
                where=f"{where}.pad",
            )
    elif value_type.name == "binary" and padding > 0:
        raise DescriptionError(
            "a layer with binary input and padding must give 'pad' as -1 or +1",
            where=f"{where}.pad",
        )
    elif padding > 0 and not value_type.contains(0):
        raise DescriptionError(
            f"the default pad value 0 is not a value of the layer's input type "
            f"({_type_text(value_type)}); give 'pad'",
            where=f"{where}.pad",
        )


def _type_text(value_type):
    if value_type.levels is not None and value_type.name not in ("ternary", "binary"):
        return f"levels {list(value_type.levels)}"
    if value_type.name == "integer":
        return f"integers {value_type.lo}..{value_type.hi}"
    return value_type.name


def from_dict(doc):
    """Validate a parsed JSON document and build its :class:`Network`."""
    if not isinstance(doc, dict):
        raise DescriptionError(f"the document must be a JSON object, not {type(doc).__name__}")
    fmt = doc.get("format")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise DescriptionError(
            f"unknown format {shown(fmt)}; this tool reads {' and '.join(map(repr, FORMATS))}",
            where="format",
        )
    _object(doc, "", ("format", "name", "input", "layers", "output"))
    name = doc["name"]
    if not isinstance(name, str) or not name or len(name) > 128:
        raise DescriptionError(
            f"must be a non-empty string of at most 128 characters, not {shown(name)}", where="name"
        )
    if not all(c.isalnum() or c in "-_." for c in name) or name[0] in "-.":
        raise DescriptionError(
            f"{shown(name)} may hold only letters, digits, '-', '_' and '.', and must not start "
            "with '-' or '.' (it names files and the Verilog top module)",
            where="name",
        )
    spec = _parse_input(doc["input"])
    layers_doc = doc["layers"]
    if not isinstance(layers_doc, list) or not layers_doc:
        raise DescriptionError("must be a non-empty list of layers", where="layers")
    if len(layers_doc) > MAX_LAYERS:
        raise DescriptionError(
            f"has {len(layers_doc)} layers, beyond the limit of {MAX_LAYERS}", where="layers"
        )
    output = doc["output"]
    if not isinstance(output, str) or output not in OUTPUTS:
        raise DescriptionError(
            f"must be 'argmax', 'values' or 'class_map', not {shown(output)}", where="output"
        )
    # First every layer's fields, shapes and work, which bound what the range analysis costs;
    # then the ranges, layer by layer (they give the value types that pads are checked against).
    shapes, layers = [spec.shape], []
    budget = MAX_WEIGHTS
    work = 0
    for index, layer_doc in enumerate(layers_doc):
        layer, shape = _parse_layer(layer_doc, index, shapes[-1], budget)
        work = _check_work(layer, shapes[-1], shape, work, f"layers[{index}] ({layer.type})")
        if not isinstance(layer, MaxPool):
            budget -= layer.weights.size
        layers.append(layer)
        shapes.append(shape)
    types, ranges = [spec.type], []
    lo = np.full((1,) + spec.shape, spec.type.lo, dtype=np.int64)
    hi = np.full((1,) + spec.shape, spec.type.hi, dtype=np.int64)
    for index, (layer, layer_doc) in enumerate(zip(layers, layers_doc, strict=True)):
        where = f"layers[{index}] ({layer.type})"
        if isinstance(layer, Conv2d):
            _check_pad(layer, "pad" in layer_doc, types[-1], where)
        if not isinstance(layer, MaxPool):
            _check_accumulator_bound(layer, lo, hi, where)
        layer_range, lo, hi = propagate(layer, lo, hi)
        if isinstance(layer, MaxPool):
            value_type = types[-1]
        elif layer.activation is not None:
            value_type = layer.activation.value_type
        else:
            value_type = ValueType.of_range(layer_range.acc_min, layer_range.acc_max)
        types.append(value_type)
        ranges.append(layer_range)
    if output == "class_map" and len(shapes[-1]) != 3:
        raise DescriptionError(
            "'class_map' needs a final [h, w, c] tensor (a fully convolutional network), but the "
            f"last layer's output has shape {list(shapes[-1])}",
            where="output",
        )
    net = Network(
        name, spec, tuple(layers), output, tuple(shapes), tuple(types), ranges=tuple(ranges)
    )
    if fmt == FORMAT and net.format != FORMAT:
        raise DescriptionError(
            _format_2_feature(net) + f" needs format {FORMAT_2!r}", where="format"
        )
    return net


def _format_2_feature(net):
    """What in ``net`` is ``tnn/2`` only, for the error of a ``tnn/1`` document that uses it."""
    for index, layer in enumerate(net.layers):
        if getattr(layer, "weight_type", "") in INT_WEIGHT_TYPES:
            return f"layers[{index}] ({layer.type}) has weight_type {layer.weight_type!r}, which"
    return "output 'class_map'"


def layer_work(layer, in_shape, out_shape):
    """``(operations, window values)`` of one layer on one input: the multiply-accumulates of a
    dense or conv2d layer (or the compares of a max pool), and the size of the largest tensor
    its evaluation makes (a conv2d's windows)."""
    positions = int(np.prod(out_shape[:-1], dtype=np.int64)) if len(out_shape) == 3 else 1
    if isinstance(layer, MaxPool):
        passes = sum(max(1, int(k).bit_length()) for k in layer.kernel)
        return int(np.prod(in_shape, dtype=np.int64)) * passes, int(np.prod(in_shape))
    fan_in = layer.weights.shape[1]
    bits = int_weight_bits(layer.weight_type)
    planes = 1 if bits is None else (bits + 1) // 2
    return positions * fan_in * layer.out * planes, positions * fan_in


def _check_work(layer, in_shape, out_shape, work, where):
    operations, window = layer_work(layer, in_shape, out_shape)
    if window > MAX_WINDOW_VALUES:
        raise DescriptionError(
            f"evaluating it makes {window} window values per input, beyond the limit of "
            f"{MAX_WINDOW_VALUES}",
            where=where,
        )
    work += operations
    if work > MAX_WORK:
        raise DescriptionError(
            f"the layers up to this one take {work} operations per inference, beyond the "
            f"limit of {MAX_WORK} (2**27)",
            where=where,
        )
    return work


def _check_accumulator_bound(layer, lo, hi, where):
    magnitude = int(max(np.abs(lo).max(), np.abs(hi).max()))
    row_weight = layer.max_row_weight
    if magnitude * row_weight >= MAX_ACCUMULATOR:
        raise DescriptionError(
            f"accumulators could reach {magnitude * row_weight}, beyond the limit of "
            f"{MAX_ACCUMULATOR} (2**62)",
            where=where,
        )
