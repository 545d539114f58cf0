"""MetaCLIP-style balancing: the keep rule, its determinism and resume, and `corpus balance`."""

import json
import warnings

import corpus_inputs
import numpy as np
import pytest
from hashtag_corpus import write_corpus, zipf_posts

from weaksup import config as config_lib
from weaksup import validation
from weaksup.corpus import cli
from weaksup.corpus.shards import MANIFEST, Corpus
from weaksup.hashtags import vocab_cli
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.input_pipeline import make_pretrain_iterator
from weaksup.labels import build_from_corpus
from weaksup.sampling import (
    Resampler,
    balance_keep_probability,
    balanced_subset,
    post_weights,
)


def _table(counts, extra=()):
    """CSR labels: `counts[l]` single-label posts of label l, then the multi-label posts `extra`."""
    posts = [[l] for l, n in enumerate(counts) for _ in range(n)] + [list(p) for p in extra]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in posts])])
    return offsets, np.asarray([l for p in posts for l in p], np.int64), len(posts)


def test_keep_probability_is_max_over_labels_of_min_1_t_over_count():
    offsets, labels, _ = _table([4, 2, 1], extra=[(0, 2), ()])
    # counts: label 0 in 5 posts, 1 in 2, 2 in 2; t = 2
    p = balance_keep_probability(offsets, labels, 3, t=2)
    np.testing.assert_allclose(p, [0.4] * 4 + [1.0, 1.0] + [1.0] + [1.0] + [0.0])
    with pytest.raises(ValueError, match="t must be > 0"):
        balance_keep_probability(offsets, labels, 3, t=0)


def test_balancing_keeps_the_expected_proportions():
    counts = [20000, 4000, 1000, 300]
    offsets, labels, _ = _table(counts, extra=[(0, 3)] * 50)
    t = 1000
    keep = balanced_subset(offsets, labels, 4, t=t, seed=7)
    start = np.concatenate([[0], np.cumsum(counts)])
    for l, c in enumerate(counts):
        kept = int(keep[start[l]:start[l + 1]].sum())
        p = min(1.0, t / (c + (50 if l in (0, 3) else 0)))
        if p == 1.0:
            assert kept == c  # labels at or under t keep every post
        else:
            sd = np.sqrt(c * p * (1 - p))
            assert abs(kept - c * p) < 4 * sd, (l, kept, c * p)
    assert keep[start[-1]:].all()  # a post with a rare label is kept through it
    # about t posts per frequent label survive: the head is flattened
    assert abs(int(keep[:start[1]].sum()) - t) < 4 * np.sqrt(t)


def test_keep_decisions_are_per_seed_and_post():
    offsets, labels, n = _table([500, 50])
    a = balanced_subset(offsets, labels, 2, t=100, seed=3)
    assert np.array_equal(a, balanced_subset(offsets, labels, 2, t=100, seed=3))
    assert not np.array_equal(a, balanced_subset(offsets, labels, 2, t=100, seed=4))
    # appending unlabelled posts changes no count, so no earlier post's decision
    longer = np.concatenate([offsets, np.full(10, offsets[-1])])
    b = balanced_subset(longer, labels, 2, t=100, seed=3)
    assert np.array_equal(b[:n], a) and not b[n:].any()


def test_metaclip_resampler_permutes_the_kept_posts_and_resumes_exactly():
    offsets, labels, n = _table([900, 90, 9])
    eligible = np.arange(n) < n - 20
    r = Resampler(offsets, labels, 3, "metaclip", seed=5, eligible=eligible, balance_t=50)
    kept = np.flatnonzero(balanced_subset(offsets, labels, 3, 50, seed=5, eligible=eligible))
    assert np.array_equal(np.sort(r.labelled), kept) and len(r) == len(kept)
    assert not np.isin(np.arange(n - 20, n), r.labelled).any()
    e0, e1 = r.epoch(0), r.epoch(1)
    assert np.array_equal(np.sort(e0), kept) and np.array_equal(np.sort(e1), kept)
    assert not np.array_equal(e0, e1)
    stream = [r.record_at(i) for i in range(3 * len(r))]
    # a fresh sampler (a resumed run) regenerates the same positions, from any point
    again = Resampler(offsets, labels, 3, "metaclip", seed=5, eligible=eligible, balance_t=50)
    assert [again.record_at(i) for i in range(len(r) + 7, 3 * len(r))] == stream[len(r) + 7:]
    np.testing.assert_array_equal(
        post_weights(offsets, labels, 3, "metaclip", eligible, balance_t=50, seed=5) > 0,
        np.isin(np.arange(n), kept))
    with pytest.raises(ValueError, match="permutation"):
        Resampler(offsets, labels, 3, "metaclip", seed=5, epoch_size=len(kept) + 1, balance_t=50)


