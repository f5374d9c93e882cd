"""The golden model against an independent reference, and its range analysis by brute force."""

import itertools
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netgen import inputs_for, networks, type_values
from reference import evaluate, evaluate_one

from gen import network
from gen.network import arith, golden
from gen.network.ranges import analyze_ranges

EXAMPLES = os.path.join(os.path.dirname(__file__), "examples")


@pytest.mark.parametrize("name", ["tiny_mlp", "tiny_cnn"])
def test_shared_examples(name):
    net = network.load(f"{EXAMPLES}/{name}.tnn.json")
    with open(f"{EXAMPLES}/{name}.vectors.json") as f:
        vectors = json.load(f)
    outputs = golden.run(net, np.array(vectors["inputs"]))
    assert np.array_equal(outputs, np.array(vectors["outputs"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_golden_matches_reference_on_random_networks(data):
    doc = data.draw(networks())
    net = network.from_dict(doc)
    x = data.draw(inputs_for(doc, 5))
    outputs, traces = golden.run(net, x, trace=True)
    for n in range(len(x)):
        expected, steps = evaluate_one(doc, x[n], trace=True)
        assert np.array_equal(outputs[n], expected)
        for trace, (acc, out) in zip(traces, steps, strict=True):
            if acc is None:
                assert trace.acc is None
            else:
                assert np.array_equal(trace.acc[n], acc)
            assert np.array_equal(trace.out[n], out)


def _net(layers, shape, in_type="ternary", output="argmax"):
    return {
        "format": "tnn/1",
        "name": "t",
        "input": {"shape": shape, "type": in_type},
        "layers": layers,
        "output": output,
    }


def test_argmax_ties_go_to_the_lowest_index():
    # outputs: acc = [x0, x0, x1, x1]; ties between 0/1 and 2/3, and all four when x = 0
    doc = _net(
        [{"type": "dense", "out": 4, "weights": ["+0", "+0", "0+", "0+"], "activation": None}], [2]
    )
    net = network.from_dict(doc)
    x = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [-1, -1], [-1, 0]])
    assert golden.run(net, x).tolist() == [0, 0, 2, 0, 0, 2]
    assert evaluate(doc, x).tolist() == [0, 0, 2, 0, 0, 2]


@pytest.mark.parametrize("pad", [-1, 1])
def test_binary_padding(pad):
    # 2x2 binary image, 3x3 all-plus kernel, padding 1: every window holds the four pixels
    # and five pad cells
    doc = _net(
        [
            {
                "type": "conv2d",
                "out": 1,
                "kernel": [3, 3],
                "padding": 1,
                "pad": pad,
                "weight_type": "binary",
                "weights": ["+" * 9],
                "activation": None,
            }
        ],
        [2, 2, 1],
        "binary",
        "values",
    )
    net = network.from_dict(doc)
    x = np.array([[[[1], [1]], [[1], [-1]]]])
    acc = golden.run(net, x)
    assert acc.shape == (1, 2, 2, 1)
    assert np.all(acc == 2 + 5 * pad)


def test_ternary_padding_default_zero_and_stride():
    doc = _net(
        [
            {
                "type": "conv2d",
                "out": 1,
                "kernel": [2, 2],
                "stride": 2,
                "padding": 1,
                "weights": ["++++"],
                "activation": None,
            }
        ],
        [3, 3, 1],
        "ternary",
        "values",
    )
    net = network.from_dict(doc)
    x = np.ones((1, 3, 3, 1), dtype=np.int64)
    # windows at rows/cols -1..0 and 1..2: corner windows see 1, 2, 2 and 4 pixels
    assert golden.run(net, x)[0, :, :, 0].tolist() == [[1, 2], [2, 4]]


def test_fan_in_one_and_all_zero_rows():
    doc = _net(
        [
            {
                "type": "dense",
                "out": 3,
                "weights": ["+", "-", "0"],
                "activation": {
                    "levels": [0, 1, 2, 3],
                    "thresholds": [[-1, 0, 1], [-1, 0, 1], [1, 2, 3]],
                },
            }
        ],
        [1],
        "ternary",
        "values",
    )
    net = network.from_dict(doc)
    x = np.array([[-1], [0], [1]])
    assert golden.run(net, x).tolist() == [[1, 3, 0], [2, 2, 0], [3, 1, 0]]


def test_inputs_outside_the_type_are_refused():
    net = network.from_dict(
        _net([{"type": "dense", "out": 1, "weights": ["++"], "activation": None}], [2], "uint2")
    )
    with pytest.raises(
        golden.InputError,
        match=r"^input 1 holds 4 at index \[1\], which is not "
        r"a uint2 value \(0 to 3\)$",
    ):
        golden.run(net, np.array([[0, 3], [1, 4]]))
    with pytest.raises(
        golden.InputError,
        match=r"inputs must have shape \(N, 2\) for "
        r"input.shape \[2\], not \(2, 3\)",
    ):
        golden.run(net, np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(golden.InputError, match=r"found values with a fraction part"):
        golden.run(net, np.array([[0.5, 1.0]]))
    with pytest.raises(golden.InputError, match=r"not an array of bool"):
        golden.run(net, np.array([[True, False]]))
    binary = network.from_dict(
        _net([{"type": "dense", "out": 1, "weights": ["++"], "activation": None}], [2], "binary")
    )
    with pytest.raises(golden.InputError, match=r"which is not a binary value \(one of -1, 1\)"):
        golden.run(binary, np.array([[0, 1]]))


@pytest.mark.parametrize("bits", [4, 12, 16])
def test_exact_products_on_every_path(bits):
    # wide inputs and fan-in take the float32, float64 and int64 paths; each must be exact
    rng = np.random.default_rng(bits)
    x = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(7, 3000))
    w = rng.integers(-1, 2, size=(5, 3000))
    expected = [
        [sum(int(a) * int(b) for a, b in zip(row, col, strict=True)) for col in w] for row in x
    ]
    for bound in (1 << 20, 1 << 40, 1 << 60):
        if bound < 3000 << (bits - 1):
            continue  # that path is not chosen for such values
        assert arith.exact_matmul(x, w, bound).tolist() == expected


def _all_inputs(doc):
    values = type_values(doc["input"]["type"])
    shape = doc["input"]["shape"]
    size = int(np.prod(shape))
    return np.array(list(itertools.product(values, repeat=size))).reshape([-1] + shape)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(max_layers=3, max_input_space=4096))
