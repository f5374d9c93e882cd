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

import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .. import network
from ..network import golden
from . import datasets, evaluate
from .config import ConfigError, load_config, output_path
from .fold import fold_layer
from .model import Model

__all__ = [
    "TrainResult",
    "input_spec_of",
    "prepare_data",
    "train",
    "check_exact",
    "export",
    "run_config",
]


def input_spec_of(config, images):
    """The description's input: ``[h, w, 1]`` when the first layer is a conv2d, else ``[h*w]``."""
    h, w = images.shape[1:3]
    shape = (h, w, 1) if config.layers[0]["type"] == "conv2d" else (h * w,)
    return network.InputSpec(shape, network.ValueType.parse(config.input))


def prepare_data(config):
    """``(input_spec, (x_train, y_train), (x_test, y_test))``: integer inputs and labels.

    For a ``class_map`` configuration the labels are per position of the last layer's output
    map, ``(N, h, w)``: the data set's pixel labels downsampled by
    :func:`gen.learn.datasets.label_map`.
    """
    train_set = datasets.load(config.data, "train")
    test_set = datasets.load(config.data, "test")
    spec = input_spec_of(config, train_set.images)
    x_train = datasets.to_inputs(train_set, spec).astype(np.float64)
    x_test = datasets.to_inputs(test_set, spec).astype(np.float64)
    y_train, y_test = train_set.labels, test_set.labels
    if config.output_kind == "class_map":
        map_shape = Model(config, spec, quantized=False, rng=np.random.default_rng(0)).score_shape
        y_train = datasets.label_map(y_train, map_shape[:2])
        y_test = datasets.label_map(y_test, map_shape[:2])
    return spec, (x_train, y_train), (x_test, y_test)


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
    """The mean cross-entropy of ``logits`` ``(M, classes)`` and its gradient."""
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
        Of the exported description by the golden model (quantized), or of the float model
        (``class_map``: the pixel accuracy).
    train_accuracy : float
        Likewise on the train split.
    seconds : float
        Training time, without loading data and exporting.
    history : list of (epoch, loss, train_accuracy)
    test_score : Evaluation or MapEvaluation
        The test split's full score (:mod:`gen.learn.evaluate`): with ``class_map``, the mean
        IoU too.
    """

    model: Model
    network: object
    test_accuracy: float
    train_accuracy: float
    seconds: float
    history: list
    test_score: object = None


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
        positions = int(np.prod(model.score_shape[:-1]))  # class scores per input
        history = []
        start = time.perf_counter()
        steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
        total = config.epochs * steps_per_epoch
        for epoch in range(1, config.epochs + 1):
            order = rng.permutation(len(x_train))
            loss_sum, correct = 0.0, 0.0
            for step in range(steps_per_epoch):
                chosen = order[step * config.batch_size : (step + 1) * config.batch_size]
                x = x_train[chosen]
                if config.shift:
                    x = _shifted(x, spec, config.shift, rng)
                logits, caches = model.forward(x, training=True)
                # class_map: one softmax per position over its channels, the mean over every
                # position of the batch (labels (N, h, w), logits (N, h*w*classes)).
                scores = logits.reshape(-1, model.classes)
                labels = y_train[chosen].reshape(-1)
                loss, dscores = _softmax_cross_entropy(scores, labels)
                dlogits = dscores.reshape(logits.shape)
                loss_sum += loss * len(chosen)
                correct += int(np.sum(np.argmax(scores, axis=1) == labels)) / positions
                grads = model.backward(dlogits, caches)
                optimizer.step += 1
                done = optimizer.step - 1
                lr = 0.5 * config.learning_rate * (1 + math.cos(math.pi * done / total))
                for n, (block, block_grads) in enumerate(zip(model.blocks, grads, strict=True)):
                    for key, grad in block_grads.items():
                        optimizer.update((n, key), block.params[key], grad, lr)
                    if quantized:
                        block.constrain()
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
    net = None
    if quantized:
        net = export(model, config.name)
        check_exact(model, net, x_test, predicted=test_pred, outputs=outputs)
        test_pred = golden.run(net, x_test.astype(np.int64))
    test_accuracy = float(np.mean(test_pred == y_test))
    score = _score(model, test_pred, y_test)
    return TrainResult(model, net, test_accuracy, train_accuracy, seconds, history, score)


def _score(model, predicted, labels):
    if model.class_map:
        return evaluate.evaluate_map(predicted, labels, model.classes)
    return evaluate.evaluate(predicted, labels, model.classes)


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


def export(model, name):
    """The :class:`gen.network.Network` of a trained quantized ``model``: ``tnn/1``, or
    ``tnn/2`` for ``intN`` weights or a ``class_map`` output.

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
            weights, thresholds = fold_layer(
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
        if block.weight_type != "ternary":
            doc["weight_type"] = block.weight_type
        doc["weights"] = network.weight_rows(np.asarray(weights), block.weight_type)
        doc["activation"] = activation
        layers.append(doc)
        if block.pool:
            layers.append({"type": "maxpool", "kernel": list(block.pool)})
    wide = any(layer.get("weight_type", "").startswith("int") for layer in layers)
    doc = {
        "format": network.FORMAT_2 if wide or model.class_map else network.FORMAT,
        "name": name,
        "input": {"shape": list(spec.shape), "type": spec.type.name},
        "layers": layers,
        "output": "class_map" if model.class_map else "argmax",
    }
    return network.from_dict(doc)


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
    per_pixel = " per pixel" if result.model.class_map else ""
    lines = [
        f"model     {config.name} ({'quantized' if quantized else 'float baseline'})",
        f"data      {config.data}: {train_count} train, {test_count} test images",
        f"trained   {config.epochs} epochs in {result.seconds:.1f} s",
        f"train     {100 * result.train_accuracy:.2f}%{per_pixel}",
        f"test      {100 * result.test_accuracy:.2f}%{per_pixel}"
        + (" (golden model of the description)" if quantized else ""),
    ]
    if result.model.class_map:
        lines.append(f"mean IoU  {result.test_score.iou_text()} (test)")
    if quantized:
        weighted = [layer for layer in result.network.layers if hasattr(layer, "weights")]
        total = sum(layer.weights.size for layer in weighted)
        nonzero = sum(int(np.count_nonzero(layer.weights)) for layer in weighted)
        lines.append(f"weights   {total} ({nonzero} nonzero)")
        network.save(result.network, destination)
        lines.append(f"wrote     {destination}")
    return result, "\n".join(lines)
