"""Transfer evaluation on the EmojiGram held-out-artist target (linear probe, ridge, fine-tune).

The paper's two transfer protocols, read against a random-initialisation baseline of the
same architecture: a linear probe (L2 swept on the validation split) and a few-shot
ridge probe on frozen features, and full fine-tuning with a fresh head.

Build the target, pretrain (configs/tiny.py), then evaluate:

    python -m weaksup.datasets.emojigram_target --image-size 32
    python -m weaksup train --config configs/tiny.py --workdir runs/tiny/train
    python -m weaksup evaluate --config configs/emojigram_transfer.py --workdir runs/tiny/transfer

Results land in runs/tiny/transfer/results.{json,md}. Expected (resnet_tiny, 300
pretraining steps, 32 px, 2 CPU cores, ~10 minutes): the pretrained features beat the
random-initialisation baseline on every row; a short hashtag pretraining moves the
linear probe by several points over random features, fine-tuning by less.

`:runlocal` shrinks everything for tests and a laptop smoke run (fewer L2 values, 1 and
5 shots with two seeds, a 20-step fine-tune). Other arguments: pretrained=DIR (""
for random initialisation only), model=NAME (needed when pretrained is ""),
dataset=TFDS_NAME, data_dir=DIR, size=PX (0: the pretraining size), ft_steps=N, batch=N.
"""

import ml_collections

from weaksup import paths
from weaksup.config import evaluate_config, parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The EmojiGram transfer config; see the module docstring."""
    arg = parse_arg(
        arg,
        runlocal=False,
        pretrained="runs/tiny/train",
        model="",
        dataset="emojigram_target/emojione_32",
        data_dir="",
        size=0,
        ft_steps=0,
        batch=0,
    )
    c = evaluate_config()
    c.pretrained.workdir = arg.pretrained
    c.model.name = arg.model

    c.dataset.name = arg.dataset
    c.dataset.data_dir = arg.data_dir or str(paths.tfds_data_dir())
    c.dataset.val_split = "validation"
    c.dataset.image_size = arg.size
    c.dataset.batch_size = arg.batch or (16 if arg.runlocal else 64)

    c.evals.linear = ml_collections.ConfigDict({
        "type": "linear_probe",
        "l2_grid": (1e-2, 1e-3, 1e-4) if arg.runlocal else (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5),
    })
    c.evals.fewshot = ml_collections.ConfigDict({
        "type": "fewshot_ridge",
        "shots": (1, 5) if arg.runlocal else (1, 5, 10, 25),
        "seeds": (0, 1) if arg.runlocal else (0, 1, 2, 3, 4),
    })
    c.evals.finetune = ml_collections.ConfigDict({
        "type": "finetune",
        "steps": arg.ft_steps or (20 if arg.runlocal else 300),
        "base_lr": 0.1,
        "weight_decay": 1e-4,
        "label_smoothing": 0.0,
    })
    return c
