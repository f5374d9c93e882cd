"""An independent evaluator of ``tnn/1`` and ``tnn/2`` for tests: obviously correct, not fast.

It reads the raw JSON document itself (not through ``gen.network``), computes every dot product
as a float64 matrix product on the same integers, walks convolution and pooling windows with
explicit loops, and applies thresholds by counting, one output at a time.
"""

import numpy as np

WEIGHT = {"+": 1.0, "0": 0.0, "-": -1.0}


def _pair(v):
    return (v, v) if isinstance(v, int) else (v[0], v[1])


def _matrix(rows):
    """Weight strings (ternary, binary) or lists of integers (``intN``), as floats."""
    return np.array(
        [[WEIGHT[c] for c in row] if isinstance(row, str) else list(row) for row in rows],
        dtype=np.float64,
    )


def _activate(acc, activation):
    if activation is None:
        return acc
    levels, thresholds = activation["levels"], activation["thresholds"]
    out = np.empty_like(acc)
    for index in np.ndindex(acc.shape):
        j = index[-1]
        k = sum(1 for t in thresholds[j] if acc[index] >= t)
        out[index] = levels[k]
    return out


def _dense(x, layer):
    w = _matrix(layer["weights"])
    acc = np.rint(x.reshape(-1).astype(np.float64) @ w.T).astype(np.int64)
    return acc, _activate(acc, layer.get("activation"))


def _conv(x, layer):
    h, w, c = x.shape
    kh, kw = _pair(layer["kernel"])
    sh, sw = _pair(layer.get("stride", 1))
    ph, pw = _pair(layer.get("padding", 0))
    pad = layer.get("pad", 0)
    padded = np.full((h + 2 * ph, w + 2 * pw, c), pad, dtype=np.int64)
    padded[ph : ph + h, pw : pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    weights = _matrix(layer["weights"])
    acc = np.zeros((oh, ow, layer["out"]), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            window = padded[oy * sh : oy * sh + kh, ox * sw : ox * sw + kw, :]
            vector = window.reshape(-1).astype(np.float64)  # ky, kx, c order
            acc[oy, ox] = np.rint(weights @ vector).astype(np.int64)
    return acc, _activate(acc, layer.get("activation"))


def _maxpool(x, layer):
    h, w, c = x.shape
    kh, kw = _pair(layer["kernel"])
    sh, sw = _pair(layer.get("stride", layer["kernel"]))
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.empty((oh, ow, c), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for ch in range(c):
                out[oy, ox, ch] = max(
                    x[oy * sh + dy, ox * sw + dx, ch] for dy in range(kh) for dx in range(kw)
                )
    return None, out


def evaluate_one(doc, x, *, trace=False):
    """Evaluate the description ``doc`` (a parsed JSON dict) on one input ``x``."""
    x = np.asarray(x, dtype=np.int64).reshape(doc["input"]["shape"])
    steps = []
    for layer in doc["layers"]:
        step = {"dense": _dense, "conv2d": _conv, "maxpool": _maxpool}[layer["type"]]
        acc, x = step(x, layer)
        steps.append((acc, x))
    if doc["output"] == "argmax":
        flat = x.reshape(-1)
        best = 0
        for k in range(1, len(flat)):
            if flat[k] > flat[best]:  # strictly greater: ties stay with the lowest index
                best = k
        result = best
    elif doc["output"] == "class_map":
        h, w, c = x.shape
        result = np.zeros((h, w), dtype=np.int64)
        for y in range(h):
            for xx in range(w):
                for ch in range(1, c):
                    if x[y, xx, ch] > x[y, xx, result[y, xx]]:  # ties: the lowest channel
                        result[y, xx] = ch
    else:
        result = x
    return (result, steps) if trace else result


def evaluate(doc, inputs):
    """Evaluate ``doc`` on every input in ``inputs``; returns an array of the results."""
    return np.array([evaluate_one(doc, x) for x in inputs])


def ref_threshold(acc, thresholds, levels):
    """``levels[k]``, ``k`` = number of thresholds met; ``acc`` (n,), ``thresholds`` (n, L-1)."""
    acc = np.asarray(acc)[..., None]
    k = (acc >= np.asarray(thresholds)).sum(axis=-1)
    return np.asarray(levels)[k]
