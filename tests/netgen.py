"""Hypothesis strategies for random valid ``tnn/1`` and ``tnn/2`` descriptions and their inputs.

The descriptions cover every layer kind (dense, conv2d with stride and padding, maxpool), every
input type, binary and ternary weights, all-zero rows, fan-in 1, activations with ternary,
binary and multi-level outputs, and both ``tnn/1`` output kinds; with ``wide=True`` also
``intN`` weights (their extremes included) and the ``class_map`` output (``tnn/2``).
"""

import numpy as np
from hypothesis import strategies as st

from gen import network
from gen.network import Conv2d, MaxPool

INPUT_TYPES = ["ternary", "binary", "uint1", "uint2", "uint4", "uint8", "int2", "int3", "int8"]
LEVELS = [[-1, 0, 1], [-1, 1], [0, 1, 2, 3], [-3, -1, 2], [0, 1]]


def type_values(name, levels=None):
    """The values of a type given by name (or by its levels)."""
    if levels is not None:
        return list(levels)
    if name == "ternary":
        return [-1, 0, 1]
    if name == "binary":
        return [-1, 1]
    bits = int(name[4:]) if name.startswith("uint") else int(name[3:])
    if name.startswith("uint"):
        return list(range(0, 1 << bits))
    return list(range(-(1 << (bits - 1)), 1 << (bits - 1)))


@st.composite
def weight_rows(draw, out, fan_in, binary):
    chars = "+-" if binary else "+0-"
    rows = []
    for _ in range(out):
        style = draw(st.sampled_from(["random", "random", "zero", "dense"]))
        if style == "zero" and not binary:
            rows.append("0" * fan_in)
        elif style == "dense":
            rows.append("".join(draw(st.sampled_from("+-")) for _ in range(fan_in)))
        else:
            rows.append("".join(draw(st.sampled_from(chars)) for _ in range(fan_in)))
    return rows


