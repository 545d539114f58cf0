"""Inputs for the transfer-evaluator tests: a tiny TFDS target and a real pretraining checkpoint.

The target is tests/tiny_tfds (array_record, built without TensorFlow), built once per
test session. The checkpoint is written by the trainer's own code (create_train_state and
Checkpointer), with the config and vocabulary items `load_pretrained` reads back.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

import jax

import tiny_tfds
from weaksup import checkpoint as ckpt_lib
from weaksup import config as config_lib
from weaksup import models, sharding
from weaksup import optimizer as optim_lib
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.train_lib import create_train_state

IMAGE_SIZE = 16


@functools.cache
def target_dir() -> Path:
    """A TFDS data_dir holding `tiny_shapes` (3 classes; train 12, test 11)."""
    d = Path(tempfile.mkdtemp(prefix="weaksup-transfer-tfds-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny_tfds.build(d)
    return d


def vocabulary(num_classes: int = 4) -> Vocabulary:
    """A small hashtag label space (real WordNet-style ids, one hashtag per class)."""
    names = ["dog", "cat", "tree", "car", "house", "boat"][:num_classes]
    return Vocabulary(
        wnids=[f"n0000000{i}" for i in range(num_classes)],
        names=names,
        frequencies=[10] * num_classes,
        hashtags=[{n: 10} for n in names],
        hypernyms=[[] for _ in names],
        build={"mode": "test"},
    )


def write_pretraining_checkpoint(workdir: Path, model_name: str = "resnet_tiny", step: int = 5, seed: int = 0) -> Path:
    """A pretraining run directory with one complete checkpoint at `step`."""
    config = config_lib.load_config(f"configs/tiny.py:runlocal,model={model_name}", lock=False)
    config.input.image_size = IMAGE_SIZE
    vocab = vocabulary()
    model = models.get_model(model_name, vocab.num_classes)
    mesh = sharding.make_mesh({"data": -1})
    tx = optim_lib.make_optimizer(0.1)
    state, _ = create_train_state(model, mesh, IMAGE_SIZE, tx=tx, rng=jax.random.PRNGKey(seed))
    state["step"] = state["step"] + step
    ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), async_save=False)
    ckpt.save(step, state, config=config_lib.config_to_json(config), vocab=vocab.to_json())
    ckpt.close()
    return workdir
