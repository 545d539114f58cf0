"""`corpus balance`: a MetaCLIP-balanced subset of a corpus, written as a corpus of its own.

The keep rule and its draws are `weaksup.sampling.balanced_subset` (a post is kept with
probability max over its labels of min(1, t / count), one draw per (seed, record)), so the
subset equals the posts that `input.resampling = "metaclip"` would train on with the same
labels, t and seed. A post's labels are its normalised hashtags (`normalize_hashtag`, the
"metadata entries" MetaCLIP matches), or, with a vocabulary, its labels under it
(`weaksup.labels`: synonyms merged, out-of-vocabulary hashtags ignored).

The output is written like a build: records copied byte for byte into new shards (each
atomic), hashtag counts recounted, and the manifest last, naming the parent corpus, t,
seed and the counts kept; an interrupted run never looks complete.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from weaksup.corpus import shards as shards_lib
from weaksup.corpus.pipeline import prepare_output
from weaksup.corpus.record import RecordError, decode_hashtags
from weaksup.corpus.shards import Corpus, CorpusError
from weaksup.hashtags.normalize import normalize_hashtag
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.labels import load_post_labels
from weaksup.sampling import balance_keep_probability, balanced_subset


def hashtag_csr(corpus: Corpus) -> tuple[np.ndarray, np.ndarray, int, list[int]]:
    """(offsets, labels, num_classes, unreadable record indices): normalised hashtags as ids."""
    ids: dict[str, int] = {}
    offsets = [0]
    labels: list[int] = []
    bad: list[int] = []
    for i in range(len(corpus)):
        try:
            tags = decode_hashtags(corpus.record_bytes(i))
        except RecordError:
            bad.append(i)
            tags = []
        forms = {normalize_hashtag(t) for t in tags} - {""}
        labels += sorted(ids.setdefault(f, len(ids)) for f in sorted(forms))
        offsets.append(len(labels))
    return np.asarray(offsets, np.int64), np.asarray(labels, np.int64), len(ids), bad


def balance_corpus(
    corpus_dir: str,
    output: str,
    *,
    t: float,
    seed: int = 0,
    vocab_path: str | None = None,
    num_shards: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Writes the balanced subset of `corpus_dir` to `output`; returns its manifest."""
    if not t > 0:
        raise CorpusError(f"--t must be > 0, got {t}")
    if Path(output).resolve() == Path(corpus_dir).resolve():
        raise CorpusError(f"{output}: the balanced corpus must go to a folder of its own")
    with Corpus(corpus_dir) as corpus:
        if vocab_path:
            vocab = Vocabulary.load(vocab_path)
            post_labels = load_post_labels(vocab, vocab_path, corpus)
            offsets, labels, num_classes = post_labels.offsets, post_labels.labels, vocab.num_classes
            bad = post_labels.bad.tolist()
            by = {"vocabulary": str(vocab_path), "vocabulary_hash": vocab.hash}
        else:
            offsets, labels, num_classes, bad = hashtag_csr(corpus)
            by = {"labels": "normalised hashtags"}
        keep = balanced_subset(offsets, labels, max(num_classes, 1), t, seed)
        kept = np.flatnonzero(keep)
        n_shards = max(len(corpus.shards), 1) if num_shards is None else int(num_shards)
        if n_shards < 1:
            raise CorpusError(f"--num-shards must be >= 1, got {n_shards}")
        prepare_output(output, overwrite)
        infos = []
        tag_counts: Counter[str] = Counter()
        bounds = np.linspace(0, len(kept), n_shards + 1).astype(np.int64)
        for k in range(n_shards):
            chunk = kept[bounds[k]:bounds[k + 1]]

            def records(chunk: np.ndarray = chunk):
                for i in chunk.tolist():
                    data = corpus.record_bytes(i)
                    tag_counts.update(set(decode_hashtags(data)))
                    yield data

            infos.append(shards_lib.write_shard(Path(output) / shards_lib.shard_name(k, n_shards), records()))
        unlabelled = int(np.sum(np.diff(offsets) == 0))
        build = {
            "balance": {
                "from": str(corpus_dir),
                "from_manifest_sha256": corpus.manifest_sha256,
                "from_records": len(corpus),
                "t": t,
                "seed": seed,
                **by,
                "kept": len(kept),
                "dropped": len(corpus) - len(kept) - unlabelled,
                "unlabelled": unlabelled,
                "unreadable": len(bad),
                "expected_kept": round(_expected(offsets, labels, num_classes, t), 1),
            },
            "parent_build": corpus.manifest.get("build", {}),
        }
        return shards_lib.write_manifest(
            output, infos, skipped={}, skipped_examples={}, normalised={},
            hashtag_counts=dict(tag_counts), build=build,
        )


def _expected(offsets: np.ndarray, labels: np.ndarray, num_classes: int, t: float) -> float:
    """Expected number of kept posts: the sum of keep probabilities."""
    return float(balance_keep_probability(offsets, labels, max(num_classes, 1), t).sum())
