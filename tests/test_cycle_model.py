"""The compiler's cycle model against Amaranth's simulator.

``compiler.analytic_timing`` (the blocks' timing recurrences) must give exactly the latency and
initiation interval that ``timing_oracle.measure_timing`` measures on the built design: for the
shipped models, unrolled and folded, and for random descriptions with conv2d and maxpool
layers, random foldings included.
"""

import os

import numpy as np
import pytest
import timing_oracle
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from netgen import folded_spec, networks

from gen import compiler, network
from gen.network import golden

MODELS = os.path.join(os.path.dirname(__file__), os.pardir, "models")
EXAMPLES = os.path.join(os.path.dirname(__file__), "examples")


def check_timing(net, fold=None, *, top=None, vectors=12):
    """The model's edges of every input transfer and result equal the simulator's.

    For one input alone (the latency experiment) and ``vectors`` back to back (the interval's),
    so both figures of the metadata agree as well.
    """
    if top is None:
        top, _ = compiler.build(compiler.plan(net, fold))
    inputs = golden.random_inputs(net, vectors, seed=0)
    for count in (1, vectors):
        modeled = compiler.transfer_times(net, top, count)
        simulated = timing_oracle.simulate_transfers(top, inputs[:count])
        assert modeled == simulated, (count, fold)


# Shipped models: the two foldings the other model tests use, and every layer at 1 x 1.
FAST_MODELS = {("tiny-mlp", "unrolled"), ("tiny-mlp", "folded")}
# mnist-mlp unrolled takes Amaranth's simulator over a quarter of an hour; it is a pipeline of
# whole-vector stages, the closed-form case that the other MLPs (and mnist-mlp folded) check.
UNSIMULATED_MODELS = {("mnist-mlp", "unrolled")}


def model_cases():
    cases = []
    for path in sorted(os.listdir(MODELS)):
        if not path.endswith(".tnn.json"):
            continue
        name = path.removesuffix(".tnn.json")
        for label in ("unrolled", "folded"):
            if (name, label) in UNSIMULATED_MODELS:
                continue
            slow = (name, label) not in FAST_MODELS
            marks = [pytest.mark.slow] if slow else []
            cases.append(pytest.param(name, label, marks=marks, id=f"{name}-{label}"))
    return cases


@pytest.mark.parametrize(("name", "label"), model_cases())
def test_shipped_models(name, label):
    net = network.load(os.path.join(MODELS, f"{name}.tnn.json"))
    fold = "unrolled" if label == "unrolled" else folded_spec(net)
    check_timing(net, fold)


@pytest.mark.parametrize("fold", ["unrolled", "0:1,3;2:1,2", "0:2,9;2:2,8", "1,1"])
def test_example_cnn(fold):
    net = network.load(os.path.join(EXAMPLES, "tiny_cnn.tnn.json"))
    check_timing(net, fold)


def test_folded_engine_between_padded_windows():
    """A 1 x 1 folded engine between two padded, strided windows: its stalls and the windows'
    padding interleave (a case an evaluation-order slip once got wrong)."""

    def conv(out, kernel, stride, padding, rows, thresholds):
        return {
            "type": "conv2d",
            "out": out,
            "kernel": kernel,
            "stride": stride,
            "padding": padding,
            "weights": rows,
            "activation": {"levels": [-1, 0, 1], "thresholds": thresholds},
        }

    doc = {
        "format": "tnn/1",
        "name": "stack",
        "input": {"shape": [3, 6, 1], "type": "uint2"},
        "layers": [
            conv(3, [2, 4], [2, 1], [0, 2], ["++++++++"] * 3, [[0, 2], [2, 2], [-2, 0]]),
            conv(1, [3, 3], [2, 1], [2, 1], ["00-+++-++----00-+0+--+--0++"], [[-2, 1]]),
            conv(3, [1, 2], [3, 3], [2, 2], ["-+", "-+", "00"], [[-2, 2], [2, 2], [0, 0]]),
        ],
        "output": "values",
    }
    check_timing(network.from_dict(doc), {"0": "unrolled", "1": [1, 1], "2": "unrolled"})


