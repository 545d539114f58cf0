"""Frozen penultimate features of a target's splits, extracted over the device mesh and cached.

Extraction runs the model's `features` method (the pooled trunk output, `train_lib.make_feature_fn`)
in inference mode, batch-sharded over the mesh, on the evaluation crops of the input
pipeline. Padding rows of the last batch are dropped by their mask.

The cache is one `.npz` per (weights, step, dataset, split, preprocessing) in the
context's `FeatureCache`; it is written atomically, so an interrupted write never looks
like a cache hit, and a file that fails to load is recomputed.

`FeatureEvaluator` is the base of the evaluators that fit something on frozen features
(the linear probe and the few-shot ridge): it gets the features, they `fit`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from weaksup import atomic, console, sharding, train_lib
from weaksup.evaluators.context import Context, FeatureCache
from weaksup.input_pipeline import Target, make_eval_iterator

# (features (N, D) float32, labels (N,) int32)
Features = tuple[np.ndarray, np.ndarray]


def extract(
    feature_fn: Callable[[Any, jax.Array], jax.Array],
    variables: Any,
    batches: Iterable[Mapping[str, np.ndarray]],
    mesh: Any,
    *,
    total: int | None = None,
    desc: str = "features",
) -> Features:
    """Features and labels of every real example of `batches` (this process's shares).

    Each batch holds `image` uint8, `label` int32 and `mask` bool for the process's part
    of a global batch; the result gathers all processes' examples, in batch order.
    `total` (the examples expected) and `desc` label the progress bar.
    """
    feats, labels = [], []
    with console.progress(total=total, desc=desc, unit="img") as bar:
        for batch in batches:
            g = sharding.make_global_batch(batch, mesh)
            f = feature_fn(variables, g["image"])
            keep = sharding.to_host(g["mask"]).astype(bool)
            feats.append(sharding.to_host(f)[keep])
            labels.append(sharding.to_host(g["label"])[keep])
            bar.update(int(keep.sum()))
    if not feats:
        raise ValueError("no batches to extract features from")
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels).astype(np.int32)


def load_cached(path: Path) -> Features | None:
    """The cached (features, labels), or None when absent or unreadable (then recomputed)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["features"], z["labels"]
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"inconsistent shapes {x.shape} / {y.shape}")
        return x.astype(np.float32), y.astype(np.int32)
    except Exception as e:  # a damaged cache file is only a lost shortcut
        warnings.warn(f"feature cache {path} is unreadable ({type(e).__name__}: {e}); recomputing")
        return None


def save_cached(path: Path, features: np.ndarray, labels: np.ndarray) -> None:
    """Writes the cache file atomically."""
    with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, features=features, labels=labels)


def split_features(
    feature_fn: Callable[[Any, jax.Array], jax.Array],
    variables: Any,
    mesh: Any,
    target: Target,
    split: str,
    cache: FeatureCache | None = None,
    step: int | None = None,
) -> Features:
    """(features (N, D), labels (N,)) of one split of `target`, from the cache when possible."""
    path = None if cache is None else cache.path(target, split, step)
    if path is not None:
        hit = load_cached(path)
        if hit is not None:
            return hit
    total = len(target.open(split)[0])
    x, y = extract(feature_fn, variables, make_eval_iterator(target, split), mesh, total=total,
                   desc=f"features {target.dataset}/{split}")
    if path is not None and jax.process_index() == 0:
        save_cached(path, x, y)
    return x, y


def carve_validation(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[Features, Features]:
    """A seeded (train, val) split of training features; val gets `fraction` of them."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = max(1, int(round(fraction * len(y))))
    if n_val >= len(y):
        raise ValueError(f"only {len(y)} training examples: too few to carve a validation split")
    va, tr = order[:n_val], order[n_val:]
    return (x[tr], y[tr]), (x[va], y[va])


def target_features(ctx: Context, variables: Any, step: int | None = None) -> dict[str, Features]:
    """{"train", "val", "test"?: (features, labels)} of the context's target, cached per split.

    The cache is used only for weights with a step: mid-training weights would only go stale.
    """
    target = ctx.require_target("features")
    feature_fn = train_lib.make_feature_fn(ctx.model, ctx.mesh)
    cache = ctx.feature_cache if step is not None else None

    def get(split: str) -> Features:
        return split_features(feature_fn, variables, ctx.mesh, target, split, cache, step)

    out: dict[str, Features] = {}
    train = get(target.train_split)
    if target.val_split is None:
        out["train"], out["val"] = carve_validation(*train, target.val_fraction, target.seed)
    else:
        out["train"], out["val"] = train, get(target.val_split)
    if target.test_split is not None:
        out["test"] = get(target.test_split)
    return out


class FeatureEvaluator:
    """Base of evaluators on frozen target features: `run` extracts (or loads) them, `fit` uses them."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.target = ctx.require_target(type(self).__module__.rsplit(".", 1)[-1])

    def run(self, variables: Any, step: int | None = None) -> dict[str, float]:
        """Features of the target's splits under `variables`, then `fit` on them."""
        num_classes = self.target.num_classes()
        return self.fit(target_features(self.ctx, variables, step), num_classes)

    def fit(self, data: dict[str, Features], num_classes: int) -> dict[str, float]:
        """The evaluator's metrics from {"train", "val", "test"?} features."""
        raise NotImplementedError
