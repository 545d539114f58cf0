"""The optimisers: the paper's SGD-Nesterov and SWAG's AdamW, linear-scaling LR, weight EMA.

Mahajan et al. train with synchronous SGD, Nesterov momentum 0.9, weight decay 1e-4
(not applied to batch-norm or bias parameters), a learning rate of 0.1 per 256 images
(the linear scaling rule of Goyal et al.) reached by a linear warm-up, then divided by
10 at fixed points. A cosine decay is offered as the common alternative, and a linear
decay (the ViT recipe's).

SWAG trains its RegNetY trunks with SGD-Nesterov and its ViTs with AdamW, whose weight
decay is decoupled (applied to the weights, scaled by the learning rate, not added to the
gradient); `optim.name` picks one. Either way no decay falls on biases, normalisation
parameters, the ViT class token or its position embedding. With `optim.ema_decay` > 0 the
optimiser state also keeps an exponential moving average of the weights
(`ema_params(opt_state)`), which SWAG's fine-tuning evaluates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


def peak_learning_rate(base_lr: float, global_batch_size: int, base_batch_size: int = 256) -> float:
    """Linear scaling rule: `base_lr` per `base_batch_size` images."""
    return float(base_lr) * global_batch_size / base_batch_size


def learning_rate_schedule(
    peak_lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    schedule: str = "step",
    decay_at: Sequence[float] = (0.3, 0.6, 0.9),
    decay_factor: float = 0.1,
    final_lr_fraction: float = 0.0,
) -> optax.Schedule:
    """Linear warm-up from 0 to `peak_lr`, then "step", "cosine", "linear" or "constant".

    `decay_at` gives the step decays as fractions of the whole run (so a schedule survives
    a change of duration); each one multiplies the rate by `decay_factor`.
    """
    total_steps = max(int(total_steps), 1)
    warmup_steps = min(max(int(warmup_steps), 0), total_steps)
    rest = max(total_steps - warmup_steps, 1)
    if schedule == "step":
        boundaries = {}
        for frac in decay_at:
            if not 0.0 < frac < 1.0:
                raise ValueError(f"decay_at fractions must lie in (0, 1), got {frac}")
            # Boundaries are counted from the end of warm-up (join_schedules shifts them).
            b = max(int(round(frac * total_steps)) - warmup_steps, 0)
            boundaries[b] = boundaries.get(b, 1.0) * decay_factor
        main = optax.piecewise_constant_schedule(peak_lr, boundaries)
    elif schedule == "cosine":
        main = optax.cosine_decay_schedule(peak_lr, rest, alpha=final_lr_fraction)
    elif schedule == "linear":
        main = optax.linear_schedule(peak_lr, peak_lr * final_lr_fraction, rest)
    elif schedule == "constant":
        main = optax.constant_schedule(peak_lr)
    else:
        raise ValueError(f"unknown schedule {schedule!r} (step, cosine, linear, constant)")
    if warmup_steps == 0:
        return main
    warm = optax.linear_schedule(0.0, peak_lr, warmup_steps)
    return optax.join_schedules([warm, main], [warmup_steps])


# Parameters of ndim >= 2 that are embeddings, not weights: no decay (timm, torchvision).
NO_DECAY_NAMES = ("class_token", "pos_embedding")


def decay_mask(params: Any) -> Any:
    """True for parameters that take weight decay: kernels, not norm scales/offsets, biases or embeddings.

    Every batch-norm / layer-norm parameter and bias is one-dimensional; every kernel has
    ndim >= 2; the ViT class token and position embedding are named.
    """
    def takes_decay(path: tuple[Any, ...], p: Any) -> bool:
        names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
        return jnp.ndim(p) > 1 and not names & set(NO_DECAY_NAMES)

    return jax.tree_util.tree_map_with_path(takes_decay, params)


def make_optimizer(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 1e-4,
    grad_clip_norm: float | None = None,
) -> optax.GradientTransformation:
    """SGD(+Nesterov) with masked, coupled weight decay and optional global-norm clipping.

    Weight decay is added to the gradient before momentum, as in the paper's (PyTorch/Caffe2)
    SGD; clipping applies to the raw gradient, before decay.
    """
    parts = []
    if grad_clip_norm:
        parts.append(optax.clip_by_global_norm(float(grad_clip_norm)))
    if weight_decay:
        parts.append(optax.add_decayed_weights(float(weight_decay), mask=decay_mask))
    parts.append(optax.sgd(learning_rate, momentum=momentum or None, nesterov=bool(nesterov and momentum)))
    return optax.chain(*parts)


def make_adamw(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.05,
    grad_clip_norm: float | None = None,
) -> optax.GradientTransformation:
    """AdamW: decoupled weight decay (masked like SGD's) and optional global-norm clipping first."""
    parts = []
    if grad_clip_norm:
        parts.append(optax.clip_by_global_norm(float(grad_clip_norm)))
    parts.append(optax.adamw(learning_rate, b1=float(b1), b2=float(b2), eps=float(eps),
                             weight_decay=float(weight_decay), mask=decay_mask))
    return optax.chain(*parts)


class EmaState(NamedTuple):
    """The wrapped optimiser's state and the moving average of the weights after each update."""

    inner: optax.OptState
    ema: Any


def with_weight_ema(tx: optax.GradientTransformation, decay: float) -> optax.GradientTransformation:
    """`tx`, whose state also tracks ema <- decay * ema + (1 - decay) * params after each update.

    The average starts at the initial weights and lives in the optimiser state, so it is
    checkpointed, restored and sharded with it (same shapes as the parameters).
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema_decay must lie in (0, 1), got {decay}")

    def init(params: Any) -> EmaState:
        return EmaState(tx.init(params), jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), params))

    def update(grads: Any, state: EmaState, params: Any = None) -> tuple[Any, EmaState]:
        updates, inner = tx.update(grads, state.inner, params)
        new_params = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p.astype(jnp.float32), state.ema, new_params)
        return updates, EmaState(inner, ema)

    return optax.GradientTransformation(init, update)


def ema_params(opt_state: Any) -> Any | None:
    """The moving average of the weights kept by `with_weight_ema`, or None without one."""
    return opt_state.ema if isinstance(opt_state, EmaState) else None


def optimizer_from_config(
    optim: Any, global_batch_size: int, total_steps: int, warmup_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Builds (optimizer, lr schedule) from a config's `optim` group (`optim.name`: sgd | adamw)."""
    peak = peak_learning_rate(optim.base_lr, global_batch_size, optim.base_batch_size)
    schedule = learning_rate_schedule(
        peak,
        total_steps,
        warmup_steps,
        schedule=optim.schedule,
        decay_at=tuple(optim.decay_at),
        decay_factor=optim.decay_factor,
        final_lr_fraction=optim.final_lr_fraction,
    )
    if optim.name == "sgd":
        tx = make_optimizer(
            schedule,
            momentum=optim.momentum,
            nesterov=optim.nesterov,
            weight_decay=optim.weight_decay,
            grad_clip_norm=optim.grad_clip_norm,
        )
    elif optim.name == "adamw":
        tx = make_adamw(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps, weight_decay=optim.weight_decay,
                        grad_clip_norm=optim.grad_clip_norm)
    else:
        raise ValueError(f"optim.name must be sgd or adamw, got {optim.name!r}")
    if optim.ema_decay:
        tx = with_weight_ema(tx, float(optim.ema_decay))
    return tx, schedule
