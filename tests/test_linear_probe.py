"""Linear probe: the JAX L-BFGS solver reaches scikit-learn's optimum; the sweep picks L2 on val."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from weaksup.evaluators.linear_probe import (
    Standardizer,
    fit_logistic,
    linear_probe,
    topk_accuracy,
)


def _blobs(n, dim=16, classes=5, sep=1.0, seed=0, scale=None):
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(123).normal(size=(classes, dim)) * sep
    y = rng.integers(0, classes, n)
    x = means[y] + rng.normal(size=(n, dim))
    if scale is not None:  # anisotropic raw features; the probe standardises them
        x = x * scale
    return x.astype(np.float32), y.astype(np.int32)


def _objective(x, y, w, b, l2):
    z = x @ w + b
    z = z - z.max(1, keepdims=True)
    ce = np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]
    return ce.mean() + 0.5 * l2 * np.sum(w * w)


@pytest.mark.parametrize("matmul_dtype", ["float32", "bfloat16"])
def test_matches_sklearn_optimum(matmul_dtype):
    x, y = _blobs(600, sep=0.6)
    x = np.asarray(Standardizer.fit(x)(x))
    l2 = 1e-2
    ref = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-8, max_iter=5000).fit(x, y)
    ref_obj = _objective(x, y, ref.coef_.T, ref.intercept_, l2)
    fit = fit_logistic(x, y, 5, l2, gtol=1e-7, ftol=1e-9, max_iter=500, matmul_dtype=matmul_dtype)
    ours_obj = _objective(x, y, fit.weights, fit.bias, l2)
    tol = 1e-5 if matmul_dtype == "float32" else 2e-3
    assert ours_obj <= ref_obj + tol
    agree = np.mean(np.argmax(np.asarray(fit.logits(x)), 1) == ref.predict(x))
    assert agree > 0.99
    if matmul_dtype == "float32":
        np.testing.assert_allclose(fit.weights, ref.coef_.T, atol=2e-3)


def test_default_stopping_is_accurate_and_starts_at_the_log_prior():
    x, y = _blobs(2000, dim=32, classes=10, sep=0.35)
    xt, yt = _blobs(2000, dim=32, classes=10, sep=0.35, seed=1)
    std = Standardizer.fit(x)
    x, xt = np.asarray(std(x)), np.asarray(std(xt))
    l2 = 1e-3
    ref = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-8, max_iter=5000).fit(x, y)
    fit = fit_logistic(x, y, 10, l2)  # default tolerances
    assert abs(topk_accuracy(fit.logits(xt), yt, 1) - ref.score(xt, yt)) <= 0.01
    start = fit_logistic(x, y, 10, l2, init=None, max_iter=0)
    assert start.iterations == 0
    np.testing.assert_array_equal(start.weights, 0.0)
    np.testing.assert_allclose(start.bias, np.log(np.bincount(y, minlength=10) / len(y)), rtol=1e-6)
    np.testing.assert_allclose(start.loss, _objective(x, y, start.weights, start.bias, l2), rtol=1e-5)


def test_start_gradient_without_a_matmul_is_the_gradient():
    # With a class absent from the labels the log-prior bias is not a normalised prior,
    # which the closed-form gradient at the start has to allow for.
    import jax
    import jax.numpy as jnp

    from weaksup.evaluators import linear_probe as lp

    x, y = _blobs(40, dim=6, classes=4, sep=0.5)
    classes, l2 = 8, 1e-2  # classes 4-7 never occur
    fit = fit_logistic(x, y, classes, l2, max_iter=1, gtol=0.0, ftol=0.0, matmul_dtype="float32")

    def objective(theta):
        w, b = theta[: 6 * classes].reshape(6, classes), theta[6 * classes:]
        return lp._data_loss(jnp.asarray(x) @ w + b, jnp.asarray(y)) + 0.5 * l2 * jnp.sum(w * w)

    counts = np.bincount(y, minlength=classes)
    theta0 = jnp.concatenate([jnp.zeros(6 * classes), jnp.log(np.maximum(counts, 1) / len(y)).astype(np.float32)])
    # The first step goes along -g from the start: it must be parallel to the exact gradient.
    g = np.asarray(jax.grad(objective)(theta0))
    step = np.concatenate([fit.weights.ravel(), fit.bias]) - np.asarray(theta0)
    np.testing.assert_allclose(step / np.linalg.norm(step), -g / np.linalg.norm(g), atol=1e-5)
    assert fit.loss < float(objective(theta0))


def test_topk_accuracy():
    logits = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    assert topk_accuracy(logits, np.array([2, 0]), 1) == 0.5
    assert topk_accuracy(logits, np.array([2, 0]), 2) == 1.0
    assert topk_accuracy(logits, np.array([2, 1]), 5) == 1.0  # k capped at C


def test_sweep_chooses_l2_on_validation_and_reports_test():
    scale = np.geomspace(0.01, 100, 16).astype(np.float32)
    train = _blobs(300, sep=0.5, scale=scale)
    val = _blobs(400, sep=0.5, seed=1, scale=scale)
    test = _blobs(400, sep=0.5, seed=2, scale=scale)
    grid = (1e-4, 1e-2, 1.0, 100.0)
    res = linear_probe(train, val, test, 5, l2_grid=grid)
    assert res["l2"] in grid
    assert res["l2"] < 100.0  # an absurd penalty cannot win on val
    assert res["test_top1"] > 0.6
    assert res["test_top5"] == 1.0
    assert res["val_top1"] >= res["test_top1"] - 0.1
    # the chosen L2 is the best on val among the grid
    std = Standardizer.fit(train[0])
    for l2 in grid:
        f = fit_logistic(std(train[0]), train[1], 5, l2)
        assert topk_accuracy(f.logits(std(val[0])), val[1], 1) <= res["val_top1"] + 0.02


def test_bad_inputs():
    x, y = _blobs(50)
    with pytest.raises(ValueError, match="outside"):
        fit_logistic(x, y, 3, 1e-3)
    with pytest.raises(ValueError, match="do not match"):
        fit_logistic(x, y[:10], 5, 1e-3)
    with pytest.raises(ValueError, match="must be integers"):
        fit_logistic(x, y.astype(np.float32), 5, 1e-3)
    with pytest.raises(ValueError, match="matmul_dtype must be"):
        fit_logistic(x, y, 5, 1e-3, matmul_dtype="int8")
    with pytest.raises(ValueError, match="empty L2 grid"):
        linear_probe((x, y), (x, y), None, 5, l2_grid=())


def test_auto_matmul_dtype_is_bfloat16_only_where_it_is_fast():
    import jax

    from weaksup.evaluators.linear_probe import default_matmul_dtype

    assert jax.default_backend() == "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    amx = cpuinfo.exists() and "amx_bf16" in cpuinfo.read_text().split()
    assert default_matmul_dtype() == ("bfloat16" if amx else "float32")


def test_line_search_finds_the_minimum_along_a_direction():
    import jax.numpy as jnp

    from weaksup.evaluators import linear_probe as lp

    rng = np.random.default_rng(0)
    n, c, d = 500, 7, 5
    z = jnp.asarray(rng.normal(size=(n, c)), jnp.float32)
    u = jnp.asarray(rng.normal(size=(n, c)) * 3, jnp.float32)
    y = jnp.asarray(rng.integers(0, c, n), jnp.int32)
    w = jnp.asarray(rng.normal(size=(d, c)), jnp.float32)
    dw = jnp.asarray(rng.normal(size=(d, c)), jnp.float32)
    l2 = 1e-2

    def phi(t):
        return float(lp._data_loss(z + t * u, y) + 0.5 * l2 * jnp.sum((w + t * dw) ** 2))

    ts = np.linspace(-2, 2, 4001)
    values = np.array([phi(t) for t in ts])
    t_star, phi_star = ts[values.argmin()], values.min()
    if t_star < 0:  # make d a descent direction
        u, dw, t_star = -u, -dw, -t_star
    eps = 1e-3
    slope0 = (phi(eps) - phi(-eps)) / (2 * eps)
    assert slope0 < 0
    t, value = lp._line_search(z, u, y, l2, w, dw, jnp.float32(phi(0.0)), jnp.float32(slope0), 1.0, 20)
    assert abs(float(value) - phi(float(t))) < 1e-4  # reports phi at the t it returns
    assert phi(float(t)) - phi_star <= 0.1 * (phi(0.0) - phi_star)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 24, 25])
def test_row_block_sums_count_every_row_once(n):
    import jax.numpy as jnp

    from weaksup.evaluators import linear_probe as lp

    # Block of 8 rows: n below, at, just over and at several multiples of it; the last
    # block overlaps the one before whenever 8 does not divide n.
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, 3)).astype(np.float32)
    b = rng.normal(size=(n, 3)).astype(np.float32)
    sums = lp._row_block_sums(lambda p, q: (jnp.sum(p * q, axis=1), jnp.max(p, axis=1)),
                              (jnp.asarray(a), jnp.asarray(b)), block=8)
    np.testing.assert_allclose(float(sums[0]), np.sum(a * b), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(sums[1]), np.sum(a.max(1)), rtol=1e-5, atol=1e-5)
