"""Losses: 1/k softmax targets, sigmoid BCE, label smoothing, padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weaksup import losses


def test_soft_targets_split_evenly_and_ignore_padding():
    labels = jnp.array([[2, 0, -1], [1, -1, -1], [3, 3, -1]])
    t = np.asarray(losses.label_targets(labels, 4, "softmax"))
    np.testing.assert_allclose(t[0], [0.5, 0, 0.5, 0])
    np.testing.assert_allclose(t[1], [0, 1, 0, 0])
    np.testing.assert_allclose(t[2], [0, 0, 0, 1])  # a repeated label counts once


def test_softmax_loss_matches_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5)).astype(np.float32)
    labels = np.array([[1, 4], [0, -1], [2, 3]])
    loss = np.asarray(losses.make_loss_fn("softmax")(jnp.asarray(logits), jnp.asarray(labels)))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ref = [-(logp[0, 1] + logp[0, 4]) / 2, -logp[1, 0], -(logp[2, 2] + logp[2, 3]) / 2]
    np.testing.assert_allclose(loss, ref, rtol=1e-5)


def test_label_smoothing_mixes_uniform():
    logits = jnp.array([[2.0, 0.0, -1.0]])
    labels = jnp.array([[0]])
    eps = 0.3
    got = float(losses.make_loss_fn("softmax", eps)(logits, labels)[0])
    logp = np.asarray(jax.nn.log_softmax(logits))[0]
    ref = -((1 - eps) * logp[0] + eps / 3 * logp.sum())
    assert got == pytest.approx(ref, rel=1e-5)


def test_sigmoid_bce_multi_hot():
    logits = np.array([[0.5, -1.0, 2.0]], np.float32)
    labels = np.array([[0, 2]])
    got = float(losses.make_loss_fn("sigmoid")(jnp.asarray(logits), jnp.asarray(labels))[0])
    p = 1 / (1 + np.exp(-logits[0]))
    t = np.array([1.0, 0.0, 1.0])
    ref = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum()
    assert got == pytest.approx(ref, rel=1e-5)


def test_integer_class_labels_are_one_hot():
    logits = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    a = losses.make_loss_fn("softmax")(logits, jnp.array([2, 0]))
    b = losses.make_loss_fn("softmax")(logits, jnp.array([[2], [0]]))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert list(np.asarray(losses.has_label(jnp.array([[1, -1], [-1, -1]])))) == [True, False]


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss"):
        losses.make_loss_fn("hinge")
