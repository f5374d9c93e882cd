"""Reading and writing description files (``tnn/1``, ``tnn/2``): JSON text in, a validated
:class:`Network` out, and back.

:func:`load` parses and validates a file (``gen.network.validate``); :func:`save` writes the
canonical form, one weight row per line, so that ``load(save(net)) == net`` and diffs are
readable. A network loaded from a file carries the sha256 of the file's bytes
(``Network.source_sha256``), which the accelerator's metadata records.
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from .. import jsontext
from ..files import write_text_atomic
from . import validate
from .description import INT_WEIGHT_TYPES, Conv2d, DescriptionError, MaxPool
from .validate import from_dict

__all__ = ["load", "loads", "to_dict", "dumps", "save", "weight_rows", "description_sha256"]


def loads(text, *, source=None, sha256=None):
    """Parse and validate a description from JSON text.

    The network's ``source_sha256`` is ``sha256`` when given (the hash of the file's bytes, as
    :func:`load` passes it), else that of the text encoded as UTF-8. A text longer than a file
    may be (:data:`~gen.network.validate.MAX_FILE_BYTES`) is refused before it is parsed.
    """
    if len(text) > validate.MAX_FILE_BYTES:  # a character takes at least a byte of a file
        raise DescriptionError(
            f"the text has {len(text)} characters, beyond the limit of {validate.MAX_FILE_BYTES}",
            source=source,
        )
    if sha256 is None:
        sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        doc = jsontext.loads(text)
    except jsontext.JSONError as exc:
        raise DescriptionError(f"invalid JSON: {exc}", source=source) from None
    try:
        net = from_dict(doc)
    except DescriptionError as exc:
        raise exc.located(source) from None
    return dataclasses.replace(net, source_sha256=sha256)


def load(path):
    """Read, parse and validate the description in the file ``path``."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        limit = validate.MAX_FILE_BYTES
        if size > limit:
            raise DescriptionError(
                f"the file has {size} bytes, beyond the limit of {limit}", source=path
            )
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DescriptionError(f"cannot read the file: {exc.strerror}", source=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DescriptionError(f"not UTF-8 text (byte {exc.start})", source=path) from None
    return loads(text, source=path, sha256=hashlib.sha256(raw).hexdigest())


def description_sha256(net):
    """The sha256 (hex) of the description ``net`` came from: the bytes of its file, or for a
    network built in memory the canonical text :func:`dumps` gives it."""
    if net.source_sha256 is not None:
        return net.source_sha256
    return hashlib.sha256(dumps(net).encode("utf-8")).hexdigest()


def _compact(pair):
    return pair[0] if pair[0] == pair[1] else list(pair)


def weight_rows(weights, weight_type="ternary"):
    """The rows of a weight matrix as the description stores them: strings of ``+``, ``0``,
    ``-`` for ternary and binary weights, lists of integers for ``intN``."""
    if weight_type in INT_WEIGHT_TYPES:
        return weights.astype(np.int64).tolist()
    lut = np.frombuffer(b"-0+", dtype=np.uint8)
    chars = lut[weights.astype(np.int64) + 1]
    return [row.tobytes().decode("ascii") for row in chars]


def to_dict(net):
    """The canonical JSON document of ``net``."""
    layers = []
    for layer in net.layers:
        if isinstance(layer, MaxPool):
            doc = {"type": "maxpool", "kernel": _compact(layer.kernel)}
            if layer.stride != layer.kernel:
                doc["stride"] = _compact(layer.stride)
            layers.append(doc)
            continue
        doc = {"type": layer.type, "out": layer.out}
        if isinstance(layer, Conv2d):
            doc["kernel"] = list(layer.kernel)
            doc["stride"] = _compact(layer.stride)
            doc["padding"] = _compact(layer.padding)
            if layer.pad != 0:
                doc["pad"] = layer.pad
        if layer.weight_type != "ternary":
            doc["weight_type"] = layer.weight_type
        doc["weights"] = weight_rows(layer.weights, layer.weight_type)
        if layer.activation is None:
            doc["activation"] = None
        else:
            doc["activation"] = {
                "levels": list(layer.activation.levels),
                "thresholds": layer.activation.thresholds.tolist(),
            }
        layers.append(doc)
    return {
        "format": net.format,
        "name": net.name,
        "input": {"shape": list(net.input.shape), "type": net.input.type.name},
        "layers": layers,
        "output": net.output,
    }


def dumps(net):
    """Canonical JSON text of ``net``: one weight row per line, so diffs are readable."""
    return _render(to_dict(net), 0) + "\n"


def _render(value, depth):
    """JSON with lists of numbers on one line and every other list one item per line."""
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_render(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if all(isinstance(v, (int, float)) or v is None for v in value):
            return "[" + ", ".join(json.dumps(v) for v in value) + "]"
        items = [inner + _render(v, depth + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value)


def save(net, path):
    """Write ``net`` to ``path`` atomically (a temporary file moved into place)."""
    write_text_atomic(os.fspath(path), dumps(net))
