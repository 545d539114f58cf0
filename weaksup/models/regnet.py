"""RegNetY (Radosavovic et al. 2020) in Flax linen, as SWAG publishes it.

Follows SWAG's `models/regnet.py` (itself ClassyVision's), which timm's regnety_160/320
and torchvision's regnet_y_16gf/32gf/128gf reproduce parameter for parameter:

* simple stem: 3x3 stride-2 convolution to 32 channels, BN, ReLU;
* stages of Y blocks: 1x1 conv -> 3x3 grouped conv (stride 2 in a stage's first block) ->
  squeeze-excitation -> 1x1 conv, each conv followed by BN (ReLU after the first two);
  the residual adds the input, or a 1x1 strided conv + BN of it where the shape changes,
  then ReLU. Bottleneck ratio 1, so every conv of a block has the stage width;
* squeeze-excitation: global average pool, 1x1 conv with bias to 0.25 x the width of the
  BLOCK INPUT (not of the 3x3 output, as SE-ResNeXt would), ReLU, 1x1 conv with bias back,
  sigmoid, channel-wise scale;
* widths from the quantised linear rule: u_j = w0 + wa * j for j < depth, snapped to
  w0 * wm^round(log(u_j / w0) / log(wm)) and rounded to a multiple of 8; consecutive equal
  widths form a stage; a stage's group width is min(group width, stage width) and its
  width is rounded to a multiple of that group width;
* head: global average pool and a Dense layer (normal(0.01) kernel, zero bias).

Initialisation is SWAG's: convolutions normal(0, sqrt(2 / fan_out)), BN scale one and
bias zero everywhere (no zero-init of the last BN), SE biases PyTorch's default
uniform(+-1/sqrt(fan_in)). Stochastic depth (`drop_path`, off by default as in SWAG) is
timm's: the residual branch of block i of n is dropped per example with probability
drop_path * i / (n - 1), using the "dropout" rng collection, in training only.

Convolutions reuse `weaksup.models.resnet.Conv`, whose `conv_impl` picks the fast
grouped-convolution path on XLA:CPU. Kernels are laid out as
`nn.Conv(feature_group_count=g)`: (kh, kw, Cin / g, Cout); the SE 1x1 convolutions act
on the pooled (B, C) vector as Dense layers, kernel (Cin, Cout) = the torch weight
(Cout, Cin, 1, 1) squeezed and transposed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from weaksup.models.norm import BatchNorm
from weaksup.models.resnet import Conv, ResNet

Dtype = Any

# Stem name -> (stride, description). "imagenet" is SWAG's SimpleStemIN; "small" keeps
# the resolution of 32 px pictures for the CPU variant.
REGNET_STEMS: dict[str, tuple[int, str]] = {
    "imagenet": (2, "3x3/2 conv"),
    "small": (1, "3x3/1 conv"),
}

WIDTH_QUANTUM = 8


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One RegNet stage: `depth` blocks of `width` channels in groups of `group_width`."""

    width: int
    depth: int
    group_width: int
    stride: int = 2

    @property
    def groups(self) -> int:
        """Groups of the 3x3 convolution."""
        return self.width // self.group_width


@dataclasses.dataclass(frozen=True)
class RegNetConfig:
    """Architecture of one RegNet(Y), by the parameters of its quantised linear rule.

    Attributes:
      depth: total number of blocks (d).
      w0: initial width (a multiple of 8).
      wa: width slope.
      wm: width multiplier between stages (> 1).
      group_width: channels per group of the 3x3 convolutions.
      bottleneck_ratio: inner width over block width (1 for every published RegNetY).
      se_ratio: squeeze-excitation width over the block INPUT width; 0 disables SE
        (RegNetX).
      stem: "imagenet" (3x3/2 conv) or "small" (3x3/1 conv, for 32 px pictures).
      stem_width: stem output channels.
      drop_path: stochastic-depth rate of the last block (linear from 0 over blocks).
      image_size: nominal input resolution (the summary's default; any size runs).
    """

    depth: int
    w0: int
    wa: float
    wm: float
    group_width: int
    bottleneck_ratio: float = 1.0
    se_ratio: float = 0.25
    stem: str = "imagenet"
    stem_width: int = 32
    drop_path: float = 0.0
    image_size: int = 224

    def __post_init__(self) -> None:
        if not (self.wa >= 0 and self.w0 > 0 and self.wm > 1 and self.w0 % WIDTH_QUANTUM == 0):
            raise ValueError(
                f"invalid RegNet rule: need wa >= 0, wm > 1 and w0 a positive multiple of "
                f"{WIDTH_QUANTUM}; got w0={self.w0}, wa={self.wa}, wm={self.wm}"
            )
        if self.depth < 1 or self.group_width < 1:
            raise ValueError(f"depth and group_width must be positive, got {self.depth}, {self.group_width}")
        if self.stem not in REGNET_STEMS:
            raise ValueError(f"stem must be one of {', '.join(map(repr, REGNET_STEMS))}, got {self.stem!r}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")

    def stages(self) -> tuple[StageSpec, ...]:
        """Per-stage width, depth and group width, exactly as SWAG's RegNetParams derives them."""
        # float64 numpy on purpose: the rounding must agree bit for bit with SWAG/timm.
        widths_cont = np.arange(self.depth) * self.wa + self.w0
        exps = np.round(np.log(widths_cont / self.w0) / np.log(self.wm))
        block_widths = np.round(np.divide(self.w0 * np.power(self.wm, exps), WIDTH_QUANTUM)) * WIDTH_QUANTUM
        runs: list[list[int]] = []
        for w in block_widths.astype(int).tolist():
            if runs and runs[-1][0] == w:
                runs[-1][1] += 1
            else:
                runs.append([w, 1])
        stages = []
        for width, depth in runs:
            inner = int(width * self.bottleneck_ratio)
            group = min(self.group_width, inner)
            inner = int(round(inner / group) * group)
            stages.append(StageSpec(int(inner / self.bottleneck_ratio), depth, group))
        return tuple(stages)

    @property
    def feature_dim(self) -> int:
        """Channels of the pooled penultimate features."""
        return self.stages()[-1].width


