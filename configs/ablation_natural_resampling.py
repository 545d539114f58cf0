"""Ablation -- natural vs square-root resampling: posts drawn by natural hashtag frequency.

Compared against sqrt resampling (the demo); same model, schedule and transfer protocol.

    python -m weaksup demo --config configs/ablation_natural_resampling.py --workdir runs/ablation_natural_resampling

Measured at 500,000 images (seeds 0-2, `:seed=N,examples=500000,protocols=linear+fewshot`):
linear probe 65.25% +- 0.59 on the held-out artist against square-root resampling's
62.96% +- 1.77, 25-shot 52.63% +- 0.56 against 51.39% +- 1.48. On the target-aligned
vocabulary (`configs/emojigram_demo.py:aligned,resampling=natural`, seeds 0-2) 67.93% +- 0.49
against sqrt's 65.61% +- 1.35; over both vocabularies natural adds 2.3 points (p 0.009).

Shares the demo's corpus under runs/emojigram-data. Expected result and measured
numbers: README, "Ablations". `:runlocal` gives the tiny version used in tests.
"""

from pathlib import Path

import ml_collections

from weaksup.config import load_config

_DEMO = Path(__file__).resolve().parent / "emojigram_demo.py"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The demo config with resampling=natural; extra args (e.g. runlocal) pass through."""
    extra = f",{arg}" if arg else ""
    return load_config(f"{_DEMO}:resampling=natural{extra}", lock=False)
