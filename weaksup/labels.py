"""Post labels: every corpus record's canonical labels under a vocabulary, cached beside it.

Between the corpus and the input pipeline: one pass over the records decodes only their
hashtags (`corpus.record.decode_hashtags`), maps each through the vocabulary
(`Vocabulary.label_of`), and keeps, per post,

  labels       its unique labels after pruning (`Vocabulary.prune`): what the 1/k target,
               the resampler and the held-out mAP use;
  occurrences  one entry per in-vocabulary hashtag occurrence, in post order, before
               de-duplication: what label noise perturbs.

The result is cached as an .npz next to the vocabulary, keyed by the corpus manifest's
checksum and the vocabulary hash, so training, coverage and evaluation share one pass.
`build_from_corpus` builds a vocabulary from a corpus and measures its coverage with them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from weaksup import atomic
from weaksup.corpus.record import decode_hashtags
from weaksup.corpus.shards import Corpus
from weaksup.hashtags.vocabulary import Vocabulary, VocabularyError, build_vocabulary


@dataclasses.dataclass
class PostLabels:
    """Every record's labels in CSR form, and its in-vocabulary hashtag occurrences.

    `offsets`/`labels`: a post's unique labels after pruning (what the target uses).
    `occ_offsets`/`occ_labels`: one entry per hashtag occurrence that maps into the
    vocabulary, in post order, before de-duplication (what label noise perturbs).
    `bad`: indices of records whose hashtags could not be parsed.
    """

    offsets: np.ndarray
    labels: np.ndarray
    occ_offsets: np.ndarray
    occ_labels: np.ndarray
    bad: np.ndarray
    key: str

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def of(self, i: int) -> np.ndarray:
        """Post `i`'s labels (unique, pruned)."""
        return self.labels[self.offsets[i] : self.offsets[i + 1]]

    def occurrences_of(self, i: int) -> np.ndarray:
        """Post `i`'s in-vocabulary hashtag occurrences, in post order."""
        return self.occ_labels[self.occ_offsets[i] : self.occ_offsets[i + 1]]

    def padded(self, i: int, max_labels: int) -> np.ndarray:
        """Post `i`'s labels as int32 (max_labels,), padded with -1 (the batch layout)."""
        return pad_labels(self.of(i), max_labels)


def pad_labels(labels: Sequence[int] | np.ndarray, max_labels: int) -> np.ndarray:
    """The first `max_labels` labels as int32 (max_labels,), padded with -1."""
    out = np.full(max_labels, -1, np.int32)
    n = min(len(labels), max_labels)
    out[:n] = np.asarray(labels[:n], np.int32)
    return out


def compute_post_labels(
    vocab: Vocabulary,
    source: Any,
    key: str = "",
    describe: Callable[[int], str] = lambda i: f"record {i}",
    chunk: int = 1024,
) -> PostLabels:
    """One pass over `source` (random-access record bytes) decoding only hashtags."""
    n = len(source)
    offsets = np.zeros(n + 1, np.int64)
    occ_offsets = np.zeros(n + 1, np.int64)
    labels: list[int] = []
    occ: list[int] = []
    bad: list[int] = []
    memo: dict[str, int | None] = {}
    for start in range(0, n, chunk):
        idx = list(range(start, min(n, start + chunk)))
        records = source.__getitems__(idx) if hasattr(source, "__getitems__") else [source[i] for i in idx]
        for i, rec in zip(idx, records):
            try:
                tags = decode_hashtags(rec)
            except Exception as e:  # a bad record only loses its labels
                bad.append(i)
                warnings.warn(f"{describe(i)}: unreadable hashtags, post has no labels: {e}")
                tags = []
            mapped = []
            for t in tags:
                if t not in memo:
                    memo[t] = vocab.label_of(t)
                if memo[t] is not None:
                    mapped.append(memo[t])
            occ.extend(mapped)
            labels.extend(vocab.prune(mapped))
            offsets[i + 1] = len(labels)
            occ_offsets[i + 1] = len(occ)
    return PostLabels(
        offsets=offsets,
        labels=np.asarray(labels, np.int32),
        occ_offsets=occ_offsets,
        occ_labels=np.asarray(occ, np.int32),
        bad=np.asarray(bad, np.int64),
        key=key,
    )


