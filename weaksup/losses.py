"""Losses on hashtag labels: softmax cross-entropy on 1/k targets, or per-class sigmoid.

Labels arrive as padded indices, int32 (B, max_labels) with -1 padding (pretraining), or
as one integer class per image, int32 (B,) (fine-tuning). The paper found softmax on 1/k
targets better than per-class sigmoid; both are here so the comparison can be rerun.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def multi_hot(labels: jax.Array, num_classes: int) -> jax.Array:
    """(B, C) float32 with 1 on each of an image's labels; -1 entries are padding."""
    labels = jnp.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    valid = labels >= 0
    onehots = jax.nn.one_hot(jnp.where(valid, labels, 0), num_classes, dtype=jnp.float32)
    onehots = onehots * valid[..., None]
    # A label written twice counts once.
    return jnp.minimum(onehots.sum(axis=1), 1.0)


def label_targets(labels: jax.Array, num_classes: int, loss: str = "softmax") -> jax.Array:
    """Training targets: 1/k on each of k labels (softmax) or multi-hot (sigmoid)."""
    hot = multi_hot(labels, num_classes)
    if loss == "sigmoid":
        return hot
    k = hot.sum(axis=-1, keepdims=True)
    return hot / jnp.maximum(k, 1.0)


def softmax_cross_entropy(logits: jax.Array, targets: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example cross-entropy against a target distribution, (B,).

    Smoothing mixes the targets with the uniform distribution: (1 - eps) t + eps / C.
    """
    logits = logits.astype(jnp.float32)
    if label_smoothing:
        num_classes = logits.shape[-1]
        targets = (1.0 - label_smoothing) * targets + label_smoothing / num_classes
    return -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def sigmoid_binary_cross_entropy(logits: jax.Array, targets: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example sum over classes of binary cross-entropy, (B,) (big_vision's sigmoid_xent).

    Smoothing pulls each binary target toward 1/2: (1 - eps) t + eps / 2.
    """
    logits = logits.astype(jnp.float32)
    if label_smoothing:
        targets = (1.0 - label_smoothing) * targets + 0.5 * label_smoothing
    log_p = jax.nn.log_sigmoid(logits)
    log_not_p = jax.nn.log_sigmoid(-logits)
    return -jnp.sum(targets * log_p + (1.0 - targets) * log_not_p, axis=-1)


def make_loss_fn(kind: str = "softmax", label_smoothing: float = 0.0) -> LossFn:
    """`loss_fn(logits, labels) -> per-example loss (B,)`, labels padded indices or classes.

    Examples without any label (all padding) are not meaningful; the train step masks them
    with `has_label` and averages over the rest.
    """
    if kind not in ("softmax", "sigmoid"):
        raise ValueError(f"unknown loss {kind!r} (softmax, sigmoid)")
    per_example = softmax_cross_entropy if kind == "softmax" else sigmoid_binary_cross_entropy

    def loss_fn(logits: jax.Array, labels: jax.Array) -> jax.Array:
        targets = label_targets(labels, logits.shape[-1], kind)
        return per_example(logits, targets, label_smoothing)

    return loss_fn


def has_label(labels: jax.Array) -> jax.Array:
    """(B,) bool: the image carries at least one label."""
    labels = jnp.asarray(labels)
    if labels.ndim == 1:
        return labels >= 0
    return jnp.any(labels >= 0, axis=-1)
