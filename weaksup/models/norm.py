"""Batch normalisation with global or per-group batch statistics.

The paper trains with per-GPU batch norm: each device normalises with the statistics of
its own slice of the batch. Under `jit` with a data-sharded batch, a mean over the batch
axis is already global (synchronised BN), so per-device statistics are expressed
explicitly: `groups=G` reshapes the batch (B, ...) to (G, B/G, ...) and normalises each
group with its own statistics. `groups=0` (or 1) uses the statistics of the whole batch.
Statistics are always computed and kept in float32, whatever the compute dtype.

The ReLU and residual add that follow a batch norm in a residual network are part of the
call (`relu=`, `residual=`), so a path that fuses them can: on the "onednn" path
(`impl`, the model's conv_impl) training-mode batch norm and its ReLU run in oneDNN, whose
bfloat16 kernels are several times faster than XLA:CPU's generic loops for them.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from weaksup.models import onednn
from weaksup.models.grouped_conv import resolve_impl

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
      impl: the model's conv_impl; where it resolves to "onednn", training-mode batch norm
        (and its ReLU) runs in oneDNN.
    """

    momentum: float = 0.9
    epsilon: float = 1e-5
    groups: int = 0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    scale_init: nn.initializers.Initializer = nn.initializers.ones
    impl: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, *, relu: bool = False,
                 residual: jax.Array | None = None) -> jax.Array:
        """Normalise `x` (B, ..., C), then add `residual` and apply a ReLU where asked:
        `relu(bn(x) + residual)`. In training, update the running statistics."""
        features = x.shape[-1]
        scale = self.param("scale", self.scale_init, (features,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))

        groups = max(self.groups, 1)
        if train and x.shape[0] % groups:
            raise ValueError(f"BatchNorm: batch size {x.shape[0]} is not divisible by bn_groups={groups}")
        # oneDNN 3 fuses the ReLU but not the residual add on CPU: with a residual, the add
        # and the ReLU stay one XLA fusion after it.
        fuse_relu = relu and residual is None
        if not train:
            y = self._affine(x.astype(jnp.float32), ra_mean.value, ra_var.value, scale, bias)
        elif self._onednn(x.shape, fuse_relu, groups):
            y, mean, var = onednn.batch_norm(x.astype(self.dtype), scale, bias, epsilon=self.epsilon,
                                             groups=groups, relu=fuse_relu)
            self._update(ra_mean, ra_var, mean, var, axes=(0,))
            if fuse_relu:
                return y
        else:
            xg = x.astype(jnp.float32).reshape((groups, x.shape[0] // groups) + x.shape[1:])
            axes = tuple(range(1, xg.ndim - 1))
            # One pass, E[x^2] - E[x]^2 in float32 (XLA fuses both reductions);
            # clipping guards the rare negative round-off.
            mean = jnp.mean(xg, axis=axes, keepdims=True)
            var = jnp.maximum(jnp.mean(jnp.square(xg), axis=axes, keepdims=True) - jnp.square(mean), 0.0)
            self._update(ra_mean, ra_var, mean, var, axes=(0,) + axes)
            y = self._affine(xg, mean, var, scale, bias).reshape(x.shape)
        if residual is not None:
            y = y + residual.astype(y.dtype)
        return nn.relu(y) if relu else y

    def _onednn(self, shape: tuple[int, ...], relu: bool, groups: int) -> bool:
        """Whether training-mode batch norm of `shape` runs in oneDNN (its JIT kernels) here."""
        return (len(shape) == 4 and resolve_impl(self.impl, self.dtype) == "onednn"
                and onednn.batch_norm_is_fast(shape, self.dtype, relu=relu, groups=groups))

    def _update(self, ra_mean, ra_var, mean, var, axes):
        """Moves the running averages towards the batch statistics (averaged over `axes`)."""
        if not self.is_initializing():
            m = self.momentum
            ra_mean.value = m * ra_mean.value + (1 - m) * jnp.mean(mean, axis=axes)
            ra_var.value = m * ra_var.value + (1 - m) * jnp.mean(var, axis=axes)

    def _affine(self, x, mean, var, scale, bias):
        # Fold the statistics into one per-channel multiply-add: a single pass over x.
        mul = jax.lax.rsqrt(var + self.epsilon) * scale.astype(jnp.float32)
        return (x * mul + (bias.astype(jnp.float32) - mean * mul)).astype(self.dtype)
