"""Where the demo's accuracy goes: its posts against clean single-concept pictures, one factor at a time.

    python benchmarks/learnability.py --workdir runs/learnability [--examples 40000] [--rows demo,clean,...] [--seeds 3]

Each row is a demo run (`configs/emojigram_demo.py`, linear probe on the held-out artist
from the pretrained trunk and from random initialisation) that changes one thing of the
demo's posts towards clean single-concept pictures; the last row changes all of the data
factors at once. The target never changes: EmojiOne's single emoji at the demo's 32 px,
which pretraining never sees; the corpus stays posts of Noto and Symbola.

Every row trains for the same wall-clock time: rows that keep the demo's trunk and
resolution take `--examples` pretraining images; a row that changes either takes
`--examples` times its train-step rate over the demo's, both rates measured side by side
in this run (the real jitted step, `benchmarks/accelerator.py`'s runner, alternating rounds).

The demo's row also runs with training seeds 1..SEEDS-1 (initialisation, data order,
augmentation; the corpus stays): the spread of those runs is the noise band a row's
difference has to exceed.

Corpora, vocabularies and the target are shared with the demo (`--data-root`, default
runs/emojigram-data), so rows that keep the demo's data reuse its corpus. A finished row
is not run again; the table covers every finished row. Prints a markdown table and writes
WORKDIR/learnability.json. Measured: README "Where the accuracy goes".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accelerator import make_step_runner  # noqa: E402  (benchmarks/accelerator.py)

from weaksup import console, demo, paths  # noqa: E402
from weaksup.config import load_config  # noqa: E402
from weaksup.metrics import read_jsonl  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "configs" / "emojigram_demo.py"

# name -> (what changes against the demo's posts, config overrides as on the command line)
ROWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "demo": ("the demo's posts: 1-3 emoji per canvas, user hashtags, >= 35% crops, 32 px, resnext_tiny", ()),
    "clean": ("labels: the concepts each picture shows instead of its hashtags", ("data.clean_labels=true",)),
    "one_emoji": ("one emoji per canvas (larger: 45-90% of the side)", ("data.max_emoji_per_post=1",)),
    "no_crop": ("whole pictures: no random-resized crop", ("input.crop_min_area=1.0",)),
    "48px": ("48 px pictures for pretraining (equal wall-clock)", ("input.image_size=48",)),
    "resnet_tiny": ("resnet_tiny trunk instead of resnext_tiny (equal wall-clock)", ("model.name=resnet_tiny",)),
    "clean_single": ("clean single-concept pictures: clean labels, one emoji, whole pictures",
                     ("data.clean_labels=true", "data.max_emoji_per_post=1", "input.crop_min_area=1.0")),
}
# Rows whose train step costs differ from the demo's: their length follows their measured rate.
TIMED = ("input.image_size", "model.name")


def row_config(overrides: Sequence[str], examples: int, seed: int = 0) -> Any:
    """The demo config with a row's overrides, pretraining for `examples` images, linear probe only."""
    return load_config(f"{DEMO_CONFIG}:protocols=linear",
                       [*overrides, f"seed={seed}", f"total_examples={int(examples)}"], lock=False)


def step_rates(configs: dict[str, Any], rounds: int = 3, steps: int = 10) -> dict[str, float]:
    """Median train-step rate (images/s) of each config's trunk and resolution, rounds alternated."""
    runners = {}
    for name, c in configs.items():
        runners[name] = make_step_runner(str(c.model.name), int(c.input.global_batch_size),
                                         int(c.input.image_size), 885, str(c.model.overrides.get("dtype", "float32")))[0]
    rates: dict[str, list[float]] = {n: [] for n in configs}
    for _ in range(rounds):
        for n, run in runners.items():
            rates[n].append(run(steps))
    return {n: statistics.median(r) for n, r in rates.items()}


def row_change(name: str) -> str:
    """What a row (or a seed repeat of one, NAME-seedS) changes."""
    base, _, seed = name.partition("-seed")
    return ROWS[base][0] + (f" (training seed {seed})" if seed else "")


