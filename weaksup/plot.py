"""`weaksup plot RUN`: a run's training curves and transfer results as PNG files.

Writes, into RUN/plots (or `--output`):

- `training.png`: loss, precision@1/@5, held-out hashtag mAP and learning rate against the
  step, from the pretraining run's `metrics.jsonl`;
- `transfer.png`: every top-1 accuracy the evaluators recorded (linear probe, few-shot,
  fine-tuning, zero-shot), pretrained beside random initialisation, from `results.json`.

A demo run gets both (its `pretrain/` and `transfer/` runs); a pretraining run the first,
an evaluation run the second. Files appear complete or not at all (`weaksup.atomic`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from weaksup import atomic, runs  # noqa: E402
from weaksup.errors import EXIT_USAGE  # noqa: E402
from weaksup.evaluators.results import top1_accuracies  # noqa: E402
from weaksup.metrics import read_jsonl  # noqa: E402

# (panel title, metric keys drawn in it) of training.png.
TRAINING_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("loss",)),
    ("precision on the training batch", ("prec@1", "prec@5")),
    ("held-out hashtag mAP", ("holdout/mAP",)),
    ("learning rate", ("lr",)),
)


def curves(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric over a run's records, in step order."""
    points = sorted((int(r["step"]), float(r[key])) for r in records if key in r and "step" in r)
    return [s for s, _ in points], [v for _, v in points]


def plot_training(records: Sequence[Mapping[str, Any]], output: Path, title: str) -> Path:
    """Writes training.png (one panel per metric group) and returns its path."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for ax, (panel, keys) in zip(axes.flat, TRAINING_PANELS):
        drawn = False
        for key in keys:
            steps, values = curves(records, key)
            if steps:
                ax.plot(steps, values, marker="o" if len(steps) < 20 else None, label=key)
                drawn = True
        ax.set_title(panel)
        ax.set_xlabel("step")
        if drawn and len(keys) > 1:
            ax.legend()
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.suptitle(title)
    return _save(fig, output / "training.png")


def plot_transfer(results: Mapping[str, Mapping[str, Mapping[str, float]]], output: Path, title: str) -> Path:
    """Writes transfer.png (grouped bars: one group per evaluator, one bar per init)."""
    bars = top1_accuracies(results)
    inits = list(results)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(bars) + 2), 4.5), constrained_layout=True)
    width = 0.8 / max(1, len(inits))
    for i, init in enumerate(inits):
        xs = [j + (i - (len(inits) - 1) / 2) * width for j in range(len(bars))]
        values = [by_init.get(init, float("nan")) for by_init in bars.values()]
        drawn = ax.bar(xs, values, width, label=init)
        ax.bar_label(drawn, labels=[f"{100 * v:.1f}" for v in values], fontsize=8)
    ax.set_xticks(range(len(bars)), list(bars), rotation=20, ha="right")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title(title)
    ax.legend()
    return _save(fig, output / "transfer.png")


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def plot_run(run: Path, output: Path | None = None) -> list[Path]:
    """Every plot a run supports, written into `output` (default RUN/plots)."""
    kind = runs.kind_of(run)
    if kind is None:
        raise FileNotFoundError(f"{run} is not a run folder (no config.json with metrics, nor results.json)")
    output = output or run / "plots"
    pretrain = {"pretrain": run, "demo": run / "pretrain"}.get(kind)
    evaluation = {"evaluate": run, "demo": run / "transfer"}.get(kind)
    written = []
    if pretrain is not None and (pretrain / "metrics.jsonl").is_file():
        written.append(plot_training(read_jsonl(pretrain / "metrics.jsonl"), output, f"pretraining: {run.name}"))
    if evaluation is not None and (evaluation / "results.json").is_file():
        results = runs.read_json(evaluation / "results.json") or {}
        if results.get("results"):
            written.append(plot_transfer(results["results"], output, f"transfer: {run.name}"))
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="weaksup plot", description="Write a run's training-curve and "
                                     "transfer PNGs (RUN/plots/training.png, transfer.png).")
    parser.add_argument("run", help="a run folder (train, evaluate or demo workdir)")
    parser.add_argument("--output", help="folder for the PNG files (default: RUN/plots)")
    args = parser.parse_args(argv)
    run = Path(args.run)
    try:
        written = plot_run(run, Path(args.output) if args.output else None)
    except FileNotFoundError as e:
        print(f"plot: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not written:
        print(f"plot: {run} has no metrics.jsonl or results.json to plot yet", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(path)
    return 0
