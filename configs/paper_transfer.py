"""The paper's transfer protocols on its classification targets, via TFDS.

    python -m weaksup evaluate --workdir runs/transfer_in1k \
        --config configs/paper_transfer.py:target=imagenet2012,pretrained=/shared/runs/ig_32x8d_in1k

Two protocols, each from the pretrained checkpoint and (random_baseline) from a random
initialisation of the same architecture: feature transfer (a linear classifier on frozen
penultimate features, L2 chosen on a validation split) and full fine-tuning with a fresh
head. Arguments:

  target      imagenet2012 | caltech_birds2011 | places365_small (also in1k, cub, places365)
  pretrained  the pretraining workdir (configs/paper_pretrain.py); "" with model=NAME
              evaluates a random initialisation only
  protocol    both | linear | finetune (default both)
  data_dir    TFDS data_dir holding the prepared dataset (default: the project's)
  fsdp        parameter sharding for fine-tuning big trunks (e.g. 8 for 32x48d)
  runlocal    the same evaluators for one fine-tuning step on a small local TFDS target
              (dataset=NAME, default the EmojiGram target; used by the tests)

Datasets are read with TFDS and must be prepared first (ImageNet needs its manual
download: `tfds build imagenet2012 --manual_dir ...`, which needs TensorFlow; CUB-2011 and
Places365-small download themselves). Without TensorFlow, extract ImageNet into the
ImageFolder layout ROOT/{train,validation}/WNID/*.JPEG and add
`--config.dataset.name folder:ROOT` (classes sort into the same wnid order). Splits: the model is chosen on a validation split carved from the
training split (seeded; 1% of ImageNet / Places365, 10% of CUB), and reported on
ImageNet's and Places365's validation sets (their test labels are not public) and on
CUB's test set. Images are resized to 224 px, as in the paper.

Expected (paper): ImageNet-1k top-1 after fine-tuning 82.2% / 84.2% / 85.4% for 32x8d /
32x16d / 32x48d pretrained on IG-940M-1.5k; the best vocabulary depends on the target (the
ImageNet-aligned one for ImageNet-1k, broader noun vocabularies for targets outside its
classes). The fine-tuning hyper-parameters (epochs, batch,
rate) are our choices; the paper does not list them per target. Only runlocal has been
run here.
"""

import ml_collections

from weaksup import paths
from weaksup.config import ConfigError, evaluate_config, parse_arg

# target -> TFDS name, number of classes, test split, validation carved from train,
# fine-tuning steps (about 30, 100 and 10 epochs at batch 1024 / 256 / 1024), batch.
TARGETS = {
    "imagenet2012": dict(classes=1000, test_split="validation", val_fraction=0.01,
                         ft_steps=37_500, ft_batch=1024),
    "caltech_birds2011": dict(classes=200, test_split="test", val_fraction=0.1,
                              ft_steps=2_300, ft_batch=256),
    "places365_small": dict(classes=365, test_split="validation", val_fraction=0.01,
                            ft_steps=17_600, ft_batch=1024),
}
ALIASES = {"in1k": "imagenet2012", "cub": "caltech_birds2011", "places365": "places365_small"}
PROTOCOLS = ("both", "linear", "finetune")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The paper's transfer config; see the module docstring for the arguments."""
    arg = parse_arg(arg, target="imagenet2012", pretrained="", model="", protocol="both",
                    data_dir="", fsdp=1, runlocal=False, dataset="emojigram_target/emojione_32")
    target = ALIASES.get(arg.target, arg.target)
    if target not in TARGETS:
        raise ConfigError(f"target={arg.target!r}: expected one of {', '.join([*TARGETS, *ALIASES])}")
    if arg.protocol not in PROTOCOLS:
        raise ConfigError(f"protocol={arg.protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    t = TARGETS[target]

    c = evaluate_config()
    c.pretrained.workdir = arg.pretrained
    c.model.name = arg.model
    c.random_baseline = not arg.runlocal
    c.mesh.fsdp = arg.fsdp

    c.dataset.name = arg.dataset if arg.runlocal else target
    c.dataset.data_dir = arg.data_dir or str(paths.tfds_data_dir())
    # runlocal reads a target with its own validation split; the paper targets carve one.
    c.dataset.val_split = "validation" if arg.runlocal else ""
    c.dataset.test_split = "test" if arg.runlocal else t["test_split"]
    c.dataset.val_fraction = t["val_fraction"]
    c.dataset.image_size = 0 if arg.runlocal else 224  # 0: the pretraining image size
    c.dataset.batch_size = 16 if arg.runlocal else 256

    if arg.protocol in ("both", "linear"):
        c.evals.linear = ml_collections.ConfigDict({
            "type": "linear_probe",
            "l2_grid": (1e-3,) if arg.runlocal else (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6),
            "max_iter": 50 if arg.runlocal else 1000,
        })
    if arg.protocol in ("both", "finetune"):
        c.evals.finetune = ml_collections.ConfigDict({
            "type": "finetune",
            "steps": 1 if arg.runlocal else t["ft_steps"],
            "batch_size": 16 if arg.runlocal else t["ft_batch"],
            # pretrained trunks take a lower rate than training from scratch (0.1 per 256)
            "base_lr": 0.01,
            "weight_decay": 1e-4,
            "label_smoothing": 0.0,
            "checkpoint_every": 0 if arg.runlocal else 1000,
        })
    return c
