"""Training throughput of the CPU-scale trunks side by side: resnext_tiny, vit_tiny, regnety_tiny.

    python benchmarks/tiny_models.py [--batch 128] [--size 32] [--dtype bfloat16] [--rounds 3] [--steps 20]

The demo's settings by default (batch 128, 32 px pictures, bf16 compute with f32
parameters, SGD-Nesterov): the real jitted train step (`train_lib.make_train_step`) fed one
batch already on the device, compilation excluded. Models alternate round by round so
that load from other processes hits all of them alike; each model's rate is the median of
its rounds, and the ratios to resnext_tiny are printed. The demo rows of the README choose
each model's pretraining length (images) from these rates so that all train for the same
wall-clock time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from weaksup import losses, models, sharding  # noqa: E402
from weaksup import optimizer as optim_lib  # noqa: E402
from weaksup.models.counting import count_params  # noqa: E402
from weaksup.train_lib import create_train_state, make_train_step  # noqa: E402

MODELS = ("resnext_tiny", "vit_tiny", "regnety_tiny")


def make_runner(name: str, batch: int, size: int, dtype: str, classes: int):
    """A function that runs `steps` train steps and returns images per second."""
    mesh = sharding.make_mesh({"data": -1})
    model = models.get_model(name, classes, dtype=dtype)
    tx = optim_lib.make_optimizer(0.1)
    state, shardings = create_train_state(model, mesh, size, tx=tx, rng=jax.random.PRNGKey(0))
    step = make_train_step(model, tx, losses.make_loss_fn("softmax"), mesh, shardings)
    rng = np.random.default_rng(0)
    labels = np.full((batch, 8), -1, np.int32)
    labels[:, 0] = rng.integers(0, classes, batch)
    batch_arrays = sharding.make_global_batch(
        {"image": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8), "labels": labels}, mesh)
    holder = {"state": state}
    holder["state"], m = step(holder["state"], batch_arrays)  # compile
    jax.block_until_ready(m)

    def run(steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            holder["state"], m = step(holder["state"], batch_arrays)
        jax.block_until_ready(m)
        return steps * batch / (time.perf_counter() - t0)

    return run, count_params(model, size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--classes", type=int, default=884, help="head size (the demo vocabulary's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    names = args.models.split(",")
    runners = {n: make_runner(n, args.batch, args.size, args.dtype, args.classes) for n in names}
    rates: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:
            rates[n].append(runners[n][0](args.steps))
    base = statistics.median(rates[names[0]])
    print(f"train step, batch {args.batch}, {args.size} px, {args.dtype} compute, {jax.device_count()} device(s), "
          f"median of {args.rounds} rounds of {args.steps} steps")
    print(f"{'model':<14} {'params':>10} {'img/s':>8} {'vs ' + names[0]:>16}")
    for n in names:
        r = statistics.median(rates[n])
        print(f"{n:<14} {runners[n][1]:>10,} {r:>8.1f} {r / base:>15.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