def test_pretrain_iterator_reads_the_balanced_subset(tmp_path):
    """input.resampling=metaclip end to end: one epoch serves exactly the kept records."""
    posts = zipf_posts(120, ["dog", "cat", "bird", "fish"], seed=3, exponent=1.5)
    corpus = write_corpus(tmp_path / "zipf", posts, num_shards=1, image_size=(16, 16))
    build_from_corpus(corpus, tmp_path / "v.json", mode="raw")
    vocab = Vocabulary.load(tmp_path / "v.json")
    ids = [sorted({vocab.label_of(t) for t in p}) for p in posts]
    offsets = np.concatenate([[0], np.cumsum([len(i) for i in ids])])
    keep = balanced_subset(offsets, np.asarray([l for i in ids for l in i]), vocab.num_classes, t=10, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = make_pretrain_iterator(corpus, tmp_path / "v.json", global_batch_size=8, image_size=8,
                                    resampling="metaclip", balance_t=10, seed=4, num_epochs=1,
                                    drop_remainder=False, with_record_index=True,
                                    process_index=0, process_count=1)
        records = np.concatenate([b["record"] for b in it])
    assert sorted(records.tolist()) == np.flatnonzero(keep).tolist()
    assert it.stats()["epoch_size"] == int(keep.sum()) < len(posts)


def test_config_has_the_threshold_and_accepts_metaclip():
    c = config_lib.pretrain_config()
    assert c.input.balance_t == 20_000
    c.input.resampling = "metaclip"
    c.input.global_batch_size = 8
    assert validation.problems(c, validation.PRETRAIN) == []
    c.input.balance_t = 0
    assert any("balance_t" in p for p in validation.problems(c, validation.PRETRAIN))


def _jsonl_corpus(root, out):
    """A corpus whose posts carry skewed explicit tags: 30 #dog, 6 #cat, 2 #fox, 2 #cat #fox."""
    img = root / "img"
    img.mkdir(parents=True)
    tags = [["dog"]] * 30 + [["cat"]] * 6 + [["fox"]] * 2 + [["cat", "Fox"]] * 2
    rows = []
    for i, t in enumerate(tags):
        (img / f"{i}.jpg").write_bytes(corpus_inputs.jpeg(900 + i, (40, 30)))
        rows.append(json.dumps({"id": f"p{i:02d}", "image": f"img/{i}.jpg", "tags": t}))
    (root / "posts.jsonl").write_text("\n".join(rows) + "\n")
    assert cli.main(["build", "--source", "jsonl", "--input", str(root / "posts.jsonl"), "--output", str(out),
                     "--num-shards", "2", "--workers", "1", "--no-progress"]) == 0


def test_corpus_balance_writes_a_corpus_of_the_kept_posts(tmp_path, capsys):
    src = tmp_path / "corpus"
    _jsonl_corpus(tmp_path / "in", src)
    capsys.readouterr()
    out = tmp_path / "balanced"
    args = ["balance", "--corpus", str(src), "--output", str(out), "--t", "4", "--seed", "0"]
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    with Corpus(src) as corpus:
        posts = list(corpus)
        offsets = [0]
        ids = {"dog": 0, "cat": 1, "fox": 2}
        labels = []
        for p in posts:
            labels += sorted(ids[t.lower()] for t in p.hashtags)
            offsets.append(len(labels))
    keep = balanced_subset(np.asarray(offsets), np.asarray(labels), 3, t=4, seed=0)
    with Corpus(out) as balanced:
        got = [p.id for p in balanced]
        assert balanced.verify()["records"] == len(got)
        manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(got) == sorted(p.id for p, k in zip(posts, keep) if k)
    assert summary["records"] == len(got) == summary["kept"] == manifest["build"]["balance"]["kept"]
    assert manifest["build"]["balance"]["t"] == 4 and manifest["build"]["balance"]["from_records"] == 40
    # every #fox post (4, at or near t) is kept through #fox; #dog is cut to about t
    assert sum(1 for p in posts if "Fox" in p.hashtags or "fox" in p.hashtags) == sum(
        1 for i in got if i in {"p36", "p37", "p38", "p39"})
    assert sum(1 for i in got if int(i[1:]) < 30) < 15
    counts = json.loads((out / "hashtag_counts.json").read_text())
    assert counts.get("dog", 0) == sum(1 for i in got if int(i[1:]) < 30)
    # a complete output is protected; --overwrite rewrites the same subset
    assert cli.main(args) == 2
    assert "already holds a complete corpus" in capsys.readouterr().err
    assert cli.main(args + ["--overwrite"]) == 0
    with Corpus(out) as again:
        assert [p.id for p in again] == got
    assert cli.main(["balance", "--corpus", str(tmp_path / "nope"), "--output", str(tmp_path / "x"),
                     "--t", "4"]) == 2
    # under a raw vocabulary the labels are the same normalised hashtags: the same subset
    assert vocab_cli.main(["build", "--corpus", str(src), "--mode", "raw", "--output", str(tmp_path / "v.json")]) == 0
    assert cli.main(["balance", "--corpus", str(src), "--output", str(tmp_path / "bv"), "--t", "4",
                     "--vocab", str(tmp_path / "v.json")]) == 0
    with Corpus(tmp_path / "bv") as by_vocab:
        assert [p.id for p in by_vocab] == got
