"""BNN-PYNQ's TFC (784-64-64-64-10, w1a1, w1a2, w2a2) as Brevitas exports it to QONNX in both
exporter shapes, and in FINN's older MultiThreshold dialect: imported and compared with
qonnx's executor on every layer's integers, on random and on boundary inputs."""

import zlib

import numpy as np
import pytest

graphs = pytest.importorskip("qonnx_graphs")  # needs the optional extra "import"

BATCH = 200


def run_tfc(rng, model, in_bits, sizes):
    x = rng.uniform(0, 1, size=(BATCH, 1) + (int(np.sqrt(sizes[0])),) * 2).astype(np.float32)
    # Inputs exactly on the input quantizer's own boundaries (2x - 1 = 0 and +-0.5) too.
    x[: BATCH // 4].flat[::7] = 0.5
    x[BATCH // 4 : BATCH // 2].flat[::5] = 0.25 if in_bits == 2 else 0.5
    result, _, trace = graphs.check_import(model, x)
    assert result.exact
    hits = graphs.boundary_hits(result.network, trace)
    assert min(hits) > 0.02, hits
    layer = result.network.layers[0]
    levels = (-1, 1) if in_bits == 1 else (-1, 0, 1)
    th = layer.activation.thresholds
    targets = [(j, int(t) + d) for j in range(layer.out) for t in th[j] for d in (-1, 0)]
    ints = graphs.inputs_hitting(layer.weights, targets, levels, rng)[:BATCH]
    edge = graphs.float_inputs("binary", ints).reshape(len(ints), *x.shape[1:])
    graphs.check_import(model, np.concatenate([edge, x[: BATCH - len(edge)]]), result=result)
    return result


@pytest.mark.parametrize("wbits, abits", [(1, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("shape", ["torchscript", "dynamo"])
def test_tfc_qonnx(wbits, abits, shape):
    rng = np.random.default_rng(zlib.crc32(f"{wbits}{abits}{shape}".encode()))
    sizes = (784, 64, 64, 64, 10)
    model = graphs.tfc(rng, wbits=wbits, abits=abits, shape=shape, batch=BATCH)
    result = run_tfc(rng, model, 1 if abits == 1 else 2, sizes)
    net = result.network
    assert net.input.type.name == ("binary" if abits == 1 else "ternary")
    assert [layer.out for layer in net.layers] == [64, 64, 64, 10]
    weight_type = "binary" if wbits == 1 else "ternary"
    assert {layer.weight_type for layer in net.layers} == {weight_type}
    assert net.output == "argmax"


@pytest.mark.parametrize("wbits, abits", [(1, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("domain", ["finn", "finn.custom_op.general"])
def test_tfc_finn_multithreshold_dialect(wbits, abits, domain):
    rng = np.random.default_rng(zlib.crc32(f"finn{wbits}{abits}{domain}".encode()))
    sizes = (784, 64, 64, 64, 10)
    model = graphs.tfc(
        rng, wbits=wbits, abits=abits, dialect="finn", batch=BATCH, finn_domain=domain
    )
    result = run_tfc(rng, model, 1 if abits == 1 else 2, sizes)
    assert any("older dialect" in line for line in result.report)
    assert result.network.output == "argmax"
