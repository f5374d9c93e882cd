"""QONNX import of dense networks, compared with qonnx's executor on every layer's integers.

Every graph is built so that its hidden thresholds sit on accumulators the inputs reach (exact
float32 ties of the quantizer's rounding), and the first layer is also driven to the two
accumulators beside each of its thresholds on purpose.
"""

import zlib

import numpy as np
import pytest

from gen.learn.qonnx import UnsupportedGraph, import_model

# The tests need the optional extra "import" (onnx, qonnx, onnxruntime).
graphs = pytest.importorskip("qonnx_graphs")


BATCH = 256


def seed(*parts):
    return zlib.crc32(repr(parts).encode())


def random_floats(rng, n, size):
    return rng.uniform(0, 1, size=(n, size)).astype(np.float32)


def first_layer_boundaries(result, kind, rng):
    """Float inputs whose first-layer accumulators sit at each threshold and one below it."""
    layer = result.network.layers[0]
    th = layer.activation.thresholds
    targets = [(j, int(t) + d) for j in range(layer.out) for t in th[j] for d in (-1, 0)]
    ints = graphs.inputs_hitting(layer.weights, targets, graphs.INPUT_KINDS[kind], rng)
    assert len(ints) >= len(targets) // 2
    return graphs.float_inputs(kind, ints)


def run(model, n_inputs, sizes, rng, kind, boundary=True, **options):
    """Import, then check on random inputs and on first-layer boundary inputs (batch-sized)."""
    x = random_floats(rng, BATCH, sizes[0])
    result, _, trace = graphs.check_import(model, x, **options)
    if boundary:
        hits = graphs.boundary_hits(result.network, trace)
        assert min(hits[1:], default=1) > 0.02, hits  # deeper layers: random inputs suffice
        edge = first_layer_boundaries(result, kind, rng)
        for start in range(0, len(edge), BATCH):
            chunk = edge[start : start + BATCH]
            padded = np.concatenate([chunk, x[: BATCH - len(chunk)]])
            graphs.check_import(model, padded, result=result)
    return result


@pytest.mark.parametrize("shape", ["dynamo", "gemm0", "torchscript", "matmul"])
@pytest.mark.parametrize("weights", ["ternary", "binary", "quant1"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_weights_and_exporter_shapes(shape, weights, per_channel):
    rng = np.random.default_rng(seed(shape, weights, per_channel))
    sizes = [48, 32, 24, 10]
    model, _ = graphs.mlp(
        rng,
        sizes,
        batch=BATCH,
        weights=weights,
        per_channel=per_channel,
        shape=shape,
        bias=per_channel,  # a bias: Gemm's third input (dynamo) or an Add (TorchScript)
    )
    result = run(model, BATCH, sizes, rng, "binary")
    net = result.network
    expected = "binary" if weights != "ternary" else "ternary"
    assert [layer.weight_type for layer in net.layers] == [expected] * 3
    assert net.output == "argmax" and result.exact


@pytest.mark.parametrize("weights", sorted(graphs.INT_WEIGHTS))
def test_n_bit_weights_become_int_layers(weights):
    """2- to 8-bit weight quantizers, narrow or not, signed or not: tnn/2 intN layers, exact."""
    rng = np.random.default_rng(seed("int", weights))
    sizes = [32, 16, 12, 10]
    model, _ = graphs.mlp(rng, sizes, batch=BATCH, weights=weights, per_channel=True)
    if weights == "int8w":
        # its batch norms have negative scales: a negated row holding -128 would need +128
        with pytest.raises(UnsupportedGraph, match=r"holding -128 is negated .* \+128 needs 9"):
            import_model(model)
        return
    result, _, trace = graphs.check_import(model, random_floats(rng, BATCH, sizes[0]))
    net = result.network
    # the hidden quantizers' inputs land exactly on rounding boundaries for some inputs
    assert min(graphs.boundary_hits(net, trace)) > 0
    bits = int(graphs.INT_WEIGHTS[weights][3][3:])
    for layer in net.layers:
        # a row negated (a negative scale folded into thresholds) that held -2**(N-1) needs
        # one more bit
        wider = int(layer.weights.max()) == 1 << (bits - 1)
        assert layer.weight_type == f"int{bits + 1 if wider else bits}"
    assert net.format == "tnn/2" and result.exact
    lo, hi = graphs.int_range(weights)
    first = np.abs(net.layers[0].weights)
    assert first.max() == max(-lo, hi)  # the quantizer's extremes reached the description


CHAINS = ["bn", "mul-add", "div-sub", "unsqueeze-bn", "reshape-bn-squeeze", "mul-add-clip"]


@pytest.mark.parametrize(
    "act, style",
    [(act, "bn") for act in ("ternary", "binary", "quant1", "uint2", "int3")]
    + [("ternary", style) for style in CHAINS[1:]]
    + [("uint2", "bn-relu"), ("int3", "mul-add-clip"), ("uint2", "div-sub")],
)
def test_activation_quantizers_and_chains(act, style):
    rng = np.random.default_rng(seed(act, style))
    sizes = [40, 24, 16, 10]
    model, _ = graphs.mlp(rng, sizes, batch=BATCH, act=act, style=style, input_kind="ternary")
    result = run(model, BATCH, sizes, rng, "ternary")
    levels = result.network.layers[0].activation.levels
    assert list(levels) == list(
        {
            "ternary": (-1, 0, 1),
            "binary": (-1, 1),
            "quant1": (-1, 1),
            "uint2": (0, 1, 2, 3),
            "int3": tuple(range(-4, 4)),
        }[act]
    )


@pytest.mark.parametrize("act", ["mt-ternary", "mt-bipolar"])
def test_finn_multithreshold_activations(act):
    rng = np.random.default_rng(7)
    sizes = [40, 24, 10]
    model, _ = graphs.mlp(rng, sizes, batch=BATCH, act=act, weights="plain-ternary", shape="matmul")
    result = run(model, BATCH, sizes, rng, "binary")
    assert result.network.layers[0].activation.levels == (
        (-1, 0, 1) if act == "mt-ternary" else (-1, 1)
    )


def test_uint_input_quantizer():
    rng = np.random.default_rng(3)
    sizes = [32, 16, 10]
    model, _ = graphs.mlp(rng, sizes, batch=BATCH, input_kind="uint4", act="uint2")
    result = run(model, BATCH, sizes, rng, "uint4")
    assert result.network.input.type.name == "uint4"
    assert result.input_spec["quantizer"]["bit_width"] == 4


@pytest.mark.parametrize("tail", ["topk", "argmax", "tensornorm", None])
def test_tails(tail):
    rng = np.random.default_rng(11)
    sizes = [32, 16, 10]
    model, _ = graphs.mlp(rng, sizes, batch=BATCH, tail=tail)
    result = run(model, BATCH, sizes, rng, "binary")
    assert result.network.output == "argmax"
    # --output values: the final accumulators, checked against the graph's final sums.
    values = run(model, BATCH, sizes, rng, "binary", boundary=False, output="values")
    assert values.network.output == "values" and values.network.layers[-1].activation is None


def test_symbolic_batch_axis():
    """Exporters often leave the batch axis symbolic; the importer fixes it to 1."""
    rng = np.random.default_rng(12)
    model, _ = graphs.mlp(rng, [32, 16, 10], batch=1)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    batch_of_one, _ = graphs.mlp(np.random.default_rng(12), [32, 16, 10], batch=1)
    assert import_model(model).network == import_model(batch_of_one).network
