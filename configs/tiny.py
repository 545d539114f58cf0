"""Tiny hashtag pretraining on EmojiGram: a CPU smoke run of the whole loop.

Build the inputs, then train:

    python -m weaksup corpus build --source emojigram --num-posts 4096 --output runs/tiny/corpus
    python -m weaksup vocab build --corpus runs/tiny/corpus --mode topk --top-k 200 --output runs/tiny/vocab.json
    python -m weaksup train --config configs/tiny.py --workdir runs/tiny/train

Defaults: resnet_tiny at 32 px, global batch 64, 300 steps, softmax on 1/k targets,
checkpoints every 100 steps, the corpus's last 256 posts held out for hashtag mAP.
Measured (one host device, 200-class vocabulary covering 78% of the 4,096 posts): on an
idle 2-core machine the run takes 59 s wall including start-up and compilation (about
410 img/s while training). The loss falls from ln(200) = 5.3 to ~4.7-4.9 (4.75 at step
300, noisy batch to batch), batch precision@1 rises from chance (0.005) to ~0.05-0.13,
held-out mAP from 0.040 at step 100 to 0.045 at step 300.

`configs/tiny.py:runlocal` shrinks it further (40 steps, batch 16, 32 held-out posts) for
tests; other arguments: corpus=DIR, vocab=PATH, steps=N, batch=N, model=NAME.
"""

import ml_collections

from weaksup.config import parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The tiny config; see the module docstring."""
    arg = parse_arg(
        arg,
        runlocal=False,
        corpus="runs/tiny/corpus",
        vocab="runs/tiny/vocab.json",
        steps=0,
        batch=0,
        model="resnet_tiny",
    )
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.corpus_dir = arg.corpus
    c.vocab_path = arg.vocab
    c.model = ml_collections.ConfigDict({"name": arg.model, "overrides": {}})

    c.input = ml_collections.ConfigDict()
    c.input.global_batch_size = arg.batch or (16 if arg.runlocal else 64)
    c.input.image_size = 32
    c.input.resampling = "sqrt"
    c.input.label_noise = 0.0
    c.input.max_labels = 8
    c.input.num_workers = 0
    c.input.num_threads = 2

    c.optim = ml_collections.ConfigDict()
    c.optim.momentum = 0.9
    c.optim.nesterov = True
    c.optim.weight_decay = 1e-4
    c.optim.base_lr = 0.4  # per 256 images; the paper's 0.1 is for 8k-image batches and long runs
    c.optim.base_batch_size = 256
    c.optim.warmup_steps = 5 if arg.runlocal else 30
    c.optim.warmup_epochs = None
    c.optim.warmup_examples = None
    c.optim.schedule = "cosine"
    c.optim.decay_at = (0.3, 0.6, 0.9)
    c.optim.decay_factor = 0.1
    c.optim.final_lr_fraction = 0.0
    c.optim.label_smoothing = 0.0
    c.optim.grad_accum_steps = 1
    c.optim.grad_clip_norm = None
    c.loss = "softmax"

    # Exactly one duration is set; weaksup.config.total_steps resolves it.
    c.total_steps = arg.steps or (40 if arg.runlocal else 300)
    c.total_epochs = None
    c.total_examples = None

    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1})
    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 10 if arg.runlocal else 100
    c.checkpoint.every_minutes = None
    c.checkpoint.keep = 3
    c.checkpoint.best_metric = ""
    c.checkpoint.best_mode = "min"
    c.checkpoint.async_save = True
    c.log_every_steps = 5 if arg.runlocal else 25
    # The corpus's last records never enter training (the input pipeline skips them); the
    # trainer reports hashtag mAP on them.
    c.holdout_records = 32 if arg.runlocal else 256
    c.holdout_every_steps = 20 if arg.runlocal else 100
    c.nan_policy = "stop"
    c.max_rollbacks = 3
    c.evals = ml_collections.ConfigDict()
    return c
