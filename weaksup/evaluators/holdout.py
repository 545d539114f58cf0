"""Held-out hashtag mAP: how well the hashtag head ranks the labels of posts it never trained on.

The pretraining iterator keeps the corpus's last `records` records out of sampling
(`holdout_records` in the training config); this evaluator scores them with the model's
logits, labelled by the same cached post labels the training targets come from
(`weaksup.labels`), and reports the mean over classes with a positive of the average
precision (`metrics.mean_average_precision`). Images get the evaluation crop; an unreadable
record is left out of the metric, never fatal. Each process scores its share.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from weaksup import augment, metrics, sharding, train_lib
from weaksup.config import ConfigError
from weaksup.corpus.record import RecordError, decode_post
from weaksup.corpus.shards import Corpus
from weaksup.evaluators.context import Context
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.labels import load_post_labels


@dataclasses.dataclass
class HoldoutSet:
    """Images and padded labels of the held-out records, this process's share."""

    images: np.ndarray  # uint8 (N_local, H, W, 3), N_local a multiple of the local batch
    labels: np.ndarray  # int32 (N_local, L), -1 padded; padding rows all -1
    mask: np.ndarray  # bool (N_local,)
    records: int  # held-out records over all processes
    record_ids: np.ndarray  # int64 (N_local,) corpus index of each row; -1 for padding


def held_out_crops(corpus: Corpus, num_records: int, image_size: int) -> tuple[list[np.ndarray], list[int]]:
    """Evaluation crops of the corpus's last `num_records` records and their indices.

    A record that does not decode is left out (of a metric or a calibration set), never
    fatal; a shard that cannot be read raises CorpusError naming it (`Corpus.record_bytes`).
    """
    images, record_ids = [], []
    for i in range(max(len(corpus) - int(num_records), 0), len(corpus)):
        data = corpus.record_bytes(i)
        try:
            images.append(augment.eval_crop(decode_post(data).image, image_size))
        except (RecordError, ValueError, OSError):
            continue
        record_ids.append(i)
    return images, record_ids


def load_holdout(corpus_dir: str | os.PathLike, vocab_path: str | os.PathLike, num_records: int, image_size: int,
                 max_labels: int, local_batch: int) -> HoldoutSet:
    """The last `num_records` records of the corpus (labelled or not), split over processes.

    These are exactly the records the pretraining iterator's `holdout_records` keeps out of
    sampling, labelled by the cached post labels of (vocabulary, corpus).
    """
    corpus = Corpus(corpus_dir)
    post_labels = load_post_labels(Vocabulary.load(vocab_path), vocab_path, corpus)
    images, record_ids = held_out_crops(corpus, num_records, image_size)
    labels = [post_labels.padded(i, max_labels) for i in record_ids]
    if not images:
        return HoldoutSet(np.zeros((0, image_size, image_size, 3), np.uint8), np.zeros((0, max_labels), np.int32),
                          np.zeros((0,), bool), 0, np.zeros((0,), np.int64))
    pc, pi = jax.process_count(), jax.process_index()
    per_process = -(-len(images) // (pc * local_batch)) * local_batch
    pad = per_process * pc - len(images)
    images += [np.zeros((image_size, image_size, 3), np.uint8)] * pad
    labels += [np.full(max_labels, -1, np.int32)] * pad
    record_ids += [-1] * pad
    mask = np.arange(per_process * pc) < (per_process * pc - pad)
    sl = slice(pi * per_process, (pi + 1) * per_process)
    return HoldoutSet(np.stack(images)[sl], np.stack(labels)[sl], mask[sl], len(images) - pad,
                      np.asarray(record_ids, np.int64)[sl])


def holdout_map(predict: Any, variables: Any, holdout: HoldoutSet, mesh: Any, local_batch: int,
                num_classes: int) -> float:
    """mAP of `predict` over the held-out set (classes with at least one positive)."""
    scores, labels, masks = [], [], []
    for s in range(0, len(holdout.images), local_batch):
        sl = slice(s, s + local_batch)
        g = sharding.make_global_batch({"image": holdout.images[sl]}, mesh)
        logits = predict(variables, g["image"])
        scores.append(multihost_utils.process_allgather(logits, tiled=True))
        labels.append(multihost_utils.process_allgather(holdout.labels[sl], tiled=True))
        masks.append(multihost_utils.process_allgather(holdout.mask[sl], tiled=True))
    if not scores:
        return float("nan")
    mask = np.concatenate(masks)
    s = np.concatenate(scores)[mask]
    pos = metrics.positives_from_labels(np.concatenate(labels)[mask], num_classes)
    return metrics.mean_average_precision(s, pos)


class Evaluator:
    """Hashtag mAP on the corpus's held-out records (no target dataset; options below).

    Options: corpus_dir, vocab_path, records (how many of the last records), image_size,
    max_labels, batch_size (global). The set is decoded once, at construction.
    """

    uses_target = False

    def __init__(self, ctx: Context, *, corpus_dir: str, vocab_path: str, records: int, image_size: int,
                 batch_size: int, max_labels: int = 8):
        if int(records) <= 0:
            raise ConfigError(f"holdout_map: records must be > 0, got {records}")
        self.ctx = ctx
        self.local_batch = sharding.check_batch_layout(int(batch_size), ctx.mesh)
        self.num_classes = ctx.model.num_classes
        self.holdout = load_holdout(corpus_dir, vocab_path, int(records), int(image_size), int(max_labels),
                                    self.local_batch)
        self.predict = train_lib.make_predict_fn(ctx.model, ctx.mesh)

    def run(self, variables: Any, step: int | None = None) -> dict[str, float]:
        """{"mAP": ...} of the hashtag head under `variables`."""
        del step
        return {"mAP": holdout_map(self.predict, variables, self.holdout, self.ctx.mesh, self.local_batch,
                                   self.num_classes)}
