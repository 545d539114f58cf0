"""SWAG's hashtag pretraining (Singh et al., CVPR 2022) of RegNetY and ViT trunks, for GPU clusters and TPU pods.

    python -m launch.slurm --nodes 64 --gpus-per-node 8 --workdir /shared/runs/swag_vit_b16 \
        --config configs/swag_pretrain.py:model=vit_b16,corpus=/shared/ig/corpus

Arguments:

  model       vit_b16 | vit_l16 | vit_h14 | regnety_16gf | regnety_32gf | regnety_128gf
  corpus      ArrayRecord corpus directory (default data/ig/corpus)
  vocab_path  vocabulary JSON (default: vocab_27k.json beside the corpus directory; SWAG's
              ~27k canonical hashtags are a noun vocabulary: `vocab build --mode nouns`)
  examples    images processed (default 5e9: one epoch of IG-3.6B after resampling, which
              processes about 5 billion samples)
  runlocal    a few-step CPU run of the same recipe on the family's tiny variant (vit_tiny,
              regnety_tiny) at 32 px, used by the tests

What is SWAG's (paper and `facebookresearch/SWAG`): the trunks exactly as released (their
parameter counts are tested), the 1/k softmax cross-entropy on canonical hashtags (SWAG
issue #15), square-root-style resampling of the hashtag distribution, one epoch over
IG-3.6B at 224 px, SGD-Nesterov for RegNetY and AdamW for ViT, mixed precision (bf16
compute, f32 weights).

What is ours, where the paper's appendix could not be consulted when this file was
written (a run that follows the appendix should set these): global batch 8,192; RegNetY:
0.1 per 256 images, weight decay 5e-5 (the RegNet paper's), cosine decay; ViT: AdamW
(b1 0.9, b2 0.95, decoupled weight decay 0.05), 5e-4 per 512 images (DeiT's scaling),
linear decay, gradient clipping at 1.0, stochastic depth 0.1 / 0.2 / 0.3 for B / L / H,
rematerialised blocks for L and H; warm-up over the first 5% for both; the weight EMA is
kept (decay 0.9999) for the fine-tuning evaluators (SWAG fine-tunes with one);
parameters sharded 8 ways (fsdp) for the 128GF and H/14 trunks.

Expected results are SWAG's released ones (ImageNet-1k top-1 after end-to-end fine-tuning
at 384-518 px, as torchvision's weight tables list them): RegNetY-16GF 86.01%, 32GF
86.84%, 128GF 88.23%; ViT-B/16 85.30%, L/16 88.06%, H/14 88.55%. Only the runlocal mode
has been run here.
"""

import posixpath

import ml_collections

from weaksup.config import ConfigError, parse_arg, pretrain_config

# trunk -> (family, stochastic depth, remat, fsdp)
MODELS = {
    "vit_b16": ("vit", 0.1, False, 1),
    "vit_l16": ("vit", 0.2, True, 1),
    "vit_h14": ("vit", 0.3, True, 8),
    "regnety_16gf": ("regnet", 0.0, False, 1),
    "regnety_32gf": ("regnet", 0.0, False, 1),
    "regnety_128gf": ("regnet", 0.0, False, 8),
}
GLOBAL_BATCH = 8192
ONE_EPOCH_IG_3_6B = 5_000_000_000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """SWAG's pretraining config; see the module docstring for the arguments."""
    arg = parse_arg(arg, model="vit_b16", corpus="data/ig/corpus", vocab_path="", examples=ONE_EPOCH_IG_3_6B,
                    runlocal=False)
    if arg.model not in MODELS:
        raise ConfigError(f"model={arg.model!r}: expected one of {', '.join(MODELS)}")
    family, drop_path, remat, fsdp = MODELS[arg.model]
    local = arg.runlocal

    c = pretrain_config()
    c.corpus_dir = arg.corpus
    c.vocab_path = arg.vocab_path or posixpath.join(posixpath.dirname(arg.corpus.rstrip("/")), "vocab_27k.json")
    gbs = 16 if local else GLOBAL_BATCH
    c.model.name = f"{family}{'y' if family == 'regnet' else ''}_tiny" if local else arg.model
    c.model.overrides = {"dtype": "float32" if local else "bfloat16"}
    if family == "vit":
        c.model.overrides.drop_path = drop_path
        c.model.overrides.remat = remat

    c.input.global_batch_size = gbs
    c.input.image_size = 32 if local else 224
    c.input.resampling = "sqrt"
    c.input.num_workers = 0 if local else 16
    c.input.num_threads = 2 if local else 8

    if family == "vit":
        c.optim.name = "adamw"
        c.optim.b2 = 0.95
        c.optim.weight_decay = 0.05
        c.optim.base_lr = 5e-4
        c.optim.base_batch_size = 512
        c.optim.schedule = "linear"
        c.optim.grad_clip_norm = 1.0
    else:
        c.optim.weight_decay = 5e-5
        c.optim.base_lr = 0.1
        c.optim.schedule = "cosine"
    c.optim.ema_decay = 0.9999
    if local:
        c.total_steps = 3
        c.optim.warmup_steps = 1
    else:
        c.total_examples = int(arg.examples)
        c.optim.warmup_examples = int(0.05 * arg.examples)

    c.mesh.fsdp = 1 if local else fsdp
    c.checkpoint.every_steps = 1 if local else None
    c.checkpoint.every_minutes = None if local else 30.0
    c.checkpoint.keep = 1 if local else 3
    c.log_every_steps = 1 if local else 100
    c.nan_policy = "rollback"
    return c
