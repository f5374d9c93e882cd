"""The trainer's TTQ and DoReFa/QNN weights: their gradients, and their exact export to tnn/2
``intN`` layers (the golden model equals the trainer's quantized forward pass)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gen import network
from gen.learn import quant, train
from gen.learn.config import parse_config
from gen.learn.model import build_model
from gen.network import golden

MLP = {
    "name": "t-mlp",
    "data": "digits",
    "input": "uint4",
    "layers": [{"type": "dense", "out": 6}, {"type": "dense", "out": 10}],
    "epochs": 4,
    "batch_size": 32,
    "output": "t-mlp.tnn.json",
}


def _config(base, **changes):
    return parse_config(dict(base, **changes), source="cfg.json")


# --- gradients -----------------------------------------------------------------------------------


def _effective_weight_gradient(model, x, labels, n, rows_cols):
    """Central differences of the training loss in entries of block ``n``'s effective weights
    (the real weights its forward pass multiplies by), which are held fixed while they move."""
    block = model.blocks[n]
    wm, alpha = block.weight_matrix()
    effective = wm * alpha[:, None]
    original = block.weight_matrix
    block.weight_matrix = lambda: (effective, np.ones(block.out))

    def loss():
        logits, _ = model.forward(x, training=True)
        return train._softmax_cross_entropy(logits, labels)[0]

    out = []
    try:
        for where in rows_cols:
            keep = effective[where]
            effective[where] = keep + 1e-6
            up = loss()
            effective[where] = keep - 1e-6
            down = loss()
            effective[where] = keep
            out.append((up - down) / 2e-6)
    finally:
        block.weight_matrix = original
    return np.array(out), wm, alpha


def _gradient_setup(weights, **changes):
    config = _config(MLP, weights=weights, **changes)
    spec = network.InputSpec((64,), network.ValueType.parse("uint4"))
    model = build_model(config, spec, seed=3)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 16, (8, 64)).astype(np.float64)
    labels = rng.integers(0, 10, 8)
    return model, x, labels, rng


def _model_gradients(model, x, labels):
    logits, caches = model.forward(x, training=True)
    return model.backward(train._softmax_cross_entropy(logits, labels)[1], caches)


def _plain_gradients(model, x, labels):
    """The model's gradients of the effective weights themselves, with no quantizer factor."""
    for block in model.blocks:
        block._latent_gradients = lambda g: {"w": g}
    try:
        return _model_gradients(model, x, labels)
    finally:
        for block in model.blocks:
            del block._latent_gradients


@pytest.mark.parametrize("bits", [4, 3, 8])
def test_ttq_scale_gradients_are_the_sums_over_their_bands(bits):
    """dL/dWp is the loss's derivative in ``a`` and dL/dWn in ``b`` of the weights
    ``a * [w > delta] - b * [w < -delta]`` at the forward pass's own ``a = p*s``, ``b = n*s``:
    by finite differences in the last layer (the loss is smooth in its weights; the quantized
    activations make it piecewise constant in a hidden layer's), and as the band sums of the
    gradient of the effective weights in the hidden layer."""
    model, x, labels, _ = _gradient_setup("ttq", ttq_bits=bits, ttq_threshold=0.3)
    for block, (wp, wn) in zip(model.blocks, [(0.6, 0.25), (0.4, 1.3)], strict=True):
        block.params["wp"][:], block.params["wn"][:] = wp, wn
    grads = _model_gradients(model, x, labels)
    plain = _plain_gradients(model, x, labels)
    for n, block in enumerate(model.blocks):
        w = block.params["w"]
        delta = 0.3 * np.abs(w).max()
        pos, neg = w > delta, w < -delta
        assert 0 < pos.sum() < w.size and 0 < neg.sum() < w.size
        g = plain[n]["w"]
        assert grads[n]["wp"][0] == pytest.approx(g[pos].sum(), rel=1e-12, abs=1e-15)
        assert grads[n]["wn"][0] == pytest.approx(-g[neg].sum(), rel=1e-12, abs=1e-15)
        if not block.last:
            continue
        wm, alpha = block.weight_matrix()
        a, b = wm[pos][0] * alpha[0], -wm[neg][0] * alpha[0]
        assert np.allclose(wm * alpha[:, None], a * pos - b * neg)
        original = block.weight_matrix

        def loss(a, b, block=block, original=original, pos=pos, neg=neg):
            block.weight_matrix = lambda: (a * pos - b * neg, np.ones(block.out))
            try:
                logits, _ = model.forward(x, training=True)
            finally:
                block.weight_matrix = original
            return train._softmax_cross_entropy(logits, labels)[0]

        h = 1e-6
        d_a = (loss(a + h, b) - loss(a - h, b)) / (2 * h)
        d_b = (loss(a, b + h) - loss(a, b - h)) / (2 * h)
        assert grads[n]["wp"][0] == pytest.approx(d_a, rel=1e-5)
        assert grads[n]["wn"][0] == pytest.approx(d_b, rel=1e-5)


