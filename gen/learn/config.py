"""Training configurations: the JSON file ``tnngen train`` reads, checked field by field."""

import math
import os
from dataclasses import dataclass, field

from .. import jsontext, network
from . import quant

__all__ = [
    "CLASSES",
    "ConfigError",
    "Config",
    "load_config",
    "parse_config",
    "output_path",
    "activation_spec",
]

CLASSES = 10


class ConfigError(ValueError):
    """A malformed training configuration; the message names the file and the field."""


@dataclass(frozen=True)
class Config:
    """A training run, as a JSON configuration file gives it.

    Attributes
    ----------
    name : str
        The description's name.
    data : str
        A data set of :mod:`gen.learn.datasets` (``digits``, ``mnist5k``, ``digits-seg``,
        ``idx:DIR``); training uses its train split, the figures its test split.
    input : str
        The description's input type (``uint4``, ``ternary`` ...); the images are converted by
        :func:`gen.datasets.to_inputs`.
    layers : tuple of dict
        ``{"type": "dense", "out": n}``, ``{"type": "conv2d", "out": c, "kernel": k, "stride":
        s, "padding": p}`` (either with an optional ``twn_delta`` or ``ttq_threshold``) or
        ``{"type": "maxpool",
        "kernel": k}`` (after a ``conv2d``); the last is a ``dense`` or ``conv2d`` layer with one
        output per class (``class_map``: a ``conv2d`` with one channel per class).
    output_kind : str
        The description's ``output``: ``argmax`` (one class per image; the default) or
        ``class_map`` (one class per position of the last conv2d layer's output map, trained by
        a per-pixel softmax cross-entropy over its channels; the data set must label pixels,
        ``digits-seg``). Not ``output``, which names the description's file.
    weights : str
        ``ternary`` (TWN), ``binary`` (XNOR-Net), ``ttq`` (Trained Ternary Quantization:
        ``{-n, 0, +p}``, exported as ``int{ttq_bits}``) or ``intN`` (N = 2..8: DoReFa / QNN
        weights on the grid ``-(2**(N-1) - 1) .. 2**(N-1) - 1``, exported as ``intN``).
    activations : str
        ``ternary``, ``binary`` or ``uintN`` (N = 1..8) for every hidden layer.
    twn_delta : float
        TWN's threshold factor (0.7); larger gives sparser weights. A layer may give its own.
    ttq_threshold : float
        TTQ's ``t``: weights beyond ``t * max|w|`` of their layer are nonzero (0.05, the
        paper's). A layer may give its own.
    ttq_bits : int
        The ``intN`` type of TTQ layers, 2 to 8 (4): ``p, n <= 2**(N-1) - 1``, the precision
        of the ratio ``p / n`` (:func:`gen.learn.quant.ttq_ratio`).
    activation_delta : float
        The ternary activation threshold on the batch-normalized pre-activation.
    float_activation : str
        ``relu`` or ``hardtanh``: the hidden activation of the float baseline.
    epochs, batch_size : int
    learning_rate : float
        Adam's initial step size, decayed to zero along a cosine.
    seed : int
    shift : int
        Data augmentation: each training image moves by a random whole number of pixels,
        ``-shift .. shift`` in each direction, every time it is used (0: none).
    output : str
        Where the description goes; relative to the configuration file's folder.
    """

    name: str
    data: str
    input: str
    layers: tuple
    weights: str = "ternary"
    activations: str = "ternary"
    twn_delta: float = quant.TWN_DELTA
    ttq_threshold: float = quant.TTQ_THRESHOLD
    ttq_bits: int = quant.TTQ_BITS
    activation_delta: float = 0.5
    float_activation: str = "relu"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 0.01
    seed: int = 0
    shift: int = 0
    output: str = ""
    output_kind: str = "argmax"
    source: str = field(default="", compare=False)

    def with_changes(self, **changes):
        """A copy with some fields changed (checked again)."""
        fields = self.__dataclass_fields__
        # Fields at their defaults are left out: a TTQ field may only be given for TTQ weights.
        doc = {
            k: getattr(self, k)
            for k, f in fields.items()
            if k != "source" and not (k.startswith("ttq_") and getattr(self, k) == f.default)
        }
        doc["layers"] = [dict(layer) for layer in self.layers]
        doc.update(changes)
        return parse_config(doc, source=self.source)


_REQUIRED = ("name", "data", "input", "layers")
_OPTIONAL = {
    "weights": str,
    "activations": str,
    "twn_delta": float,
    "ttq_threshold": float,
    "ttq_bits": int,
    "activation_delta": float,
    "float_activation": str,
    "epochs": int,
    "batch_size": int,
    "learning_rate": float,
    "seed": int,
    "shift": int,
    "output": str,
    "output_kind": str,
    "comment": str,
}


