"""Ablation -- WordNet vocabulary vs raw-hashtag vocabulary: each normalised hashtag seen in >= 20 posts is its own class.

Compared against nouns vocabulary (the demo); same model, schedule and transfer protocol.

    python -m weaksup demo --config configs/ablation_vocab_raw.py --workdir runs/ablation_vocab_raw

Measured at 500,000 images (seed 0, `:examples=500000,protocols=linear+fewshot`): 2,230 hashtag
classes; linear probe 50.77% on the held-out artist against 62.96% +- 1.77 with the demo's
885 WordNet synsets (seeds 0-2), 25-shot 40.50% against 51.39%.

Shares the demo's corpus under runs/emojigram-data. Expected result and measured
numbers: README, "Ablations". `:runlocal` gives the tiny version used in tests.
"""

from pathlib import Path

import ml_collections

from weaksup.config import load_config

_DEMO = Path(__file__).resolve().parent / "emojigram_demo.py"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The demo config with vocab=raw; extra args (e.g. runlocal) pass through."""
    extra = f",{arg}" if arg else ""
    return load_config(f"{_DEMO}:vocab=raw{extra}", lock=False)
