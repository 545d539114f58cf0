"""`python -m weaksup models [--summary] [--model NAME] [--num-classes N] [--image-size S]`.

Lists the model zoo. `--summary` adds parameters and multiply-adds per image, counted from
shapes alone (the 829M-parameter ResNeXt is never materialised); `--model NAME` prints one
model's architecture stage by stage (ResNet/ResNeXt, RegNetY) or block by block (ViT).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from weaksup import validation
from weaksup.models import get_model, list_models, model_config
from weaksup.models.counting import count_macs, count_params
from weaksup.models.regnet import REGNET_STEMS, RegNetConfig
from weaksup.models.resnet import STEMS
from weaksup.models.vit import ViTConfig


def default_image_size(name: str) -> int:
    """The resolution a model is meant for: 224 for ImageNet stems, 32 for small stems;
    ViT and RegNetY configs carry theirs (224 published, 32 for the tiny variants)."""
    cfg = model_config(name)
    if isinstance(cfg, (ViTConfig, RegNetConfig)):
        return cfg.image_size
    return 224 if cfg.stem == "imagenet" else 32


def _vit_architecture(name: str, cfg: ViTConfig) -> list[str]:
    size = cfg.image_size
    grid = cfg.grid(size)
    pos = (1, grid * grid + (1 if cfg.posemb == "swag" else 0), cfg.width)
    regs = f"drop_path {cfg.drop_path}, dropout {cfg.dropout}, attention dropout {cfg.attention_dropout}"
    return [
        (
            f"{name}: ViT, patch {cfg.patch_size}x{cfg.patch_size} conv -> {cfg.width}; class token; "
            f"{cfg.posemb!r} position embedding {pos} at {size} px ({grid}x{grid} patches + class token)"
        ),
        (
            f"  {cfg.num_layers} x pre-LN encoder block: {cfg.num_heads} heads of {cfg.width // cfg.num_heads} "
            f"(fused qkv), MLP {cfg.width} -> {cfg.mlp_dim} -> {cfg.width} (GELU); {regs}"
            f"{'; remat' if cfg.remat else ''}"
        ),
        f"  final LayerNorm; class token {cfg.feature_dim} -> Dense head (zero init)",
    ]


def _regnet_architecture(name: str, cfg: RegNetConfig) -> list[str]:
    lines = [
        (
            f"{name}: RegNetY (d={cfg.depth}, w0={cfg.w0}, wa={cfg.wa}, wm={cfg.wm}, "
            f"group width {cfg.group_width}); stem {cfg.stem_width} ch ({REGNET_STEMS[cfg.stem][1]})"
        )
    ]
    width_in = cfg.stem_width
    for i, st in enumerate(cfg.stages()):
        # The SE width follows each block's INPUT width: the first block of a stage differs.
        first, rest = (round(cfg.se_ratio * w) for w in (width_in, st.width))
        if not cfg.se_ratio:
            se = "no SE"
        else:
            se = f"SE {first}" if st.depth == 1 or first == rest else f"SE {first}, then {rest}"
        lines.append(
            f"  stage{i + 1}: {st.depth} x Y block 1x1 {st.width} -> 3x3 {st.width} "
            f"({st.groups} groups of {st.group_width}), stride {st.stride} -> {se} -> 1x1 {st.width}"
        )
        width_in = st.width
    lines.append(f"  pooled features {cfg.feature_dim} -> Dense head")
    return lines


def architecture(name: str) -> list[str]:
    """Human-readable description of model `name`, one line per stage (or per part of a ViT)."""
    cfg = model_config(name)
    if isinstance(cfg, ViTConfig):
        return _vit_architecture(name, cfg)
    if isinstance(cfg, RegNetConfig):
        return _regnet_architecture(name, cfg)
    stem = STEMS[cfg.stem][3]
    lines = [f"{name}: stem {cfg.stem_width} ch ({stem}); groups {cfg.groups}"]
    for i, blocks in enumerate(cfg.stage_sizes):
        width = cfg.width(i)
        lines.append(
            f"  stage{i + 1}: {blocks} x bottleneck 1x1 {width} -> 3x3 {width} "
            f"({cfg.groups} groups of {width // cfg.groups}){', stride 2' if i else ''} "
            f"-> 1x1 {cfg.planes[i] * cfg.expansion}"
        )
    lines.append(f"  pooled features {cfg.feature_dim} -> Dense head")
    return lines


def summary_rows(names: list[str], num_classes: int, image_size: int | None) -> list[dict]:
    """Parameter and MAC counts for each model (at its default size unless given)."""
    rows = []
    for name in names:
        size = image_size or default_image_size(name)
        model = get_model(name, num_classes)
        rows.append(
            {
                "model": name,
                "image_size": size,
                "num_classes": num_classes,
                "params": count_params(model, size),
                "macs": count_macs(model, size),
                "feature_dim": model_config(name).feature_dim,
            }
        )
    return rows


def main(argv: list[str]) -> int:
    """Entry point of `python -m weaksup models`."""
    parser = argparse.ArgumentParser(prog="python -m weaksup models", description=__doc__.split("\n")[0])
    parser.add_argument("--summary", action="store_true", help="count parameters and multiply-adds")
    parser.add_argument("--model", action="append", help="only this model (repeatable); prints its architecture")
    parser.add_argument("--num-classes", type=validation.option_type("models.num_classes"), default=1000)
    parser.add_argument(
        "--image-size", type=validation.option_type("models.image_size"), default=None,
        help="default: 224 (ImageNet stem, published ViT/RegNetY) / 32 (small stem, tiny variants)",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    args = parser.parse_args(argv)

    names = args.model or list_models()
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {', '.join(list_models())}")
    if args.model and not args.json:
        for name in names:
            print("\n".join(architecture(name)))
            print(f"  config: {dataclasses.asdict(model_config(name))}")
    if not args.summary:
        if not args.model:
            print("\n".join(names))
        return 0
    rows = summary_rows(names, args.num_classes, args.image_size)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'model':<20} {'size':>5} {'params':>14} {'M params':>9} {'GMACs':>8} {'features':>8}")
    for r in rows:
        print(
            f"{r['model']:<20} {r['image_size']:>5} {r['params']:>14,} {r['params'] / 1e6:>9.2f} "
            f"{r['macs'] / 1e9:>8.3f} {r['feature_dim']:>8}"
        )
    return 0
