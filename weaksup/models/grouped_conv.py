"""Grouped convolution with a fast path for XLA:CPU.

XLA:CPU runs `feature_group_count > 1` far below dense convolution speed (jax issue 13800:
forward and input gradient take a slow generic loop, and the kernel gradient is expanded
through `batch_group_count`, ~100x slower). On CPU we therefore compute a grouped
convolution as a few dense convolutions over channel slices:

* a group with at least `SEPARATE_MIN_CHANNELS` input channels is its own dense
  convolution; thinner groups are gathered into "super-groups" of `m` consecutive groups
  with `MERGED_CHANNELS` input channels, because dense convolutions with very few
  channels are dominated by per-call overhead;
* inside a super-group the kernel is expanded to block-diagonal dense form (a masked
  tile, costing `m` times the useful FLOPs), which XLA runs at dense speed;
* super-groups are separate dense convolutions on channel slices (no FLOPs wasted);
* 1x1 convolutions (grouped or not) run as matmuls, which XLA:CPU runs faster than the
  equivalent convolution op.

All paths take the same kernel, shaped `(kh, kw, Cin / groups, Cout)` exactly as
`flax.linen.Conv(feature_group_count=groups)`, so parameters and checkpoints move between
backends unchanged. The paths (`impl`):

* "native": XLA's convolution op as is (`feature_group_count`);
* "fast": the dense/super-group/matmul decomposition above, on XLA;
* "xla": "fast" on CPU, "native" on GPU/TPU (the models' default);
* "onednn": oneDNN's kernels through XLA FFI custom calls (weaksup.models.onednn),
  CPU only, float32 or bfloat16, for the convolutions and also for the model's
  training-mode batch norm and stem max pool; faster than XLA:CPU on the small models' shapes
  (benchmarks/onednn.py, benchmarks/models.py) but not bitwise equal to it (float32
  within ~1e-6 relative), so not the default, which keeps checkpoints reproducible;
* "auto": the fastest available: "onednn" on CPU when it is built and has vectorised
  kernels for the dtype (and WEAKSUP_NO_ONEDNN is unset), "xla" otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from weaksup.models import onednn

IMPLS = ("auto", "xla", "native", "fast", "onednn")

# Measured on XLA:CPU (fwd+bwd, batch 128; benchmarks/models.py): 8 groups of 8 channels at
# 16x16 run at 58% of the dense useful-FLOP rate as eight 8-channel convolutions, 50% as
# four block-diagonal 16-channel ones; 32 groups of 4 channels (28x28) fastest as
# 16-channel super-groups (16.4 ms against 18.8 ms for 8 channels and 28.8 ms unmerged).
SEPARATE_MIN_CHANNELS = 8
MERGED_CHANNELS = 16

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")

Padding = str | Sequence[tuple[int, int]]


def resolve_impl(impl: str, dtype: jnp.dtype = jnp.float32) -> str:
    """The concrete path ("native" | "fast" | "onednn") that `impl` means here for `dtype`."""
    if impl not in IMPLS:
        raise ValueError(f"conv_impl must be one of {IMPLS}, got {impl!r}")
    cpu = jax.default_backend() == "cpu"
    if impl == "auto":
        impl = "onednn" if cpu and onednn.available(dtype) else "xla"
    if impl == "xla":
        return "fast" if cpu else "native"
    if impl == "onednn":
        check_onednn(dtype)
        if not cpu:
            raise ValueError(f"conv_impl 'onednn' runs on CPU only, not {jax.default_backend()}")
    return impl


def check_onednn(dtype: jnp.dtype) -> None:
    """Raise ValueError (saying why) when conv_impl "onednn" cannot run `dtype` here."""
    reason = onednn.unavailable_reason(dtype)
    if reason is not None:
        raise ValueError(f"conv_impl 'onednn' unavailable: {reason}")


def super_group_size(groups: int, in_per_group: int) -> int:
    """Groups merged into one dense convolution by the fast path (a divisor of `groups`)."""
    if in_per_group >= SEPARATE_MIN_CHANNELS:
        return 1
    for m in range(1, groups + 1):
        if groups % m == 0 and m * in_per_group >= MERGED_CHANNELS:
            return m
    return groups


def block_diagonal_kernel(kernel: jax.Array, groups: int) -> jax.Array:
    """Expand a grouped kernel (kh, kw, Cin/G, Cout) to a dense block-diagonal (kh, kw, Cin, Cout)."""
    kh, kw, cin_g, cout = kernel.shape
    cout_g = cout // groups
    block = jnp.arange(groups * cin_g)[:, None] // cin_g == jnp.arange(cout)[None, :] // cout_g
    return jnp.tile(kernel, (1, 1, groups, 1)) * block.astype(kernel.dtype)


def _is_zero_padding(padding: Padding) -> bool:
    if isinstance(padding, str):
        return padding.upper() == "VALID"
    return all(lo == 0 and hi == 0 for lo, hi in padding)


def _dense(
    x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: Padding, fast: bool = False
) -> jax.Array:
    if fast and kernel.shape[:2] == (1, 1) and _is_zero_padding(padding):
        # A 1x1 convolution is a matmul; XLA:CPU runs dot ~2x faster than the conv op.
        sh, sw = strides
        return jnp.einsum("bhwc,co->bhwo", x[:, ::sh, ::sw], kernel[0, 0])
    return lax.conv_general_dilated(
        x, kernel, tuple(strides), padding, dimension_numbers=_DIMENSION_NUMBERS
    )


def grouped_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    groups: int,
    strides: Sequence[int] = (1, 1),
    padding: Padding = "SAME",
    impl: str = "auto",
) -> jax.Array:
    """NHWC convolution of `x` with a grouped HWIO `kernel` of shape (kh, kw, Cin/groups, Cout)."""
    cin = x.shape[-1]
    kh, kw, cin_g, cout = kernel.shape
    if cin != cin_g * groups or cout % groups:
        raise ValueError(
            f"grouped_conv: input channels {cin} and kernel {kernel.shape} do not fit "
            f"{groups} groups"
        )
    impl = resolve_impl(impl, x.dtype)
    if impl == "onednn":
        return onednn.conv(x, kernel, groups=groups, strides=strides, padding=padding)
    if groups == 1:
        return _dense(x, kernel, strides, padding, fast=impl == "fast")
    if impl == "native":
        return lax.conv_general_dilated(
            x,
            kernel,
            tuple(strides),
            padding,
            dimension_numbers=_DIMENSION_NUMBERS,
            feature_group_count=groups,
        )
    m = super_group_size(groups, cin_g)
    n_super = groups // m
    cout_g = cout // groups
    outs = []
    for s in range(n_super):
        xs = x[..., s * m * cin_g : (s + 1) * m * cin_g]
        ks = kernel[..., s * m * cout_g : (s + 1) * m * cout_g]
        if m > 1:
            ks = block_diagonal_kernel(ks, m)
        outs.append(_dense(xs, ks, strides, padding, fast=True))
    return outs[0] if n_super == 1 else jnp.concatenate(outs, axis=-1)


@dataclasses.dataclass(frozen=True)
class ConvShape:
    """One convolution of a model: input (N, H, W, Cin), kernel (kh, kw, Cin/groups, Cout)."""

    x_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    groups: int
    strides: tuple[int, int]
    padding: tuple[tuple[int, int], ...]


def conv_shapes(model: nn.Module, image_shape: Sequence[int]) -> list[ConvShape]:
    """The distinct convolutions of `model` (its `Conv` modules) on images of `image_shape` (NHWC)."""
    seen: dict[ConvShape, None] = {}

    def record(next_fun, args, kwargs, context):
        module = context.module
        # weaksup.models.resnet.Conv, recognised by its fields (importing it here would be circular).
        if context.method_name == "__call__" and hasattr(module, "kernel_size") and hasattr(module, "groups"):
            x = args[0]
            kh, kw = module.kernel_size
            shape = ConvShape(
                tuple(x.shape), (kh, kw, x.shape[-1] // module.groups, module.features), module.groups,
                (module.strides, module.strides), ((kh // 2, kh // 2), (kw // 2, kw // 2)),
            )
            seen.setdefault(shape)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda x: model.init(jax.random.key(0), x), jax.ShapeDtypeStruct(tuple(image_shape), jnp.float32))
    return list(seen)
