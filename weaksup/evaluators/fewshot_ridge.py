"""Few-shot ridge probe: closed-form least squares on frozen features (big_vision's fewshot_lsr).

For k shots per class, features are standardised, a large constant column stands in for
the (almost unregularised) bias, and targets are one-hot in {-1, +1}. The ridge
solution (X^T X + l2 I)^-1 X^T Y -- or X^T (X X^T + l2 I)^-1 Y when there are fewer
points than dimensions -- is computed from one symmetric eigendecomposition, after which
every L2 value costs one (D, C) rescale. L2 is chosen on a validation split, accuracy is
reported on test, averaged over several random draws of the shots.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from weaksup.evaluators.context import Context
from weaksup.evaluators.features import FeatureEvaluator, Features

DEFAULT_SHOTS: tuple[int, ...] = (1, 5, 10, 25)
DEFAULT_L2_GRID: tuple[float, ...] = tuple(2.0**p for p in range(-10, 21, 2))
BIAS_CONSTANT = 100.0


def sample_shots(labels: np.ndarray, shots: int, num_classes: int, seed: int) -> np.ndarray:
    """Indices of `shots` examples per class, drawn without replacement.

    Classes with fewer examples contribute all they have; classes with none raise.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            raise ValueError(f"class {c} has no training examples to draw shots from")
        chosen.append(rng.choice(idx, size=min(shots, idx.size), replace=False))
    return np.sort(np.concatenate(chosen))


@functools.partial(jax.jit, static_argnames=("num_classes",))
def eig_cache(x: jax.Array, y: jax.Array, num_classes: int) -> dict[str, jax.Array]:
    """The eigendecomposition-based solver state for features x (N, D) and labels y (N,)."""
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=0, keepdims=True)
    std = jnp.std(x, axis=0, keepdims=True) + 1e-5
    x = jnp.pad((x - mean) / std, ((0, 0), (0, 1)), constant_values=BIAS_CONSTANT)
    t = 2.0 * jax.nn.one_hot(y, num_classes) - 1.0
    n, d = x.shape
    if n >= d:
        eigs, q = jnp.linalg.eigh(x.T @ x)
        rhs, lhs = q.T @ (x.T @ t), q
    else:
        eigs, q = jnp.linalg.eigh(x @ x.T)
        rhs, lhs = q.T @ t, x.T @ q
    return {"eigs": eigs, "rhs": rhs, "lhs": lhs, "mean": mean, "std": std}


@jax.jit
def ridge_scores(cache: dict[str, jax.Array], x: jax.Array, l2: jax.Array) -> jax.Array:
    """Class scores (M, C) of features x under the ridge solution at strength l2."""
    x = (x.astype(jnp.float32) - cache["mean"]) / cache["std"]
    x = jnp.pad(x, ((0, 0), (0, 1)), constant_values=BIAS_CONSTANT)
    w = cache["lhs"] @ (cache["rhs"] / (cache["eigs"][:, None] + l2))
    return x @ w


def _accuracy(scores: jax.Array, labels: jax.Array) -> float:
    return float(jnp.mean(jnp.argmax(scores, axis=-1) == labels))


def fewshot_ridge(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
    num_classes: int,
    shots: Sequence[int] = DEFAULT_SHOTS,
    seeds: Sequence[int] = (0, 1, 2),
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
) -> dict[str, float]:
    """Mean (and std) top-1 over seeds for each shot count; L2 picked on val per draw.

    Keys: "{k}shot_top1", "{k}shot_top1_std" (test if given, else val) and
    "{k}shot_l2" (median chosen L2).
    """
    if not shots or not seeds or not l2_grid:
        raise ValueError("shots, seeds and l2_grid must be non-empty")
    xtr, ytr = np.asarray(train[0], np.float32), np.asarray(train[1])
    xva, yva = jnp.asarray(val[0], jnp.float32), jnp.asarray(val[1])
    if test is not None:
        xte, yte = jnp.asarray(test[0], jnp.float32), jnp.asarray(test[1])
    out: dict[str, float] = {}
    for k in shots:
        accs, l2s = [], []
        for seed in seeds:
            idx = sample_shots(ytr, k, num_classes, seed)
            cache = eig_cache(jnp.asarray(xtr[idx]), jnp.asarray(ytr[idx]), num_classes)
            val_accs = [_accuracy(ridge_scores(cache, xva, jnp.float32(l2)), yva) for l2 in l2_grid]
            l2 = l2_grid[int(np.argmax(val_accs))]
            l2s.append(l2)
            if test is not None:
                accs.append(_accuracy(ridge_scores(cache, xte, jnp.float32(l2)), yte))
            else:
                accs.append(max(val_accs))
        out[f"{k}shot_top1"] = float(np.mean(accs))
        out[f"{k}shot_top1_std"] = float(np.std(accs))
        out[f"{k}shot_l2"] = float(np.median(l2s))
    return out


class Evaluator(FeatureEvaluator):
    """Few-shot ridge on the context's target's frozen features (options: shots, seeds, l2_grid)."""

    def __init__(self, ctx: Context, *, shots: Sequence[int] = DEFAULT_SHOTS, seeds: Sequence[int] = (0, 1, 2),
                 l2_grid: Sequence[float] = DEFAULT_L2_GRID):
        super().__init__(ctx)
        self.shots = tuple(int(s) for s in shots)
        self.seeds = tuple(int(s) for s in seeds)
        self.l2_grid = tuple(float(v) for v in l2_grid)

    def fit(self, data: dict[str, Features], num_classes: int) -> dict[str, float]:
        """Mean few-shot top-1 per shot count on the extracted features."""
        return fewshot_ridge(data["train"], data["val"], data.get("test"), num_classes, self.shots,
                             self.seeds, self.l2_grid)
