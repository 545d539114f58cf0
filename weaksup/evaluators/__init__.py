"""Evaluators: linear probe, few-shot ridge and fine-tuning on a target; held-out hashtag mAP.

One interface. An evaluator is a module exposing `Evaluator`, constructed as
`Evaluator(ctx, **options)` with a `Context` (model, mesh, target, feature cache, workdir)
and its own options, and run as `run(variables, step=None) -> dict[str, float]`.
`build(type, options, ...)` is the one place contexts are made: it splits the target's
fields (`input_pipeline.Target`) from the evaluator's options, checks the target's splits
before anything is compiled, and turns bad options into a ConfigError naming them.
Types are names below or a module path ("package.module") for plug-ins.

The command line, `python -m weaksup evaluate`, is `weaksup.evaluators.cli`; the trainer
builds the same evaluators from `config.evals` and runs them periodically.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from weaksup.config import ConfigError
from weaksup.evaluators.context import Context, FeatureCache
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.input_pipeline import Target

EVALUATORS: dict[str, str] = {
    "linear_probe": "weaksup.evaluators.linear_probe",
    "fewshot_ridge": "weaksup.evaluators.fewshot_ridge",
    "finetune": "weaksup.evaluators.finetune",
    "holdout_map": "weaksup.evaluators.holdout",
    "zeroshot": "weaksup.evaluators.zeroshot",
}


class Evaluator(Protocol):
    """What every evaluator module's `Evaluator` class provides."""

    def __init__(self, ctx: Context, **options: Any) -> None: ...

    def run(self, variables: Any, step: int | None = None) -> dict[str, float]: ...


def get_evaluator(type_name: str) -> type[Evaluator]:
    """The Evaluator class for a type name ("linear_probe", ...) or a module path."""
    module = EVALUATORS.get(type_name)
    if module is None:
        if "." not in type_name:
            raise ConfigError(f"unknown evaluator type {type_name!r}; known: {', '.join(EVALUATORS)}")
        module = type_name
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ConfigError(f"evaluator type {type_name!r}: cannot import {module}: {e}") from None
    if not hasattr(mod, "Evaluator"):
        raise ConfigError(f"evaluator module {module} has no `Evaluator`")
    return mod.Evaluator


def build(
    type_name: str,
    options: Mapping[str, Any],
    *,
    model: Any,
    mesh: Any,
    image_size: int,
    cache_dir: str | os.PathLike | None = None,
    checkpoint_id: str = "",
    workdir: str | os.PathLike | None = None,
    labels: Vocabulary | None = None,
) -> Evaluator:
    """An evaluator of `type_name` with its context; ConfigError names a bad option or dataset.

    `options` hold the target's fields (dataset, data_dir, splits, keys, batch_size, ...;
    `image_size` defaults to the given one) and the evaluator's own. `cache_dir` +
    `checkpoint_id` (the weights' identity) enable the feature cache; `workdir` is the
    evaluator's own folder; `labels` the vocabulary the model's head predicts.
    """
    cls = get_evaluator(type_name)
    target, rest = None, dict(options)
    if getattr(cls, "uses_target", True):
        target, rest = Target.from_options({"image_size": int(image_size), **options})
        target.check()  # a wrong dataset, split or key fails before any compilation
    cache = None if cache_dir is None else FeatureCache(Path(cache_dir), str(checkpoint_id))
    ctx = Context(model=model, mesh=mesh, target=target, labels=labels, feature_cache=cache,
                  workdir=None if workdir is None else Path(workdir))
    try:
        return cls(ctx, **rest)
    except TypeError as e:  # an unknown or missing option
        raise ConfigError(f"{type_name}: {e}") from None


__all__ = ["EVALUATORS", "Context", "Evaluator", "FeatureCache", "build", "get_evaluator"]
