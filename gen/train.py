"""Quantization-aware training on NumPy, and export to ``tnn/1`` through :mod:`gen.quant`.

A network is a list of blocks, as in the description it exports to: ``dense`` and ``conv2d``
layers, each but the last followed by batch norm and a quantized activation, and ``maxpool``
after a ``conv2d``. The forward pass of training uses the quantized weights and activations
(TWN ternary or XNOR-Net binary weights; ternary, binary or ``uintN`` activations) and the
backward pass the straight-through estimator (:func:`gen.quant.ste`); Adam updates the real
latent weights, which are clipped to [-1, 1] as in BNN. The last layer has one weight scale
shared by all its outputs and no bias or batch norm, so that the ``argmax`` of its integer
accumulators is the ``argmax`` of its float logits: the exported description's prediction is
the trained network's, exactly.

With ``quantized=False`` the same architecture trains in float (float weights, ReLU or hardtanh
activations): the baseline the quantized model is measured against.

Training is deterministic: the seed fixes the initial weights and the order of the batches, and
BLAS runs on one thread while training, since a multi-threaded BLAS may split sums differently
from run to run. The same seed, data and software give the same description, byte for byte.
(Another BLAS build or CPU may round some sums differently and so train another model.)

After training, batch-norm statistics are re-estimated on the whole training split in inference
mode, and the network is exported: the weights quantized, every real factor folded into integer
thresholds (:func:`gen.quant.fold_layer`). :func:`train` then runs the golden model of the
description on the test split and checks that it agrees with the trainer's own inference pass
on every image, layer by layer.
"""

import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from . import arith, datasets, golden, network, quant

__all__ = [
    "ConfigError",
    "Config",
    "load_config",
    "parse_config",
    "output_path",
    "Model",
    "TrainResult",
    "build_model",
    "input_spec_of",
    "prepare_data",
    "train",
    "check_exact",
    "export",
    "run_config",
]

CLASSES = 10


class ConfigError(ValueError):
    """A malformed training configuration; the message names the file and the field."""


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A training run, as a JSON configuration file gives it.

    Attributes
    ----------
    name : str
        The description's name.
    data : str
        A data set of :mod:`gen.datasets` (``digits``, ``mnist5k``, ``idx:DIR``); training uses
        its train split, the figures its test split.
    input : str
        The description's input type (``uint4``, ``ternary`` ...); the images are converted by
        :func:`gen.datasets.to_inputs`.
    layers : tuple of dict
        ``{"type": "dense", "out": n}``, ``{"type": "conv2d", "out": c, "kernel": k, "stride":
        s, "padding": p}`` (either with an optional ``twn_delta``) or ``{"type": "maxpool",
        "kernel": k}`` (after a ``conv2d``); the last is a ``dense`` or ``conv2d`` layer with one
        output per class.
    weights : str
        ``ternary`` (TWN) or ``binary`` (XNOR-Net).
    activations : str
        ``ternary``, ``binary`` or ``uintN`` (N = 1..8) for every hidden layer.
    twn_delta : float
        TWN's threshold factor (0.7); larger gives sparser weights. A layer may give its own.
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
    activation_delta: float = 0.5
    float_activation: str = "relu"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 0.01
    seed: int = 0
    shift: int = 0
    output: str = ""
    source: str = field(default="", compare=False)

    def with_changes(self, **changes):
        """A copy with some fields changed (checked again)."""
        doc = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "source"}
        doc["layers"] = [dict(layer) for layer in self.layers]
        doc.update(changes)
        return parse_config(doc, source=self.source)


