"""QONNX import of convolutional networks: Conv with and without padding, MaxPool, and the
flatten of an NCHW image into a dense layer's y, x, c columns; compared with execute_onnx."""

import zlib

import numpy as np
import pytest

from gen.learn.qonnx import import_model

# The tests need the optional extra "import" (onnx, qonnx, onnxruntime).
graphs = pytest.importorskip("qonnx_graphs")


BATCH = 128


def seed(*parts):
    return zlib.crc32(repr(parts).encode())


def window_boundaries(result, image, kind, rng):
    """Images whose first conv accumulator at the centre position sits at each threshold and
    one below it (float inputs in [0, 1], NCHW)."""
    layer = result.network.layers[0]
    kh, kw = layer.kernel
    th = layer.activation.thresholds
    targets = [(j, int(t) + d) for j in range(layer.out) for t in th[j] for d in (-1, 0)]
    windows = graphs.inputs_hitting(layer.weights, targets, graphs.INPUT_KINDS[kind], rng)
    c, h, w = image
    ints = rng.choice(graphs.INPUT_KINDS[kind], size=(len(windows), h, w, c))
    # The window of the middle output position, which lies inside the image.
    (oh, ow), (sh, sw), (ph, pw) = result.network.shapes[1][:2], layer.stride, layer.padding
    y0, x0 = (oh // 2) * sh - ph, (ow // 2) * sw - pw
    ints[:, y0 : y0 + kh, x0 : x0 + kw, :] = windows.reshape(-1, kh, kw, c)
    return ((ints + 1) / 2).astype(np.float32).transpose(0, 3, 1, 2), len(targets)


@pytest.mark.parametrize(
    "convs",
    [
        ((4, 3, 0, 1, False),),
        ((4, 3, 1, 1, True),),
        ((4, 3, 1, 1, True), (6, 3, 1, 1, True)),
        ((5, 3, 1, 2, False), (3, 2, 0, 1, False)),
    ],
)
@pytest.mark.parametrize("weights", ["ternary", "binary"])
def test_conv_networks(convs, weights):
    rng = np.random.default_rng(seed(convs, weights))
    image = (2, 8, 8)
    model = graphs.cnn(rng, batch=BATCH, image=image, convs=convs, weights=weights)
    x = rng.uniform(0, 1, size=(BATCH,) + image).astype(np.float32)
    result, _, trace = graphs.check_import(model, x)
    assert result.exact
    assert min(graphs.boundary_hits(result.network, trace)) > 0.02
    edge, wanted = window_boundaries(result, image, "ternary", rng)
    assert len(edge) >= wanted // 2
    for start in range(0, len(edge), BATCH):
        chunk = edge[start : start + BATCH]
        graphs.check_import(model, np.concatenate([chunk, x[: BATCH - len(chunk)]]), result=result)
    net = result.network
    assert [layer.type for layer in net.layers].count("maxpool") == sum(c[4] for c in convs)
    assert net.input.shape == (8, 8, 2)


@pytest.mark.parametrize("style", ["mul-add", "div-sub"])
def test_conv_per_channel_affine_chain(style):
    rng = np.random.default_rng(seed(style))
    model = graphs.cnn(rng, batch=BATCH, style=style, act="uint2")
    x = rng.uniform(0, 1, size=(BATCH, 2, 8, 8)).astype(np.float32)
    graphs.check_import(model, x)


def test_flatten_permutes_the_dense_columns():
    rng = np.random.default_rng(5)
    model = graphs.cnn(rng, batch=4, convs=((3, 3, 1, 1, True),))
    net = import_model(model).network
    dense = net.layers[-1]
    # The graph flattens (c, y, x); the description's columns are in (y, x, c) order.
    assert net.shapes[-2] == (4, 4, 3)
    assert dense.weights.shape == (10, 48)
