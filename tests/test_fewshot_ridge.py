"""Few-shot ridge: the eigendecomposition solve equals the direct ridge solve; shots are per class."""

import jax.numpy as jnp
import numpy as np
import pytest

from weaksup.evaluators.fewshot_ridge import BIAS_CONSTANT, eig_cache, fewshot_ridge, ridge_scores, sample_shots


def _direct_scores(x, y, xq, c, l2):
    mean, std = x.mean(0, keepdims=True), x.std(0, keepdims=True) + 1e-5
    a = np.pad((x - mean) / std, ((0, 0), (0, 1)), constant_values=BIAS_CONSTANT).astype(np.float64)
    t = 2.0 * np.eye(c)[y] - 1.0
    w = np.linalg.solve(a.T @ a + l2 * np.eye(a.shape[1]), a.T @ t)
    q = np.pad((xq - mean) / std, ((0, 0), (0, 1)), constant_values=BIAS_CONSTANT)
    return q @ w


@pytest.mark.parametrize("n,d", [(60, 8), (12, 40)])  # both the N >= D and the N < D branch
def test_eig_solution_matches_direct_ridge(n, d):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, 3, n)
    xq = rng.normal(size=(7, d)).astype(np.float32)
    cache = eig_cache(jnp.asarray(x), jnp.asarray(y), 3)
    for l2 in (0.5, 8.0, 1024.0):
        ours = np.asarray(ridge_scores(cache, jnp.asarray(xq), jnp.float32(l2)))
        np.testing.assert_allclose(ours, _direct_scores(x, y, xq, 3, l2), rtol=2e-3, atol=2e-3)


def test_sample_shots_per_class_and_seeded():
    labels = np.repeat(np.arange(4), 10)
    idx = sample_shots(labels, 3, 4, seed=0)
    assert np.bincount(labels[idx], minlength=4).tolist() == [3, 3, 3, 3]
    assert np.array_equal(idx, sample_shots(labels, 3, 4, seed=0))
    assert not np.array_equal(idx, sample_shots(labels, 3, 4, seed=1))
    few = np.array([0, 0, 1, 1, 1, 1])
    assert np.bincount(few[sample_shots(few, 3, 2, 0)]).tolist() == [2, 3]  # all a class has
    with pytest.raises(ValueError, match="class 2 has no training examples"):
        sample_shots(few, 1, 3, 0)


def _blobs(n, classes=6, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).normal(size=(classes, dim)) * 0.7
    y = rng.integers(0, classes, n)
    return (means[y] + rng.normal(size=(n, dim))).astype(np.float32), y.astype(np.int32)


def test_more_shots_help_and_keys():
    res = fewshot_ridge(_blobs(600), _blobs(300, seed=1), _blobs(600, seed=2), 6, shots=(1, 25), seeds=(0, 1, 2))
    assert set(res) == {f"{k}shot_{m}" for k in (1, 25) for m in ("top1", "top1_std", "l2")}
    assert res["25shot_top1"] > res["1shot_top1"] + 0.1
    assert res["25shot_top1"] > 0.7
    assert 0.0 <= res["1shot_top1_std"] < 0.3
    with pytest.raises(ValueError, match="non-empty"):
        fewshot_ridge(_blobs(60), _blobs(60), None, 6, shots=())