def _train_minutes(logged: list[dict[str, Any]]) -> float:
    """Training wall-clock from the log's timestamps, the interval before the first line included."""
    if len(logged) < 2:
        return float("nan")
    first, last = logged[0], logged[-1]
    return (last["time"] - first["time"]) / 60 * last["step"] / max(1, last["step"] - first["step"])


def run_row(name: str, config: Any, workdir: Path, data_root: Path, tfds_dir: Path) -> dict[str, Any]:
    """Runs (or reads) one row's demo; returns its figures."""
    results_path = workdir / name / "results.json"
    if not results_path.exists():
        t = time.time()
        if demo.run(config, workdir / name, data_root, tfds_dir) is None:
            raise SystemExit(f"learnability: row {name} was stopped; run again to resume it")
        print(f"learnability: {name} done in {(time.time() - t) / 60:.1f} min", file=sys.stderr)
    results = json.loads(results_path.read_text())
    s = results["summary"]
    # From the run's own log: a row resumed after its pretraining finished has no final metrics in results.json.
    logged = [r for r in read_jsonl(workdir / name / "pretrain" / "metrics.jsonl") if "loss" in r]
    pre = logged[-1] if logged else {}
    return {
        "row": name,
        "change": row_change(name),
        "images": int(results["config"]["total_examples"]),
        "pretrain_minutes": round(_train_minutes(logged), 1),
        "train_img_s": round(float(pre.get("perf/images_per_sec", 0.0)), 1),
        "vocab_classes": results["data"]["vocab_classes"],
        "final_loss": round(float(pre.get("loss", float("nan"))), 3),
        "linear_top1_pretrained": s["linear_top1_pretrained"],
        "linear_top1_random": s["linear_top1_random"],
        "linear_top1_gain": s["linear_top1_gain"],
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the rows, and the demo row's spread over seeds."""
    lines = ["| row | change against the demo's posts | images | pretrain min | labels | "
             "linear top-1 pretrained | random init | gain |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['change']} | {r['images']:,} | {r['pretrain_minutes']} | "
                     f"{r['vocab_classes']} | {100 * r['linear_top1_pretrained']:.2f}% | "
                     f"{100 * r['linear_top1_random']:.2f}% | {100 * r['linear_top1_gain']:+.2f} |")
    demo_runs = [100 * r["linear_top1_pretrained"] for r in rows if r["row"].partition("-seed")[0] == "demo"]
    if len(demo_runs) > 1:
        lines.append(f"\nthe demo's row over {len(demo_runs)} training seeds: pretrained linear top-1 "
                     f"{statistics.mean(demo_runs):.2f}% +- {statistics.stdev(demo_runs):.2f} (std), "
                     f"range {min(demo_runs):.2f}-{max(demo_runs):.2f}%")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="one demo run per row under it, and learnability.json")
    parser.add_argument("--examples", type=int, default=40_000, help="pretraining images of the demo's row")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of the demo's row (the noise band)")
    parser.add_argument("--data-root", default=str(REPO / "runs" / "emojigram-data"))
    parser.add_argument("--tfds-dir", default=None, help="the target's TFDS folder (default: weaksup's)")
    args = parser.parse_args()
    console.setup(0)
    names = [n for n in args.rows.split(",") if n]
    unknown = sorted(set(names) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tfds_dir = Path(args.tfds_dir) if args.tfds_dir else paths.tfds_data_dir()
    data_root = Path(args.data_root).resolve()

    configs = {n: row_config(ROWS[n][1], args.examples) for n in names}
    if "demo" in names:
        configs.update({f"demo-seed{s}": row_config((), args.examples, seed=s) for s in range(1, args.seeds)})
    timed = [n for n in names if any(o.partition("=")[0] in TIMED for o in ROWS[n][1])
             and not (workdir / n / "results.json").exists()]
    if timed:
        rates = step_rates({"demo": row_config((), args.examples), **{n: configs[n] for n in timed}})
        for n in timed:
            configs[n].total_examples = int(round(args.examples * rates[n] / rates["demo"], -2))
            print(f"learnability: {n} steps at {rates[n]:.0f} img/s against the demo's {rates['demo']:.0f}: "
                  f"{configs[n].total_examples:,} images", file=sys.stderr)

    rows = [run_row(n, c, workdir, data_root, tfds_dir) for n, c in configs.items()]
    (workdir / "learnability.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
