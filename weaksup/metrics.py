"""Training metrics and where they go: hashtag precision@k, mAP, TensorBoard, JSON lines.

Precision@k is computed on device inside the train step; mAP over a held-out slice on
the host from accumulated scores. `MetricWriter` writes every scalar three ways: a
TensorBoard event file (tensorboardX, readable by TensorBoard), `metrics.jsonl` (one JSON
object per logged step, for notebooks) and a console line. Only process 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

log = logging.getLogger(__name__)


def precision_at_k(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """Per-example precision@k, (B,): the fraction of the top-k predictions among the labels.

    `labels` are padded label indices (B, L) with -1 padding, or classes (B,). With k=1
    this is "is the top prediction one of the post's hashtags".
    """
    labels = jnp.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    k = min(k, logits.shape[-1])
    _, top = jax.lax.top_k(logits.astype(jnp.float32), k)  # (B, k)
    hit = (top[:, :, None] == labels[:, None, :]) & (labels[:, None, :] >= 0)
    return jnp.any(hit, axis=-1).sum(axis=-1) / k


def average_precision(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Per-class average precision, (C,), NaN for classes with no positive.

    `scores` (N, C) float, `positives` (N, C) bool. Ties are broken by input order, so the
    result is deterministic.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    order = np.argsort(-scores, axis=0, kind="stable")
    hits = np.take_along_axis(positives, order, axis=0).astype(np.float64)
    cum_hits = np.cumsum(hits, axis=0)
    ranks = np.arange(1, scores.shape[0] + 1, dtype=np.float64)[:, None]
    n_pos = hits.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (hits * cum_hits / ranks).sum(axis=0) / n_pos
    return np.where(n_pos > 0, ap, np.nan)


def mean_average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """mAP over the classes that have at least one positive (NaN if none has)."""
    ap = average_precision(scores, positives)
    valid = ~np.isnan(ap)
    return float(ap[valid].mean()) if valid.any() else float("nan")


def positives_from_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, C) bool from padded label indices (N, L) (or classes (N,))."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    out = np.zeros((labels.shape[0], num_classes), dtype=bool)
    rows, cols = np.nonzero(labels >= 0)
    out[rows, labels[rows, cols]] = True
    return out


def _to_float(value: Any) -> float:
    return float(np.asarray(value))


class MetricWriter:
    """Scalars to TensorBoard events, `metrics.jsonl` and the console (process 0 only)."""

    def __init__(self, workdir: str | os.PathLike, enabled: bool | None = None, console: bool | None = True):
        self.workdir = Path(workdir)
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._console = bool(console)  # progress lines through the package's logger (-q silences them)
        self._tb = None
        self._jsonl = None
        if self.enabled:
            from tensorboardX import SummaryWriter

            self.workdir.mkdir(parents=True, exist_ok=True)
            self._tb = SummaryWriter(logdir=str(self.workdir / "tensorboard"))
            # Append: a resumed run continues the same file; readers keep the last value per step.
            self._jsonl = open(self.workdir / "metrics.jsonl", "a", encoding="utf-8")

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Records one step's scalars (arrays are fetched to the host here)."""
        if not self.enabled:
            return
        values = {k: _to_float(v) for k, v in scalars.items()}
        for k, v in values.items():
            if math.isfinite(v):
                self._tb.add_scalar(k, v, global_step=step)
        record = {"step": int(step), "time": time.time()}
        record.update({k: (v if math.isfinite(v) else None) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def write_text(self, message: str) -> None:
        """A console line (process 0), logged at INFO."""
        if self.enabled and self._console:
            log.info(message)

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()
            self._jsonl.flush()

    def close(self) -> None:
        if self.enabled and self._tb is not None:
            self._tb.close()
            self._jsonl.close()
            self._tb = None


class Progress:
    """Throughput and ETA over the steps since the last report (excluding compilation)."""

    def __init__(self, total_steps: int, global_batch_size: int, num_devices: int, first_step: int = 0):
        self.total_steps = total_steps
        self.global_batch_size = global_batch_size
        self.num_devices = num_devices
        self._t0 = None
        self._step0 = first_step
        self._start_step = first_step

    def start(self, step: int) -> None:
        """Starts timing from `step` (call after the first, compiling, step)."""
        self._t0 = time.perf_counter()
        self._step0 = step

    def report(self, step: int) -> dict[str, float]:
        """images/s overall and per device, steps/s and ETA in seconds since the last report."""
        now = time.perf_counter()
        if self._t0 is None or step <= self._step0:
            self.start(step)
            return {}
        dt = now - self._t0
        steps = step - self._step0
        ips = steps * self.global_batch_size / dt
        out = {
            "perf/images_per_sec": ips,
            "perf/images_per_sec_per_device": ips / self.num_devices,
            "perf/steps_per_sec": steps / dt,
            "perf/eta_sec": (self.total_steps - step) * dt / steps,
        }
        self._t0, self._step0 = now, step
        return out


def format_eta(seconds: float) -> str:
    """H:MM:SS."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads `metrics.jsonl`; a resumed run's repeated steps keep their latest record."""
    by_step: dict[tuple[int, tuple[str, ...]], dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill; the rest of the file is intact
            by_step[(rec["step"], tuple(sorted(k for k in rec if k not in ("step", "time"))))] = rec
    return sorted(by_step.values(), key=lambda r: r["step"])
