"""`python -m weaksup models [--summary] [--model NAME] [--num-classes N] [--image-size S]`.

Lists the model zoo. `--summary` adds parameters and multiply-adds per image, counted from
shapes alone (the 829M-parameter ResNeXt is never materialised); `--model NAME` prints one
model's architecture stage by stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from weaksup.models import get_model, list_models, model_config
from weaksup.models.counting import count_macs, count_params
from weaksup.models.resnet import STEMS


def default_image_size(name: str) -> int:
    """The resolution a model is meant for: 224 for ImageNet stems, 32 for small stems."""
    return 224 if model_config(name).stem == "imagenet" else 32


def architecture(name: str) -> list[str]:
    """Human-readable description of model `name`, one line per stage."""
    cfg = model_config(name)
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
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=None, help="default: 224 (ImageNet stem) / 32 (small stem)")
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
