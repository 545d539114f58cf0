"""Runs on disk: `weaksup runs [DIR ...]` lists them; `--compare` puts their results side by side.

A run is a folder one command wrote:

- a pretraining run (`train`): `config.json`, `metrics.jsonl`, `checkpoints/STEP/`;
- an evaluation run (`evaluate`): `results.json` holding {"meta", "results"};
- a demo run (`demo`): `results.json` holding {"summary", "transfer", "pretraining", ...}
  beside its `pretrain/` and `transfer/` runs, which are listed as part of it.

Listing reads only these small files (no JAX, no checkpoint restore), so it is instant on
a folder of hundreds of runs. The status of a pretraining run is `running` while a live
process holds its lock (`weaksup.workdir_lock`), `complete` when its last checkpoint is
the final step, and `stopped` otherwise (resume it with the same command).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weaksup import workdir_lock
from weaksup.config import ConfigError, config_from_json, total_steps
from weaksup.errors import EXIT_USAGE
from weaksup.metrics import read_jsonl

# Folders inside a run that never hold another run; skipped when searching.
_NOT_RUNS = {"checkpoints", "tensorboard", "feature_cache", "evaluators", "data", "tfds"}
# Metrics a listing shows for a pretraining run, in this order, when the run logged them.
PRETRAIN_KEYS = ("loss", "prec@1", "holdout/mAP")


@dataclass
class Run:
    """What one run folder says about itself."""

    path: Path
    kind: str  # "pretrain" | "evaluate" | "demo"
    status: str
    step: int | None = None
    total: int | None = None
    checkpoint: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def kind_of(folder: Path) -> str | None:
    """"pretrain", "evaluate", "demo", or None when `folder` is not a run."""
    results = read_json(folder / "results.json") if (folder / "results.json").is_file() else None
    if results is not None and "summary" in results and (folder / "pretrain").is_dir():
        return "demo"
    if (folder / "config.json").is_file() and ((folder / "checkpoints").is_dir() or (folder / "metrics.jsonl").is_file()):
        return "pretrain"
    if results is not None and "results" in results:
        return "evaluate"
    return None


def find_runs(roots: Sequence[str | os.PathLike[str]], max_depth: int = 4) -> list[Path]:
    """Run folders at or under `roots` (a demo run's own pretrain/transfer are not listed apart)."""
    found: list[Path] = []

    def visit(folder: Path, depth: int) -> None:
        if kind_of(folder) is not None:
            found.append(folder)
            return
        if depth >= max_depth:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            return
        for child in children:
            if child.name not in _NOT_RUNS and not child.name.startswith("."):
                visit(child, depth + 1)

    for root in roots:
        visit(Path(root), 0)
    return found


def checkpoint_steps(workdir: Path) -> list[int]:
    """Finished checkpoint steps of a pretraining run (Orbax's temporary folders excluded)."""
    ckpt = workdir / "checkpoints"
    if not ckpt.is_dir():
        return []
    return sorted(int(p.name) for p in ckpt.iterdir() if p.is_dir() and p.name.isdigit())


def _total_steps(workdir: Path, records: list[dict[str, Any]]) -> int | None:
    for record in reversed(records):  # the trainer logs the resolved length once it knows it
        if "total_steps" in record:
            return int(record["total_steps"])
    stored = read_json(workdir / "config.json")
    if stored is None:
        return None
    try:
        return total_steps(config_from_json(stored))
    except (ConfigError, KeyError, AttributeError, TypeError):
        return None  # given in epochs: the length depends on the corpus


def describe_pretrain(workdir: Path) -> Run:
    """Status, step of total, last checkpoint and latest key metrics of a pretraining run."""
    records = read_jsonl(workdir / "metrics.jsonl") if (workdir / "metrics.jsonl").is_file() else []
    steps = checkpoint_steps(workdir)
    last: dict[str, float] = {}
    for record in records:
        last.update({k: v for k, v in record.items() if k in PRETRAIN_KEYS})
    step = max((int(r["step"]) for r in records if "step" in r), default=steps[-1] if steps else None)
    total = _total_steps(workdir, records)
    checkpoint = steps[-1] if steps else None
    if workdir_lock.in_use(workdir):
        status = "running"
    elif checkpoint is not None and total is not None and checkpoint >= total:
        status = "complete"
    else:
        status = "stopped"
    return Run(workdir, "pretrain", status, step, total, checkpoint, last)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested mapping, keyed 'a/b/c'."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def results_of(run: Path) -> dict[str, float]:
    """Every numeric result a run recorded, flattened: what `--compare` lines up."""
    kind = kind_of(run)
    if kind == "pretrain":
        described = describe_pretrain(run)
        out = {f"pretrain/{k}": v for k, v in described.metrics.items()}
        if described.step is not None:
            out["pretrain/step"] = float(described.step)
        return out
    data = read_json(run / "results.json") or {}
    if kind == "evaluate":
        return flatten(data.get("results", {}))
    return flatten({k: data[k] for k in ("summary", "transfer", "pretraining") if isinstance(data.get(k), Mapping)})


def describe(run: Path) -> Run:
    """A run's listing entry, whatever its kind."""
    kind = kind_of(run)
    if kind == "pretrain":
        return describe_pretrain(run)
    if kind == "demo":
        pre = describe_pretrain(run / "pretrain")
        summary = (read_json(run / "results.json") or {}).get("summary", {})
        status = "running" if pre.status == "running" or workdir_lock.in_use(run) else "complete"
        return Run(run, "demo", status, pre.step, pre.total, pre.checkpoint, {**pre.metrics, **flatten(summary)})
    data = read_json(run / "results.json") or {}
    complete = bool(data.get("meta", {}).get("complete", True))
    tops = {k: v for k, v in flatten(data.get("results", {})).items()
            if k.endswith("top1") and not k.rsplit("/", 1)[-1].startswith("val")}
    return Run(run, "evaluate", "running" if workdir_lock.in_use(run) else ("complete" if complete else "partial"),
               data.get("meta", {}).get("step"), None, None, tops)


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3g}"
    if value == int(value) and abs(value) >= 1:
        return str(int(value))
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.4g}"