@st.composite
def int_weight_rows(draw, out, fan_in, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    rows = []
    for _ in range(out):
        style = draw(st.sampled_from(["random", "random", "zero", "extreme"]))
        if style == "zero":
            rows.append([0] * fan_in)
        elif style == "extreme":
            rows.append([draw(st.sampled_from([lo, hi])) for _ in range(fan_in)])
        else:
            rows.append([draw(st.integers(lo, hi)) for _ in range(fan_in)])
    return rows


@st.composite
def activation(draw, out, bound):
    if draw(st.integers(0, 4)) == 0:
        return None, None
    levels = draw(st.sampled_from(LEVELS))
    rows = []
    for _ in range(out):
        ts = sorted(draw(st.integers(-bound - 2, bound + 2)) for _ in range(len(levels) - 1))
        rows.append(ts)
    return {"levels": levels, "thresholds": rows}, levels


@st.composite
def networks(draw, max_layers=4, spatial=None, output=None, max_input_space=None, wide=False):
    """A random valid description (as a JSON-ready dict).

    ``max_input_space`` bounds the number of distinct inputs, so that a test can enumerate them.
    ``wide`` adds ``tnn/2``'s ``intN`` weights and, for a network ending in a convolution (or a
    pool), the ``class_map`` output.
    """
    if spatial is None:
        spatial = draw(st.booleans())
    in_type = draw(st.sampled_from(INPUT_TYPES))
    size_limit = 6 * 6 * 3
    if max_input_space is not None:
        size_limit = max(1, int(np.log(max_input_space) / np.log(len(type_values(in_type)))))
    if spatial:
        h = draw(st.integers(1, min(6, size_limit)))
        w = draw(st.integers(1, min(6, max(1, size_limit // h))))
        c = draw(st.integers(1, min(3, max(1, size_limit // (h * w)))))
        shape = [h, w, c]
    else:
        shape = [draw(st.integers(1, min(12, size_limit)))]
    input_shape = list(shape)
    values = type_values(in_type)
    kind_name = in_type
    layers = []
    count = draw(st.integers(1, max_layers))
    raw_after = False  # the previous layer had no activation
    for _ in range(count):
        options = ["dense"]
        if len(shape) == 3:
            options += ["conv2d", "conv2d", "maxpool"]
        kind = draw(st.sampled_from(options))
        magnitude = max(abs(v) for v in values)
        if kind == "maxpool":
            kh, kw = draw(st.integers(1, shape[0])), draw(st.integers(1, shape[1]))
            layer = {"type": "maxpool", "kernel": [kh, kw] if kh != kw else kh}
            sh, sw = kh, kw
            if draw(st.booleans()):
                sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
                layer["stride"] = [sh, sw]
            layers.append(layer)
            shape = [(shape[0] - kh) // sh + 1, (shape[1] - kw) // sw + 1, shape[2]]
            continue
        binary = draw(st.integers(0, 3)) == 0
        int_bits = draw(st.sampled_from([None, 2, 3, 4, 8])) if wide else None
        binary = binary and int_bits is None
        out = draw(st.integers(1, 5))
        layer = {"type": kind, "out": out}
        if kind == "conv2d":
            ph = 0 if raw_after else draw(st.integers(0, 1))
            pw = 0 if raw_after else draw(st.integers(0, 1))
            kh = draw(st.integers(1, min(3, shape[0] + 2 * ph)))
            kw = draw(st.integers(1, min(3, shape[1] + 2 * pw)))
            sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
            layer.update(
                kernel=[kh, kw],
                stride=[sh, sw] if sh != sw else sh,
                padding=[ph, pw] if ph != pw else ph,
            )
            if ph or pw:
                if kind_name == "binary" or 0 not in values:
                    layer["pad"] = draw(st.sampled_from(values))
                elif draw(st.booleans()):
                    layer["pad"] = draw(st.sampled_from(values))
            fan_in = kh * kw * shape[2]
            next_shape = [
                (shape[0] + 2 * ph - kh) // sh + 1,
                (shape[1] + 2 * pw - kw) // sw + 1,
                out,
            ]
        else:
            fan_in = int(np.prod(shape))
            next_shape = [out]
        gain = 1
        if binary:
            layer["weight_type"] = "binary"
        if int_bits is None:
            layer["weights"] = draw(weight_rows(out, fan_in, binary))
        else:
            layer["weight_type"] = f"int{int_bits}"
            layer["weights"] = draw(int_weight_rows(out, fan_in, int_bits))
            gain = 1 << (int_bits - 1)
        act, levels = draw(activation(out, fan_in * magnitude * gain))
        layer["activation"] = act
        layers.append(layer)
        shape = next_shape
        if levels is None:
            bound = fan_in * magnitude * gain
            values = list(range(-bound, bound + 1)) if bound <= 64 else [-bound, 0, bound]
            kind_name = "integer"
            raw_after = True
        else:
            values = list(levels)
            kind_name = {(-1, 0, 1): "ternary", (-1, 1): "binary"}.get(tuple(levels), "levels")
            raw_after = False
    kinds = ["argmax", "values"] + (["class_map"] if wide and len(shape) == 3 else [])
    out_kind = output or draw(st.sampled_from(kinds))
    uses_2 = out_kind == "class_map" or any("int" in str(x.get("weight_type")) for x in layers)
    return {
        "format": "tnn/2" if uses_2 else "tnn/1",
        "name": "random",
        "input": {"shape": input_shape, "type": in_type},
        "layers": layers,
        "output": out_kind,
    }


@st.composite
def inputs_for(draw, doc, count):
    values = type_values(doc["input"]["type"])
    size = int(np.prod(doc["input"]["shape"]))
    flat = draw(st.lists(st.sampled_from(values), min_size=size * count, max_size=size * count))
    return np.array(flat, dtype=np.int64).reshape([count] + doc["input"]["shape"])


def folded_spec(net):
    """A folding of every weighted layer: about half its rows per cycle, and half its columns
    (a dense layer) or all of them (a conv layer, which already takes a cycle per position);
    at most 16 rows and 64 columns per cycle, so that large layers stay small."""

    def divisor_near(n, target):
        return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: abs(d - target))

    parts = []
    for index, layer in enumerate(net.layers):
        if isinstance(layer, MaxPool):
            continue
        rows, cols = layer.weights.reshape(layer.weights.shape[0], -1).shape
        conv = isinstance(layer, Conv2d)
        pe = divisor_near(rows, min(rows / 2, 16))
        simd = divisor_near(cols, min(cols if conv else cols / 2, 64))
        parts.append(f"{index}:{pe},{simd}")
    return ";".join(parts)


def mlp(sizes, in_type="ternary", seed=0, output="argmax"):
    """A random ternary MLP of layer ``sizes`` (a fixed seed, not a strategy): hidden layers
    with ternary activations, the last without."""
    rng = np.random.default_rng(seed)
    layers = []
    for k, (fan_in, out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        rows = ["".join(rng.choice(list("+0-"), size=fan_in)) for _ in range(out)]
        act = None
        if k < len(sizes) - 2:
            t = rng.integers(-3, 1, size=out)
            act = {"levels": [-1, 0, 1], "thresholds": [[int(a), int(a) + 3] for a in t]}
        layers.append({"type": "dense", "out": out, "weights": rows, "activation": act})
    return network.from_dict(
        {
            "format": "tnn/1",
            "name": "mlp",
            "input": {"shape": [sizes[0]], "type": in_type},
            "layers": layers,
            "output": output,
        }
    )


def int_mlp(sizes, bits, in_type, seed=0):
    """A tnn/2 MLP of intN weights with each layer's extremes: an all-zero row, a row of the
    most negative weight, a row of the largest, and random rows."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    layers = []
    for k, (fan_in, out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.integers(lo, hi + 1, size=(out, fan_in))
        w[0], w[1 % out], w[2 % out] = 0, lo, hi
        act = None
        if k < len(sizes) - 2:
            t = rng.integers(-3 * hi, 3 * hi + 1, size=(out, 2))
            act = {"levels": [-1, 0, 1], "thresholds": np.sort(t, axis=1).tolist()}
        layers.append(
            {
                "type": "dense",
                "out": out,
                "weight_type": f"int{bits}",
                "weights": w.tolist(),
                "activation": act,
            }
        )
    return network.from_dict(
        {
            "format": "tnn/2",
            "name": "int-mlp",
            "input": {"shape": [sizes[0]], "type": in_type},
            "layers": layers,
            "output": "argmax",
        }
    )


def split_utilization(net, part="ice40-up5k"):
    """The lowest utilization bound (in steps of 1%) at which ``--part`` splits layer 0's weight
    ROM between block RAM and logic (0 < block_bits < its word), and that plan; the tests of
    the split take it so that a change of the resource model does not move them off it."""
    from gen import compiler

    for percent in range(30, 100):
        try:
            the_plan = compiler.plan(net, "auto", part=part, utilization=percent / 100)
        except compiler.CompileError:  # nothing fits yet
            continue
        if the_plan.layers[0].block_bits:
            return percent / 100, the_plan
    raise AssertionError(f"--part {part} splits no weight ROM of {net.name} at any utilization")
