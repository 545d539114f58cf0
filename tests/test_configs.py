"""The paper's experiment configs: every variant builds and checks, and runlocal trains."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from weaksup import config as config_lib
from weaksup import models
from weaksup.config import ConfigError, load_config
from weaksup.input_pipeline import Target

REPO = Path(__file__).resolve().parent.parent
PRETRAIN = str(REPO / "configs" / "paper_pretrain.py")


def _keys(c, prefix=""):
    out = set()
    for k, v in c.items():
        out.add(prefix + k)
        if hasattr(v, "items") and k not in ("overrides", "evals"):
            out |= _keys(v, f"{prefix}{k}.")
    return out


@pytest.mark.parametrize("model,vocab", list(itertools.product(
    ["32x4d", "32x8d", "32x16d", "32x32d", "32x48d"], ["in1k", "8.5k", "17k"])))
def test_paper_pretrain_variants_follow_the_recipe(model, vocab):
    c = load_config(f"{PRETRAIN}:model={model},vocab={vocab},corpus=/ig/corpus")
    config_lib.check_config(c)
    assert c.model.name == f"resnext101_{model}" and c.model.name in models.list_models()
    assert c.vocab_path == f"/ig/vocab_{vocab}.json"
    assert c.input.global_batch_size == 8064
    # per-GPU batch norm: 336 groups of 24 images
    assert c.model.overrides.bn_groups == 336
    assert c.optim.nesterov and c.optim.momentum == 0.9 and c.optim.weight_decay == 1e-4
    from weaksup.optimizer import optimizer_from_config

    total = config_lib.total_steps(c)
    warmup = config_lib.warmup_steps(c)
    _, lr = optimizer_from_config(c.optim, c.input.global_batch_size, total, warmup)
    peak = 0.1 * 8064 / 256
    assert math.isclose(float(lr(warmup)), peak, rel_tol=1e-5)
    assert float(lr(warmup // 2)) < peak / 1.5  # linear warm-up
    assert math.isclose(float(lr(total - 1)), peak / 2**13, rel_tol=1e-4)  # 13 halvings
    # the paper's length heuristic: 3.5B images -> 2 epochs, 940M -> about 2.1 epochs
    images = 940_000_000 if vocab == "in1k" else 3_500_000_000
    epochs = total * 8064 / images
    assert (2.0 <= epochs <= 2.2) if vocab == "in1k" else math.isclose(epochs, 2.0, rel_tol=1e-3)
    assert c.mesh.fsdp == (8 if model == "32x48d" else 1)


def test_paper_pretrain_mirrors_the_trainer_schema():
    tiny = load_config(str(REPO / "configs" / "tiny.py"))
    paper = load_config(f"{PRETRAIN}:runlocal")
    assert _keys(paper) == _keys(tiny)


def test_images_processed_interpolates_between_the_paper_endpoints():
    mod = config_lib._load_module(Path(PRETRAIN))
    assert mod.images_processed(1_281_167) == 120 * 1_281_167
    assert mod.images_processed(3_500_000_000) == 7_000_000_000
    assert mod.images_processed(1_000_000_000) < mod.images_processed(2_000_000_000)


@pytest.mark.parametrize("arg,match", [("model=32x9d", "model"), ("vocab=5k", "vocab"),
                                       ("depth=50", "unknown config argument")])
def test_paper_pretrain_rejects_unknown_arguments(arg, match):
    with pytest.raises(ConfigError, match=match):
        load_config(f"{PRETRAIN}:{arg}")


# --- transfer ----------------------------------------------------------------------

TRANSFER = str(REPO / "configs" / "paper_transfer.py")


@pytest.mark.parametrize("target,tfds_name,classes,test_split", [
    ("imagenet2012", "imagenet2012", 1000, "validation"),
    ("cub", "caltech_birds2011", 200, "test"),
    ("places365", "places365_small", 365, "validation"),
])
def test_paper_transfer_targets_match_their_tfds_datasets(tmp_path, target, tfds_name, classes,
                                                          test_split):
    import tensorflow_datasets as tfds

    c = load_config(f"{TRANSFER}:target={target},pretrained=/runs/ig")
    assert c.dataset.name == tfds_name and c.dataset.test_split == test_split
    # No validation split: one is carved from the training split, so nothing is tuned on test.
    target, _ = Target.from_options({("dataset" if k == "name" else k): v for k, v in c.dataset.items()})
    assert target.val_split is None and 0 < target.val_fraction < 1
    assert c.dataset.image_size == 224
    assert set(c.evals) == {"linear", "finetune"}
    assert {e.type for e in c.evals.values()} == {"linear_probe", "finetune"}
    # The dataset's own TFDS definition (no data needed) has the keys and classes we read.
    features = tfds.builder(tfds_name, data_dir=str(tmp_path)).info.features
    assert c.dataset.image_key in features and c.dataset.label_key in features
    assert features[c.dataset.label_key].num_classes == classes


def test_paper_transfer_protocol_selects_evaluators():
    assert set(load_config(f"{TRANSFER}:protocol=linear").evals) == {"linear"}
    assert set(load_config(f"{TRANSFER}:protocol=finetune").evals) == {"finetune"}
    with pytest.raises(ConfigError, match="target"):
        load_config(f"{TRANSFER}:target=coco")


@pytest.mark.slow
def test_paper_runlocal_configs_pretrain_and_transfer(tmp_path_factory):
    """Both runlocal modes run end to end: pretraining steps, then both transfer protocols."""
    import json

    from _paper_run import STEPS, paper_run

    run = paper_run(tmp_path_factory.getbasetemp())
    train = run / "train"
    saved = json.loads((train / "config.json").read_text())
    assert saved["model"]["name"] == "resnext_tiny" and saved["input"]["global_batch_size"] == 16
    assert (train / "checkpoints" / str(STEPS)).is_dir()
    from weaksup.metrics import read_jsonl

    losses = [r["loss"] for r in read_jsonl(train / "metrics.jsonl") if "loss" in r]
    assert len(losses) == STEPS and all(np.isfinite(losses))
    results = json.loads((run / "transfer" / "results.json").read_text())
    assert results["meta"]["complete"] and results["meta"]["step"] == STEPS
    pretrained = results["results"]["pretrained"]
    assert pretrained["finetune"]["steps"] == 1
    for ev in ("linear", "finetune"):
        assert 0.0 <= pretrained[ev]["test_top1"] <= 1.0
