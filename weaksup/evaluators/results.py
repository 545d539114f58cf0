"""Evaluation results: `results.json` and a markdown table `results.md` in the workdir.

Results are nested {init: {evaluator: {metric: value}}}, where init names the weights
("pretrained", "random"), so the random-initialisation baseline sits beside the
pretrained numbers in one table. Both files are written atomically.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from weaksup import atomic

Results = Mapping[str, Mapping[str, Mapping[str, float]]]


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and 0.0 <= value <= 1.0 and value != 0.0:
        return f"{value:.4f}"
    return f"{value:.4g}"


def markdown_table(results: Results) -> str:
    """One row per (evaluator, metric), one column per init."""
    inits = list(results)
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for init, evals in results.items():
        for ev, metrics in evals.items():
            for metric, value in metrics.items():
                rows.setdefault((ev, metric), {})[init] = value
    lines = ["| evaluator | metric | " + " | ".join(inits) + " |",
             "|---|---|" + "---:|" * len(inits)]
    for (ev, metric), by_init in rows.items():
        lines.append(f"| {ev} | {metric} | " + " | ".join(_fmt(by_init.get(i)) for i in inits) + " |")
    return "\n".join(lines) + "\n"


def top1_accuracies(results: Results) -> dict[str, dict[str, float]]:
    """{label: {init: value}} for every top-1 accuracy an evaluation recorded, validation aside.

    The label is the evaluator's name for its headline metric (`test_top1`, or `top1` for
    zero-shot) and "NAME Kshot" for the few-shot ones (`5shot_top1`), so every protocol
    gets its row whatever its metric is called.
    """
    out: dict[str, dict[str, float]] = {}
    for init, evaluators in results.items():
        for name, metrics in evaluators.items():
            for metric, value in metrics.items():
                if metric.endswith("top1") and not metric.startswith("val"):
                    label = name if metric in ("test_top1", "top1") else f"{name} {metric.removesuffix('_top1')}"
                    out.setdefault(label, {})[init] = float(value)
    return out


def write_results(workdir: str | os.PathLike, results: Results, meta: Mapping[str, Any] | None = None) -> Path:
    """Writes results.json ({"meta", "results"}) and results.md; returns the JSON path."""
    workdir = Path(workdir)
    payload = {"meta": dict(meta or {}), "results": {i: {e: dict(m) for e, m in ev.items()} for i, ev in results.items()}}
    atomic.write_json(workdir / "results.json", payload, indent=2)
    header = "# Transfer evaluation\n\n"
    if meta:
        header += "".join(f"- {k}: {v}\n" for k, v in meta.items()) + "\n"
    atomic.write_text(workdir / "results.md", header + markdown_table(results))
    return workdir / "results.json"


def read_results(workdir: str | os.PathLike) -> dict[str, Any]:
    """The {"meta", "results"} object of a workdir's results.json."""
    path = Path(workdir) / "results.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no results written yet") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