def listing(runs: Iterable[Run], base: Path | None = None) -> str:
    """A markdown table: run, kind, status, step of total, last checkpoint, key metrics."""
    lines = ["| run | kind | status | step | checkpoint | metrics |", "|---|---|---|---:|---:|---|"]
    for run in runs:
        name = _name(run.path, base)
        step = "–" if run.step is None else f"{run.step}" + (f" / {run.total}" if run.total else "")
        ckpt = "–" if run.checkpoint is None else str(run.checkpoint)
        metrics = ", ".join(f"{k} {_fmt(v)}" for k, v in run.metrics.items())
        lines.append(f"| {name} | {run.kind} | {run.status} | {step} | {ckpt} | {metrics} |")
    return "\n".join(lines) + "\n"


def _name(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return str(path.resolve().relative_to(base.resolve())) or "."
        except ValueError:
            pass
    return str(path)


def compare(runs: Sequence[Path], fmt: str = "markdown", base: Path | None = None) -> str:
    """Several runs' results side by side: one row per result, one column per run."""
    columns = [results_of(r) for r in runs]
    keys: dict[str, None] = {}
    for col in columns:
        keys.update(dict.fromkeys(col))
    names = [_name(r, base) for r in runs]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["result", *names])
        for key in keys:
            writer.writerow([key, *("" if key not in c else repr(c[key]) for c in columns)])
        return buf.getvalue()
    lines = ["| result | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {key} | " + " | ".join(_fmt(c.get(key)) for c in columns) + " |" for key in keys]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="weaksup runs", description="List runs (status, step of total, last checkpoint, key metrics), "
        "or compare several runs' results side by side.")
    parser.add_argument("dirs", nargs="*", default=["runs"], help="run folders or folders holding runs (default: runs)")
    parser.add_argument("--compare", action="store_true", help="one column per run, one row per recorded result")
    parser.add_argument("--format", choices=("markdown", "csv"), default="markdown", help="table format of --compare")
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not Path(d).is_dir()]
    if missing:
        print(f"runs: no such folder: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    found = find_runs(args.dirs)
    if not found:
        print(f"runs: no runs under {', '.join(args.dirs)}", file=sys.stderr)
        return EXIT_USAGE
    base = Path.cwd()
    if args.compare:
        sys.stdout.write(compare(found, args.format, base))
    else:
        sys.stdout.write(listing((describe(r) for r in found), base))
    return 0