def test_range_analysis_against_brute_force(doc):
    net = network.from_dict(doc)
    x = _all_inputs(doc)
    _, traces = golden.run(net, x, trace=True)
    ranges = analyze_ranges(net)
    for index, (trace, r) in enumerate(zip(traces, ranges, strict=True)):
        lo, hi = trace.out.min(), trace.out.max()
        assert r.out_min <= lo and hi <= r.out_max
        if trace.acc is None:
            continue
        # Only the network's own inputs are independent, so only the first layer's bounds are
        # reached exactly; after a pool with overlapping windows (stride 1) its outputs are not.
        if index == 0:
            assert (r.acc_min, r.acc_max) == (trace.acc.min(), trace.acc.max())
            per = trace.acc.reshape(-1, trace.acc.shape[-1])
            assert np.array_equal(r.acc_min_per_output, per.min(axis=0))
            assert np.array_equal(r.acc_max_per_output, per.max(axis=0))
        else:
            assert r.acc_min <= trace.acc.min() and trace.acc.max() <= r.acc_max
        bits = r.acc_bits
        if r.acc_signed:
            assert -(1 << (bits - 1)) <= r.acc_min and r.acc_max < (1 << (bits - 1))
            assert r.acc_min < -(1 << (bits - 2)) or r.acc_max >= (1 << (bits - 2)) or bits == 2
        else:
            assert 0 <= r.acc_min and r.acc_max < (1 << bits)
            assert r.acc_max >= (1 << (bits - 1)) or bits == 1


def test_range_analysis_of_an_example():
    net = network.load(f"{EXAMPLES}/tiny_mlp.tnn.json")
    first, second = analyze_ranges(net)
    assert (first.acc_min, first.acc_max, first.acc_bits, first.acc_signed) == (-4, 4, 4, True)
    # the all-zero row's output is the constant +1 (0 >= both thresholds), so the second
    # layer's first row "--++" ranges over -1-1-1+1 .. 1+1+1+1
    assert (second.acc_min, second.acc_max) == (-2, 4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_golden_matches_reference_on_random_tnn2_networks(data):
    """intN weights (their extremes, all-zero rows) and the class_map output."""
    doc = data.draw(networks(wide=True))
    net = network.from_dict(doc)
    x = data.draw(inputs_for(doc, 5))
    outputs, traces = golden.run(net, x, trace=True)
    for n in range(len(x)):
        expected, steps = evaluate_one(doc, x[n], trace=True)
        assert np.array_equal(outputs[n], expected)
        for trace, (acc, out) in zip(traces, steps, strict=True):
            if acc is not None:
                assert np.array_equal(trace.acc[n], acc)
            assert np.array_equal(trace.out[n], out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(max_layers=3, max_input_space=4096, wide=True))
def test_tnn2_range_analysis_against_brute_force(doc):
    net = network.from_dict(doc)
    _, traces = golden.run(net, _all_inputs(doc), trace=True)
    first = True
    for trace, r in zip(traces, analyze_ranges(net), strict=True):
        assert r.out_min <= trace.out.min() and trace.out.max() <= r.out_max
        if trace.acc is None:
            continue
        if first:  # independent inputs: the bounds are reached exactly
            assert (r.acc_min, r.acc_max) == (trace.acc.min(), trace.acc.max())
            first = False
        else:
            assert r.acc_min <= trace.acc.min() and trace.acc.max() <= r.acc_max


def test_class_map_ties_go_to_the_lowest_channel():
    # a 1x1 conv on a 1x3 map of one ternary channel: channels [x, x, -x, 0]
    doc = {
        "format": "tnn/2",
        "name": "t",
        "input": {"shape": [1, 3, 1], "type": "ternary"},
        "layers": [
            {
                "type": "conv2d",
                "out": 4,
                "kernel": 1,
                "weight_type": "int2",
                "weights": [[1], [1], [-1], [0]],
                "activation": None,
            }
        ],
        "output": "class_map",
    }
    net = network.from_dict(doc)
    x = np.array([[[[1], [0], [-1]]]])
    # x = 1: channels 0 and 1 tie at 1; x = 0: all four tie; x = -1: channel 2 wins
    assert golden.run(net, x).tolist() == [[[0, 0, 2]]]
    assert evaluate_one(doc, x[0]).tolist() == [[0, 0, 2]]