def _error(source, where, problem):
    head = ": ".join(part for part in (source, where) if part)
    return ConfigError(f"{head}: {problem}" if head else problem)


def _check_number(value, kind, source, where, *, positive=True):
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    if not ok:
        raise _error(
            source, where, f"must be {'an integer' if kind is int else 'a number'}, not {value!r}"
        )
    if positive and value <= 0:
        raise _error(source, where, f"must be positive, not {value!r}")
    return value


def _check_pair(value, source, where, lo):
    values = list(value) if isinstance(value, (list, tuple)) and len(value) == 2 else [value] * 2
    for v in values:
        if not (isinstance(v, int) and not isinstance(v, bool)) or v < lo:
            raise _error(
                source, where, f"must be an integer >= {lo} or a list of two, not {value!r}"
            )
    return tuple(values)


def _check_layers(layers, source):
    if not isinstance(layers, list) or not layers:
        raise _error(source, "layers", "must be a non-empty list of layers")
    checked = []
    for index, layer in enumerate(layers):
        where = f"layers[{index}]"
        if not isinstance(layer, dict):
            raise _error(source, where, f"must be an object, not {layer!r}")
        kind = layer.get("type")
        allowed = {
            "dense": {"type", "out", "twn_delta", "ttq_threshold"},
            "conv2d": {"type", "out", "kernel", "stride", "padding", "twn_delta", "ttq_threshold"},
            "maxpool": {"type", "kernel"},
        }
        if kind not in allowed:
            raise _error(
                source, f"{where}.type", f"must be 'dense', 'conv2d' or 'maxpool', not {kind!r}"
            )
        unknown = sorted(set(layer) - allowed[kind])
        if unknown:
            raise _error(
                source,
                where,
                f"unknown field {unknown[0]!r} for {kind}; expected one of {sorted(allowed[kind])}",
            )
        if kind == "maxpool":
            if not checked or checked[-1]["type"] != "conv2d":
                raise _error(source, where, "a maxpool must follow a conv2d layer")
            if "kernel" not in layer:
                raise _error(source, where, "missing field 'kernel'")
            checked.append(
                {
                    "type": "maxpool",
                    "kernel": _check_pair(layer["kernel"], source, f"{where}.kernel", 1),
                }
            )
            continue
        if "out" not in layer:
            raise _error(source, where, "missing field 'out'")
        doc = {"type": kind, "out": _check_number(layer["out"], int, source, f"{where}.out")}
        if doc["out"] > network.MAX_DIM:
            raise _error(source, f"{where}.out", f"must be at most {network.MAX_DIM}")
        for key in ("twn_delta", "ttq_threshold"):
            if key in layer:
                doc[key] = _check_number(layer[key], float, source, f"{where}.{key}")
        if kind == "conv2d":
            if "kernel" not in layer:
                raise _error(source, where, "missing field 'kernel'")
            doc["kernel"] = _check_pair(layer["kernel"], source, f"{where}.kernel", 1)
            doc["stride"] = _check_pair(layer.get("stride", 1), source, f"{where}.stride", 1)
            doc["padding"] = _check_pair(layer.get("padding", 0), source, f"{where}.padding", 0)
        checked.append(doc)
    last = checked[-1]
    if last["type"] == "maxpool":
        raise _error(
            source,
            f"layers[{len(checked) - 1}]",
            "the last layer must be dense or conv2d (its accumulators are the class scores)",
        )
    seen_dense = False
    for index, layer in enumerate(checked):
        if layer["type"] == "dense":
            seen_dense = True
        elif seen_dense:
            raise _error(
                source,
                f"layers[{index}]",
                "conv2d and maxpool must come before the first dense layer",
            )
    return tuple(checked)


