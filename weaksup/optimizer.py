"""The paper's optimiser: SGD with Nesterov momentum, weight decay, linear-scaling LR.

Mahajan et al. train with synchronous SGD, Nesterov momentum 0.9, weight decay 1e-4
(not applied to batch-norm or bias parameters), a learning rate of 0.1 per 256 images
(the linear scaling rule of Goyal et al.) reached by a linear warm-up, then divided by
10 at fixed points. A cosine decay is offered as the common alternative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    """Linear warm-up from 0 to `peak_lr`, then "step", "cosine" or "constant".

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
    elif schedule == "constant":
        main = optax.constant_schedule(peak_lr)
    else:
        raise ValueError(f"unknown schedule {schedule!r} (step, cosine, constant)")
    if warmup_steps == 0:
        return main
    warm = optax.linear_schedule(0.0, peak_lr, warmup_steps)
    return optax.join_schedules([warm, main], [warmup_steps])


def decay_mask(params: Any) -> Any:
    """True for parameters that take weight decay: kernels, not BN scales/offsets or biases.

    Every batch-norm parameter and bias is one-dimensional; every kernel has ndim >= 2.
    """
    return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


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


def optimizer_from_config(
    optim: Any, global_batch_size: int, total_steps: int, warmup_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Builds (optimizer, lr schedule) from a config's `optim` group."""
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
    tx = make_optimizer(
        schedule,
        momentum=optim.momentum,
        nesterov=optim.nesterov,
        weight_decay=optim.weight_decay,
        grad_clip_norm=optim.grad_clip_norm,
    )
    return tx, schedule
