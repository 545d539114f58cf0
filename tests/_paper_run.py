"""A tiny run directory made with the paper configs' runlocal modes, built once per session.

Layout (what the notebooks read; the same shape as a demo run directory):

    RUN_DIR/train/               pretraining workdir: config.json, metrics.jsonl, checkpoints/
    RUN_DIR/transfer/            results.json of configs/paper_transfer.py:runlocal
    RUN_DIR/target/              the small EmojiGram TFDS target the transfer reads

The corpus and vocabulary are the trainer tests' tiny inputs (shared, built once). The run
is made in a subprocess on one host device: it compiles about twice as fast as on the
test session's eight, and sharding is tested elsewhere.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from _train_data import tiny_inputs

REPO = Path(__file__).resolve().parent.parent
PRETRAIN = REPO / "configs" / "paper_pretrain.py"
TRANSFER = REPO / "configs" / "paper_transfer.py"
STEPS = 3  # a few logged steps give the notebooks a curve


def paper_run(basetemp: Path) -> Path:
    """RUN_DIR with a runlocal pretraining (STEPS steps) and a runlocal transfer evaluation."""
    root = basetemp / "paper_run"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "transfer" / "results.json").is_file():
            tiny_inputs(basetemp / "train_inputs")
            env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
                   "JAX_PLATFORMS": "cpu"}
            r = subprocess.run([sys.executable, __file__, str(basetemp)], env=env, cwd=REPO,
                               capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, f"building the tiny paper run failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
        return root


def _build(basetemp: Path) -> None:
    from weaksup.config import load_config
    from weaksup.datasets.emojigram_target import build_target
    from weaksup.evaluators.cli import evaluate
    from weaksup.train import train_and_evaluate

    root = basetemp / "paper_run"
    corpus, vocab = tiny_inputs(basetemp / "train_inputs")
    config = load_config(f"{PRETRAIN}:runlocal,vocab=in1k,corpus={corpus},vocab_path={vocab}",
                         [f"--config.total_steps={STEPS}"])
    train_and_evaluate(config, root / "train")
    target = build_target(root / "target", image_size=32, train_per_class=4,
                          validation_per_class=2, test_per_class=2, max_classes=6)
    name = f"emojigram_target/{target.builder_config.name}"
    config = load_config(f"{TRANSFER}:runlocal,pretrained={root / 'train'},dataset={name},"
                         f"data_dir={root / 'target'}")
    evaluate(config, root / "transfer")


if __name__ == "__main__":
    _build(Path(sys.argv[1]))