def _torch_default_bias(key: jax.Array, shape: tuple[int, ...], dtype: Dtype, fan_in: int) -> jax.Array:
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class SqueezeExcitation(nn.Module):
    """Channel gating: sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2) * x."""

    hidden: int
    dtype: Dtype
    param_dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        # The mean is taken in float32 so that bf16 compute does not lose the pooled value.
        s = jnp.mean(x.astype(jnp.float32), axis=(1, 2)).astype(self.dtype)
        # SWAG inits these 1x1 convs like every conv (normal, fan_out) and leaves their
        # biases at PyTorch's default.
        kinit = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
        s = nn.Dense(
            self.hidden, dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=kinit,
            bias_init=lambda k, sh, dt=jnp.float32: _torch_default_bias(k, sh, dt, channels),
            name="reduce",
        )(s)
        s = nn.relu(s)
        s = nn.Dense(
            channels, dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=kinit,
            bias_init=lambda k, sh, dt=jnp.float32: _torch_default_bias(k, sh, dt, self.hidden),
            name="expand",
        )(s)
        return x * nn.sigmoid(s)[:, None, None, :].astype(x.dtype)


class YBlock(nn.Module):
    """Residual bottleneck with squeeze-excitation (ResBottleneckBlock of SWAG)."""

    width: int
    strides: int
    group_width: int
    bottleneck_ratio: float
    se_ratio: float
    drop_path: float
    dtype: Dtype
    param_dtype: Dtype
    bn_groups: int
    conv_impl: str

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = lambda f, k, s=1, g=1, name=None: Conv(  # noqa: E731
            f, (k, k), s, g, self.conv_impl, self.dtype, self.param_dtype, name=name
        )
        norm = lambda name: BatchNorm(  # noqa: E731
            groups=self.bn_groups, dtype=self.dtype, param_dtype=self.param_dtype, impl=self.conv_impl, name=name
        )
        width_in = x.shape[-1]
        inner = round(self.width * self.bottleneck_ratio)
        y = norm("a_bn")(conv(inner, 1, name="a")(x), train, relu=True)
        y = norm("b_bn")(conv(inner, 3, self.strides, inner // self.group_width, name="b")(y), train, relu=True)
        if self.se_ratio:
            y = SqueezeExcitation(round(self.se_ratio * width_in), self.dtype, self.param_dtype, name="se")(y)
        y = norm("c_bn")(conv(self.width, 1, name="c")(y), train)
        # Per-example stochastic depth on the residual branch (timm's DropPath).
        y = nn.Dropout(self.drop_path, broadcast_dims=(1, 2, 3))(y, deterministic=not train)
        if self.strides != 1 or width_in != self.width:
            x = norm("proj_bn")(conv(self.width, 1, self.strides, name="proj")(x), train)
        return nn.relu(y + x.astype(y.dtype))


class RegNetTrunk(nn.Module):
    """Stem and Y-block stages; returns globally average-pooled features (B, D) in float32."""

    config: RegNetConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    bn_groups: int = 0
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        cfg = self.config
        x = images.astype(self.dtype)
        stride, _ = REGNET_STEMS[cfg.stem]
        x = Conv(cfg.stem_width, (3, 3), stride, 1, self.conv_impl, self.dtype, self.param_dtype, name="stem_conv")(x)
        x = BatchNorm(groups=self.bn_groups, dtype=self.dtype, param_dtype=self.param_dtype, impl=self.conv_impl,
                      name="stem_bn")(x, train, relu=True)
        stages = cfg.stages()
        total = sum(s.depth for s in stages)
        index = 0
        for i, stage in enumerate(stages):
            for j in range(stage.depth):
                x = YBlock(
                    width=stage.width,
                    strides=stage.stride if j == 0 else 1,
                    group_width=stage.group_width,
                    bottleneck_ratio=cfg.bottleneck_ratio,
                    se_ratio=cfg.se_ratio,
                    drop_path=cfg.drop_path * index / max(total - 1, 1),
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    bn_groups=self.bn_groups,
                    conv_impl=self.conv_impl,
                    name=f"stage{i + 1}_block{j + 1}",
                )(x, train)
                index += 1
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


class RegNet(ResNet):
    """Classifier: `trunk` (pooled penultimate features) and a Dense `head` (float32 logits).

    ResNet's classifier with the RegNetY trunk: the head's kernel starts normal(0.01)
    with a zero bias, as SWAG's FullyConnectedHead.
    """

    config: RegNetConfig

    def make_trunk(self) -> nn.Module:
        """The RegNetY trunk."""
        return RegNetTrunk(self.config, self.dtype, self.param_dtype, self.bn_groups, self.conv_impl)
