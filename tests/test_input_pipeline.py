"""The pretraining pipeline: batches, targets, skipping, label noise, resampling, exact resume."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from hashtag_corpus import write_corpus, zipf_posts
from weaksup import input_pipeline as ip
from weaksup.hashtags.vocabulary import Vocabulary, VocabularyError
from weaksup.labels import build_from_corpus

TAGS = ["dog", "cat", "bird", "fish", "tree", "car", "boat", "cake"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """40 posts (two without any vocabulary hashtag, one with a broken image), raw vocab."""
    root = tmp_path_factory.mktemp("pipe")
    posts = [[TAGS[i % 8], TAGS[(i * 3) % 8]] for i in range(38)] + [["zzzunmapped"], []]
    corpus = write_corpus(root / "corpus", posts, bad_images=[5])
    vocab_path = root / "vocab.json"
    # min_count 2 drops the singleton "zzzunmapped", leaving the 8 tags as classes.
    build_from_corpus(corpus, vocab_path, mode="raw", min_count=2)
    return corpus, vocab_path, posts


def _iterator(small, **kw):
    corpus, vocab_path, _ = small
    args = dict(global_batch_size=8, image_size=24, seed=1, process_index=0, process_count=1)
    args.update(kw)
    return ip.make_pretrain_iterator(corpus, vocab_path, **args)


def test_batches_have_the_contract_shapes_and_labels(small):
    corpus, vocab_path, posts = small
    vocab = Vocabulary.load(vocab_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = _iterator(small, max_labels=3, with_record_index=True, num_epochs=1, drop_remainder=False)
        batches = list(it)
    b = batches[0]
    assert b["image"].shape == (8, 24, 24, 3) and b["image"].dtype == np.uint8
    assert b["labels"].shape == (8, 3) and b["labels"].dtype == np.int32
    records = np.concatenate([x["record"] for x in batches])
    # Posts 38/39 have no label; post 5 has a broken image: all others exactly once.
    assert sorted(records.tolist()) == [i for i in range(38) if i != 5]
    for x in batches:
        for r, row in zip(x["record"], x["labels"]):
            want = sorted({vocab.label_of(t) for t in posts[r]})
            assert sorted(row[row >= 0].tolist()) == want
            assert np.all(row[len(want):] == -1)
    stats = it.stats()
    assert stats["skipped_unreadable"] == 1 and stats["examples"] == 37
    assert stats["unlabelled_records"] == 2 and stats["records"] == 40


def test_broken_record_warns_with_shard_and_index(small):
    it = _iterator(small, num_epochs=1, drop_remainder=False)
    with pytest.warns(UserWarning, match=r"shard .*posts-00000-of-00002.* record 5: DecodeError"):
        list(it)


def test_exact_resume_through_orbax(small, tmp_path):
    import grain
    import orbax.checkpoint as ocp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = _iterator(small, resampling="sqrt", label_noise=0.3)
        for _ in range(3):
            next(it)
        state = {"params": jnp.arange(4.0), "step": jnp.asarray(3)}
        mngr = ocp.CheckpointManager(tmp_path / "ckpt")
        mngr.save(3, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
        after = [next(it) for _ in range(4)]

        fresh = _iterator(small, resampling="sqrt", label_noise=0.3)
        restored = mngr.restore(3, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(state), data=grain.checkpoint.CheckpointRestore(fresh)))
        again = [next(fresh) for _ in range(4)]
    np.testing.assert_array_equal(restored["state"]["params"], state["params"])
    assert fresh.stats() == it.stats()
    for a, b in zip(after, again):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["labels"], b["labels"])
    # Continuing is not the same as starting over.
    assert not np.array_equal(after[0]["image"], _first_batch(small)["image"])


def _first_batch(small):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return next(_iterator(small, resampling="sqrt", label_noise=0.3))


def test_same_seed_same_batches_and_workers_match_threads(small):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = [next(it) for it in [_iterator(small)] for _ in range(3)]
        b = [next(it) for it in [_iterator(small, num_threads=0)] for _ in range(3)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["labels"], y["labels"])


def test_label_noise_replaces_the_intended_fraction(small):
    corpus, vocab_path, posts = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = _iterator(small, num_epochs=1, drop_remainder=False, with_record_index=True, max_labels=2)
        noisy = _iterator(small, num_epochs=1, drop_remainder=False, with_record_index=True,
                          max_labels=2, label_noise=1.0)
        c = {int(r): tuple(l) for x in clean for r, l in zip(x["record"], x["labels"])}
        n = {int(r): tuple(l) for x in noisy for r, l in zip(x["record"], x["labels"])}
    assert c.keys() == n.keys()
    changed = sum(c[k] != n[k] for k in c)
    # p = 1 redraws every hashtag from the marginal: most posts change, all keep a label.
    assert changed > len(c) // 2
    assert all(l[0] >= 0 for l in n.values())


def test_vocabulary_from_another_corpus_is_a_startup_error(small, tmp_path):
    corpus, vocab_path, posts = small
    other = write_corpus(tmp_path / "other", posts[:10], num_shards=1)
    with pytest.raises(VocabularyError, match="rebuild the vocabulary"):
        ip.make_pretrain_iterator(other, vocab_path, global_batch_size=4, image_size=16,
                                  process_index=0, process_count=1)
    with pytest.raises(VocabularyError, match="not found"):
        ip.make_pretrain_iterator(corpus, tmp_path / "missing.json", global_batch_size=4,
                                  image_size=16, process_index=0, process_count=1)


def test_sqrt_resampled_batches_follow_sqrt_frequencies(tmp_path):
    """Measured label frequencies of real resampled batches against the intended law."""
    posts = zipf_posts(400, TAGS, seed=2, exponent=1.3)
    corpus = write_corpus(tmp_path / "zipf", posts, num_shards=1, image_size=(16, 16))
    build_from_corpus(corpus, tmp_path / "v.json", mode="raw")
    vocab = Vocabulary.load(tmp_path / "v.json")
    n = np.zeros(vocab.num_classes)
    for p in posts:
        n[vocab.label_of(p[0])] += 1
    it = ip.make_pretrain_iterator(corpus, tmp_path / "v.json", global_batch_size=100,
                                   image_size=8, resampling="sqrt", seed=0,
                                   process_index=0, process_count=1)
    hist = np.zeros(vocab.num_classes)
    for _ in range(30):
        labels = next(it)["labels"][:, 0]
        np.add.at(hist, labels, 1)
    measured = hist / hist.sum()
    intended = np.sqrt(n) / np.sqrt(n).sum()
    natural = n / n.sum()
    np.testing.assert_allclose(measured, intended, rtol=0.2, atol=0.01)
    assert np.abs(measured - natural).max() > 0.08


def test_holdout_records_are_never_served(small):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = _iterator(small, num_epochs=1, drop_remainder=False, with_record_index=True, holdout_records=10)
        records = np.concatenate([b["record"] for b in it])
    assert sorted(records.tolist()) == [i for i in range(30) if i != 5]
    assert it.stats()["holdout_records"] == 10 and it.stats()["unlabelled_records"] == 0


def test_worker_processes_give_the_same_stream_and_resume(small):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threads = _iterator(small, resampling="sqrt")
        want = [next(threads) for _ in range(4)]
        workers = _iterator(small, resampling="sqrt", num_workers=2)
        try:
            got = [next(workers) for _ in range(2)]
            state = workers.get_state()
            got += [next(workers) for _ in range(2)]
        finally:
            workers.close()
        resumed = _iterator(small, resampling="sqrt", num_workers=2)
        try:
            resumed.set_state(state)
            tail = [next(resumed) for _ in range(2)]
        finally:
            resumed.close()
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["labels"], b["labels"])
    for a, b in zip(want[2:], tail):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_resume_mid_chunk_and_from_a_per_example_state(small):
    """A state inside a decoded chunk resumes there, and so does the earlier format's
    state (grain's index of the next example, no chunks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = _iterator(small, resampling="sqrt")
        for _ in range(3):
            next(it)
        state = it.get_state()
        after = [next(it) for _ in range(4)]
        assert 0 < state["served"] < ip.CHUNK  # 3 batches of 8 end inside the first chunk
        per_example = {"parent": {"next_index": state["parent"]["next_index"] * ip.CHUNK + state["served"]},
                       "counters": state["counters"]}
        for s in (state, per_example):
            fresh = _iterator(small, resampling="sqrt")
            fresh.set_state(s)
            assert fresh.get_state() == state
            again = [next(fresh) for _ in range(4)]
            for a, b in zip(after, again):
                np.testing.assert_array_equal(a["image"], b["image"])
                np.testing.assert_array_equal(a["labels"], b["labels"])
            assert fresh.stats() == it.stats()
        workers_state = {"parent": {"workers_state": {}, "iterations_to_skip": {}}, "counters": state["counters"]}
        with pytest.raises(ValueError, match="resume with input.num_workers=0"):
            _iterator(small).set_state(workers_state)
