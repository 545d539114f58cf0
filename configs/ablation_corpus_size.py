"""Ablation -- does transfer grow with pretraining data? Three corpus sizes, one label space.

`size=small|medium|large` picks 12,500 / 33,000 / 100,000 posts (the demo is `large`). The
number of pretraining images seen is the demo's (1,000,000; README "Ablations" measured
500,000, `examples=500000`), so a smaller corpus is repeated more often, and every size is
labelled with the vocabulary of the 100,000-post corpus (885 labels): the paper's Fig. 3
design, which held the schedule and the hashtag set and varied the number of distinct
images. `own_vocab` gives each size the vocabulary of its own posts (fewer, more frequent
labels at the same min_count), which compares vocabularies as much as data.

    python -m weaksup demo --config configs/ablation_corpus_size.py:size=small --workdir runs/ablation_size_small
    python -m weaksup demo --config configs/ablation_corpus_size.py:size=medium --workdir runs/ablation_size_medium

Measured numbers: README, "Ablations". `:runlocal` gives the tiny version used in tests.
"""

from pathlib import Path

import ml_collections

from weaksup.config import load_config

_DEMO = Path(__file__).resolve().parent / "emojigram_demo.py"
SIZES = {"small": 12_500, "medium": 33_000, "large": 100_000}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The demo config at the corpus size named by `size`; other args pass through."""
    parts = [p for p in (arg or "").split(",") if p]
    size = next((p.split("=", 1)[1] for p in parts if p.startswith("size=")), "small")
    own_vocab = "own_vocab" in parts
    rest = [p for p in parts if not p.startswith("size=") and p != "own_vocab"]
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    scale = 50 if "runlocal" in rest else 1
    posts = SIZES[size] // scale
    fixed = [] if own_vocab else [f"vocab_posts={SIZES['large'] // scale}"]
    return load_config(f"{_DEMO}:" + ",".join([f"posts={posts}", *fixed, *rest]), lock=False)
