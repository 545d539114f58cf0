"""Zero-shot transfer: the hashtag head's probabilities mapped onto a target's classes through WordNet.

No target training (SWAG issue #13 describes the recipe; no code was released):

1. **Calibration towards a uniform prior.** Hashtag frequencies are Zipfian and the head
   learned their base rates. A per-label bias b is fitted on held-out *corpus* posts (never
   the target) so that the mean of softmax(logits + b) over them is uniform: the fixed
   point b_c <- b_c - log(C * mean_i p_ic), a few iterations (Platt-style scaling of the
   prior only). Without a calibration corpus the logits are used as they are.
2. **Mapping to target classes.** Every target class is a WordNet noun synset (the
   label names of a TFDS target: synset names like "dog.n.01" or wnids like ImageNet's).
   A class scores the largest probability among the vocabulary labels that are, by
   precedence (a rule applies only to classes the ones before it did not reach):
     exact     the class's synset itself,
     hyponyms  synsets below it in WordNet ("poodle" counts for "dog" when the vocabulary
               has no "dog"),
     similar   the `similar_k` vocabulary synsets whose WordNet ancestry overlaps its own
               most (`taxonomic_similarity`), each weighted by that overlap (< 1, so
               direct evidence ranks first).
   The largest rather than the sum (`class_scores`), and hyponyms only where no exact
   label exists: otherwise a general class reached by many labels outranks every specific
   one (measured on the demo's target: top-1 0.67% with exact matches alone fell to 0.20%
   with hyponym mass summed into every class, 0.47% with its maximum).
   Each rule can be switched off (`rules`), which is how their ablation is run.

Reports top-1 / top-5 on the target's test split (validation when it has none), and the
share of target classes each rule reaches. The model's label space comes from the
context (`Context.labels`, the pretraining vocabulary); the random-initialisation model
gets the same label space, which makes it the floor to read the pretrained numbers against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import softmax

from weaksup import sharding, train_lib
from weaksup.config import ConfigError
from weaksup.corpus.shards import Corpus
from weaksup.evaluators.context import Context
from weaksup.evaluators.holdout import held_out_crops
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.input_pipeline import EvalDataError, Target, make_eval_iterator
from weaksup.wordnet import WordNetIndex, load_index

RULES = ("exact", "hyponyms", "similar")


def calibration_bias(logits: np.ndarray, iterations: int = 50, clip: float = 30.0) -> np.ndarray:
    """Per-label bias b with mean_i softmax(logits_i + b) uniform (fixed-point iterations)."""
    logits = np.asarray(logits, np.float64)
    c = logits.shape[1]
    b = np.zeros(c)
    for _ in range(iterations):
        p = softmax(logits + b, axis=1)
        b = np.clip(b - np.log(np.maximum(p.mean(axis=0), 1e-300) * c), -clip, clip)
        b -= b.mean()
    return b.astype(np.float32)


def taxonomic_similarity(index: WordNetIndex, a: int, b: int) -> float:
    """Overlap of two synsets' ancestries (themselves included): |A & B| / |A | B|, in [0, 1].

    1 only for the same synset; two kinds of dog share most of their ancestry, a dog and
    a car only the top of the noun hierarchy.
    """
    up_a, up_b = index.closure_rows(a) | {a}, index.closure_rows(b) | {b}
    return len(up_a & up_b) / len(up_a | up_b)


def class_rows(index: WordNetIndex, names: Sequence[str], where: str) -> list[int]:
    """WordNet rows of target class names (synset names or wnids); EvalDataError for a class that is neither."""
    rows = []
    for name in names:
        try:
            rows.append(index.row(name))
        except KeyError:
            raise EvalDataError(f"{where}: class {name!r} is not a WordNet 3.0 noun synset (name or wnid); "
                                "zero-shot transfer needs WordNet classes") from None
    return rows


def mapping_matrix(index: WordNetIndex, vocab_wnids: Sequence[str], target_rows: Sequence[int],
                   rules: Sequence[str] = RULES, similar_k: int = 5) -> tuple[np.ndarray, dict[str, int]]:
    """(V, T) weights from vocabulary labels to target classes, and how many classes each rule reached."""
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ConfigError(f"zeroshot: unknown rules {sorted(unknown)} (known: {', '.join(RULES)})")
    vocab_rows = [index.row(w) if w in index else -1 for w in vocab_wnids]
    m = np.zeros((len(vocab_rows), len(target_rows)), np.float32)
    reached = {rule: 0 for rule in RULES}
    for t, tr in enumerate(target_rows):
        exact = [v for v, vr in enumerate(vocab_rows) if vr == tr] if "exact" in rules else []
        below = ([v for v, vr in enumerate(vocab_rows) if vr >= 0 and tr in index.closure_rows(vr)]
                 if "hyponyms" in rules and not exact else [])
        if exact or below:
            m[exact or below, t] = 1.0
            reached["exact" if exact else "hyponyms"] += 1
        elif "similar" in rules:
            sims = sorted(((taxonomic_similarity(index, tr, vr), v) for v, vr in enumerate(vocab_rows) if vr >= 0),
                          reverse=True)
            for sim, v in sims[:similar_k]:
                if sim > 0:
                    m[v, t] = sim
            reached["similar"] += int(any(sim > 0 for sim, _ in sims[:similar_k]))
    return m, reached


def class_scores(probabilities: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, T) target-class scores: for each class, the largest weighted probability of its labels.

    The largest, not the sum: a general class ("animal") reached by many labels would
    otherwise collect their whole mass and outrank every specific class.
    """
    scores = np.zeros((len(probabilities), matrix.shape[1]), np.float64)
    for t in range(matrix.shape[1]):
        rows = np.flatnonzero(matrix[:, t])
        if rows.size:
            scores[:, t] = (probabilities[:, rows] * matrix[rows, t]).max(axis=1)
    return scores


