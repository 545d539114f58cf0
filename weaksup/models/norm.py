"""Batch normalisation with global or per-group batch statistics.

The paper trains with per-GPU batch norm: each device normalises with the statistics of
its own slice of the batch. Under `jit` with a data-sharded batch, a mean over the batch
axis is already global (synchronised BN), so per-device statistics are expressed
explicitly: `groups=G` reshapes the batch (B, ...) to (G, B/G, ...) and normalises each
group with its own statistics. `groups=0` (or 1) uses the statistics of the whole batch.
Statistics are always computed and kept in float32, whatever the compute dtype.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


class BatchNorm(nn.Module):
    """BatchNorm over all axes but the last, with optional per-group batch statistics.

    Attributes:
      momentum: decay of the running averages (0.9 here is PyTorch's momentum 0.1).
      epsilon: added to the variance.
      groups: 0 or 1 for whole-batch statistics; G > 1 for statistics per batch group.
      dtype: output (compute) dtype; statistics are float32.
      param_dtype: dtype of scale and bias.
      scale_init: initialiser of the scale (zeros for the last BN of a residual branch).
    """

    momentum: float = 0.9
    epsilon: float = 1e-5
    groups: int = 0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    scale_init: nn.initializers.Initializer = nn.initializers.ones

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """Normalise `x` (B, ..., C); in training, update the running statistics."""
        features = x.shape[-1]
        scale = self.param("scale", self.scale_init, (features,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))

        xf = x.astype(jnp.float32)
        if not train:
            mean, var = ra_mean.value, ra_var.value
        else:
            groups = max(self.groups, 1)
            if x.shape[0] % groups:
                raise ValueError(
                    f"BatchNorm: batch size {x.shape[0]} is not divisible by bn_groups={groups}"
                )
            xg = xf.reshape((groups, x.shape[0] // groups) + x.shape[1:])
            axes = tuple(range(1, xg.ndim - 1))
            # One pass, E[x^2] - E[x]^2 in float32 (XLA fuses both reductions);
            # clipping guards the rare negative round-off.
            mean = jnp.mean(xg, axis=axes, keepdims=True)
            var = jnp.maximum(jnp.mean(jnp.square(xg), axis=axes, keepdims=True) - jnp.square(mean), 0.0)
            if not self.is_initializing():
                m = self.momentum
                ra_mean.value = m * ra_mean.value + (1 - m) * jnp.mean(mean, axis=(0,) + axes)
                ra_var.value = m * ra_var.value + (1 - m) * jnp.mean(var, axis=(0,) + axes)
            return self._affine(xg, mean, var, scale, bias).reshape(x.shape)
        return self._affine(xf, mean, var, scale, bias)

    def _affine(self, x, mean, var, scale, bias):
        # Fold the statistics into one per-channel multiply-add: a single pass over x.
        mul = jax.lax.rsqrt(var + self.epsilon) * scale.astype(jnp.float32)
        return (x * mul + (bias.astype(jnp.float32) - mean * mul)).astype(self.dtype)
