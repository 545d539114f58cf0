"""What an evaluator is given: the model, the mesh, its target and where it may keep things.

`weaksup.evaluators.build` makes the one `Context` an evaluator sees; the evaluator's own
options (an L2 grid, shot counts, fine-tuning steps) come beside it as keyword arguments.
Nothing else reaches an evaluator: not the run's config, nor the pretraining vocabulary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from jax.sharding import Mesh

from weaksup.config import ConfigError
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.input_pipeline import Target


@dataclasses.dataclass(frozen=True)
class FeatureCache:
    """Where frozen features of one set of weights are kept: a folder and the weights' identity.

    `checkpoint_id` names the weights (the pretraining workdir, or "random:<model>:<seed>");
    with the step, the target and the split it keys a cache file.
    """

    directory: Path
    checkpoint_id: str

    def path(self, target: Target, split: str, step: int | None) -> Path:
        """The cache file of `split` of `target` at `step`."""
        parts = dict(checkpoint=self.checkpoint_id, step=step, dataset=target.dataset, split=split,
                     data_dir=str(target.data_dir), image_key=target.image_key, label_key=target.label_key,
                     image_size=target.image_size)
        return Path(self.directory) / f"{cache_key(**parts)}.npz"


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


@dataclasses.dataclass(frozen=True)
class Context:
    """Everything an evaluator may use besides its options.

    model          the flax module whose variables `run` receives
    labels         what the model's logits mean: the pretraining vocabulary (None: unknown);
                   only evaluators that read the hashtag head (zero-shot) use it
    mesh           the device mesh to compute on
    target         the transfer dataset (None for evaluators of the pretraining data)
    feature_cache  where frozen features are kept; None: always recomputed (mid-training)
    workdir        the evaluator's own folder (fine-tune checkpoints); None: nothing saved
    """

    model: Any
    mesh: Mesh
    target: Target | None = None
    labels: Vocabulary | None = None
    feature_cache: FeatureCache | None = None
    workdir: Path | None = None

    def require_target(self, kind: str) -> Target:
        """The target, or a clear error for an evaluator that needs one."""
        if self.target is None:
            raise ConfigError(f"{kind}: needs a target dataset (`dataset` option)")
        return self.target
