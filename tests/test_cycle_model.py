"""The compiler's cycle model against Amaranth's simulator.

``compiler.analytic_timing`` (the blocks' timing recurrences) must give exactly the latency and
initiation interval that ``compiler.measure_timing`` measures on the built design: for the
shipped models, unrolled and folded, and for random descriptions with conv2d and maxpool
layers, random foldings included.
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netgen import networks
from test_sim_models import folded_spec

from gen import compiler, golden, network

MODELS = os.path.join(os.path.dirname(__file__), os.pardir, "models")
EXAMPLES = os.path.join(os.path.dirname(__file__), "examples")


def timing_pair(net, fold):
    """``(analytic, simulated)`` timing of ``net`` compiled with ``fold``."""
    top, _ = compiler.build(compiler.plan(net, fold))
    analytic = compiler.analytic_timing(net, top)
    simulated = compiler.measure_timing(top, golden.random_inputs(net, 12, seed=0))
    return analytic, simulated


# Shipped models: the two foldings the other model tests use, and every layer at 1 x 1.
FAST_MODELS = {("tiny-mlp", "unrolled"), ("tiny-mlp", "folded"), ("digits-cnn", "folded")}


def model_cases():
    cases = []
    for path in sorted(os.listdir(MODELS)):
        if not path.endswith(".tnn.json"):
            continue
        name = path.removesuffix(".tnn.json")
        for label in ("unrolled", "folded"):
            slow = (name, label) not in FAST_MODELS
            marks = [pytest.mark.slow] if slow else []
            cases.append(pytest.param(name, label, marks=marks, id=f"{name}-{label}"))
    return cases


@pytest.mark.parametrize(("name", "label"), model_cases())
def test_shipped_models(name, label):
    net = network.load(os.path.join(MODELS, f"{name}.tnn.json"))
    fold = "unrolled" if label == "unrolled" else folded_spec(net)
    analytic, simulated = timing_pair(net, fold)
    assert analytic == simulated


@pytest.mark.parametrize("fold", ["unrolled", "0:1,3;2:1,2", "0:2,9;2:2,8", "1,1"])
def test_example_cnn(fold):
    net = network.load(os.path.join(EXAMPLES, "tiny_cnn.tnn.json"))
    analytic, simulated = timing_pair(net, fold)
    assert analytic == simulated


def test_metadata_says_analytic():
    net = network.load(os.path.join(EXAMPLES, "tiny_cnn.tnn.json"))
    meta = compiler.compile_network(net, "0:2,9;2:2,8").metadata
    assert meta["timing_model"] == "analytic"
    top, _ = compiler.build(compiler.plan(net, "0:2,9;2:2,8"))
    assert compiler.cycle_model(net, top, simulate=True)[2] == "simulated"
    assert compiler.cycle_model(net, top, simulate=True)[:2] == (
        meta["latency"],
        meta["initiation_interval"],
    )


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


def check_random(data):
    doc = data.draw(networks(max_layers=4, spatial=True))
    net = network.from_dict(doc)
    fold = data.draw(foldings(net))
    analytic, simulated = timing_pair(net, fold)
    assert analytic == simulated, (doc, fold)


RANDOM_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


@settings(max_examples=20, **RANDOM_SETTINGS)
@given(st.data())
def test_random_spatial_descriptions(data):
    check_random(data)


@pytest.mark.slow
@settings(max_examples=300, **RANDOM_SETTINGS)
@given(st.data())
def test_random_spatial_descriptions_many(data):
    check_random(data)
