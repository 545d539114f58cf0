"""ResNet / ResNeXt (torchvision and WSL architecture) in Flax linen.

Bottleneck blocks with the stride on the 3x3 convolution; inner width
`int(planes * width_per_group / 64) * groups`; expansion 4; projection shortcut (1x1 conv
with stride + BN) where the shape changes. The last BN scale of each residual branch
starts at zero (`zero_init_residual`, Goyal et al.'s recipe that the paper trains with);
the small CPU variants start it at one, as torchvision's default does, because zero
measured much slower to learn in short runs (a 500-step EmojiGram run: linear probe
13.6% against 22.3%).
The same code builds the paper's ResNeXt-101 32xCd and small CPU variants for 32-64 px
images: a 3x3 stride-1 stem without max-pool ("small") or with a 3x3/2 max-pool
("small_pool", a quarter of the compute and twice the receptive field), any depth,
width and groups.

Images arrive as float32 normalised NHWC. Compute runs in `dtype` (e.g. bfloat16) with
`param_dtype` parameters; BN statistics and logits stay float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from weaksup.models.grouped_conv import grouped_conv
from weaksup.models.norm import BatchNorm
from weaksup.models.pooling import max_pool

Dtype = Any

# Stem name -> (kernel, stride, 3x3/2 max-pool after it, description).
STEMS: dict[str, tuple[int, int, bool, str]] = {
    "imagenet": (7, 2, True, "7x7/2 conv + 3x3/2 max-pool"),
    "small": (3, 1, False, "3x3/1 conv, no pool"),
    "small_pool": (3, 1, True, "3x3/1 conv + 3x3/2 max-pool"),
}


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
    """Architecture of one ResNet/ResNeXt.

    Attributes:
      stage_sizes: bottleneck blocks per stage.
      planes: base planes per stage (block output is planes * expansion).
      groups: groups of the 3x3 convolution (ResNeXt cardinality; 1 for ResNet).
      width_per_group: channels per group at planes=64 (the "d" in 32x8d).
      expansion: output channels over planes.
      stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool), "small" (3x3/1 conv, no pool) or
        "small_pool" (3x3/1 conv + 3x3/2 max-pool).
      stem_width: stem output channels.
      zero_init_residual: start the last BN scale of each residual branch at zero.
    """

    stage_sizes: tuple[int, ...]
    planes: tuple[int, ...] = (64, 128, 256, 512)
    groups: int = 1
    width_per_group: int = 64
    expansion: int = 4
    stem: str = "imagenet"
    stem_width: int = 64
    zero_init_residual: bool = True

    def __post_init__(self) -> None:
        if len(self.stage_sizes) != len(self.planes):
            raise ValueError(f"stage_sizes {self.stage_sizes} and planes {self.planes} differ in length")
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(map(repr, STEMS))}, got {self.stem!r}")

    def width(self, stage: int) -> int:
        """Inner (3x3) width of the bottlenecks of `stage`."""
        return int(self.planes[stage] * (self.width_per_group / 64.0)) * self.groups

    @property
    def feature_dim(self) -> int:
        """Channels of the pooled penultimate features."""
        return self.planes[-1] * self.expansion


class Conv(nn.Module):
    """Bias-free NHWC convolution whose kernel matches nn.Conv(feature_group_count=groups).

    `conv_impl` picks the path (weaksup.models.grouped_conv.IMPLS): "xla" (default, today's
    numerics), "onednn" (CPU custom calls), "auto" (oneDNN on CPU where built, else XLA),
    "fast" or "native". Parameters are the same whichever path runs.
    """

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1
    groups: int = 1
    conv_impl: str = "xla"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Convolve with torch-style padding (k // 2 on each side)."""
        kh, kw = self.kernel_size
        cin = x.shape[-1]
        if cin % self.groups:
            raise ValueError(f"Conv: {cin} input channels not divisible by {self.groups} groups")
        # Kaiming normal, fan_out, as torchvision's ResNet.
        init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
        kernel = self.param("kernel", init, (kh, kw, cin // self.groups, self.features), self.param_dtype)
        return grouped_conv(
            x.astype(self.dtype),
            kernel.astype(self.dtype),
            groups=self.groups,
            strides=(self.strides, self.strides),
            padding=((kh // 2, kh // 2), (kw // 2, kw // 2)),
            impl=self.conv_impl,
        )


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (grouped, strided) -> 1x1 residual block."""

    planes: int
    width: int
    strides: int
    groups: int
    expansion: int
    dtype: Dtype
    param_dtype: Dtype
    bn_groups: int
    conv_impl: str
    zero_init: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = lambda f, k, s=1, g=1, name=None: Conv(  # noqa: E731
            f, (k, k), s, g, self.conv_impl, self.dtype, self.param_dtype, name=name
        )
        norm = lambda name, zero=False: BatchNorm(  # noqa: E731
            groups=self.bn_groups,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            scale_init=nn.initializers.zeros if zero else nn.initializers.ones,
            impl=self.conv_impl,
            name=name,
        )
        out_ch = self.planes * self.expansion
        y = norm("bn1")(conv(self.width, 1, name="conv1")(x), train, relu=True)
        y = norm("bn2")(conv(self.width, 3, self.strides, self.groups, name="conv2")(y), train, relu=True)
        if self.strides != 1 or x.shape[-1] != out_ch:
            x = norm("downsample_bn")(conv(out_ch, 1, self.strides, name="downsample_conv")(x), train)
        return norm("bn3", zero=self.zero_init)(conv(out_ch, 1, name="conv3")(y), train, relu=True, residual=x)


class Trunk(nn.Module):
    """Stem and residual stages; returns globally average-pooled features (B, D) in float32."""

    config: ResNetConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    bn_groups: int = 0
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        cfg = self.config
        x = images.astype(self.dtype)
        k, s, pool, _ = STEMS[cfg.stem]
        x = Conv(cfg.stem_width, (k, k), s, 1, self.conv_impl, self.dtype, self.param_dtype, name="stem_conv")(x)
        x = BatchNorm(groups=self.bn_groups, dtype=self.dtype, param_dtype=self.param_dtype, impl=self.conv_impl,
                      name="stem_bn")(x, train, relu=True)
        if pool:
            x = max_pool(x, 3, 2, 1, self.conv_impl)
        for i, blocks in enumerate(cfg.stage_sizes):
            for j in range(blocks):
                x = Bottleneck(
                    planes=cfg.planes[i],
                    width=cfg.width(i),
                    strides=2 if (i > 0 and j == 0) else 1,
                    groups=cfg.groups,
                    expansion=cfg.expansion,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    bn_groups=self.bn_groups,
                    conv_impl=self.conv_impl,
                    zero_init=cfg.zero_init_residual,
                    name=f"stage{i + 1}_block{j + 1}",
                )(x, train)
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


class ResNet(nn.Module):
    """Classifier: `trunk` (pooled penultimate features) and a Dense `head` (float32 logits)."""

    config: ResNetConfig
    num_classes: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    bn_groups: int = 0
    conv_impl: str = "xla"

    def make_trunk(self) -> nn.Module:
        """The pooled-feature trunk; RegNet (same head, same fields) swaps in its own."""
        return Trunk(self.config, self.dtype, self.param_dtype, self.bn_groups, self.conv_impl)

    def setup(self) -> None:
        self.trunk = self.make_trunk()
        self.head = nn.Dense(
            self.num_classes,
            dtype=jnp.float32,
            param_dtype=self.param_dtype,
            kernel_init=nn.initializers.normal(0.01),
        )

    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Logits (B, num_classes) in float32."""
        return self.head(self.trunk(images, train))

    def features(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Pooled penultimate features (B, feature_dim) in float32."""
        return self.trunk(images, train)
