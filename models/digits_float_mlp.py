"""Train the float model models/digits-float-mlp.onnx: a 64-256-10 ReLU MLP on the digits data
set, in NumPy, exported as PyTorch's dynamo exporter writes an nn.Linear network.

It is the float input of `tnngen import --quantize` (post-training ternarization, no
retraining); models/README.md gives the recipe and the accuracy of both. Deterministic: the
seed fixes the initial weights and the batch order, and BLAS runs on one thread, so a rerun on
the same software and machine writes the same file byte for byte.

    python models/digits_float_mlp.py [--output models/digits-float-mlp.onnx]

Inputs are the pixels divided by 16 (floats in [0, 1], shape (N, 64)); the split is
gen.learn.datasets' fixed train split of `digits` (1,437 images). The final layer has no bias (as in
BNN-PYNQ's networks): a per-class bias cannot be part of an argmax of integer accumulators.
"""

import argparse
import os
import sys

import numpy as np

HIDDEN, EPOCHS, SEED, LEARNING_RATE, BATCH = 256, 40, 0, 0.005, 64


def train(x, labels):
    """Adam on softmax cross-entropy; returns ``(w1, b1, w2)`` (rows per output unit)."""
    rng = np.random.default_rng(SEED)
    w1 = rng.normal(0, np.sqrt(2 / x.shape[1]), (HIDDEN, x.shape[1]))
    b1 = np.zeros(HIDDEN)
    w2 = rng.normal(0, np.sqrt(1 / HIDDEN), (10, HIDDEN))
    params = [w1, b1, w2]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    onehot = np.eye(10)[labels]
    step = 0
    for _ in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = order[start : start + BATCH]
            xb, yb = x[idx], onehot[idx]
            u = xb @ w1.T + b1
            h = np.maximum(u, 0)
            logits = h @ w2.T
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            d = (p - yb) / len(xb)
            dh = (d @ w2) * (u > 0)
            grads = [dh.T @ xb, dh.sum(axis=0), d.T @ h]
            step += 1
            for param, grad, (m, v) in zip(params, grads, moments, strict=True):
                m[:] = 0.9 * m + 0.1 * grad
                v[:] = 0.999 * v + 0.001 * grad**2
                m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
                param -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)
    return params


def to_onnx(params):
    """The model as an ONNX graph: Gemm (transB=1) with bias, Relu, Gemm without bias."""
    from onnx import TensorProto, helper, numpy_helper

    w1, b1, w2 = (np.asarray(p, dtype=np.float32) for p in params)
    inits = [
        numpy_helper.from_array(v, n)
        for n, v in (("fc1.weight", w1), ("fc1.bias", b1), ("fc2.weight", w2))
    ]
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["fc1"], transB=1),
        helper.make_node("Relu", ["fc1"], ["relu"]),
        helper.make_node("Gemm", ["relu", "fc2.weight"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits-float-mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tnngen"
    )
    model.ir_version = 8
    return model


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))
    from gen.learn import datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(here, "digits-float-mlp.onnx"))
    args = parser.parse_args(argv)
    data = datasets.load("digits", "train")
    x = data.images.reshape(len(data.images), -1).astype(np.float64) / 16
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        params = train(x, data.labels)
    test = datasets.load("digits", "test")
    xt = test.images.reshape(len(test.images), -1).astype(np.float64) / 16
    w1, b1, w2 = params
    accuracy = np.mean(np.argmax(np.maximum(xt @ w1.T + b1, 0) @ w2.T, axis=1) == test.labels)
    import onnx

    onnx.save(to_onnx(params), args.output)
    print(f"wrote {args.output}: test accuracy {100 * accuracy:.2f}% (float64 NumPy)")


if __name__ == "__main__":
    main()