def test_interval_is_the_steady_state():
    """Two folded layers whose buffers fill for longer than the simulator's twelve vectors:
    the model runs on to the steady interval, that of the slowest engine."""
    net = network.from_dict(
        {
            "format": "tnn/1",
            "name": "mlp",
            "input": {"shape": [10], "type": "ternary"},
            "layers": [
                {"type": "dense", "out": 7, "weights": ["+0-+0-+0-+"] * 7, "activation": None},
                {"type": "dense", "out": 5, "weights": ["+-0+-0+"] * 5, "activation": None},
            ],
            "output": "values",
        }
    )
    top, _ = compiler.build(compiler.plan(net, "0:7,5;1:1,7"))
    assert compiler.analytic_timing(net, top)[1] == top.initiation_interval == 5
    check_timing(net, top=top, vectors=48)


def test_interval_waits_for_the_results_to_settle():
    """tiny-mlp folded 0:2,3;1:1,2: for 13 vectors inputs are taken every 4 cycles while the
    buffers fill, but results leave every 6 from the first; the interval is 6."""
    net = network.load(os.path.join(os.path.dirname(__file__), "..", "models", "tiny-mlp.tnn.json"))
    top, _ = compiler.build(compiler.plan(net, "0:2,3;1:1,2"))
    assert compiler.analytic_timing(net, top)[1] == 6
    accepted, produced = timing_oracle.simulate_transfers(
        top, golden.random_inputs(net, 40, seed=3)
    )
    assert set(np.diff(accepted)[20:].tolist()) == {6}
    assert set(np.diff(produced).tolist()) == {6}
    check_timing(net, top=top, vectors=24)


def test_cycle_model_is_analytic_and_agrees_with_the_oracle():
    net = network.load(os.path.join(EXAMPLES, "tiny_cnn.tnn.json"))
    top, _ = compiler.build(compiler.plan(net, "0:2,9;2:2,8"))
    latency, ii, how = compiler.cycle_model(net, top)
    assert how == "analytic"
    assert timing_oracle.simulated_timing(net, top) == (latency, ii, "simulated")


@st.composite
def foldings(draw, net):
    """A per-layer folding: each weighted layer unrolled or at a random ``pe x simd``."""
    spec = {}
    for index, layer in enumerate(net.layers):
        if isinstance(layer, network.MaxPool):
            continue
        rows, cols = layer.weights.shape
        if draw(st.booleans()):
            pe = draw(st.sampled_from([d for d in range(1, rows + 1) if rows % d == 0]))
            simd = draw(st.sampled_from([d for d in range(1, cols + 1) if cols % d == 0]))
            spec[str(index)] = [pe, simd]
        else:
            spec[str(index)] = "unrolled"
    return spec


