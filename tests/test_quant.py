"""Quantizers, the straight-through estimator, exact folding of float factors into thresholds."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gen import network
from gen.learn import fold, quant
from gen.learn.fold import Affine, BatchNorm
from gen.network import golden

# --- quantizers ----------------------------------------------------------------------------------


def test_twn_threshold_and_scale_per_row():
    w = np.array([[0.1, -0.5, 0.9, 0.05], [0.2, 0.2, -0.2, 0.2]])
    ternary, alpha = quant.twn_ternarize(w)
    # row 0: delta = 0.7 * 0.3875 = 0.27125 keeps -0.5 and 0.9; row 1: delta = 0.14 keeps all
    assert ternary.tolist() == [[0, -1, 1, 0], [1, 1, -1, 1]]
    assert ternary.dtype == np.int8
    assert alpha == pytest.approx([0.7, 0.2])


def test_twn_shared_scale_and_sparser_with_larger_delta():
    w = np.array([[0.1, -0.5, 0.9, 0.05], [0.2, 0.2, -0.2, 0.2]])
    ternary, alpha = quant.twn_ternarize(w, per_row=False)
    # one delta = 0.7 * mean(|w|) = 0.7 * 0.29375 = 0.205625 for the layer
    assert ternary.tolist() == [[0, -1, 1, 0], [0, 0, 0, 0]]
    assert alpha == pytest.approx([0.7, 0.7])
    sparse, _ = quant.twn_ternarize(w, delta_factor=2.0)
    assert sparse.tolist() == [[0, 0, 1, 0], [0, 0, 0, 0]]


def test_twn_row_with_nothing_kept_has_zero_scale():
    ternary, alpha = quant.twn_ternarize(np.zeros((1, 3)))
    assert ternary.tolist() == [[0, 0, 0]] and alpha.tolist() == [0.0]


def test_xnor_sign_with_mean_magnitude():
    w = np.array([[0.0, -0.5, 1.0], [-0.3, -0.3, 0.6]])
    binary, alpha = quant.xnor_binarize(w)
    assert binary.tolist() == [[1, -1, 1], [-1, -1, 1]]
    assert alpha == pytest.approx([0.5, 0.4])
    assert quant.xnor_binarize(w, per_row=False)[1] == pytest.approx([0.45, 0.45])


def test_weight_quantizer_names():
    assert quant.quantize_weights(np.ones((1, 2)), "binary")[0].tolist() == [[1, 1]]
    assert quant.quantize_weights(np.ones((1, 2)), "int4")[0].tolist() == [[7, 7]]
    for kind in ("int9", "int1", "int04", "ttq"):  # TTQ needs its scales: ttq_quantize
        with pytest.raises(
            ValueError, match=f"must be 'ternary', 'binary' or 'intN' \\(N = 2..8\\), not '{kind}'"
        ):
            quant.quantize_weights(np.ones((1, 2)), kind)
    with pytest.raises(ValueError, match=r"2-D array \(out, fan_in\)"):
        quant.twn_ternarize(np.ones(3))


def test_ttq_ratio_by_hand():
    # p, n <= 7: 0.37 lies between 1/3 and 2/5; |log(0.4 / 0.37)| = 0.078 < |log(0.37 * 3)| = 0.104
    assert quant.ttq_ratio(0.37, 1.0, 7) == (2, 5)
    assert quant.ttq_ratio(1.0, 1.0, 7) == (1, 1)  # not (7, 7): reduced fractions only
    assert quant.ttq_ratio(1.2, 0.6, 7) == (2, 1)
    assert quant.ttq_ratio(4.5, 1.0, 7) == (5, 1)  # log 5/4.5 = 0.105 < log 4.5/4 = 0.118
    assert quant.ttq_ratio(100.0, 1.0, 7) == (7, 1)
    assert quant.ttq_ratio(1.0, 100.0, 3) == (1, 3)
    assert quant.ttq_ratio(1.1, 1.0, 3) == (1, 1)  # 3/2 is further: log 1.5/1.1 = 0.31
    assert quant.ttq_ratio(5.0, 0.1, 1) == (1, 1)
    with pytest.raises(ValueError, match="finite and positive"):
        quant.ttq_ratio(0.0, 1.0, 7)


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.integers(2, 8))
def test_ttq_ratio_is_the_nearest_of_all_pairs(wp, wn, bits):
    top = quant.int_weight_top(bits)
    p, n = quant.ttq_ratio(wp, wn, top)
    assert 1 <= p <= top and 1 <= n <= top and math.gcd(p, n) == 1
    error = abs(math.log(p / n) - math.log(wp / wn))
    for a in range(1, top + 1):
        for b in range(1, top + 1):
            assert error <= abs(math.log(a / b) - math.log(wp / wn)) + 1e-12


def test_ttq_quantize_by_hand():
    w = np.array([[0.5, -0.02, -0.9], [0.1, 0.045, -0.3]])
    # delta = 0.05 * 0.9 = 0.045 for the whole layer: 0.045 itself is not above it
    ints, alpha = quant.ttq_quantize(w, 0.6, 0.3, threshold=0.05, bits=4)
    assert ints.tolist() == [[2, 0, -1], [2, 0, -1]]
    assert alpha == pytest.approx([0.3, 0.3])  # sqrt(0.6 * 0.3 / 2): 2 * 0.3 = Wp, 1 * 0.3 = Wn
    ints, alpha = quant.ttq_quantize(w, 0.6, 0.3, threshold=0.5, bits=2)
    assert ints.tolist() == [[1, 0, -1], [0, 0, 0]]  # delta 0.45; int2 has p = n = 1 only
    assert alpha == pytest.approx([math.sqrt(0.18)] * 2)
    pos, neg = quant.ttq_bands(w, 0.5)
    assert pos.tolist() == [[True, False, False], [False] * 3]
    assert neg.tolist() == [[False, False, True], [False] * 3]


def test_dorefa_weights_by_hand():
    w = np.array([[0.0, 0.5, -1.0, 0.2], [0.1, -0.1, 0.05, 0.0]])
    ints, alpha = quant.dorefa_quantize(w, 3)
    # row 0: tanh / tanh(1) = 0, 0.607, -1, 0.259; times 3, rounded: 0, 2, -3, 1
    # row 1: its own maximum tanh(0.1): 3, -3, 1.504 -> 2, 0
    assert ints.tolist() == [[0, 2, -3, 1], [3, -3, 2, 0]]
    assert alpha == pytest.approx([1 / 3, 1 / 3])
    shared, _ = quant.dorefa_quantize(w, 3, per_row=False)
    assert shared.tolist() == [[0, 2, -3, 1], [0, 0, 0, 0]]  # 3 * 0.0997 / 0.762 = 0.39
    ints8, alpha8 = quant.dorefa_quantize(w, 8)
    assert ints8[0].tolist() == [0, 77, -127, 33] and alpha8[0] == 1 / 127
    assert quant.dorefa_quantize(np.zeros((1, 2)), 4)[0].tolist() == [[0, 0]]
    with pytest.raises(ValueError, match="2 to 8 bits, not 9"):
        quant.dorefa_quantize(w, 9)


def test_dorefa_gradient_is_the_slope_of_the_normalized_tanh():
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, (3, 5))
    for per_row in (True, False):
        peak = np.abs(np.tanh(w)).max(axis=1 if per_row else None, keepdims=per_row)
        h = 1e-6
        numeric = (np.tanh(w + h) - np.tanh(w - h)) / (2 * h) / peak
        assert quant.dorefa_gradient(w, per_row=per_row) == pytest.approx(numeric, rel=1e-6)


def test_ternary_activation_thresholds_are_inclusive():
    r = np.array([-2.0, -0.51, -0.5, 0.0, 0.49, 0.5, 3.0])
    assert quant.ternary_activation(r).tolist() == [-1, -1, 0, 0, 0, 1, 1]
    assert quant.ternary_activation(r, delta=0.25).tolist() == [-1, -1, -1, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="must be positive"):
        quant.ternary_activation(r, delta=0)


def test_binary_activation():
    assert quant.binary_activation([-0.1, 0.0, 2.0]).tolist() == [-1, 1, 1]


def test_uniform_activation_rounds_half_up_after_clipping():
    r = np.array([-0.2, 0.1, 1 / 6, 0.5, 0.84, 2.0])
    # 2 bits: k = round(3 * clip(r, 0, 1)), halves up: 0, 0.3, 0.5, 1.5, 2.52, 3
    assert quant.uniform_activation(r, 2).tolist() == [0, 0, 1, 2, 3, 3]
    levels, thresholds, scale = quant.activation_levels("uint", bits=2)
    assert levels == (0, 1, 2, 3) and scale == pytest.approx(1 / 3)
    assert thresholds == pytest.approx([1 / 6, 0.5, 5 / 6])
    with pytest.raises(ValueError, match="integer 1 to 8, not 9"):
        quant.activation_levels("uint", bits=9)


def test_ste_passes_gradient_only_inside_the_clip_range():
    r = np.array([-1.5, -1.0, 0.0, 1.0, 1.01])
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert quant.ste(g, r).tolist() == [0, 2, 3, 4, 0]
    assert quant.ste(g, r, lo=0.0).tolist() == [0, 0, 3, 4, 0]


# --- folding -------------------------------------------------------------------------------------


def test_preactivation_is_the_batch_norm_formula():
    rng = np.random.default_rng(1)
    acc = rng.integers(-20, 20, (7, 3))
    alpha, bias = np.array([0.3, 0.0, 1.5]), np.array([0.1, -0.2, 0.3])
    bn = BatchNorm(
        np.array([1.2, -0.7, 0.0]),
        np.array([0.5, 0.1, -1]),
        np.array([0.2, 0.3, -0.4]),
        np.array([2.0, 0.5, 1.0]),
        1e-3,
    )
    z = fold.preactivation(acc, Affine(alpha, 0.25, bias, bn))
    u = acc * alpha * 0.25 + bias
    expected = bn.gamma * (u - bn.mean) / np.sqrt(bn.var + bn.eps) + bn.beta
    assert z == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_fold_where_a_float_ceil_is_off_by_one():
    # z = 0.1 * acc; theta = 0.1 * 3 in floats. A float ceil of theta / 0.1 gives 4, but
    # acc = 3 already reaches theta: the threshold must be 3.
    theta = 0.1 * 3
    assert math.ceil(theta / 0.1) == 4
    sign, t = fold.fold_thresholds(Affine(np.array([0.1])), [theta], [-10], [10])
    assert sign.tolist() == [1] and t.tolist() == [[3]]


def test_fold_negative_batch_norm_scale_negates_the_row():
    bn = BatchNorm(np.array([-2.0]), np.array([0.0]), np.array([0.0]), np.array([1.0]), 0.0 + 1e-9)
    weights = np.array([[1, -1, 0]])
    folded, t = fold.fold_layer(
        weights, Affine(np.array([1.0]), 1.0, None, bn), (-1, 0, 1), [-0.5, 0.5], (-1, 1)
    )
    assert folded.tolist() == [[-1, 1, 0]]
    # z = -2 * acc: +1 for acc <= -1 (acc' >= 1), -1 for acc >= 1 (acc' <= -1)
    assert t.tolist() == [[0, 1]]


def test_fold_negates_the_most_negative_int8_weight_without_wrapping():
    bn = BatchNorm(np.array([-2.0]), np.array([0.0]), np.array([0.0]), np.array([1.0]), 0.0 + 1e-9)
    folded, _ = fold.fold_layer(
        np.array([[-128, 127, 0]]),
        Affine(np.array([1.0]), 1.0, None, bn),
        (-1, 0, 1),
        [-0.5, 0.5],
        (-1, 1),
    )
    assert folded.tolist() == [[128, -127, 0]]  # +128 is for the caller to fit into a type


@pytest.mark.parametrize("beta, expected", [(0.9, 1), (0.0, 0), (-0.9, -1)])
def test_fold_zero_scale_gives_a_constant_output(beta, expected):
    for alpha, gamma in ((0.0, 1.0), (1.0, 0.0)):
        bn = BatchNorm(np.array([gamma]), np.array([beta]), np.array([0.0]), np.array([1.0]))
        weights = np.array([[1, 1, -1, 0]])
        folded, t = fold.fold_layer(
            weights, Affine(np.array([alpha]), 1.0, None, bn), (-1, 0, 1), [-0.5, 0.5], (-1, 1)
        )
        inputs = np.array(list(itertools.product([-1, 0, 1], repeat=4)))
        y = quant.quantize_levels(inputs @ folded.T, (-1, 0, 1), t)
        assert np.all(y == expected)
        # thresholds at the ends of the range [-3, 3]: below (always reached) or beyond it
        assert set(t.ravel().tolist()) <= {-3, 4}


def test_fold_checks_its_arguments():
    with pytest.raises(ValueError, match="alpha"):
        fold.fold_thresholds(Affine(np.array([-1.0])), [0.0], [0], [1])
    with pytest.raises(ValueError, match="input scale"):
        fold.fold_thresholds(Affine(np.array([1.0]), 0.0), [0.0], [0], [1])
    with pytest.raises(ValueError, match="ascending"):
        fold.fold_thresholds(Affine(np.array([1.0])), [1.0, 0.0], [0], [1])
    with pytest.raises(ValueError, match="lo <= hi"):
        fold.fold_thresholds(Affine(np.array([1.0])), [0.0], [2], [1])
    with pytest.raises(ValueError, match="3 levels need 2 thresholds, not 1"):
        fold.fold_layer(np.ones((1, 2)), Affine(np.array([1.0])), (-1, 0, 1), [0.0], (0, 1))


INPUT_VALUES = {
    "ternary": [-1, 0, 1],
    "binary": [-1, 1],
    "uint2": [0, 1, 2, 3],
    "int2": [-2, -1, 0, 1],
}
ACTIVATIONS = [((-1, 0, 1), 2), ((-1, 1), 1), ((0, 1, 2, 3), 3)]

finite = st.floats(-4, 4, allow_nan=False, allow_infinity=False)


@st.composite
def float_layers(draw):
    """A random float layer: ternary weights, scales, bias and batch norm, activation."""
    in_type = draw(st.sampled_from(sorted(INPUT_VALUES)))
    fan_in = draw(st.integers(1, 4))
    out = draw(st.integers(1, 4))
    weights = np.array(
        draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=out * fan_in, max_size=out * fan_in))
    ).reshape(out, fan_in)
    scale = st.one_of(st.just(0.0), st.floats(1e-3, 10))
    alpha = np.array(draw(st.lists(scale, min_size=out, max_size=out)))
    input_scale = draw(st.floats(1e-3, 10))
    bias = np.array(draw(st.lists(finite, min_size=out, max_size=out)))
    bias = bias if draw(st.booleans()) else None
    bn = None
    if draw(st.booleans()):
        vectors = [
            np.array(draw(st.lists(strategy, min_size=out, max_size=out)))
            for strategy in (st.one_of(st.just(0.0), finite), finite, finite, st.floats(0, 10))
        ]
        bn = BatchNorm(*vectors, draw(st.sampled_from([1e-5, 1e-3, 0.1])))
    affine = Affine(alpha, input_scale, bias, bn)
    levels, count = draw(st.sampled_from(ACTIVATIONS))
    values = INPUT_VALUES[in_type]
    lo, hi = fold.accumulator_range(weights, min(values), max(values))
    # Thresholds at random, or exactly at a reachable pre-activation (the rounding edge), or
    # one float step beside it.
    thresholds = []
    for _ in range(count):
        kind = draw(st.sampled_from(["random", "exact", "below", "above"]))
        if kind == "random":
            thresholds.append(draw(finite))
            continue
        row = draw(st.integers(0, out - 1))
        acc = np.zeros(out, dtype=np.int64)
        acc[row] = draw(st.integers(int(lo[row]), int(hi[row])))
        z = float(fold.preactivation(acc[None, :], affine)[0, row])
        step = {"exact": 0, "below": -np.inf, "above": np.inf}[kind]
        thresholds.append(z if step == 0 else float(np.nextafter(z, step)))
    return in_type, weights, affine, levels, np.sort(np.array(thresholds))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(float_layers())
def test_folded_layer_equals_the_float_layer_on_every_input(layer):
    in_type, weights, affine, levels, thresholds = layer
    values = INPUT_VALUES[in_type]
    inputs = np.array(list(itertools.product(values, repeat=weights.shape[1])))
    # The float layer: its pre-activation from the integer accumulators, then the activation.
    expected = quant.quantize_levels(
        fold.preactivation(inputs @ weights.T, affine), levels, thresholds
    )
    folded, int_thresholds = fold.fold_layer(
        weights, affine, levels, thresholds, (min(values), max(values))
    )
    assert np.array_equal(np.abs(folded), np.abs(weights))
    doc = {
        "format": "tnn/1",
        "name": "folded",
        "input": {"shape": [weights.shape[1]], "type": in_type},
        "layers": [
            {
                "type": "dense",
                "out": weights.shape[0],
                "weights": ["".join("-0+"[v + 1] for v in row) for row in folded],
                "activation": {"levels": list(levels), "thresholds": int_thresholds.tolist()},
            }
        ],
        "output": "values",
    }
    outputs = golden.run(network.from_dict(doc), inputs)
    assert np.array_equal(outputs, expected)
    # Thresholds stay within one step of the reachable range, so the hardware's widths hold them.
    signed = folded.astype(np.int64)
    lo, hi = fold.accumulator_range(signed, min(values), max(values))
    assert np.all(int_thresholds >= lo[:, None]) and np.all(int_thresholds <= hi[:, None] + 1)
