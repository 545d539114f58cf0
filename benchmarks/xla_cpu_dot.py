"""The linear probe's two matmuls under XLA:CPU's dot options, beside numpy, in one run.

The probe's fit is nearly all (N, D) x (D, C) products: the logits x @ w and the
gradient x^T r. This times both in float32 under each XLA_FLAGS setting below (each in a
fresh process, since XLA reads its flags once), and numpy's x @ w (the BLAS that
scikit-learn's solver uses) in the same processes, so every ratio is side by side.
Use it to see whether a jaxlib release or a CPU has a faster dot path than the default.

    .venv/bin/python benchmarks/xla_cpu_dot.py              # 25,000 x 2,048 x 1,000
    .venv/bin/python benchmarks/xla_cpu_dot.py --n 100000

Prints, per setting, the best of 3 times of x @ w, x^T r (contracted over the rows in
place, as the probe does in float32), and numpy's x @ w.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

SETTINGS = {
    "default": "",
    "oneDNN": "--xla_cpu_use_onednn=true",
    "XNNPACK": "--xla_cpu_use_xnnpack=true",
    "YNN dot fusion": "--xla_cpu_experimental_ynn_fusion_type=dot",
    "XNN individual dots": "--xla_cpu_experimental_xnn_fusion_type=individual_dot",
    "oneDNN dot fusion": "--xla_cpu_experimental_onednn_fusion_type=dot",
}


def measure(n: int, dim: int, classes: int) -> str:
    """One line of best-of-3 seconds: JAX x @ w, JAX x^T r, numpy x @ w (this process's XLA_FLAGS)."""
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    w = rng.standard_normal((dim, classes), dtype=np.float32)
    r = rng.standard_normal((n, classes), dtype=np.float32)
    xd, wd, rd = jnp.asarray(x), jnp.asarray(w), jnp.asarray(r)
    logits = jax.jit(lambda a, b: a @ b)
    grad = jax.jit(lambda a, b: jax.lax.dot_general(a, b, (((0,), (0,)), ((), ()))))

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    return (f"{best(lambda: logits(xd, wd).block_until_ready()):.3f} "
            f"{best(lambda: grad(xd, rd).block_until_ready()):.3f} {best(lambda: x @ w):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=25_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(measure(args.n, args.dim, args.classes))
        return

    print(f"float32 {args.n} x {args.dim} x {args.classes}, best of 3, seconds")
    print(f"{'setting':22s} {'x @ w':>8s} {'x^T r':>8s} {'numpy x @ w':>12s}")
    for name, flags in SETTINGS.items():
        env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--n", str(args.n), "--dim", str(args.dim),
             "--classes", str(args.classes)],
            env=env, capture_output=True, text=True,
        )
        if out.returncode != 0:
            # A flag a jaxlib release no longer knows is reported, not fatal: the others still run.
            print(f"{name:22s} failed ({flags}): {out.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        xw, xtr, npy = out.stdout.split()[-3:]
        print(f"{name:22s} {xw:>8s} {xtr:>8s} {npy:>12s}", flush=True)


if __name__ == "__main__":
    main()