@st.composite
def conv_stacks(draw):
    """Larger pixel pipelines than netgen's: images to 10 x 10, kernels to 4, strides to 3,
    padding to 2, stride-1 and strided pooling; ternary activations throughout; any output
    (the class map of the last tensor included)."""
    h, w, c = draw(st.integers(1, 10)), draw(st.integers(1, 10)), draw(st.integers(1, 2))
    shape, layers = [h, w, c], []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 2)) == 0:
            kh, kw = draw(st.integers(1, min(3, shape[0]))), draw(st.integers(1, min(3, shape[1])))
            sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            layers.append({"type": "maxpool", "kernel": [kh, kw], "stride": [sh, sw]})
            shape = [(shape[0] - kh) // sh + 1, (shape[1] - kw) // sw + 1, shape[2]]
            continue
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        kh = draw(st.integers(1, min(4, shape[0] + 2 * ph)))
        kw = draw(st.integers(1, min(4, shape[1] + 2 * pw)))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        out = draw(st.integers(1, 3))
        fan_in = kh * kw * shape[2]
        rows = ["".join(draw(st.sampled_from("+0-")) for _ in range(fan_in)) for _ in range(out)]
        thresholds = [sorted([draw(st.integers(-2, 2)), draw(st.integers(-2, 2))]) for _ in rows]
        layers.append(
            {
                "type": "conv2d",
                "out": out,
                "kernel": [kh, kw],
                "stride": [sh, sw],
                "padding": [ph, pw],
                "weights": rows,
                "activation": {"levels": [-1, 0, 1], "thresholds": thresholds},
            }
        )
        shape = [(shape[0] + 2 * ph - kh) // sh + 1, (shape[1] + 2 * pw - kw) // sw + 1, out]
    output = draw(st.sampled_from(["values", "argmax", "class_map"]))
    return {
        "format": "tnn/2" if output == "class_map" else "tnn/1",
        "name": "stack",
        "input": {"shape": [h, w, c], "type": draw(st.sampled_from(["ternary", "uint2"]))},
        "layers": layers,
        "output": output,
    }


def check_random(data):
    # tnn/2 too: intN weights (their engines time the same) and the class_map output
    wide = networks(
        max_layers=4,
        spatial=True,
        wide=True,
        output=data.draw(st.sampled_from(["argmax", "values", "class_map"])),
    )
    doc = data.draw(st.one_of(networks(max_layers=4, spatial=True), wide, conv_stacks()))
    try:
        net = network.from_dict(doc)
    except network.DescriptionError:
        if doc["output"] != "class_map":
            raise
        assume(False)  # a class map of a network that ends in a dense layer
    fold = data.draw(foldings(net))
    check_timing(net, fold)


#: A stack hypothesis found (2026-12-04) on which the model accepted inputs two or three edges
#: later than the simulator while the threshold units had three registers: kept as a fixed case.
PADDED_STRIDED_STACK = {
    "format": "tnn/1",
    "name": "stack",
    "input": {"shape": [1, 1, 1], "type": "uint2"},
    "layers": [
        {
            "type": "conv2d",
            "out": 1,
            "kernel": [1, 2],
            "stride": [1, 3],
            "padding": [2, 1],
            "weights": ["++"],
            "activation": {"levels": [-1, 0, 1], "thresholds": [[0, 0]]},
        },
        {
            "type": "conv2d",
            "out": 1,
            "kernel": [1, 1],
            "stride": [1, 1],
            "padding": [1, 1],
            "weights": ["0"],
            "activation": {"levels": [-1, 0, 1], "thresholds": [[0, 0]]},
        },
        {"type": "maxpool", "kernel": [1, 1], "stride": [1, 1]},
    ],
    "output": "argmax",
}


def test_padded_strided_stack():
    net = network.from_dict(PADDED_STRIDED_STACK)
    check_timing(net, {"0": "unrolled", "1": "unrolled"})


RANDOM_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


@settings(max_examples=10, **RANDOM_SETTINGS)
@given(st.data())
def test_random_spatial_descriptions(data):
    check_random(data)


@pytest.mark.slow
@settings(max_examples=300, **RANDOM_SETTINGS)
@given(st.data())
def test_random_spatial_descriptions_many(data):
    check_random(data)


def test_skid_buffers_between_blocks():
    """Skid buffers (not placed by the compiler today) in front of a slow folded engine."""
    from hw.folded import FoldedMatrixVector
    from hw.streamutil import PixelsToVector, SkidBuffer, VectorToPixels

    net = network.from_dict(
        {
            "format": "tnn/1",
            "name": "skid",
            "input": {"shape": [6], "type": "ternary"},
            "layers": [
                {"type": "dense", "out": 2, "weights": ["+0-+0-", "-+0-+0"], "activation": None}
            ],
            "output": "values",
        }
    )
    encoding = compiler.encoding_of(net.input.type)
    weights = net.layers[0].weights
    engine = FoldedMatrixVector(weights=weights, input_encoding=encoding, pe=1, simd=2)
    blocks = [
        VectorToPixels(shape=encoding.shape, pixels=3, channels=2),
        SkidBuffer(encoding.layout(2)),
        SkidBuffer(encoding.layout(2)),
        PixelsToVector(shape=encoding.shape, pixels=3, channels=2),
        SkidBuffer(encoding.layout(6)),
        engine,
        SkidBuffer(engine.output_encoding.layout(2)),
    ]
    stages = [compiler.Stage(f"s{k}", b, None, b.latency, 1) for k, b in enumerate(blocks)]
    top = compiler.Accelerator(
        stages, input_shape=encoding.layout(6), output_shape=engine.output_encoding.layout(2)
    )
    check_timing(net, top=top, vectors=32)  # the buffers take a while to fill
