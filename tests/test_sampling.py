"""The label-frequency resampler: weights, determinism, and measured label distributions."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from _train_data import REPO, tiny_inputs
from weaksup.sampling import Resampler, label_post_counts, post_weights, training_eligible


def _csr(posts):
    offsets = np.cumsum([0] + [len(p) for p in posts])
    labels = np.asarray([l for p in posts for l in p], np.int32)
    return offsets, labels


def _zipf_single_label(n=4000, k=10, seed=0):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, k + 1) ** 1.2
    picks = rng.choice(k, size=n, p=p / p.sum())
    return [[int(x)] for x in picks]


def _measured(resampler, offsets, labels, num_classes, epochs):
    hist = np.zeros(num_classes)
    for e in range(epochs):
        for r in resampler.epoch(e):
            np.add.at(hist, labels[offsets[r] : offsets[r + 1]], 1)
    return hist / hist.sum()


@pytest.mark.parametrize("mode, f", [("natural", lambda n: n), ("sqrt", np.sqrt), ("uniform", np.ones_like)])
def test_resampled_label_distribution_follows_f_of_frequency(mode, f):
    posts = _zipf_single_label()
    offsets, labels = _csr(posts)
    n = label_post_counts(offsets, labels, 10).astype(float)
    intended = f(n) / f(n).sum()
    sampler = Resampler(offsets, labels, 10, mode, seed=3)
    measured = _measured(sampler, offsets, labels, 10, epochs=5)
    # 20,000 draws: the rarest intended share (~3% under natural) has a relative standard
    # error of ~4%, so 15% relative plus 0.2 points absolute is a safe band.
    np.testing.assert_allclose(measured, intended, rtol=0.15, atol=0.002)
    # The modes differ enough on this Zipf law that the band cannot hide a wrong mode.
    natural = n / n.sum()
    if mode != "natural":
        assert np.abs(measured - natural).max() > 0.05


def test_multilabel_weights_split_evenly_over_labels():
    posts = [[0], [0], [0], [0], [1], [0, 1], []]
    offsets, labels = _csr(posts)
    w = post_weights(offsets, labels, 2, "uniform")
    # n_0 = 5, n_1 = 2: single-label posts weigh 1/n, the shared post (1/5 + 1/2) / 2.
    np.testing.assert_allclose(w, [0.2, 0.2, 0.2, 0.2, 0.5, 0.35, 0.0])
    np.testing.assert_allclose(post_weights(offsets, labels, 2, "natural"), [1, 1, 1, 1, 1, 1, 0])
    s = post_weights(offsets, labels, 2, "sqrt")
    np.testing.assert_allclose(s[0], 1 / np.sqrt(5))
    np.testing.assert_allclose(s[5], (1 / np.sqrt(5) + 1 / np.sqrt(2)) / 2)


def test_multilabel_measured_matches_exact_expectation():
    rng = np.random.default_rng(1)
    posts = [sorted(set(rng.choice(6, size=rng.integers(1, 4), p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.05]).tolist())) for _ in range(3000)]
    offsets, labels = _csr(posts)
    w = post_weights(offsets, labels, 6, "sqrt")
    expected = np.zeros(6)
    for i, p in enumerate(posts):
        expected[p] += w[i]
    sampler = Resampler(offsets, labels, 6, "sqrt", seed=0)
    measured = _measured(sampler, offsets, labels, 6, epochs=6)
    np.testing.assert_allclose(measured, expected / expected.sum(), rtol=0.08, atol=0.003)


def test_natural_epoch_is_a_permutation_of_labelled_posts():
    posts = [[0], [], [1], [0, 1], [], [2]]
    offsets, labels = _csr(posts)
    sampler = Resampler(offsets, labels, 3, "natural", seed=5)
    for e in range(3):
        assert sorted(sampler.epoch(e).tolist()) == [0, 2, 3, 5]
    assert sampler.epoch(0).tolist() != sampler.epoch(1).tolist() or sampler.epoch(1).tolist() != sampler.epoch(2).tolist()


def test_sequences_are_deterministic_and_seeded():
    offsets, labels = _csr(_zipf_single_label(500))
    a = Resampler(offsets, labels, 10, "sqrt", seed=7)
    b = Resampler(offsets, labels, 10, "sqrt", seed=7)
    c = Resampler(offsets, labels, 10, "sqrt", seed=8)
    np.testing.assert_array_equal(a.epoch(4), b.epoch(4))
    assert not np.array_equal(a.epoch(4), c.epoch(4))
    assert a.record_at(len(a) * 4 + 17) == (4, 17, int(a.epoch(4)[17]))
    # Unlabelled posts are never drawn.
    assert np.all(np.diff(offsets)[a.epoch(0)] > 0)


def test_bad_arguments_are_clear_errors():
    offsets, labels = _csr([[0], [1]])
    with pytest.raises(ValueError, match="unknown resampling mode"):
        Resampler(offsets, labels, 2, "inverse")
    with pytest.raises(ValueError, match="no post has a label"):
        Resampler(*_csr([[], []]), 2, "sqrt")


def test_ineligible_posts_are_never_drawn_nor_counted():
    posts = [[0], [0], [1], [1], [1], [0]]
    offsets, labels = _csr(posts)
    eligible = np.array([True, True, True, True, False, False])
    w = post_weights(offsets, labels, 2, "uniform", eligible)
    # Counted over eligible posts only: n_0 = 2, n_1 = 2.
    np.testing.assert_allclose(w, [0.5, 0.5, 0.5, 0.5, 0, 0])
    sampler = Resampler(offsets, labels, 2, "natural", seed=0, eligible=eligible)
    assert sorted(sampler.epoch(0).tolist()) == [0, 1, 2, 3]


def _sampling_benchmark():
    """benchmarks/sampling.py as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("sampling_benchmark", REPO / "benchmarks" / "sampling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sampling_benchmark_counts_what_the_schedule_reads():
    bench = _sampling_benchmark()
    posts = _zipf_single_label(n=2000, k=10) + [[]] * 100  # 100 unlabelled posts are never read
    offsets, labels = _csr(posts)
    natural = Resampler(offsets, labels, 10, "natural", seed=1)
    images = 2 * len(natural) + 500  # two whole epochs and part of a third
    reads = bench.stream(natural, images)
    assert len(reads) == images and reads.max() < 2000
    d = bench.describe(reads, offsets, labels, 10, len(natural.labelled))
    # A permutation per epoch: every labelled post twice, 500 of them a third time.
    assert d["distinct"] == 2000 and d["reads_max"] == 3 and d["reads_on_repeated"] == 0.0
    np.testing.assert_allclose(d["reads_mean"], images / 2000)
    # Square-root draws with replacement and favours the rare labels' posts: over the same
    # schedule it misses some posts, reads others many times, and spreads over more labels.
    sqrt = Resampler(offsets, labels, 10, "sqrt", seed=1)
    s = bench.describe(bench.stream(sqrt, images), offsets, labels, 10, len(sqrt.labelled))
    assert s["distinct"] < 2000 and s["reads_max"] > 3 and s["reads_on_repeated"] > 0.05
    assert s["effective_labels"] > d["effective_labels"]
    # Its label spread is exp(entropy) of the sqrt distribution, up to the sampling noise.
    n = label_post_counts(offsets, labels, 10).astype(float)
    p = np.sqrt(n) / np.sqrt(n).sum()
    assert s["effective_labels"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=0.03)


def test_sampling_benchmark_reads_a_runs_config(tmp_path, tmp_path_factory):
    corpus, vocab = tiny_inputs(tmp_path_factory.getbasetemp() / "train_inputs")
    config = {"corpus_dir": str(corpus), "vocab_path": str(vocab), "holdout_records": 8, "seed": 0,
              "total_examples": 1000, "total_steps": None,
              "input": {"global_batch_size": 16, "resampling": "sqrt"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    proc = subprocess.run([sys.executable, "benchmarks/sampling.py", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1,008 images at seed 0 (the run's own mode: sqrt)" in proc.stdout  # 63 steps of 16
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
    assert sorted(rows) == ["natural", "sqrt", "uniform"]
    # A folder without a run's config is a usage error naming the file, not a traceback.
    proc = subprocess.run([sys.executable, "benchmarks/sampling.py", str(tmp_path / "none")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"{tmp_path / 'none' / 'config.json'}: not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_training_eligible_keeps_the_held_out_records_out():
    assert training_eligible(10, 0) is None
    np.testing.assert_array_equal(training_eligible(5, 2), [True, True, True, False, False])
    for bad in (5, 7):
        with pytest.raises(ValueError, match=f"holdout_records={bad} must lie in"):
            training_eligible(5, bad)