def parse_config(doc, *, source=""):
    """Check a configuration document (a parsed JSON object) and build its :class:`Config`.

    Raises
    ------
    ConfigError
        Naming ``source`` and the field, for anything missing, unknown or out of range.
    """
    if not isinstance(doc, dict):
        raise _error(source, "", f"must be a JSON object, not {type(doc).__name__}")
    for key in _REQUIRED:
        if key not in doc:
            raise _error(source, "", f"missing field {key!r}")
    for key in doc:
        if key not in _REQUIRED and key not in _OPTIONAL:
            raise _error(
                source,
                "",
                f"unknown field {key!r}; expected one of {sorted(set(_REQUIRED) | set(_OPTIONAL))}",
            )
    values = {}
    name = doc["name"]
    if not isinstance(name, str) or not name:
        raise _error(source, "name", f"must be a non-empty string, not {name!r}")
    try:  # the description's own rule for names, so that export cannot fail on it
        network.from_dict(
            {
                "format": network.FORMAT,
                "name": name,
                "input": {"shape": [1], "type": "binary"},
                "layers": [{"type": "dense", "out": 1, "weights": ["+"], "activation": None}],
                "output": "argmax",
            }
        )
    except network.DescriptionError as exc:
        raise _error(source, "name", exc.problem) from None
    values["name"] = name
    data = doc["data"]
    if not isinstance(data, str) or not (
        data in ("digits", "mnist5k", "digits-seg") or data.startswith("idx:")
    ):
        raise _error(
            source, "data", f"must be 'digits', 'mnist5k', 'digits-seg' or 'idx:DIR', not {data!r}"
        )
    values["data"] = data
    try:
        input_type = network.ValueType.parse(doc["input"], where="input")
    except network.DescriptionError as exc:
        raise _error(source, "input", exc.problem) from None
    values["input"] = input_type.name
    values["layers"] = _check_layers(doc["layers"], source)
    for key, kind in _OPTIONAL.items():
        if key not in doc or key == "comment":
            continue
        value = doc[key]
        if kind is str:
            if not isinstance(value, str):
                raise _error(source, key, f"must be a string, not {value!r}")
        else:
            _check_number(value, kind, source, key, positive=key not in ("seed", "shift"))
            if key in ("seed", "shift") and value < 0:
                raise _error(source, key, f"must be at least 0, not {value!r}")
        values[key] = value
    weights = values.get("weights", "ternary")
    if weights not in ("ternary", "binary", "ttq") and quant.int_weight_bits(weights) is None:
        raise _error(
            source,
            "weights",
            f"must be 'ternary', 'binary', 'ttq' or 'intN' (N = 2..8), not {weights!r}",
        )
    if "ttq_bits" in values and not 2 <= values["ttq_bits"] <= 8:
        raise _error(source, "ttq_bits", f"must be 2 to 8, not {values['ttq_bits']!r}")
    if weights != "ttq":
        for key in ("ttq_bits", "ttq_threshold"):
            if key in values:
                raise _error(source, key, f"is for weights 'ttq', not {weights!r}")
        for index, layer in enumerate(values["layers"]):
            if "ttq_threshold" in layer:
                raise _error(
                    source,
                    f"layers[{index}].ttq_threshold",
                    f"is for weights 'ttq', not {weights!r}",
                )
    activations = values.get("activations", "ternary")
    try:
        activation_spec(activations)
    except ValueError:
        raise _error(
            source,
            "activations",
            f"must be 'ternary', 'binary' or 'uintN' (N = 1..8), not {activations!r}",
        ) from None
    if values.get("float_activation", "relu") not in ("relu", "hardtanh"):
        raise _error(
            source,
            "float_activation",
            f"must be 'relu' or 'hardtanh', not {values['float_activation']!r}",
        )
    output_kind = values.get("output_kind", "argmax")
    if output_kind not in ("argmax", "class_map"):
        raise _error(source, "output_kind", f"must be 'argmax' or 'class_map', not {output_kind!r}")
    if output_kind == "class_map" and values["layers"][-1]["type"] != "conv2d":
        raise _error(
            source,
            f"layers[{len(values['layers']) - 1}]",
            "output_kind 'class_map' needs a conv2d last layer (one channel per class), "
            f"not {values['layers'][-1]['type']}",
        )
    pixel_labels = data == "digits-seg"
    if pixel_labels != (output_kind == "class_map"):
        raise _error(
            source,
            "data",
            f"{data!r} labels {'pixels' if pixel_labels else 'whole images'}: it needs "
            f"output_kind {'class_map' if pixel_labels else 'argmax'!r}, not {output_kind!r}",
        )
    return Config(**values, source=source)


def load_config(path):
    """Read and check the JSON configuration file ``path``."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        doc = jsontext.loads(text)
    except jsontext.JSONError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from None
    return parse_config(doc, source=path)


def output_path(config):
    """Where ``config`` writes its description: ``output`` relative to the config's folder."""
    if not config.output:
        raise ConfigError(f"{config.source or 'config'}: output: no output path given")
    base = os.path.dirname(os.path.abspath(config.source)) if config.source else os.getcwd()
    return os.path.normpath(os.path.join(base, config.output))


def activation_spec(name):
    """``(levels, thresholds, scale, ste_lo)`` of an activation kind given by name."""
    if name in ("ternary", "binary"):
        levels, thresholds, scale = quant.activation_levels(name)
        return levels, thresholds, scale, -1.0
    if name.startswith("uint") and name[4:].isdigit():
        levels, thresholds, scale = quant.activation_levels("uint", bits=int(name[4:]))
        return levels, thresholds, scale, 0.0
    raise ValueError(name)
