"""The paper's experiment configs: every variant builds and checks, and runlocal trains."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from weaksup import config as config_lib
from weaksup import models
from weaksup.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
PRETRAIN = str(REPO / "configs" / "paper_pretrain.py")


def _keys(c, prefix=""):
    out = set()
    for k, v in c.items():
        out.add(prefix + k)
        if hasattr(v, "items") and k not in ("overrides", "evals"):
            out |= _keys(v, f"{prefix}{k}.")
    return out


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A small EmojiGram corpus and a top-k vocabulary built with the project's CLI."""
    root = tmp_path_factory.mktemp("paper_configs")
    corpus, vocab = root / "corpus", root / "vocab.json"
    for argv in (["corpus", "build", "--source", "emojigram", "--num-posts", "160",
                  "--num-shards", "2", "--workers", "1", "--no-progress", "--output", str(corpus)],
                 ["vocab", "build", "--corpus", str(corpus), "--mode", "topk", "--top-k", "24",
                  "--output", str(vocab)]):
        r = subprocess.run([sys.executable, "-m", "weaksup", *argv], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    return corpus, vocab


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


def test_paper_pretrain_runlocal_trains_one_step(tiny_data, tmp_path):
    from weaksup.train import train_and_evaluate

    corpus, vocab = tiny_data
    c = load_config(f"{PRETRAIN}:runlocal,vocab=in1k,corpus={corpus},vocab_path={vocab}")
    result = train_and_evaluate(c, tmp_path / "run")
    assert result["step"] == 1 and result["stopped"] is None
    assert np.isfinite(result["loss"]) and result["loss"] > 0
    assert (tmp_path / "run" / "checkpoints" / "1").is_dir()
    assert (tmp_path / "run" / "config.json").is_file()