@pytest.mark.parametrize("weights", ["ttq", "int4", "int2", "ternary"])
def test_latent_weight_gradients_scale_the_effective_weights_gradient(weights):
    """TTQ: Wp, Wn or 1 times dL/dW in the positive, negative and zero bands; DoReFa: times
    the slope of tanh(w) / max|tanh(w)|; TWN: dL/dW itself. dL/dW by finite differences in
    the last layer, from the backward pass without the factor in the hidden one."""
    changes = {"ttq_threshold": 0.3} if weights == "ttq" else {}
    model, x, labels, rng = _gradient_setup(weights, **changes)
    if weights == "ttq":
        for block in model.blocks:
            block.params["wp"][:], block.params["wn"][:] = 0.7, 1.6
    grads = _model_gradients(model, x, labels)
    plain = _plain_gradients(model, x, labels)
    for n, block in enumerate(model.blocks):
        w = block.params["w"]
        if weights == "ttq":
            delta = 0.3 * np.abs(w).max()
            factor = np.where(w > delta, 0.7, np.where(w < -delta, 1.6, 1.0))
        elif weights.startswith("int"):
            t = np.tanh(w)
            peak = np.abs(t).max(axis=None if block.last else 1, keepdims=not block.last)
            factor = (1 - t * t) / peak
        else:
            factor = np.ones_like(w)
        assert grads[n]["w"] == pytest.approx(factor * plain[n]["w"], rel=1e-12, abs=1e-15)
        if block.last:
            chosen = [np.unravel_index(i, w.shape) for i in rng.choice(w.size, 6, replace=False)]
            numeric, _, _ = _effective_weight_gradient(model, x, labels, n, chosen)
            for where, d in zip(chosen, numeric, strict=True):
                assert plain[n]["w"][where] == pytest.approx(d, rel=1e-5, abs=1e-10)


def test_ttq_fields_survive_with_changes():
    config = _config(MLP, weights="ttq", ttq_bits=3, ttq_threshold=0.4)
    again = config.with_changes(seed=5)
    assert (again.ttq_bits, again.ttq_threshold, again.seed) == (3, 0.4, 5)
    assert _config(MLP).with_changes(weights="ttq").ttq_bits == quant.TTQ_BITS


# --- exact export --------------------------------------------------------------------------------

INPUTS = ["uint4", "ternary", "binary", "int3"]


def _randomize(model, rng):
    """Random latent weights (some exactly 0 and some equal, on a band's edge), TTQ scales of
    any ratio, batch norms with negative and zero scales, and a gain."""
    for block in model.blocks:
        w = rng.uniform(-1, 1, block.params["w"].shape)
        w[rng.random(w.shape) < 0.15] = 0.0
        same = rng.random(w.shape) < 0.15
        w[same] = rng.choice([-0.5, 0.25, 1.0])
        block.params["w"][:] = w
        if "wp" in block.params:
            block.params["wp"][:] = np.exp(rng.uniform(-3, 3))
            block.params["wn"][:] = np.exp(rng.uniform(-3, 3))
        if block.last:
            block.params["log_gain"][:] = rng.normal()
            continue
        gamma = rng.normal(size=block.out)
        gamma[rng.random(block.out) < 0.1] = 0.0
        block.params["gamma"][:] = gamma
        block.params["beta"][:] = rng.normal(size=block.out)
        block.running_mean = rng.normal(size=block.out) * rng.uniform(0.1, 5)
        block.running_var = rng.uniform(0, 3, block.out)