_REQUIRED = ("name", "data", "input", "layers")
_OPTIONAL = {
    "weights": str,
    "activations": str,
    "twn_delta": float,
    "activation_delta": float,
    "float_activation": str,
    "epochs": int,
    "batch_size": int,
    "learning_rate": float,
    "seed": int,
    "shift": int,
    "output": str,
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
            "dense": {"type", "out", "twn_delta"},
            "conv2d": {"type", "out", "kernel", "stride", "padding", "twn_delta"},
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
        if "twn_delta" in layer:
            doc["twn_delta"] = _check_number(
                layer["twn_delta"], float, source, f"{where}.twn_delta"
            )
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
    if not isinstance(data, str) or not (data in ("digits", "mnist5k") or data.startswith("idx:")):
        raise _error(source, "data", f"must be 'digits', 'mnist5k' or 'idx:DIR', not {data!r}")
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
    if values.get("weights", "ternary") not in ("ternary", "binary"):
        raise _error(source, "weights", f"must be 'ternary' or 'binary', not {doc['weights']!r}")
    activations = values.get("activations", "ternary")
    try:
        _activation_spec(activations)
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
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    return parse_config(doc, source=path)


def output_path(config):
    """Where ``config`` writes its description: ``output`` relative to the config's folder."""
    if not config.output:
        raise ConfigError(f"{config.source or 'config'}: output: no output path given")
    base = os.path.dirname(os.path.abspath(config.source)) if config.source else os.getcwd()
    return os.path.normpath(os.path.join(base, config.output))


def _activation_spec(name):
    """``(levels, thresholds, scale, ste_lo)`` of an activation kind given by name."""
    if name in ("ternary", "binary"):
        levels, thresholds, scale = quant.activation_levels(name)
        return levels, thresholds, scale, -1.0
    if name.startswith("uint") and name[4:].isdigit():
        levels, thresholds, scale = quant.activation_levels("uint", bits=int(name[4:]))
        return levels, thresholds, scale, 0.0
    raise ValueError(name)


# --- layers --------------------------------------------------------------------------------------


def _col2im(dcols, x_shape, kernel, stride, padding):
    """The adjoint of :func:`gen.arith.windows`: sums window gradients back into the input."""
    batch, h, w, c = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = dcols.shape[1:3]
    d = dcols.reshape(batch, oh, ow, kh, kw, c)
    dx = np.zeros((batch, h + 2 * ph, w + 2 * pw, c))
    for ky in range(kh):
        for kx in range(kw):
            dx[:, ky : ky + sh * (oh - 1) + 1 : sh, kx : kx + sw * (ow - 1) + 1 : sw] += d[
                :, :, :, ky, kx
            ]
    return dx[:, ph : ph + h, pw : pw + w]


def _pool_windows(z, kernel):
    """Non-overlapping ``kernel`` windows of ``z`` (batch, h, w, c): (batch, ph, pw, c, kh*kw)."""
    kh, kw = kernel
    batch, h, w, c = z.shape
    ph, pw = h // kh, w // kw
    view = z[:, : ph * kh, : pw * kw].reshape(batch, ph, kh, pw, kw, c)
    return view.transpose(0, 1, 3, 5, 2, 4).reshape(batch, ph, pw, c, kh * kw)


class _Weighted:
    """A dense or conv2d layer with, unless it is the last, batch norm, activation, maxpool."""

    def __init__(self, spec, in_shape, in_has_zero, *, last, config, quantized, rng):
        self.kind = spec["type"]
        self.out = spec["out"]
        self.last = last
        self.quantized = quantized
        self.weight_kind = config.weights
        self.twn_delta = spec.get("twn_delta", config.twn_delta)
        self.in_shape = in_shape
        self.pool = None
        if self.kind == "dense":
            self.fan_in = int(np.prod(in_shape))
            self.out_shape = (self.out,)
        else:
            self.kernel, self.stride, self.padding = spec["kernel"], spec["stride"], spec["padding"]
            self.fan_in = self.kernel[0] * self.kernel[1] * in_shape[2]
            self.out_shape = tuple(
                (in_shape[a] + 2 * self.padding[a] - self.kernel[a]) // self.stride[a] + 1
                for a in (0, 1)
            ) + (self.out,)
            if min(self.out_shape[:2]) < 1:
                raise ConfigError(f"a conv2d kernel {self.kernel} does not fit {in_shape}")
            # Padding inserts 0 where the input type has it, else -1 (binary inputs).
            self.pad = 0 if in_has_zero else -1
        limit = math.sqrt(6.0 / (self.fan_in + self.out))
        self.params = {"w": rng.uniform(-limit, limit, (self.out, self.fan_in))}
        if last:
            self.params["log_gain"] = np.zeros(1)
        else:
            self.params["gamma"] = np.ones(self.out)
            self.params["beta"] = np.zeros(self.out)
            self.running_mean = np.zeros(self.out)
            self.running_var = np.ones(self.out)
            if quantized:
                act = _activation_spec(config.activations)
                self.levels, self.thresholds, self.act_scale, self.ste_lo = act
            else:
                self.float_activation = config.float_activation
                self.act_scale = 1.0
        self.eps = 1e-5

    def add_pool(self, kernel):
        """Follow the activation with a non-overlapping ``kernel`` maxpool."""
        self.pool = kernel
        h, w, c = self.out_shape
        self.pool_shape = (h // kernel[0], w // kernel[1], c)

    @property
    def result_shape(self):
        return self.pool_shape if self.pool else self.out_shape

    # -- pieces shared by training and inference --

    def _cols(self, x):
        if self.kind == "dense":
            return x.reshape(x.shape[0], -1)
        return arith.windows(x, self.kernel, self.stride, self.padding, self.pad)

    def weight_matrix(self):
        """``(W, alpha)``: the weights the forward pass uses and their per-row scale."""
        w = self.params["w"]
        if not self.quantized:
            return w, np.ones(self.out)
        return quant.quantize_weights(
            w, self.weight_kind, delta_factor=self.twn_delta, per_row=not self.last
        )

    def affine(self, input_scale):
        """The inference-time :class:`gen.quant.Affine` of a hidden layer."""
        _, alpha = self.weight_matrix()
        bn = quant.BatchNorm(
            self.params["gamma"],
            self.params["beta"],
            self.running_mean,
            self.running_var,
            self.eps,
        )
        return quant.Affine(alpha, input_scale, None, bn)

    # -- training --

    def forward(self, x, input_scale, training):
        """Outputs of a batch; with ``training`` batch statistics and a cache for backward."""
        cols = self._cols(x)
        wm, alpha = self.weight_matrix()
        k = alpha * input_scale
        acc = cols @ wm.T
        u = acc * k
        cache = {"x_shape": x.shape, "cols": cols, "wm": wm, "k": k, "input_scale": input_scale}
        if self.last:
            gain = np.exp(self.params["log_gain"][0])
            cache["u"], cache["gain"] = u, gain
            return u.reshape(len(x), -1) * gain, cache
        axes = tuple(range(u.ndim - 1))
        if training:
            mean, var = u.mean(axis=axes), u.var(axis=axes)
        else:
            mean, var = self.running_mean, self.running_var
        std = np.sqrt(var + self.eps)
        u_hat = (u - mean) / std
        z = u_hat * self.params["gamma"] + self.params["beta"]
        cache.update(u_hat=u_hat, std=std, mean=mean, var=var)
        if self.pool:
            # The activation is monotone, so pooling before it gives the same values as after
            # it (the description's order), and gives the gradient to the largest z.
            windows = _pool_windows(z, self.pool)
            choice = np.argmax(windows, axis=-1)
            cache["pool_choice"], cache["z_shape"] = choice, z.shape
            z = np.take_along_axis(windows, choice[..., None], axis=-1)[..., 0]
        cache["z"] = z
        if self.quantized:
            y = quant.quantize_levels(z, self.levels, self.thresholds)
        elif self.float_activation == "relu":
            y = np.maximum(z, 0)
        else:
            y = np.clip(z, -1, 1)
        return y, cache

    def backward(self, dy, cache, need_dx):
        """Gradients of the parameters (a dict) and of the input (or None)."""
        grads = {}
        if self.last:
            u, gain = cache["u"], cache["gain"]
            dy = dy.reshape(u.shape)
            grads["log_gain"] = np.array([np.sum(dy * u) * gain])
            du = dy * gain
        else:
            z = cache["z"]
            if self.quantized:
                dz = quant.ste(dy, z, self.ste_lo, 1.0)
            elif self.float_activation == "relu":
                dz = dy * (z > 0)
            else:
                dz = quant.ste(dy, z)
            if self.pool:
                windows = np.zeros(cache["pool_choice"].shape + (self.pool[0] * self.pool[1],))
                np.put_along_axis(windows, cache["pool_choice"][..., None], dz[..., None], -1)
                dz = _unpool(windows, self.pool, cache["z_shape"])
            axes = tuple(range(dz.ndim - 1))
            u_hat = cache["u_hat"]
            grads["gamma"] = np.sum(dz * u_hat, axis=axes)
            grads["beta"] = np.sum(dz, axis=axes)
            du_hat = dz * self.params["gamma"]
            count = int(np.prod(dz.shape[:-1]))
            du = (
                du_hat
                - du_hat.sum(axis=axes) / count
                - u_hat * (du_hat * u_hat).sum(axis=axes) / count
            ) / cache["std"]
        cols = cache["cols"]
        flat_du = du.reshape(-1, self.out)
        # TWN and BNN: the gradient of the latent weights is that of the scaled quantized weights
        # (straight through); clipping to [-1, 1] after each step stands for BNN's 1{|w| <= 1}.
        grads["w"] = (flat_du * cache["input_scale"]).T @ cols.reshape(-1, self.fan_in)
        if not need_dx:
            return grads, None
        dcols = (du * cache["k"]) @ cache["wm"]
        if self.kind == "dense":
            return grads, dcols.reshape(cache["x_shape"])
        return grads, _col2im(dcols, cache["x_shape"], self.kernel, self.stride, self.padding)


def _unpool(windows, kernel, z_shape):
    """The adjoint of :func:`_pool_windows` (zeros where the windows do not reach)."""
    kh, kw = kernel
    batch, h, w, c = z_shape
    ph, pw = h // kh, w // kw
    d = windows.reshape(batch, ph, pw, c, kh, kw).transpose(0, 1, 4, 2, 5, 3)
    dz = np.zeros(z_shape)
    dz[:, : ph * kh, : pw * kw] = d.reshape(batch, ph * kh, pw * kw, c)
    return dz


# --- the model -----------------------------------------------------------------------------------


class Model:
    """A trainable network built from a :class:`Config` (see :func:`build_model`).

    Attributes
    ----------
    blocks : list
        One per ``dense`` or ``conv2d`` layer (a following ``maxpool`` belongs to its block).
    input_spec : gen.network.InputSpec
    input_scale : float
        The real value of one integer input step (``1 / (2**N - 1)`` for ``uintN``).
    quantized : bool
    """

    def __init__(self, config, input_spec, *, quantized, rng):
        self.config = config
        self.input_spec = input_spec
        self.quantized = quantized
        value_type = input_spec.type
        top = max(abs(value_type.lo), abs(value_type.hi))
        self.input_scale = 1.0 / top
        self.blocks = []
        shape, has_zero = input_spec.shape, bool(value_type.contains(0))
        weighted = [k for k, layer in enumerate(config.layers) if layer["type"] != "maxpool"]
        for index, spec in enumerate(config.layers):
            if spec["type"] == "maxpool":
                block = self.blocks[-1]
                kernel = spec["kernel"]
                if kernel[0] > block.out_shape[0] or kernel[1] > block.out_shape[1]:
                    raise ConfigError(
                        f"{config.source}: layers[{index}].kernel: {list(kernel)} is larger "
                        f"than its input {list(block.out_shape)}"
                    )
                block.add_pool(kernel)
                shape = block.result_shape
                continue
            if spec["type"] == "conv2d" and len(shape) != 3:
                raise ConfigError(f"{config.source}: layers[{index}]: conv2d needs an image input")
            try:
                block = _Weighted(
                    spec,
                    shape,
                    has_zero,
                    last=index == weighted[-1],
                    config=config,
                    quantized=quantized,
                    rng=rng,
                )
            except ConfigError as exc:
                raise ConfigError(f"{config.source}: layers[{index}]: {exc}") from None
            self.blocks.append(block)
            shape = block.result_shape
            has_zero = 0 in _activation_spec(config.activations)[0]
        if int(np.prod(shape)) != CLASSES:
            raise ConfigError(
                f"{config.source}: layers[{len(config.layers) - 1}].out: the last layer must "
                f"give {CLASSES} class scores, not {int(np.prod(shape))}"
            )

    def _scales(self):
        scale = self.input_scale
        for block in self.blocks:
            yield block, scale
            if not block.last:
                scale = block.act_scale

    def forward(self, x, training):
        """Logits of a batch ``x`` of integer inputs (as float64), and the caches for
        :meth:`backward`; ``training`` uses batch statistics in the batch norms."""
        caches = []
        for block, scale in self._scales():
            x, cache = block.forward(x, scale, training)
            caches.append(cache)
        return x, caches

    def backward(self, dlogits, caches):
        """Per block, a dict of the gradients of its parameters, from those of the logits."""
        grads = [None] * len(self.blocks)
        d = dlogits
        for n in range(len(self.blocks) - 1, -1, -1):
            grads[n], d = self.blocks[n].backward(d, caches[n], need_dx=n > 0)
        return grads

    def infer(self, x):
        """The trainer's own inference pass: exact integers where the description has them.

        Returns ``(predicted, outputs)``: class indices (``argmax`` of the last layer's
        accumulators, ties to the lowest index) and, per ``tnn/1`` layer, its output (the
        quantized activation values; the pooled values for a maxpool; the accumulators, or the
        float logits, for the last layer).
        """
        outputs = []
        for block, scale in self._scales():
            cols = block._cols(x)
            wm, alpha = block.weight_matrix()
            acc = cols @ wm.T  # exact: integer values far below 2**53
            if block.last:
                logits = acc if self.quantized else acc * (alpha * scale)
                outputs.append(logits.reshape(len(x), -1))
                break
            if self.quantized:
                z = quant.preactivation(acc, block.affine(scale))
                x = quant.quantize_levels(z, block.levels, block.thresholds)
            else:
                x, _ = _float_activation(block, acc * (alpha * scale))
            outputs.append(x)
            if block.pool:
                x = arith.maxpool(x, block.pool, block.pool)
                outputs.append(x)
        scores = outputs[-1]
        return np.argmax(scores, axis=1), outputs

    def recalibrate(self, inputs, batch_size=500):
        """Batch-norm statistics from the whole of ``inputs``, layer by layer, in inference
        mode (the running averages of training lag the weights' last steps)."""
        for n, block in enumerate(self.blocks):
            if block.last:
                break
            us = []
            for start in range(0, len(inputs), batch_size):
                x = inputs[start : start + batch_size]
                for earlier, scale in list(self._scales())[:n]:
                    x, _ = earlier.forward(x, scale, training=False)
                scale = list(self._scales())[n][1]
                cols = block._cols(x)
                wm, alpha = block.weight_matrix()
                us.append(((cols @ wm.T) * (alpha * scale)).reshape(-1, block.out))
            u = np.concatenate(us)
            block.running_mean = u.mean(axis=0)
            block.running_var = u.var(axis=0)


def _float_activation(block, u):
    bn = quant.BatchNorm(
        block.params["gamma"],
        block.params["beta"],
        block.running_mean,
        block.running_var,
        block.eps,
    )
    z = quant.preactivation(u, quant.Affine(np.ones(block.out), 1.0, None, bn))
    if block.float_activation == "relu":
        return np.maximum(z, 0), z
    return np.clip(z, -1, 1), z


def build_model(config, input_spec, *, quantized=True, seed=None):
    """A freshly initialized :class:`Model` (weights drawn from ``seed``, default the config's)."""
    rng = np.random.default_rng(config.seed if seed is None else seed)
    return Model(config, input_spec, quantized=quantized, rng=rng)


def input_spec_of(config, images):
    """The description's input: ``[h, w, 1]`` when the first layer is a conv2d, else ``[h*w]``."""
    h, w = images.shape[1:3]
    shape = (h, w, 1) if config.layers[0]["type"] == "conv2d" else (h * w,)
    return network.InputSpec(shape, network.ValueType.parse(config.input))


def prepare_data(config):
    """``(input_spec, (x_train, y_train), (x_test, y_test))``: integer inputs and labels."""
    train_set = datasets.load(config.data, "train")
    test_set = datasets.load(config.data, "test")
    spec = input_spec_of(config, train_set.images)
    x_train = datasets.to_inputs(train_set, spec).astype(np.float64)
    x_test = datasets.to_inputs(test_set, spec).astype(np.float64)
    return spec, (x_train, train_set.labels), (x_test, test_set.labels)


# --- training ------------------------------------------------------------------------------------


class _Adam:
    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.step = 0
        self.moments = {}

    def update(self, key, param, grad, lr):
        m, v = self.moments.get(key, (np.zeros_like(param), np.zeros_like(param)))
        m = self.beta1 * m + (1 - self.beta1) * grad
        v = self.beta2 * v + (1 - self.beta2) * grad * grad
        self.moments[key] = (m, v)
        m_hat = m / (1 - self.beta1**self.step)
        v_hat = v / (1 - self.beta2**self.step)
        param -= lr * m_hat / (np.sqrt(v_hat) + self.eps)


def _shifted(x, spec, shift, rng):
    """Each image of ``x`` moved by up to ``shift`` pixels each way, filled with background.

    The background is the input type's lowest value: what :func:`gen.datasets.to_inputs` makes
    of a 0 pixel for every type.
    """
    n = len(x)
    if len(spec.shape) == 3:
        h, w = spec.shape[:2]
    else:
        h = w = math.isqrt(spec.shape[0])
        if h * w != spec.shape[0]:
            raise ConfigError(f"shift needs square images, not {spec.shape[0]} pixels")
    images = x.reshape(n, h, w, -1)
    padded = np.pad(
        images,
        ((0, 0), (shift, shift), (shift, shift), (0, 0)),
        constant_values=spec.type.lo,
    )
    dy = rng.integers(0, 2 * shift + 1, n)
    dx = rng.integers(0, 2 * shift + 1, n)
    rows = (dy[:, None] + np.arange(h))[:, :, None]
    cols = (dx[:, None] + np.arange(w))[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols].reshape(x.shape)


def _softmax_cross_entropy(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(len(labels)), labels].mean()
    d = np.exp(log_p)
    d[np.arange(len(labels)), labels] -= 1
    return loss, d / len(labels)


@contextmanager
def _single_threaded_blas():
    """BLAS on one thread (deterministic sums) while training, when threadpoolctl is there."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _stderr_progress(line):
    print(line, file=sys.stderr, flush=True)


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    model : Model
    network : gen.network.Network or None
        The exported description (None for a float model).
    test_accuracy : float
        Of the exported description by the golden model (quantized), or of the float model.
    train_accuracy : float
        Likewise on the train split.
    seconds : float
        Training time, without loading data and exporting.
    history : list of (epoch, loss, train_accuracy)
    """

    model: Model
    network: object
    test_accuracy: float
    train_accuracy: float
    seconds: float
    history: list


def train(config, *, quantized=True, data=None, progress=_stderr_progress):
    """Train the network ``config`` describes; export it when ``quantized``.

    Parameters
    ----------
    config : Config
    quantized : bool
        Quantization-aware training (and export), or the float baseline.
    data : tuple, optional
        ``prepare_data(config)``'s result, to reuse loaded data.
    progress : callable or None
        Called with one line of text per epoch (default: print to stderr).

    Returns
    -------
    TrainResult

    Raises
    ------
    RuntimeError
        If the golden model of the exported description disagrees with the trainer's inference
        pass on any test image (a bug, never expected).
    """
    spec, (x_train, y_train), (x_test, y_test) = data if data is not None else prepare_data(config)
    with _single_threaded_blas():
        rng = np.random.default_rng(config.seed)
        model = Model(config, spec, quantized=quantized, rng=rng)
        optimizer = _Adam(config.learning_rate)
        history = []
        start = time.perf_counter()
        steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
        total = config.epochs * steps_per_epoch
        for epoch in range(1, config.epochs + 1):
            order = rng.permutation(len(x_train))
            loss_sum, correct = 0.0, 0
            for step in range(steps_per_epoch):
                chosen = order[step * config.batch_size : (step + 1) * config.batch_size]
                x = x_train[chosen]
                if config.shift:
                    x = _shifted(x, spec, config.shift, rng)
                logits, caches = model.forward(x, training=True)
                loss, dlogits = _softmax_cross_entropy(logits, y_train[chosen])
                loss_sum += loss * len(chosen)
                correct += int(np.sum(np.argmax(logits, axis=1) == y_train[chosen]))
                grads = model.backward(dlogits, caches)
                optimizer.step += 1
                done = optimizer.step - 1
                lr = 0.5 * config.learning_rate * (1 + math.cos(math.pi * done / total))
                for n, (block, block_grads) in enumerate(zip(model.blocks, grads, strict=True)):
                    for key, grad in block_grads.items():
                        optimizer.update((n, key), block.params[key], grad, lr)
                    if quantized:
                        np.clip(block.params["w"], -1, 1, out=block.params["w"])
                for n, block in enumerate(model.blocks):
                    if not block.last:
                        cache = caches[n]
                        block.running_mean = 0.9 * block.running_mean + 0.1 * cache["mean"]
                        block.running_var = 0.9 * block.running_var + 0.1 * cache["var"]
            history.append((epoch, loss_sum / len(x_train), correct / len(x_train)))
            if progress is not None:
                progress(
                    f"epoch {epoch:3d}/{config.epochs}  loss {loss_sum / len(x_train):.4f}  "
                    f"train accuracy {100 * correct / len(x_train):6.2f}%  "
                    f"{time.perf_counter() - start:6.1f} s"
                )
        model.recalibrate(x_train)
        seconds = time.perf_counter() - start
        train_pred, _ = model.infer(x_train)
        test_pred, outputs = model.infer(x_test)
    train_accuracy = float(np.mean(train_pred == y_train))
    if not quantized:
        test_accuracy = float(np.mean(test_pred == y_test))
        return TrainResult(model, None, test_accuracy, train_accuracy, seconds, history)
    net = export(model, config.name)
    check_exact(model, net, x_test, predicted=test_pred, outputs=outputs)
    golden_pred = golden.run(net, x_test.astype(np.int64))
    test_accuracy = float(np.mean(golden_pred == y_test))
    return TrainResult(model, net, test_accuracy, train_accuracy, seconds, history)


def check_exact(model, net, x, *, predicted=None, outputs=None):
    """Raise ``RuntimeError`` unless the golden model of ``net`` and ``model.infer`` agree on
    ``x``: the same class for every input and the same output of every hidden layer."""
    if predicted is None:
        predicted, outputs = model.infer(x)
    golden_pred, traces = golden.run(net, x.astype(np.int64), trace=True)
    for index, (trace, ours) in enumerate(zip(traces, outputs, strict=True)):
        theirs = trace.out if index < len(traces) - 1 else trace.acc
        if not np.array_equal(np.asarray(theirs, dtype=np.float64), ours):
            bad = int(np.argmax(np.any((theirs != ours).reshape(len(x), -1), axis=1)))
            raise RuntimeError(
                f"export is not exact: layer {index} differs from the trainer's on input {bad}"
            )
    if not np.array_equal(golden_pred, predicted):
        raise RuntimeError("export is not exact: predicted classes differ")


# --- export --------------------------------------------------------------------------------------


def export(model, name):
    """The ``tnn/1`` :class:`gen.network.Network` of a trained quantized ``model``.

    Hidden layers: quantized weights, and thresholds folded from the weight scale, the input
    scale and the batch norm (:func:`gen.quant.fold_layer`; rows with a negative batch-norm
    scale negated). The last layer: its quantized weights and no activation; its one shared
    scale is positive, so the ``argmax`` is unchanged.
    """
    if not model.quantized:
        raise ValueError("Only a quantized model can be exported to tnn/1")
    spec = model.input_spec
    layers = []
    in_range = (spec.type.lo, spec.type.hi)
    for block, scale in model._scales():
        wm, _ = block.weight_matrix()
        if block.last:
            weights, activation = wm, None
        else:
            weights, thresholds = quant.fold_layer(
                wm, block.affine(scale), block.levels, block.thresholds, in_range
            )
            activation = {"levels": list(block.levels), "thresholds": thresholds.tolist()}
            in_range = (block.levels[0], block.levels[-1])
        doc = {"type": block.kind, "out": block.out}
        if block.kind == "conv2d":
            doc.update(
                kernel=list(block.kernel), stride=list(block.stride), padding=list(block.padding)
            )
            if block.pad:
                doc["pad"] = block.pad
        if block.weight_kind == "binary":
            doc["weight_type"] = "binary"
        doc["weights"] = _rows(weights)
        doc["activation"] = activation
        layers.append(doc)
        if block.pool:
            layers.append({"type": "maxpool", "kernel": list(block.pool)})
    doc = {
        "format": network.FORMAT,
        "name": name,
        "input": {"shape": list(spec.shape), "type": spec.type.name},
        "layers": layers,
        "output": "argmax",
    }
    return network.from_dict(doc)


def _rows(weights):
    chars = {1: "+", 0: "0", -1: "-"}
    return ["".join(chars[int(v)] for v in row) for row in np.asarray(weights)]


# --- the command ---------------------------------------------------------------------------------


def run_config(path, *, quantized=True, output=None, progress=_stderr_progress):
    """``tnngen train``: train from the configuration file ``path`` and save the description.

    Parameters
    ----------
    path : str
        A JSON configuration (see :class:`Config`).
    quantized : bool
        False trains the float baseline of the same architecture and writes nothing.
    output : str, optional
        Where to write the description instead of the configuration's ``output``.
    progress : callable or None
        Receives one line per epoch.

    Returns
    -------
    (TrainResult, str)
        The result and a summary to print.
    """
    config = load_config(path)
    destination = output or (output_path(config) if quantized else None)
    if destination is not None and not os.path.isdir(os.path.dirname(os.path.abspath(destination))):
        raise ConfigError(f"{path}: output: the folder of {destination} does not exist")
    try:
        data = prepare_data(config)
    except datasets.DataError as exc:
        raise ConfigError(f"{path}: data: {exc}") from None
    result = train(config, quantized=quantized, data=data, progress=progress)
    test_count, train_count = len(data[2][1]), len(data[1][1])
    lines = [
        f"model     {config.name} ({'quantized' if quantized else 'float baseline'})",
        f"data      {config.data}: {train_count} train, {test_count} test images",
        f"trained   {config.epochs} epochs in {result.seconds:.1f} s",
        f"train     {100 * result.train_accuracy:.2f}%",
        f"test      {100 * result.test_accuracy:.2f}%"
        + (" (golden model of the description)" if quantized else ""),
    ]
    if quantized:
        weighted = [layer for layer in result.network.layers if hasattr(layer, "weights")]
        total = sum(layer.weights.size for layer in weighted)
        nonzero = sum(int(np.count_nonzero(layer.weights)) for layer in weighted)
        lines.append(f"weights   {total} ({nonzero} nonzero)")
        network.save(result.network, destination)
        lines.append(f"wrote     {destination}")
    return result, "\n".join(lines)
