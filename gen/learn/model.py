"""The trainable network: dense and conv2d layers with batch norm and quantized activations,
their forward and backward passes, and the exact inference pass export is checked against.
"""

import math

import numpy as np

from ..network import arith
from . import datasets, quant
from .config import ConfigError, activation_spec
from .fold import Affine, BatchNorm, preactivation

__all__ = ["TrainableLayer", "Model", "build_model"]

#: The smallest value TTQ's learned scales may take (they must stay positive).
MIN_TTQ_SCALE = 1e-3


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


class TrainableLayer:
    """A dense or conv2d layer with, unless it is the last, batch norm, activation, maxpool."""

    def __init__(self, spec, in_shape, in_has_zero, *, last, config, quantized, rng):
        self.kind = spec["type"]
        self.out = spec["out"]
        self.last = last
        self.quantized = quantized
        self.weight_kind = config.weights
        self.twn_delta = spec.get("twn_delta", config.twn_delta)
        self.ttq_threshold = spec.get("ttq_threshold", config.ttq_threshold)
        if self.weight_kind == "ttq":
            self.weight_bits = config.ttq_bits
        else:
            self.weight_bits = quant.int_weight_bits(self.weight_kind)
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
        if quantized and self.weight_kind == "ttq":
            # TTQ's learned scales of the layer. Only their ratio matters to a hidden layer (its
            # batch norm takes out the rest) and the last layer has its gain: they start equal.
            self.params["wp"] = np.ones(1)
            self.params["wn"] = np.ones(1)
        if last:
            self.params["log_gain"] = np.zeros(1)
        else:
            self.params["gamma"] = np.ones(self.out)
            self.params["beta"] = np.zeros(self.out)
            self.running_mean = np.zeros(self.out)
            self.running_var = np.ones(self.out)
            if quantized:
                act = activation_spec(config.activations)
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

    @property
    def weight_type(self):
        """The description's ``weight_type``: ``ternary``, ``binary`` or ``intN`` (TTQ, DoReFa)."""
        if self.weight_bits is None:
            return self.weight_kind
        return f"int{self.weight_bits}"

    def weight_matrix(self):
        """``(W, alpha)``: the weights the forward pass uses and their per-row scale."""
        w = self.params["w"]
        if not self.quantized:
            return w, np.ones(self.out)
        if self.weight_kind == "ttq":
            wp, wn = self.params["wp"][0], self.params["wn"][0]
            return quant.ttq_quantize(
                w, wp, wn, threshold=self.ttq_threshold, bits=self.weight_bits
            )
        return quant.quantize_weights(
            w, self.weight_kind, delta_factor=self.twn_delta, per_row=not self.last
        )

    def _latent_gradients(self, g):
        """From ``g``, the gradient of the real weights the forward pass used (``alpha * W``),
        the gradients of the latent weights and of the quantizer's own parameters.

        - TWN, XNOR-Net: ``g`` itself (straight through).
        - TTQ (Zhu et al., eq. 7 and 8): ``dL/dWp`` is the sum of ``g`` over the positive band,
          ``dL/dWn`` minus the sum over the negative band (the weights there are ``-Wn``: the
          paper's sum, with the sign of ``dw/dWn = -1``, so that ``Wn`` stays a magnitude); the
          latent weights get ``Wp * g``, ``Wn * g`` and ``g`` in the positive, negative and
          zero bands. The rounding of ``Wp / Wn`` to ``p / n`` is passed straight through.
        - DoReFa: ``g`` times the slope of ``tanh(w) / max|tanh(w)|`` (rounding passed through,
          the maximum held constant).
        """
        if not self.quantized:
            return {"w": g}
        w = self.params["w"]
        if self.weight_kind == "ttq":
            pos, neg = quant.ttq_bands(w, self.ttq_threshold)
            wp, wn = self.params["wp"], self.params["wn"]
            factor = np.where(pos, wp[0], np.where(neg, wn[0], 1.0))
            return {
                "w": g * factor,
                "wp": np.array([np.sum(g[pos])]),
                "wn": np.array([-np.sum(g[neg])]),
            }
        if self.weight_bits is not None:
            return {"w": g * quant.dorefa_gradient(w, per_row=not self.last)}
        return {"w": g}

    def constrain(self):
        """After an update: latent weights clipped to [-1, 1] (BNN), TTQ scales kept positive."""
        np.clip(self.params["w"], -1, 1, out=self.params["w"])
        for key in ("wp", "wn"):
            if key in self.params:
                np.maximum(self.params[key], MIN_TTQ_SCALE, out=self.params[key])

    def affine(self, input_scale):
        """The inference-time :class:`gen.quant.Affine` of a hidden layer."""
        _, alpha = self.weight_matrix()
        bn = BatchNorm(
            self.params["gamma"],
            self.params["beta"],
            self.running_mean,
            self.running_var,
            self.eps,
        )
        return Affine(alpha, input_scale, None, bn)

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
        # The gradient of the real weights the forward pass used, then of the latent weights
        # (straight through for TWN and BNN, whose clipping to [-1, 1] after each step stands for
        # BNN's 1{|w| <= 1}; scaled for TTQ and DoReFa).
        g = (flat_du * cache["input_scale"]).T @ cols.reshape(-1, self.fan_in)
        grads.update(self._latent_gradients(g))
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
                block = TrainableLayer(
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
            has_zero = 0 in activation_spec(config.activations)[0]
        classes = datasets.classes_of(config.data)
        self.class_map = config.output_kind == "class_map"
        if self.class_map and shape[-1] != classes:
            raise ConfigError(
                f"{config.source}: layers[{len(config.layers) - 1}].out: the last layer must "
                f"give {classes} class scores per position, not {shape[-1]}"
            )
        if not self.class_map and int(np.prod(shape)) != classes:
            raise ConfigError(
                f"{config.source}: layers[{len(config.layers) - 1}].out: the last layer must "
                f"give {classes} class scores, not {int(np.prod(shape))}"
            )
        self.classes = classes
        #: The shape of the class scores of one input: ``(classes,)``, or ``(h, w, classes)``.
        self.score_shape = tuple(shape) if self.class_map else (classes,)

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
        accumulators, ties to the lowest index: ``(N,)``, or ``(N, h, w)`` per position for a
        ``class_map`` model) and, per ``tnn/1`` layer, its output (the quantized activation
        values; the pooled values for a maxpool; the accumulators, or the float logits, for the
        last layer, shaped as the description's).
        """
        outputs = []
        for block, scale in self._scales():
            cols = block._cols(x)
            wm, alpha = block.weight_matrix()
            acc = cols @ wm.T  # exact: integer values far below 2**53
            if block.last:
                logits = acc if self.quantized else acc * (alpha * scale)
                outputs.append(logits.reshape((len(x),) + tuple(block.out_shape)))
                break
            if self.quantized:
                z = preactivation(acc, block.affine(scale))
                x = quant.quantize_levels(z, block.levels, block.thresholds)
            else:
                x, _ = _float_activation(block, acc * (alpha * scale))
            outputs.append(x)
            if block.pool:
                x = arith.maxpool(x, block.pool, block.pool)
                outputs.append(x)
        scores = outputs[-1].reshape((len(x),) + self.score_shape)
        return np.argmax(scores, axis=-1), outputs

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
    bn = BatchNorm(
        block.params["gamma"],
        block.params["beta"],
        block.running_mean,
        block.running_var,
        block.eps,
    )
    z = preactivation(u, Affine(np.ones(block.out), 1.0, None, bn))
    if block.float_activation == "relu":
        return np.maximum(z, 0), z
    return np.clip(z, -1, 1), z


def build_model(config, input_spec, *, quantized=True, seed=None):
    """A freshly initialized :class:`Model` (weights drawn from ``seed``, default the config's)."""
    rng = np.random.default_rng(config.seed if seed is None else seed)
    return Model(config, input_spec, quantized=quantized, rng=rng)
