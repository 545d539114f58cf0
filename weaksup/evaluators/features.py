"""Frozen penultimate features of a TFDS split, extracted over the device mesh and cached.

Extraction runs the model's `features` method (the pooled trunk output) in inference
mode, jitted with the batch split over the mesh, on the evaluation crops of the input
pipeline. Padding rows of the last batch are dropped by their mask.

The cache is one `.npz` per (checkpoint, step, dataset, split, preprocessing) under a
cache directory; it is written to a temporary name and renamed, so an interrupted write
never looks like a cache hit, and a file that fails to load is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from weaksup import sharding


def make_feature_fn(model: Any, mesh: Any, preprocess: Callable[[jax.Array], jax.Array] | None = None
                    ) -> Callable[[Any, jax.Array], jax.Array]:
    """Jitted `(variables, uint8 images) -> (B, D) float32 features`, batch-sharded over `mesh`."""
    if preprocess is None:
        from weaksup.input_pipeline import normalize_images as preprocess

    def features(variables, images):
        return model.apply(variables, preprocess(images), train=False, method="features").astype(jnp.float32)

    return jax.jit(features, out_shardings=sharding.batch_sharding(mesh))


def _to_host(x: jax.Array) -> np.ndarray:
    if jax.process_count() == 1:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def extract(
    model: Any,
    variables: Any,
    batches: Iterable[Mapping[str, np.ndarray]],
    mesh: Any,
    *,
    feature_fn: Callable[[Any, jax.Array], jax.Array] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of every real example of `batches` (this process's shares).

    Each batch holds `image` uint8, `label` int32 and `mask` bool for the process's part
    of a global batch; the result gathers all processes' examples, in batch order.
    """
    feature_fn = feature_fn or make_feature_fn(model, mesh)
    feats, labels = [], []
    for batch in batches:
        g = sharding.make_global_batch(batch, mesh)
        f = feature_fn(variables, g["image"])
        keep = _to_host(g["mask"]).astype(bool)
        feats.append(_to_host(f)[keep])
        labels.append(_to_host(g["label"])[keep])
    if not feats:
        raise ValueError("no batches to extract features from")
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels).astype(np.int32)


def cache_key(**parts: Any) -> str:
    """A readable, filesystem-safe file stem for a feature cache entry.

    The stem starts with the dataset, split and step for a human reader and ends with a
    hash of every part (checkpoint identity, preprocessing), so different settings never
    share a file.
    """
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    readable = "_".join(str(parts.get(k, "")) for k in ("dataset", "split", "step"))
    readable = "".join(c if c.isalnum() or c in "-_." else "-" for c in readable)
    return f"{readable}_{digest}"


def load_cached(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
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
    """Writes the cache file atomically (temporary name in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, features=features, labels=labels)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def split_features(
    model: Any,
    variables: Any,
    mesh: Any,
    *,
    dataset: str,
    split: str,
    data_dir: str | os.PathLike | None,
    image_key: str = "image",
    label_key: str = "label",
    image_size: int,
    batch_size: int,
    cache_dir: str | os.PathLike | None = None,
    checkpoint_id: str = "",
    step: int | None = None,
    feature_fn: Callable[[Any, jax.Array], jax.Array] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), labels (N,)) of a TFDS split, from the cache when possible.

    `checkpoint_id` + `step` identify the weights (e.g. the pretraining workdir, or
    "random:<model>:<seed>"); without a `cache_dir` nothing is cached.
    """
    from weaksup.input_pipeline import make_eval_iterator

    path = None
    if cache_dir is not None:
        key = cache_key(checkpoint=checkpoint_id, step=step, dataset=dataset, split=split, data_dir=str(data_dir),
                        image_key=image_key, label_key=label_key, image_size=image_size)
        path = Path(cache_dir) / f"{key}.npz"
        hit = load_cached(path)
        if hit is not None:
            return hit
    batches = make_eval_iterator(dataset, split, data_dir=data_dir, image_key=image_key, label_key=label_key,
                                 batch_size=batch_size, image_size=image_size)
    x, y = extract(model, variables, batches, mesh, feature_fn=feature_fn)
    if path is not None and jax.process_index() == 0:
        save_cached(path, x, y)
    return x, y