def post_labels_key(vocab: Vocabulary, corpus: Corpus) -> str:
    """Identity of (corpus contents, label space): the cache key of their post labels."""
    return hashlib.sha256(f"{corpus.manifest_sha256}:{vocab.hash}".encode()).hexdigest()


def load_post_labels(vocab: Vocabulary, vocab_path: str | os.PathLike, corpus: Corpus) -> PostLabels:
    """Per-post labels for (vocab, corpus), cached as an .npz next to the vocabulary file."""
    key = post_labels_key(vocab, corpus)
    vocab_path = Path(vocab_path)
    cache = vocab_path.with_name(f"{vocab_path.stem}.postlabels-{key[:16]}.npz")
    if cache.exists():
        try:
            with np.load(cache) as z:
                if str(z["key"]) == key:
                    return PostLabels(
                        offsets=z["offsets"], labels=z["labels"], occ_offsets=z["occ_offsets"],
                        occ_labels=z["occ_labels"], bad=z["bad"], key=key,
                    )
        except (OSError, KeyError, ValueError) as e:
            warnings.warn(f"{cache}: unreadable label cache, recomputing: {e}")
    labels = compute_post_labels(vocab, corpus.data_source(), key, describe=corpus.describe)
    try:
        with atomic.replacing(cache) as tmp, open(tmp, "wb") as f:
            np.savez(
                f, offsets=labels.offsets, labels=labels.labels, occ_offsets=labels.occ_offsets,
                occ_labels=labels.occ_labels, bad=labels.bad, key=np.asarray(key),
            )
    except OSError as e:  # a read-only vocabulary folder only costs the cache
        warnings.warn(f"{cache}: cannot write the per-post label cache ({e}); continuing without it")
    return labels


def check_built_from(vocab: Vocabulary, vocab_path: str | os.PathLike, corpus: Corpus) -> None:
    """VocabularyError when the vocabulary records that it was built from another corpus."""
    built_on = vocab.build.get("corpus", {}).get("manifest_sha256")
    actual = corpus.manifest_sha256
    if built_on and built_on != actual:
        raise VocabularyError(
            f"{vocab_path}: built from corpus {vocab.build['corpus'].get('path')} "
            f"(manifest {built_on[:12]}), but {corpus.path} has manifest {actual[:12]}; "
            "rebuild the vocabulary or allow the mismatch explicitly"
        )


def measure_coverage(vocab: Vocabulary, hashtag_counts: Mapping[str, int], post_labels: PostLabels) -> dict[str, Any]:
    """Share of posts with >= 1 label; share of hashtag occurrences that map to a label."""
    total = sum(int(c) for c in hashtag_counts.values())
    mapped = sum(int(c) for t, c in hashtag_counts.items() if vocab.label_of(t) is not None)
    n_posts = len(post_labels) - len(post_labels.bad)
    with_label = int(np.count_nonzero(np.diff(post_labels.offsets) > 0))
    return {
        "posts": n_posts,
        "unreadable_posts": int(len(post_labels.bad)),
        "posts_with_label": with_label,
        "post_share": with_label / n_posts if n_posts else 0.0,
        "hashtag_occurrences": total,
        "occurrences_mapped": mapped,
        "occurrence_share": mapped / total if total else 0.0,
        "mean_labels_per_labelled_post": (float(len(post_labels.labels)) / with_label if with_label else 0.0),
    }


def build_from_corpus(corpus_dir: str | os.PathLike, output: str | os.PathLike, **options: Any) -> Vocabulary:
    """Builds a vocabulary from a corpus directory, measures coverage, writes `output`.

    `options` are `build_vocabulary`'s (mode, top_k, min_count, under, lexnames,
    prefer_specific, within, resolver). The per-post label cache is written next to
    `output` as a side effect.
    """
    corpus = Corpus(corpus_dir)
    counts = corpus.hashtag_counts()
    vocab = build_vocabulary(counts, **options)
    vocab.build["corpus"] = {"path": str(corpus.path), "manifest_sha256": corpus.manifest_sha256,
                             "records": len(corpus)}
    post_labels = load_post_labels(vocab, output, corpus)
    vocab.coverage = measure_coverage(vocab, counts, post_labels)
    vocab.save(output)
    return vocab