def corpus_logits(predict: Any, variables: Any, mesh: Any, corpus_dir: str, records: int, image_size: int,
                  batch: int) -> np.ndarray:
    """Logits of the last `records` records of a corpus (the held-out posts; unreadable ones left out)."""
    images, _ = held_out_crops(Corpus(corpus_dir), records, image_size)
    if not images:
        raise ConfigError(f"zeroshot: no readable calibration posts in {corpus_dir}")
    return np.concatenate([train_lib.predict_on_host(predict, variables, np.stack(images[s : s + batch]), mesh)
                           for s in range(0, len(images), batch)])


class Evaluator:
    """Zero-shot top-1 / top-5 on the context's target through WordNet (see the module docstring).

    Options: rules (default all three), similar_k (5), corpus_dir and records (the
    held-out corpus posts that calibrate the prior; "" for none), batch_size for them.
    """

    def __init__(self, ctx: Context, *, rules: Sequence[str] = RULES, similar_k: int = 5, corpus_dir: str = "",
                 records: int = 1024):
        self.ctx = ctx
        self.target: Target = ctx.require_target("zeroshot")
        if ctx.labels is None:
            raise ConfigError("zeroshot: the model's label space (its vocabulary) is unknown")
        self.vocab: Vocabulary = ctx.labels
        if ctx.model.num_classes != self.vocab.num_classes:
            raise ConfigError(f"zeroshot: the head has {ctx.model.num_classes} outputs, the vocabulary "
                              f"{self.vocab.num_classes} labels")
        index = load_index()
        rows = class_rows(index, self.target.class_names(), self.target.dataset)
        self.matrix, reached = mapping_matrix(index, self.vocab.wnids, rows, tuple(rules), int(similar_k))
        self.coverage = {f"classes_{rule}": n / len(rows) for rule, n in reached.items()}
        self.corpus_dir, self.records = corpus_dir, int(records)

    def run(self, variables: Any, step: int | None = None) -> dict[str, float]:
        """Calibrates on the corpus posts (if any), then scores the target's test split."""
        del step
        mesh, t = self.ctx.mesh, self.target
        predict = train_lib.make_predict_fn(self.ctx.model, mesh)
        bias = np.zeros(self.vocab.num_classes, np.float32)
        if self.corpus_dir:
            bias = calibration_bias(corpus_logits(predict, variables, mesh, self.corpus_dir, self.records,
                                                  t.image_size, t.batch_size))
        split = t.test_split or t.val_split or t.train_split
        hits1 = hits5 = total = 0
        for batch in make_eval_iterator(t, split):
            g = sharding.make_global_batch(batch, mesh)
            p = softmax(sharding.to_host(predict(variables, g["image"])).astype(np.float64) + bias, axis=1)
            scores = class_scores(p, self.matrix)
            mask, labels = sharding.to_host(g["mask"]).astype(bool), sharding.to_host(g["label"])
            top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
            hits1 += int(np.sum((top[:, 0] == labels) & mask))
            hits5 += int(np.sum(np.any(top == labels[:, None], axis=1) & mask))
            total += int(mask.sum())
        if not total:
            raise EvalDataError(f"zeroshot: {t.dataset}/{split} has no readable examples")
        return {"top1": hits1 / total, "top5": hits5 / total, **self.coverage,
                "calibrated": float(bool(self.corpus_dir))}
