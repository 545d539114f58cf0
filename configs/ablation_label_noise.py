"""Ablation -- label noise: half of the hashtags replaced by draws from the hashtag marginal (the paper's robustness experiment).

Compared against no added noise (the demo); same model, schedule and transfer protocol.

    python -m weaksup demo --config configs/ablation_label_noise.py --workdir runs/ablation_label_noise

Measured at 500,000 images (seed 0, `:examples=500000,protocols=linear+fewshot`): linear probe
21.24% on the held-out artist against 62.96% +- 1.77 without added noise (seeds 0-2),
25-shot 17.44% against 51.39%, held-out hashtag mAP 0.025 against 0.108.

Shares the demo's corpus under runs/emojigram-data. Expected result and measured
numbers: README, "Ablations". `:runlocal` gives the tiny version used in tests.
"""

from pathlib import Path

import ml_collections

from weaksup.config import load_config

_DEMO = Path(__file__).resolve().parent / "emojigram_demo.py"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The demo config with noise=0.5; extra args (e.g. runlocal) pass through."""
    extra = f",{arg}" if arg else ""
    return load_config(f"{_DEMO}:noise=0.5{extra}", lock=False)