def _inputs(spec, rng, count=48):
    lo, hi = spec.type.lo, spec.type.hi
    x = rng.integers(lo, hi + 1, (count,) + tuple(spec.shape))
    if spec.type.name == "binary":
        x = np.where(x > 0, 1, -1)
    x[0], x[1] = lo, hi
    return x.astype(np.float64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weights=st.sampled_from(["ttq", "int2", "int3", "int4", "int8"]),
    ttq_bits=st.integers(2, 8),
    ttq_threshold=st.floats(0.01, 0.95),
    activations=st.sampled_from(["ternary", "binary", "uint2"]),
    input_type=st.sampled_from(INPUTS),
    hidden=st.lists(st.integers(1, 6), max_size=2),
    fan_in=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_export_of_random_networks_equals_the_quantized_forward_pass(
    weights, ttq_bits, ttq_threshold, activations, input_type, hidden, fan_in, seed
):
    doc = dict(MLP, input=input_type, weights=weights, activations=activations)
    doc["layers"] = [{"type": "dense", "out": h} for h in hidden] + [{"type": "dense", "out": 10}]
    if weights == "ttq":
        doc.update(ttq_bits=ttq_bits, ttq_threshold=ttq_threshold)
    config = parse_config(doc)
    spec = network.InputSpec((fan_in,), network.ValueType.parse(input_type))
    model = build_model(config, spec, seed=0)
    rng = np.random.default_rng(seed)
    _randomize(model, rng)
    x = _inputs(spec, rng)
    net = network.from_dict(network.to_dict(train.export(model, "random")))  # through the text
    assert net.format == "tnn/2"
    # The golden model against the trainer's forward pass in inference mode (the one training
    # runs, on real weights alpha * W and batch-norm statistics): every hidden layer's levels,
    # the logits as the integer accumulators times the shared positive scale, the classes.
    logits, caches = model.forward(x, training=False)
    predicted, traces = golden.run(net, x.astype(np.int64), trace=True)
    scale = model.input_scale
    bits = ttq_bits if weights == "ttq" else int(weights[3:])
    for block, layer, trace, cache in zip(model.blocks, net.layers, traces, caches, strict=True):
        wm, alpha = block.weight_matrix()
        assert layer.weight_type == f"int{bits}"
        assert np.abs(layer.weights).max(initial=0) <= 2 ** (bits - 1) - 1
        assert np.array_equal(np.abs(layer.weights), np.abs(wm))  # rows negated at most
        if weights == "ttq":
            values = set(np.unique(wm).tolist()) - {0}
            assert len({v for v in values if v > 0}) <= 1 and len({v for v in values if v < 0}) <= 1
        if block.last:
            gain = np.exp(block.params["log_gain"][0])
            assert np.array_equal(trace.acc * (alpha * scale) * gain, logits)
        else:
            levels = quant.quantize_levels(cache["z"], block.levels, block.thresholds)
            assert np.array_equal(trace.out, levels)
            scale = block.act_scale
    assert np.array_equal(predicted, np.argmax(logits, axis=1))
    train.check_exact(model, net, x)  # and the trainer's integer inference pass, layer by layer


def test_ttq_scales_are_the_learned_ones_within_the_ratio_precision():
    """``p * s`` and ``n * s`` miss ``Wp`` and ``Wn`` by at most the square root of the ratio's
    worst error (11.8% for int4), in opposite directions, and by nothing for an exact ratio."""
    rng = np.random.default_rng(2)
    w = rng.uniform(-1, 1, (4, 9))
    for _ in range(200):
        common = np.exp(rng.uniform(-3, 3))  # any size; a ratio inside [1/7, 7]
        wp, wn = common * np.exp(rng.uniform(-np.log(7), np.log(7))), common
        ints, alpha = quant.ttq_quantize(w, wp, wn, threshold=0.2, bits=4)
        p, n = ints.max(), -ints.min()
        up, down = p * alpha[0] / wp, n * alpha[0] / wn
        assert up * down == pytest.approx(1.0)
        assert max(up, 1 / up) <= np.sqrt(1.118) + 1e-9
    ints, alpha = quant.ttq_quantize(w, 0.9, 0.3, threshold=0.2, bits=3)
    assert (ints.max(), -ints.min()) == (3, 1)
    assert 3 * alpha[0] == pytest.approx(0.9) and alpha[0] == pytest.approx(0.3)
