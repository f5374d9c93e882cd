"""Thresholds exactly where qonnx's float32 executor puts its boundaries: rounding ties (QONNX's
ROUND is half to even), other rounding modes, FINN's >=, a float32 sum that rounds below a
boundary the real-number sum reaches, and scales that are not powers of two."""

import numpy as np
import pytest

from gen.learn import fold
from gen.learn.qonnx import import_model

graphs = pytest.importorskip("qonnx_graphs")  # needs the optional extra "import"

FAN_IN, OUT, BATCH = 16, 4, 64
RNG = np.random.default_rng(17)
WEIGHTS = np.where(RNG.random((OUT, FAN_IN)) < 0.8, 1, -1).astype(np.int8)
WEIGHTS[0] = 1  # row 0 reaches every accumulator in -16..16


def one_layer(chain, quantizer):
    """Ternary inputs (2x - 1, 2-bit narrow Quant), a dense layer of unit scale, ``chain`` and
    ``quantizer`` (functions of the builder and a tensor), then a final dense layer."""
    b = graphs.Builder((FAN_IN,), batch=BATCH)
    x = b.op("Sub", [b.op("Mul", [b.input, b.const(2.0)]), b.const(1.0)])
    x = b.quant(x, 1.0, bits=2, narrow=True)
    x = b.dense(x, WEIGHTS, np.ones(OUT), "ternary", RNG)
    x = quantizer(b, chain(b, x))
    x = b.dense(x, graphs.random_ternary(RNG, (3, OUT)), np.ones(3), "ternary", RNG)
    return b.model(x)


def row0_inputs(accumulators):
    """Float inputs whose row-0 accumulator is each of ``accumulators`` (batch-sized)."""
    targets = [(0, a) for a in accumulators] * (BATCH // len(accumulators) + 1)
    ints = graphs.inputs_hitting(WEIGHTS, targets[:BATCH], (-1, 0, 1), RNG)
    return graphs.float_inputs("ternary", ints)


def check(model, accumulators):
    result, _, trace = graphs.check_import(model, row0_inputs(accumulators))
    assert set(accumulators) <= set(trace[0].acc[:, 0].tolist())
    return result.network.layers[0].activation.thresholds[0].tolist()


def halve(b, x):
    return b.op("Mul", [x, b.const(0.5)])


@pytest.mark.parametrize(
    "rounding, expected",
    [
        ("ROUND", [2, 3, 6]),  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2: half to even
        ("HALF_EVEN", [2, 3, 6]),
        ("HALF_UP", [1, 3, 5]),
        ("FLOOR", [2, 4, 6]),
        ("CEIL", [1, 3, 5]),
    ],
)
def test_rounding_ties(rounding, expected):
    """``v = acc / 2`` into a 2-bit unsigned Quant: accumulators 1, 3, 5 are exact ties."""
    model = one_layer(halve, lambda b, x: b.quant(x, 1.0, bits=2, signed=False, rounding=rounding))
    assert check(model, range(0, 8)) == expected


def test_multithreshold_is_greater_or_equal():
    model = one_layer(
        lambda b, x: x,
        lambda b, x: b.multithreshold(x, np.tile([[2.0, 3.5]], (OUT, 1)).astype(np.float32)),
    )
    assert check(model, range(0, 6)) == [2, 4]


def test_float32_rounding_below_a_boundary_the_real_sum_reaches():
    """At acc = 7, ``7 * c + b`` is 0.5 + 3.7e-9 in real numbers (rounds to 1) but 0.49999997
    in float32 (rounds to 0), as onnxruntime's Mul and Add compute it: the threshold is 8."""
    c = np.float32(0.071428575)
    b = np.float32(-1.25 * 2.0**-26)
    assert float(c) * 7 + float(b) > 0.5
    assert np.float32(np.float32(7) * c) + b < np.float32(0.5)

    def chain(builder, x):
        return builder.op("Add", [builder.op("Mul", [x, builder.const(c)]), builder.const(b)])

    model = one_layer(chain, lambda b_, x: b_.quant(x, 1.0, bits=2, signed=False))
    assert check(model, range(5, 10))[0] == 8
    # A fold in float64 real arithmetic (the trainer's) would put it at 7, one off.
    affine = fold.Affine(np.array([float(c)]), 1.0, np.array([float(b)]))
    _, float64 = fold.fold_thresholds(affine, [0.5], np.array([-16]), np.array([16]))
    assert float64[0, 0] == 7


@pytest.mark.parametrize("tied", [False, True])
def test_scales_that_are_not_powers_of_two(tied):
    """Brevitas' float scales: the sums round, so exactness is certified threshold by
    threshold. Boundaries a fraction of a step away from every accumulator are proved; with
    boundaries tied exactly to accumulators (in real numbers), the float32 graph decides them
    by its own summation order, the certificate says which, and the description differs from
    the executor only there."""
    rng = np.random.default_rng(3)
    sizes = [40, 24, 10]
    model, _ = graphs.mlp(
        rng,
        sizes,
        batch=256,
        weight_scale=0.0371,
        act_scale=0.173,
        act="uint2",
        input_kind="uint4",
        tie_offset=0.0 if tied else 0.37,
    )
    x = rng.uniform(0, 1, size=(256, sizes[0])).astype(np.float32)
    result = import_model(model)
    assert not result.exact  # the final argmax can tie (see the warning)
    if not tied:
        assert "exact (float32 sums within" in "\n".join(result.report)
        assert (
            len(result.warnings) == 1 and "final layer's float32 sums round" in result.warnings[0]
        )
        graphs.check_import(model, x, result=result)
        return
    assert any("thresholds lie within float32 rounding" in w for w in result.warnings)
    from gen.learn.qonnx import inputspec
    from gen.network import golden

    _, trace = golden.run(result.network, inputspec.to_integers(result.input_spec, x), trace=True)
    _, quants, _ = graphs.reference(model, x)
    layer = result.network.layers[0]
    graph = np.asarray(result.levels[1].index(quants[1]))
    mine = np.searchsorted(layer.activation.levels, trace[0].out)
    uncertain = result.uncertain[0]
    th = layer.activation.thresholds
    differ = np.argwhere(graph != mine)
    assert len(differ) > 0  # the ties do fall both ways in the executor
    for n, j in differ:
        acc = trace[0].acc[n, j]
        assert any(uncertain[j, k] and acc in (th[j, k] - 1, th[j, k]) for k in range(3))


def test_zero_and_negative_scales():
    """A per-channel factor of 0 gives a constant output (thresholds at the range's ends); a
    negative one negates the row."""
    factors = np.array([0.5, 0.0, -0.5, -0.25], dtype=np.float32)

    def chain(b, x):
        return b.op("Add", [b.op("Mul", [x, b.const(factors)]), b.const(np.float32(0.25))])

    model = one_layer(chain, lambda b, x: b.quant(x, 1.0, bits=2, signed=False))
    result, _, trace = graphs.check_import(model, row0_inputs(range(-4, 8)))
    layer = result.network.layers[0]
    assert np.all(trace[0].out[:, 1] == 0)  # round(0.25) = 0 whatever the accumulator
    assert "2 rows negated" in result.report[1]
    assert np.array_equal(layer.weights[2], -WEIGHTS[2])
