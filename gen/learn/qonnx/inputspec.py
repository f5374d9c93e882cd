"""The input specification ``OUT.input.json``: how an imported model's float inputs become its
description's integer inputs, computed as the original graph computes them (NumPy only).

The document (format ``tnn-input/1``) records the graph input's name and shape, the preamble of
elementwise float32 ops before the input quantizer (``Mul``/``Add``/``Sub``/``Div`` by constants,
``Relu``, ``Clip``), the quantizer (QONNX ``Quant`` with its scale, zero point, bit width,
signedness, narrow range and rounding mode; ``BipolarQuant``; FINN's ``MultiThreshold`` with its
thresholds, ``out_scale`` and ``out_bias``; or none, for integer inputs), the integer levels it
produces, and the layout change (``NCHW`` images become ``h, w, c``; vectors stay as they are).
An optional ``data`` entry says how a named data set's pixels become float inputs: each pixel
divided by ``divisor`` (by default, and for ``"pixel_max"``, the data set's largest pixel
value: ``p / 16`` for digits, ``p / 255`` for MNIST).

:func:`to_integers` applies it. Each step is the same IEEE float32 operation as in the graph, so
the integers are those the graph's input quantizer produces (the tests check this against
qonnx's executor).
"""

import json
import os

import numpy as np

__all__ = [
    "FORMAT",
    "SpecError",
    "spec_path",
    "load",
    "save",
    "dumps",
    "to_integers",
    "from_pixels",
]

FORMAT = "tnn-input/1"


class SpecError(ValueError):
    """A malformed input specification, or float inputs that do not fit it."""


def spec_path(description_path):
    """The input specification beside ``description_path`` (``X.tnn.json`` -> ``X.input.json``)."""
    base = os.fspath(description_path)
    for suffix in (".tnn.json", ".json"):
        if base.endswith(suffix):
            return base[: -len(suffix)] + ".input.json"
    return base + ".input.json"


def dumps(spec):
    """The document as JSON text, lists of numbers on one line each."""
    return _render(spec, 0) + "\n"


def _render(value, depth):
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_render(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}" if items else "{}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [inner + _render(v, depth + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value)


def save(spec, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps(spec))


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise SpecError(
            f"{path}: no such file (the input specification `tnngen import` writes)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: not a readable JSON input specification ({exc})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise SpecError(f"{path}: not an input specification of format {FORMAT!r}")
    return spec


_ROUNDING = {
    "ROUND": np.round,
    "HALF_EVEN": np.round,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),
    "DOWN": np.fix,
    "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
    "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5),
}


def _preamble(x, ops):
    f32 = np.float32
    for op in ops:
        shape = (x.shape[0],) + tuple(op["shape"])
        x = x.reshape(shape)
        name = op["op"]
        if name == "Relu":
            x = np.maximum(x, f32(0))
            continue
        if name == "Clip":
            if op.get("min") is not None:
                x = np.maximum(x, f32(op["min"]))
            if op.get("max") is not None:
                x = np.minimum(x, f32(op["max"]))
            continue
        c = np.asarray(op["constant"], dtype=np.float32).reshape((1, -1) + (1,) * (len(shape) - 2))
        a, b = (x, c) if op["data_first"] else (c, x)
        x = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[name](a, b)
        x = x.astype(np.float32)
    return x


def _levels(x, quantizer, levels):
    """Integer levels of float32 inputs ``x`` (channels on axis 1), as the quantizer gives."""
    f32 = np.float32
    kind = quantizer["op"]
    if kind == "BipolarQuant":
        return np.where(x >= f32(0), 1, -1)
    if kind == "MultiThreshold":
        thresholds = np.asarray(quantizer["thresholds"], dtype=np.float32)
        moved = np.moveaxis(x, 1, -1)[..., None]
        count = np.count_nonzero(moved >= thresholds, axis=-1)
        return np.moveaxis(np.asarray(quantizer["count_levels"])[count], -1, 1)
    scale, zero_point = f32(quantizer["scale"]), f32(quantizer["zero_point"])
    y = x / scale + zero_point
    bits, signed, narrow = quantizer["bit_width"], quantizer["signed"], quantizer["narrow"]
    if bits == 1 and signed:
        q = np.where(y >= f32(0), f32(1), f32(-1))
    else:
        lo = -(2 ** (bits - 1)) + (1 if narrow else 0) if signed else 0
        hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - (1 if narrow else 0)
        y = np.where(y > f32(hi), f32(hi), y)
        y = np.where(y < f32(lo), f32(lo), y)
        q = _ROUNDING[quantizer["rounding_mode"].upper()](y)
    return (q - zero_point).astype(np.int64)


def to_integers(spec, x):
    """The description's integer inputs for float inputs ``x``.

    ``x`` has the graph input's shape without its batch axis, per input: ``(N, *shape)``, or
    ``(N, size)`` flattened in the graph's (C-order) layout.
    """
    shape = tuple(spec["graph_input"]["shape"][1:])
    x = np.asarray(x)
    size = int(np.prod(shape))
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != size:
        raise SpecError(
            f"float inputs must have shape (N, {', '.join(map(str, shape))}) for the graph input "
            f"{spec['graph_input']['name']!r}, not {tuple(x.shape)}"
        )
    if not np.all(np.isfinite(x)):
        raise SpecError("float inputs must be finite")
    x = x.astype(np.float32).reshape((len(x),) + shape)
    x = _preamble(x, spec["preamble"])
    x = x.reshape((len(x),) + shape)
    quantizer = spec["quantizer"]
    if quantizer is None:
        if np.any(x != np.round(x)):
            raise SpecError("the graph has no input quantizer: its inputs must be integers")
        q = x.astype(np.int64)
    else:
        q = _levels(x, quantizer, spec["levels"])
        own, levels = np.asarray(spec["quantizer_levels"]), np.asarray(spec["levels"])
        q = levels[np.searchsorted(own, q)]  # what ops after the quantizer make of its levels
    if spec["layout"] == "NCHW":
        q = q.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(q.reshape((len(q),) + tuple(spec["input_shape"])))


def from_pixels(spec, dataset):
    """Float inputs of a data set (``gen.learn.datasets.Dataset``) as the spec's ``data`` entry
    says: by default each pixel divided by the data set's largest pixel value."""
    shape = tuple(spec["graph_input"]["shape"][1:])
    images = dataset.images
    if int(np.prod(images.shape[1:])) != int(np.prod(shape)):
        raise SpecError(
            f"the data set {dataset.name!r} has images of {int(np.prod(images.shape[1:]))} "
            f"pixels, but the graph input holds {int(np.prod(shape))} values"
        )
    divisor = (spec.get("data") or {}).get("divisor")
    if not isinstance(divisor, (int, float)):
        divisor = dataset.pixel_max
    x = images.astype(np.float32) / np.float32(divisor)
    return x.reshape((len(images),) + shape)
