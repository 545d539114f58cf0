"""Model zoo: ResNet/ResNeXt, ViT and RegNetY classifiers by name.

`get_model(name, num_classes, **overrides)` returns a flax.linen Module with submodules
`trunk` (pooled penultimate features) and `head` (Dense). Overrides: dtype (compute),
param_dtype, and
* ResNet/ResNeXt: bn_groups (0 = global batch statistics; G = statistics per batch
  group), conv_impl ("xla" | "auto" | "onednn" | "native" | "fast"; see
  weaksup.models.grouped_conv), and any ResNetConfig field
  (stage_sizes, planes, groups, width_per_group, expansion, stem, stem_width);
* RegNetY (SWAG's regnety_16gf/32gf/128gf): bn_groups, conv_impl and any RegNetConfig
  field (depth, w0, wa, wm, group_width, se_ratio, stem, stem_width, drop_path, ...);
* ViT (SWAG's vit_b16/l16/h14): any ViTConfig field (posemb, drop_path, dropout,
  attention_dropout, remat, patch_size, num_layers, width, mlp_dim, num_heads, ...).
  ViTs have no batch norm, hence no batch_stats collection and no bn_groups.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from weaksup.models.grouped_conv import IMPLS, check_onednn
from weaksup.models.regnet import RegNet, RegNetConfig
from weaksup.models.resnet import ResNet, ResNetConfig
from weaksup.models.vit import ViT, ViTConfig

ModelConfig = ResNetConfig | ViTConfig | RegNetConfig

_R50 = (3, 4, 6, 3)
_R101 = (3, 4, 23, 3)

_MODELS: dict[str, ModelConfig] = {
    "resnet50": ResNetConfig(stage_sizes=_R50),
    "resnet101": ResNetConfig(stage_sizes=_R101),
    **{
        f"resnext101_32x{d}d": ResNetConfig(stage_sizes=_R101, groups=32, width_per_group=d)
        for d in (4, 8, 16, 32, 48)
    },
    # CPU variants for 32-64 px images: a 3x3 stem and a 3x3/2 max-pool, then three stages
    # of two bottlenecks at 1/2, 1/4 and 1/8 of the input side. resnext_tiny is a
    # scaled-down 32x8d: the 3x3 width equals the block output (64/128/256), split into 8
    # groups of 8/16/32 channels. In short EmojiGram runs (500 steps of 128, clean concept
    # labels; linear probe on the held-out artist) this layout reached 31.0% against 18.6%
    # for one bottleneck a stage without the pool, and trains about twice as fast.
    # BN scales all start at one (see weaksup.models.resnet).
    "resnet_tiny": ResNetConfig(
        stage_sizes=(2, 2, 2), planes=(16, 32, 64), stem="small_pool", stem_width=32,
        zero_init_residual=False,
    ),
    "resnext_tiny": ResNetConfig(
        stage_sizes=(2, 2, 2), planes=(16, 32, 64), groups=8, width_per_group=32,
        stem="small_pool", stem_width=32, zero_init_residual=False,
    ),
    "resnet_small": ResNetConfig(
        stage_sizes=(2, 2, 2, 2), planes=(16, 32, 64, 128), stem="small", stem_width=32,
        zero_init_residual=False,
    ),
    "resnext_small": ResNetConfig(
        stage_sizes=(2, 2, 2, 2), planes=(16, 32, 64, 128), groups=8, width_per_group=32,
        stem="small", stem_width=32, zero_init_residual=False,
    ),
    # SWAG's trunks (weaksup.models.vit / weaksup.models.regnet), exactly as published.
    "vit_b16": ViTConfig(patch_size=16, num_layers=12, width=768, mlp_dim=3072, num_heads=12),
    "vit_l16": ViTConfig(patch_size=16, num_layers=24, width=1024, mlp_dim=4096, num_heads=16),
    "vit_h14": ViTConfig(patch_size=14, num_layers=32, width=1280, mlp_dim=5120, num_heads=16),
    "regnety_16gf": RegNetConfig(depth=18, w0=200, wa=106.23, wm=2.48, group_width=112),
    "regnety_32gf": RegNetConfig(depth=20, w0=232, wa=115.89, wm=2.53, group_width=232),
    "regnety_128gf": RegNetConfig(depth=27, w0=456, wa=160.83, wm=2.52, group_width=264),
    # CPU variants for 32 px pictures. vit_tiny: DeiT-Ti's width (192, 3 heads of 64,
    # MLP 768) at half its depth, on 4x4 patches: an 8x8 grid + class token = 65 tokens,
    # 2.7M parameters. regnety_tiny: the quantised rule with depth 6, w0 32, wa 24, wm 2
    # gives stages of 1, 2 and 3 Y blocks of 32, 64 and 128 channels (groups of 16) after
    # a 3x3/1 stem of 32 channels, i.e. at 16, 8 and 4 px; 0.23M parameters.
    "vit_tiny": ViTConfig(patch_size=4, num_layers=6, width=192, mlp_dim=768, num_heads=3, image_size=32),
    "regnety_tiny": RegNetConfig(
        depth=6, w0=32, wa=24.0, wm=2.0, group_width=16, stem="small", stem_width=32, image_size=32,
    ),
}

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
_MODULE_FIELDS = ("dtype", "param_dtype", "bn_groups", "conv_impl")
# Module fields (not architecture) that each family's classifier takes as overrides.
_FAMILY_MODULE_FIELDS: dict[type, tuple[str, ...]] = {
    ResNetConfig: _MODULE_FIELDS,
    RegNetConfig: ("dtype", "param_dtype", "bn_groups", "conv_impl"),
    ViTConfig: ("dtype", "param_dtype"),
}
_FAMILY_MODULES: dict[type, type] = {ResNetConfig: ResNet, RegNetConfig: RegNet, ViTConfig: ViT}


def list_models() -> list[str]:
    """Names accepted by get_model."""
    return list(_MODELS)


def _as_dtype(value: Any) -> Any:
    if isinstance(value, str):
        if value not in _DTYPES:
            raise ValueError(f"unknown dtype {value!r}; expected one of {sorted(_DTYPES)}")
        return _DTYPES[value]
    return value


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The architecture of model `name` (its family's config dataclass), fields overridden."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(_MODELS)}")
    fields = {f.name for f in dataclasses.fields(type(_MODELS[name]))}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown architecture overrides for {name}: {sorted(unknown)}")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(_MODELS[name], **overrides)


def get_model(name: str, num_classes: int, **overrides: Any) -> ResNet | ViT | RegNet:
    """Build classifier `name` with a `num_classes`-way head.

    Overrides: dtype / param_dtype (dtype or "float32" | "bfloat16" | "float16"); for
    ResNet and RegNet also bn_groups (int) and conv_impl (grouped_conv.IMPLS);
    and the fields of the model's config dataclass (ResNetConfig, RegNetConfig, ViTConfig).
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(_MODELS)}")
    family = type(_MODELS[name])
    foreign = sorted(set(overrides) & (set(_MODULE_FIELDS) - set(_FAMILY_MODULE_FIELDS[family])))
    if foreign:
        raise ValueError(
            f"unknown architecture overrides for {name}: {foreign} "
            "(a ViT has no batch norm and no grouped convolutions)"
        )
    module_kw = {k: overrides.pop(k) for k in _FAMILY_MODULE_FIELDS[family] if k in overrides}
    for k in ("dtype", "param_dtype"):
        if k in module_kw:
            module_kw[k] = _as_dtype(module_kw[k])
    if "conv_impl" in module_kw and module_kw["conv_impl"] not in IMPLS:
        raise ValueError(f"conv_impl must be one of {', '.join(IMPLS)}, got {module_kw['conv_impl']!r}")
    if module_kw.get("conv_impl") == "onednn":
        check_onednn(module_kw.get("dtype", jnp.float32))
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    config = model_config(name, **overrides)
    return _FAMILY_MODULES[family](config=config, num_classes=int(num_classes), **module_kw)


__all__ = [
    "RegNet", "RegNetConfig", "ResNet", "ResNetConfig", "ViT", "ViTConfig",
    "get_model", "list_models", "model_config",
]
