"""Golden-model speed: 10,000 inputs through a 784-256-256-10 ternary MLP on one core.

Prints inputs per second for ternary and uint8 inputs. BLAS is limited to one thread
(threadpoolctl) so that the figure is for one core.
"""

import time

import numpy as np
from threadpoolctl import threadpool_limits

from gen import network
from gen.network import golden


def random_mlp(sizes, in_type, rng):
    layers = []
    for k, (fan_in, out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        weights = rng.choice(np.array(["+", "0", "-"]), size=(out, fan_in), p=[0.3, 0.4, 0.3])
        last = k == len(sizes) - 2
        if last:
            activation = None
        else:
            t = rng.integers(-8, 1, size=out)
            activation = {"levels": [-1, 0, 1], "thresholds": [[int(a), int(a) + 8] for a in t]}
        layers.append(
            {
                "type": "dense",
                "out": out,
                "weights": ["".join(r) for r in weights],
                "activation": activation,
            }
        )
    return network.from_dict(
        {
            "format": "tnn/1",
            "name": "bench",
            "input": {"shape": [sizes[0]], "type": in_type},
            "layers": layers,
            "output": "argmax",
        }
    )


def measure(net, x, repeats=5):
    golden.run(net, x[:100])  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        golden.run(net, x)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    with threadpool_limits(limits=1):
        run()


def run():
    rng = np.random.default_rng(0)
    n = 10_000
    print(f"golden model, {n} inputs, 784-256-256-10 ternary MLP, one core (best of 5)")
    print(f"{'input':>8}  {'seconds':>8}  {'inputs/s':>10}")
    for in_type, x in (
        ("ternary", rng.integers(-1, 2, size=(n, 784))),
        ("uint8", rng.integers(0, 256, size=(n, 784))),
    ):
        net = random_mlp([784, 256, 256, 10], in_type, rng)
        seconds = measure(net, x)
        print(f"{in_type:>8}  {seconds:8.3f}  {n / seconds:10.0f}")


if __name__ == "__main__":
    main()
