"""Linear-probe speed: weaksup's JAX L-BFGS probe beside scikit-learn, in one run.

Synthetic but separable features: Gaussian class means plus unit noise, at a separation
where logistic regression reaches roughly 70-90% top-1 on held-out points. Both solvers
see the same standardised float32 features and minimise the same objective (mean
cross-entropy + l2/2 ||W||^2, i.e. sklearn's C = 1 / (l2 * n)); sklearn runs
LogisticRegression(solver="lbfgs") with its default tolerance and a max_iter large
enough that it converges (a warning is printed if it does not), once at its default
tolerance (1e-4 on the largest gradient entry) and once at a tight one (1e-6), which
reaches the optimum of the objective: on problems with millions of weights the default
stops after a handful of iterations, away from it.

    .venv/bin/python benchmarks/probe.py                      # 100,000 x 2,048, 1,000 classes
    .venv/bin/python benchmarks/probe.py --n 20000 --dim 512 --classes 200

Prints wall times (our time includes compilation; the same fit is then timed again
compiled, as every later strength of an l2 sweep runs), iterations, passes over the features
(one (N, D) matmul each: two per L-BFGS iteration for us, two per function evaluation for
sklearn), the time of one such matmul in each library's dtype, test top-1 and the ratio.
On a CPU the passes are nearly all the work, so the speed-up is about the ratio of pass
counts times the ratio of matmul speeds. Target: >= 10x faster than sklearn with top-1
within 0.5 points.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import warnings
from collections.abc import Iterator

import numpy as np


def make_features(n: int, n_test: int, dim: int, classes: int, sep: float, seed: int):
    """Gaussian class means (scale `sep`) plus unit noise; balanced-ish random labels."""
    rng = np.random.default_rng(seed)
    means = (rng.standard_normal((classes, dim), dtype=np.float32) * sep)

    def draw(m):
        y = rng.integers(0, classes, m)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        x += means[y]
        return x, y.astype(np.int32)

    return draw(n), draw(n_test)


@contextlib.contextmanager
def counting_sklearn_evaluations() -> Iterator[list[int]]:
    """Records the function evaluations of each L-BFGS-B run sklearn's LogisticRegression starts."""
    from sklearn.linear_model import _logistic

    counts: list[int] = []
    minimize = _logistic.optimize.minimize

    def counted(*args, **kwargs):
        result = minimize(*args, **kwargs)
        counts.append(int(result.nfev))
        return result

    _logistic.optimize.minimize = counted
    try:
        yield counts
    finally:
        _logistic.optimize.minimize = minimize


def matmul_seconds(x: np.ndarray, classes: int, dtype: str, repeats: int = 3) -> float:
    """Best time of one (N, D) x (D, C) product: numpy float32 (sklearn's) or jitted JAX in `dtype`."""
    w = np.random.default_rng(1).standard_normal((x.shape[1], classes), dtype=np.float32)
    if dtype == "numpy":
        run = lambda: x @ w  # noqa: E731
    else:
        import jax
        import jax.numpy as jnp

        xd, wd = jnp.asarray(x, dtype), jnp.asarray(w, dtype)
        dot = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
        run = lambda: dot(xd, wd).block_until_ready()  # noqa: E731
        run()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--n-test", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--sep", type=float, default=0.12, help="class-mean scale (difficulty)")
    p.add_argument("--l2", type=float, default=1e-3,
                   help="penalty on the mean loss (a strength the validation sweep picks on such data)")
    p.add_argument("--sklearn-max-iter", type=int, default=1000)
    p.add_argument("--sklearn-tols", default="1e-4,1e-6",
                   help="sklearn tolerances to run: its default 1e-4, and a tight one that reaches the optimum")
    p.add_argument("--matmul-dtype", default="auto",
                   help="bfloat16 | float16 | float32 | auto (the fastest on this machine, as the probe picks it)")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import jax

    from weaksup.evaluators.linear_probe import Standardizer, fit_logistic, resolve_matmul_dtype, topk_accuracy

    (xtr, ytr), (xte, yte) = make_features(args.n, args.n_test, args.dim, args.classes, args.sep, args.seed)
    std = Standardizer.fit(xtr)
    xtr = np.asarray(std(xtr))
    xte = np.asarray(std(xte))
    l2 = args.l2
    mm_dtype = resolve_matmul_dtype(args.matmul_dtype)
    print(f"features {args.n} x {args.dim}, {args.classes} classes, test {args.n_test}, "
          f"l2 {l2:.3g} (sklearn C {1.0 / (l2 * args.n):.3g}), {jax.device_count()} JAX devices, "
          f"matmuls in {mm_dtype}",
          flush=True)

    t0 = time.perf_counter()
    fit = fit_logistic(xtr, ytr, args.classes, l2, matmul_dtype=mm_dtype)
    t_jax = time.perf_counter() - t0
    acc_jax = topk_accuracy(fit.logits(xte), yte, 1)
    print(f"weaksup  : {t_jax:8.2f} s  iterations {fit.iterations:4d}  passes {2 * fit.iterations:4d}  "
          f"loss {fit.loss:.5f}  test top-1 {100 * acc_jax:.2f}%", flush=True)
    # The same fit once more, compiled: what each later strength of an l2 sweep costs.
    t0 = time.perf_counter()
    fit_logistic(xtr, ytr, args.classes, l2, matmul_dtype=mm_dtype)
    print(f"  again, already compiled: {time.perf_counter() - t0:.2f} s", flush=True)
    if args.skip_sklearn:
        return
    print(f"one matmul {args.n} x {args.dim} x {args.classes}: JAX {mm_dtype} "
          f"{matmul_seconds(xtr, args.classes, mm_dtype):.2f} s, numpy float32 "
          f"{matmul_seconds(xtr, args.classes, 'numpy'):.2f} s", flush=True)

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    for tol in (float(t) for t in args.sklearn_tols.split(",")):
        clf = LogisticRegression(C=1.0 / (l2 * args.n), solver="lbfgs", tol=tol, max_iter=args.sklearn_max_iter)
        with warnings.catch_warnings(record=True) as caught, counting_sklearn_evaluations() as evaluations:
            warnings.simplefilter("always", ConvergenceWarning)
            t0 = time.perf_counter()
            clf.fit(xtr, ytr)
            t_sk = time.perf_counter() - t0
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        acc_sk = float(np.mean(clf.predict(xte) == yte))
        print(f"sklearn  : {t_sk:8.2f} s  iterations {int(clf.n_iter_[0]):4d}  passes {2 * sum(evaluations):4d}  tol {tol:g} "
              f"{'converged' if converged else 'NOT converged'}  test top-1 {100 * acc_sk:.2f}%")
        print(f"  speed-up {t_sk / t_jax:.1f}x   top-1 difference {100 * (acc_jax - acc_sk):+.2f} points", flush=True)

if __name__ == "__main__":
    main()
