"""Training throughput of the CPU-scale trunks side by side: resnext_tiny, vit_tiny, regnety_tiny.

    python benchmarks/tiny_models.py [--batch 128] [--size 32] [--dtype bfloat16] [--rounds 3] [--steps 20]

The demo's settings by default (batch 128, 32 px pictures, bf16 compute with f32
parameters; SGD-Nesterov, AdamW for the ViT): the real jitted train step
(`train_lib.make_train_step`, through benchmarks/accelerator.py's runner) fed one batch
already on the device, compilation excluded. Models alternate round by round so
that load from other processes hits all of them alike; each model's rate is the median of
its rounds, and the ratios to resnext_tiny are printed. The demo rows of the README choose
each model's pretraining length (images) from these rates so that all train for the same
wall-clock time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accelerator import make_step_runner  # noqa: E402  (benchmarks/accelerator.py)

from weaksup import models  # noqa: E402
from weaksup.models.counting import count_params  # noqa: E402

MODELS = ("resnext_tiny", "vit_tiny", "regnety_tiny")


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
    runners = {n: make_step_runner(n, args.batch, args.size, args.classes, args.dtype)[0] for n in names}
    rates: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:
            rates[n].append(runners[n](args.steps))
    base = statistics.median(rates[names[0]])
    print(f"train step, batch {args.batch}, {args.size} px, {args.dtype} compute, {jax.device_count()} device(s), "
          f"median of {args.rounds} rounds of {args.steps} steps")
    print(f"{'model':<14} {'params':>10} {'img/s':>8} {'vs ' + names[0]:>16}")
    for n in names:
        r = statistics.median(rates[n])
        params = count_params(models.get_model(n, args.classes), args.size)
        print(f"{n:<14} {params:>10,} {r:>8.1f} {r / base:>15.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
