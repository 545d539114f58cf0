"""Optimiser: linear scaling, warm-up + step/cosine schedule, decay mask, Nesterov SGD."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from weaksup import optimizer


def test_linear_scaling_rule():
    assert optimizer.peak_learning_rate(0.1, 8064) == pytest.approx(0.1 * 8064 / 256)


def test_warmup_then_step_decay():
    s = optimizer.learning_rate_schedule(1.0, total_steps=100, warmup_steps=10, schedule="step", decay_at=(0.5, 0.8))
    assert float(s(0)) == 0.0
    assert float(s(5)) == pytest.approx(0.5)
    assert float(s(10)) == pytest.approx(1.0)
    assert float(s(49)) == pytest.approx(1.0)
    assert float(s(50)) == pytest.approx(0.1)
    assert float(s(79)) == pytest.approx(0.1)
    assert float(s(80)) == pytest.approx(0.01)


def test_cosine_reaches_floor():
    s = optimizer.learning_rate_schedule(2.0, total_steps=50, warmup_steps=0, schedule="cosine")
    assert float(s(0)) == pytest.approx(2.0)
    assert float(s(25)) == pytest.approx(1.0, abs=1e-5)
    assert float(s(50)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="unknown schedule"):
        optimizer.learning_rate_schedule(1.0, 10, schedule="poly")


def test_weight_decay_skips_bn_and_bias():
    params = {"conv": {"kernel": jnp.ones((3, 3, 2, 4))}, "bn": {"scale": jnp.ones(4), "bias": jnp.ones(4)}}
    tx = optimizer.make_optimizer(0.0 + 1.0, momentum=0.0, nesterov=False, weight_decay=0.5)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["conv"]["kernel"]), -0.5)
    np.testing.assert_array_equal(np.asarray(updates["bn"]["scale"]), 0.0)
    np.testing.assert_array_equal(np.asarray(updates["bn"]["bias"]), 0.0)


def test_nesterov_matches_reference():
    # PyTorch SGD(nesterov): v = mu v + g ; p -= lr (g + mu v), with wd added to g first.
    lr, mu, wd = 0.1, 0.9, 0.01
    tx = optimizer.make_optimizer(lr, momentum=mu, nesterov=True, weight_decay=wd)
    p = {"w": jnp.array([[1.0, -2.0]])}
    state = tx.init(p)
    ref_p, v = np.array([[1.0, -2.0]]), np.zeros((1, 2))
    for g in ([[0.5, 0.1]], [[-0.2, 0.3]], [[0.0, 1.0]]):
        g = np.array(g)
        upd, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, p)
        p = optax.apply_updates(p, upd)
        gg = g + wd * ref_p
        v = mu * v + gg
        ref_p = ref_p - lr * (gg + mu * v)
    np.testing.assert_allclose(np.asarray(p["w"]), ref_p, rtol=1e-5)


def test_clipping_bounds_global_norm():
    tx = optimizer.make_optimizer(1.0, momentum=0.0, weight_decay=0.0, grad_clip_norm=1.0)
    p = {"w": jnp.zeros((2, 2))}
    upd, _ = tx.update({"w": jnp.full((2, 2), 10.0)}, tx.init(p), p)
    assert float(optax.tree.norm(upd)) == pytest.approx(1.0, rel=1e-5)
