"""Accelerator benchmark: training throughput and MFU of the paper's and SWAG's trunks, and the probe.

    python benchmarks/accelerator.py                  # on a GPU/TPU host: 224 px, bf16, one table
    python benchmarks/accelerator.py --smoke          # the same code on tiny models at 32 px (CPU check;
                                                      # the default on a CPU-only host)

For each trunk (resnext101_32x8d, regnety_16gf, vit_b16 by default) the real jitted train
step (`train_lib.make_train_step`: bf16 compute, f32 weights, 1/k softmax, SGD-Nesterov
for the convnets and AdamW for the ViT, as configs/swag_pretrain.py) is fed one batch
already on the device, compilation excluded, and timed over --steps steps. Model FLOP
utilisation = 3 x 2 x (multiply-adds per image, counted from the model's own jaxpr by
`models.counting.count_macs`) x images/s / (peak bf16 FLOP/s of the devices). The factor
3 counts the forward pass and the two backward matmuls; rematerialisation, the optimiser
and data movement are not model FLOPs. The peak comes from --peak-tflops or from a table of
device kinds below (dense bf16, per chip).

Then the linear probe at benchmarks/probe.py's workload (100,000 x 2,048 features, 1,000
classes, l2 1e-3) on the accelerator, against scikit-learn's LogisticRegression (lbfgs,
default tolerance) on the host CPU, both timed in this run.

Goals (one GPU): ResNeXt-101 32x8d >= 45% MFU, ViT-B/16 >= 50%, against MLPerf-class
ResNet-50 at about 20%. Measured on one H200 (JAX 0.11.2, batch 128): ResNeXt-101 32x8d
2,130 img/s (21.2%), RegNetY-16GF 1,729 (16.7%), ViT-B/16 2,678 (28.5%); probe 3.56 s
against scikit-learn's 17.06 s on 16 host cores (README, "SWAG's trunks at CPU scale").
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
sys.path.insert(0, str(REPO / "benchmarks"))

from weaksup import losses, models, sharding  # noqa: E402
from weaksup import optimizer as optim_lib  # noqa: E402
from weaksup.evaluators.linear_probe import fit_logistic  # noqa: E402
from weaksup.models.counting import count_macs, count_params  # noqa: E402
from weaksup.train_lib import create_train_state, make_train_step  # noqa: E402

# Dense bf16 peak FLOP/s per device, by a lower-case substring of `device.device_kind`.
PEAK_BF16_TFLOPS = {
    "h200": 989.0, "h100": 989.0, "a100": 312.0, "l40s": 362.0, "a10g": 125.0,
    "tpu v5p": 459.0, "tpu v5 lite": 197.0, "tpu v5e": 197.0, "tpu v4": 275.0, "tpu v6": 918.0,
}
DEFAULT_TRUNKS = "resnext101_32x8d,regnety_16gf,vit_b16"
SMOKE_TRUNKS = "resnext_tiny,regnety_tiny,vit_tiny"


def peak_tflops(explicit: float | None) -> float | None:
    """Peak bf16 TFLOP/s of one device: the flag, else the table entry for the device kind."""
    if explicit:
        return explicit
    kind = jax.devices()[0].device_kind.lower()
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in kind), None)


def make_step_runner(name: str, batch: int, size: int, classes: int, dtype: str = "bfloat16"):
    """(run(steps) -> images/s, multiply-adds per image) for trunk `name`'s real train step.

    One batch is placed on the devices once and fed to every step; the first call
    compiles. SGD-Nesterov for the convnets, AdamW for the ViTs (configs/swag_pretrain.py).
    """
    mesh = sharding.make_mesh({"data": -1})
    model = models.get_model(name, classes, dtype=dtype)
    tx = optim_lib.make_adamw(1e-3, b2=0.95) if name.startswith("vit") else optim_lib.make_optimizer(0.1)
    state, shardings = create_train_state(model, mesh, size, tx=tx, rng=jax.random.PRNGKey(0))
    step = make_train_step(model, tx, losses.make_loss_fn("softmax"), mesh, shardings)
    rng = np.random.default_rng(0)
    labels = np.full((batch, 8), -1, np.int32)
    labels[:, 0] = rng.integers(0, classes, batch)
    data = sharding.make_global_batch(
        {"image": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8), "labels": labels}, mesh)
    holder = {"state": state}
    holder["state"], m = step(holder["state"], data)  # compilation
    jax.block_until_ready(m)

    def run(steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            holder["state"], m = step(holder["state"], data)
        jax.block_until_ready(m)
        return steps * batch / (time.perf_counter() - t0)

    return run, count_macs(models.get_model(name, classes), size)


def train_throughput(name: str, batch: int, size: int, classes: int, steps: int, rounds: int) -> tuple[float, int]:
    """(median images/s over `rounds` rounds of `steps` steps, multiply-adds per image)."""
    run, macs = make_step_runner(name, batch, size, classes)
    return statistics.median(run(steps) for _ in range(rounds)), macs


def probe_times(n: int, dim: int, classes: int, l2: float, skip_sklearn: bool) -> dict[str, float]:
    """Seconds of our probe fit on the default device and of scikit-learn's on the host, same features."""
    from probe import make_features  # benchmarks/probe.py's workload

    (x, y), (xt, yt) = make_features(n, max(n // 5, 100), dim, classes, 0.12, 0)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, xt = (x - mean) / std, (xt - mean) / std
    out = {}
    t0 = time.perf_counter()
    fit = fit_logistic(x, y, classes, l2)
    out["ours_s"] = time.perf_counter() - t0
    out["ours_top1"] = float(np.mean(np.argmax(fit.logits(xt), -1) == yt))
    if not skip_sklearn:
        from sklearn.linear_model import LogisticRegression

        t0 = time.perf_counter()
        clf = LogisticRegression(C=1.0 / (l2 * n), max_iter=1000).fit(x, y)
        out["sklearn_s"] = time.perf_counter() - t0
        out["sklearn_top1"] = float(clf.score(xt, yt))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trunks", default=None, help=f"comma-separated (default {DEFAULT_TRUNKS})")
    p.add_argument("--batch", type=int, default=0, help="global batch (default 128 per device; smoke 16)")
    p.add_argument("--size", type=int, default=0, help="picture side (default 224; smoke 32)")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=None, help="per-device dense bf16 peak")
    p.add_argument("--probe-n", type=int, default=0, help="probe training rows (default 100000; smoke 2000)")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny trunks, 32 px, a small probe: checks the script")
    args = p.parse_args()
    if jax.default_backend() == "cpu" and not (args.smoke or args.trunks or args.size):
        # The 224 px trunks would take hours per round on a CPU (`make bench` runs this script
        # bare): check the script instead, and say so.
        print("no accelerator: running --smoke (the full table is for GPU/TPU hosts; name --trunks to force it)")
        args.smoke = True
    trunks = (args.trunks or (SMOKE_TRUNKS if args.smoke else DEFAULT_TRUNKS)).split(",")
    size = args.size or (32 if args.smoke else 224)
    batch = args.batch or (16 if args.smoke else 128 * jax.device_count())
    peak = peak_tflops(args.peak_tflops)
    devices = jax.devices()
    print(f"devices: {len(devices)} x {devices[0].device_kind} ({jax.default_backend()}); "
          f"peak bf16 {f'{peak:.0f} TFLOP/s per device' if peak else 'unknown (pass --peak-tflops)'}")
    print(f"train step: batch {batch}, {size} px, bf16 compute, median of {args.rounds} rounds of {args.steps} steps")
    print("| trunk | params | GMACs/img | img/s | model TFLOP/s | MFU |\n|---|---:|---:|---:|---:|---:|")
    failed = []
    for name in trunks:
        try:
            rate, macs = train_throughput(name, batch, size, args.classes, args.steps, args.rounds)
        except Exception as e:  # one trunk's failure (memory, compiler) leaves the others' rows
            first = (str(e).splitlines() or [""])[0][:200]  # an empty message (MemoryError()) too
            print(f"| {name} | failed: {type(e).__name__}: {first} | | | | |", flush=True)
            failed.append(name)
            continue
        tflops = 3 * 2 * macs * rate / 1e12
        mfu = f"{100 * tflops / (peak * len(devices)):.1f}%" if peak else "-"
        params = count_params(models.get_model(name, args.classes), size)
        print(f"| {name} | {params / 1e6:.1f}M | {macs / 1e9:.2f} | {rate:.1f} | {tflops:.2f} | {mfu} |", flush=True)
    n = args.probe_n or (2000 if args.smoke else 100_000)
    dim, classes = (64, 10) if args.smoke else (2048, 1000)
    t = probe_times(n, dim, classes, 1e-3, args.skip_sklearn)
    line = f"linear probe {n} x {dim}, {classes} classes: ours {t['ours_s']:.2f} s (top-1 {100 * t['ours_top1']:.2f}%)"
    if "sklearn_s" in t:
        line += (f", scikit-learn on the host {t['sklearn_s']:.2f} s (top-1 {100 * t['sklearn_top1']:.2f}%), "
                 f"{t['sklearn_s'] / t['ours_s']:.1f}x")
    print(line)
    if failed:  # the rows that ran are printed; the exit status still says the table is incomplete
        print(f"failed trunks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
