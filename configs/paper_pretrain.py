"""The paper's hashtag pretraining recipes (Mahajan et al., ECCV 2018) for GPU clusters and TPU pods.

    python -m launch.slurm --nodes 42 --gpus-per-node 8 --workdir /shared/runs/ig_32x8d_17k \
        --config configs/paper_pretrain.py:model=32x8d,vocab=17k,corpus=/shared/ig/corpus

(or `python -m launch.tpu ...`; any launcher). Arguments:

  model   32x4d | 32x8d | 32x16d | 32x32d | 32x48d   -> resnext101_32x{C}d (default 32x8d)
  vocab   in1k  ImageNet-1k-aligned (~1.5k hashtags that are synonyms of the 1,000
                ImageNet-1k synsets; `vocab build --mode imagenet1k`)
          8.5k  the 8,500 most frequent noun synsets (`--mode topk --top-k 8500`)
          17k   every resolved noun synset (`--mode nouns`; ~17k on the paper's data)
  corpus  ArrayRecord corpus directory (default data/ig/corpus)
  vocab_path  vocabulary JSON (default: vocab_<vocab>.json beside the corpus directory)
  images  corpus size used by the schedule heuristic (default: 940M for in1k, 3.5B for
          8.5k and 17k, the paper's IG-940M-1.5k / IG-3.5B-* sets)
  runlocal  a one-step CPU run of the same recipe on a tiny model (used by the tests)

Build the vocabulary first, e.g.
    python -m weaksup vocab build --corpus /shared/ig/corpus --mode nouns --output /shared/ig/vocab_17k.json

The recipe (paper Sec. 2.3-2.4): global batch 8,064 (336 GPUs x 24, batch norm statistics
per 24-image slice: bn_groups = 336); synchronous SGD, Nesterov momentum 0.9, weight decay
1e-4 (not on BN/bias); learning rate 0.1 per 256 images (peak 3.15) reached by a linear
warm-up, then halved 13 times at equal intervals; softmax cross-entropy on 1/k targets;
square-root resampling. Training length follows the paper's heuristic: the number of images
processed is interpolated linearly between 120 epochs of a 1.28M-image set and 2 epochs of a
3.5B-image set (`images_processed`). The warm-up length is not a number we could take from
the paper; we warm up over the first 5% of training.

Expected results are the paper's (ImageNet-1k top-1 after fine-tuning with
configs/paper_transfer.py), pretrained on IG-940M-1.5k (vocab=in1k): 32x8d 82.2%,
32x16d 84.2%, 32x32d 85.1%, 32x48d 85.4%; training 32x16d took ~22 days on 336 GPUs. Only the runlocal
mode has been run here.
"""

import posixpath

import ml_collections

from weaksup.config import ConfigError, parse_arg, pretrain_config

MODELS = ("32x4d", "32x8d", "32x16d", "32x32d", "32x48d")
# vocabulary name -> (`vocab build` mode, top-k, default corpus size for the schedule)
VOCABS = {
    "in1k": ("imagenet1k", 0, 940_000_000),
    "8.5k": ("topk", 8500, 3_500_000_000),
    "17k": ("nouns", 0, 3_500_000_000),
}
GLOBAL_BATCH = 8064
IMAGES_PER_BN_GROUP = 24  # the paper's per-GPU batch


def images_processed(dataset_size: int) -> int:
    """The paper's training-length heuristic: images processed for a dataset of this size.

    Linear between (1.28M images, 120 epochs) and (3.5B images, 2 epochs).
    """
    x0, y0 = 1_281_167, 120 * 1_281_167
    x1, y1 = 3_500_000_000, 2 * 3_500_000_000
    return int(round(y0 + (dataset_size - x0) * (y1 - y0) / (x1 - x0)))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The paper's pretraining config; see the module docstring for the arguments."""
    arg = parse_arg(arg, model="32x8d", vocab="17k", corpus="data/ig/corpus", vocab_path="",
                    images=0, runlocal=False)
    if arg.model not in MODELS:
        raise ConfigError(f"model={arg.model!r}: expected one of {', '.join(MODELS)}")
    if arg.vocab not in VOCABS:
        raise ConfigError(f"vocab={arg.vocab!r}: expected one of {', '.join(VOCABS)}")
    _, _, default_images = VOCABS[arg.vocab]
    images = arg.images or default_images

    c = pretrain_config()
    c.corpus_dir = arg.corpus
    c.vocab_path = arg.vocab_path or posixpath.join(
        posixpath.dirname(arg.corpus.rstrip("/")), f"vocab_{arg.vocab}.json")

    gbs = 16 if arg.runlocal else GLOBAL_BATCH
    # runlocal keeps the architecture family: resnext_tiny is a scaled-down 32x8d.
    c.model.name = "resnext_tiny" if arg.runlocal else f"resnext101_{arg.model}"
    c.model.overrides = {
        "dtype": "float32" if arg.runlocal else "bfloat16",
        "bn_groups": 2 if arg.runlocal else gbs // IMAGES_PER_BN_GROUP,
    }

    c.input.global_batch_size = gbs
    c.input.image_size = 32 if arg.runlocal else 224
    c.input.resampling = "sqrt"
    c.input.num_workers = 0 if arg.runlocal else 16
    c.input.num_threads = 2 if arg.runlocal else 8

    total = images_processed(images)
    c.optim.base_lr = 0.1
    if arg.runlocal:
        c.optim.warmup_steps = 0
    else:
        c.optim.warmup_examples = int(0.05 * total)
    c.optim.schedule = "step"
    c.optim.decay_at = tuple(k / 14 for k in range(1, 14))  # 13 equally spaced halvings
    c.optim.decay_factor = 0.5
    if arg.runlocal:
        c.total_steps = 1
    else:
        c.total_examples = total

    # 32x48d (829M parameters): shard parameters and momentum over the 8 GPUs of a node.
    c.mesh.fsdp = 8 if (arg.model == "32x48d" and not arg.runlocal) else 1
    c.checkpoint.every_steps = 1 if arg.runlocal else None
    c.checkpoint.every_minutes = None if arg.runlocal else 30.0
    c.checkpoint.keep = 1 if arg.runlocal else 3
    c.log_every_steps = 1 if arg.runlocal else 100
    c.holdout_every_steps = 1000
    c.nan_policy = "rollback"
    return c
