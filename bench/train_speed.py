"""How long training the shipped models takes, and whether retraining reproduces them.

Usage: ``python bench/train_speed.py [--all]``. Trains ``models/digits-mlp.json`` (with
``--all`` every ``models/*.json``) into a temporary folder, prints the training time and the
whole command's time, and whether the description is byte for byte the one in ``models/``.
The issue's budget for ``digits-mlp`` is 5 minutes on 2 cores; exit status 1 beyond it.
"""

import argparse
import glob
import os
import sys
import tempfile
import time

from gen.learn.config import load_config, output_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET_SECONDS = 300


def bench(train, config_path, folder):
    config = load_config(config_path)
    shipped = output_path(config)
    output = os.path.join(folder, os.path.basename(shipped))
    start = time.perf_counter()
    result, _ = train.run_config(config_path, output=output, progress=None)
    total = time.perf_counter() - start
    with open(output, "rb") as f:
        ours = f.read()
    same = False
    if os.path.exists(shipped):
        with open(shipped, "rb") as f:
            same = f.read() == ours
    print(
        f"{config.name:12s} training {result.seconds:7.1f} s  whole command {total:7.1f} s  "
        f"test accuracy {100 * result.test_accuracy:.2f}%  "
        f"{'identical to' if same else 'DIFFERENT from'} {os.path.relpath(shipped, ROOT)}",
        flush=True,
    )
    return config.name, total, same


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every model, not only digits-mlp")
    args = parser.parse_args()
    from gen.learn import train

    configs = sorted(glob.glob(os.path.join(ROOT, "models", "*.json")))
    configs = [c for c in configs if not c.endswith(".tnn.json")]
    if not args.all:
        configs = [c for c in configs if os.path.basename(c) == "digits-mlp.json"]
    print(f"{os.cpu_count()} CPUs; BLAS limited to one thread while training")
    failed = False
    with tempfile.TemporaryDirectory(prefix="tnn-train-") as folder:
        for config_path in configs:
            name, total, same = bench(train, config_path, folder)
            if name == "digits-mlp" and total > BUDGET_SECONDS:
                print(f"digits-mlp took {total:.1f} s, beyond the budget of {BUDGET_SECONDS} s")
                failed = True
            failed = failed or not same
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
