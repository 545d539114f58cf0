"""The transfer target: a TFDS dataset, its splits and feature keys, and its frozen features.

Evaluators share this description. A target without a validation split gets one carved
from its training split (a fixed, seeded fraction), so hyper-parameters are never chosen
on the test split.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from weaksup.evaluators import features as features_lib


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a transfer dataset lives and how to read it."""

    dataset: str
    data_dir: str | None = None
    image_key: str = "image"
    label_key: str = "label"
    train_split: str = "train"
    val_split: str | None = None
    test_split: str | None = "test"
    val_fraction: float = 0.2
    image_size: int = 32
    batch_size: int = 64
    seed: int = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> tuple[Target, dict[str, Any]]:
        """Splits evaluator options into the target's fields and the rest."""
        names = {f.name for f in dataclasses.fields(cls)}
        mine = {k: v for k, v in options.items() if k in names}
        rest = {k: v for k, v in options.items() if k not in names}
        if "dataset" not in mine:
            raise ValueError("evaluator options need a `dataset` (TFDS name)")
        if mine.get("data_dir") is not None:
            mine["data_dir"] = str(mine["data_dir"]) or None
        for key in ("val_split", "test_split"):  # "" (command-line friendly) means none
            if key in mine and not mine[key]:
                mine[key] = None
        return cls(**mine), rest

    def open(self, split: str) -> tuple[Any, int]:
        """(TFDS data source, class count) of a split; EvalDataError names what is wrong."""
        from weaksup.input_pipeline import open_tfds_source

        return open_tfds_source(self.dataset, split, data_dir=self.data_dir, image_key=self.image_key,
                                label_key=self.label_key)

    def num_classes(self) -> int:
        """Class count from the label feature (ClassLabel); checked on the training split."""
        _, n = self.open(self.train_split)
        if n <= 0:
            from weaksup.input_pipeline import EvalDataError

            raise EvalDataError(f"TFDS dataset {self.dataset!r}: label feature {self.label_key!r} is not a "
                                "ClassLabel, so the class count is unknown")
        return n

    def check(self) -> None:
        """Opens every split once, so a wrong name or key fails before any compute."""
        for split in (self.train_split, self.val_split, self.test_split):
            if split is not None:
                self.open(split)
        self.num_classes()


def carve_validation(x: np.ndarray, y: np.ndarray, fraction: float, seed: int
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A seeded (train, val) split of training features; val gets `fraction` of them."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = max(1, int(round(fraction * len(y))))
    if n_val >= len(y):
        raise ValueError(f"only {len(y)} training examples: too few to carve a validation split")
    va, tr = order[:n_val], order[n_val:]
    return (x[tr], y[tr]), (x[va], y[va])


def target_features(
    target: Target,
    model: Any,
    variables: Any,
    mesh: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    checkpoint_id: str = "",
    step: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "val", "test"?: (features, labels)} of the target, cached per split."""
    feature_fn = features_lib.make_feature_fn(model, mesh)

    def get(split: str) -> tuple[np.ndarray, np.ndarray]:
        return features_lib.split_features(
            model, variables, mesh, dataset=target.dataset, split=split, data_dir=target.data_dir,
            image_key=target.image_key, label_key=target.label_key, image_size=target.image_size,
            batch_size=target.batch_size, cache_dir=cache_dir, checkpoint_id=checkpoint_id, step=step,
            feature_fn=feature_fn,
        )

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    train = get(target.train_split)
    if target.val_split is None:
        out["train"], out["val"] = carve_validation(*train, target.val_fraction, target.seed)
    else:
        out["train"], out["val"] = train, get(target.val_split)
    if target.test_split is not None:
        out["test"] = get(target.test_split)
    return out
