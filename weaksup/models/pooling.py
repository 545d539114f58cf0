"""Max pooling on the convolution path the model uses.

On the "onednn" path the pool runs in the same native library as the convolutions
(`onednn.max_pool`, bitwise equal to flax's, gradient included), because XLA:CPU's
max-pool gradient costs more than the convolutions it sits between; on every other path
it is flax's `nn.max_pool`.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from weaksup.models import onednn
from weaksup.models.grouped_conv import resolve_impl


def max_pool(x: jax.Array, window: int, stride: int, padding: int, impl: str) -> jax.Array:
    """Max over `window` x `window` windows of NHWC `x`, `stride` apart, `padding` of -inf
    on each side; `impl` is the model's conv_impl."""
    if resolve_impl(impl, x.dtype) == "onednn":
        return onednn.max_pool(x, window, stride, padding)
    return nn.max_pool(x, (window, window), (stride, stride), ((padding, padding), (padding, padding)))
