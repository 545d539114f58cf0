"""The `weaksup` console script from anywhere: runs listed and compared, plots, configs by name."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from weaksup import plot, runs, workdir_lock
from weaksup.metrics import read_jsonl

WEAKSUP = Path(sys.executable).parent / "weaksup"


def _weaksup(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert WEAKSUP.is_file(), "the console script is installed with the package (setup.cfg entry_points)"
    return subprocess.run([str(WEAKSUP), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from _paper_run import paper_run

    return paper_run(tmp_path_factory.getbasetemp())


def _row(text: str, name: str) -> list[str]:
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith(f"| {name} |")]
    assert len(rows) == 1, text
    return [cell.strip(" |") for cell in rows[0]]


def test_runs_lists_each_run_with_status_step_and_metrics(run_dir, tmp_path):
    from _paper_run import STEPS

    proc = _weaksup("runs", str(run_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    train = _row(proc.stdout, str(run_dir / "train"))
    assert train[1:5] == ["pretrain", "complete", f"{STEPS} / {STEPS}", str(STEPS)]
    last_loss = [r["loss"] for r in read_jsonl(run_dir / "train" / "metrics.jsonl") if "loss" in r][-1]
    assert f"loss {last_loss:.4f}" in train[5]
    transfer = _row(proc.stdout, str(run_dir / "transfer"))
    top1 = json.loads((run_dir / "transfer" / "results.json").read_text())["results"]["pretrained"]["linear"]["test_top1"]
    assert transfer[1:3] == ["evaluate", "complete"] and f"pretrained/linear/test_top1 {top1:.4f}" in transfer[5]


def test_a_run_is_stopped_without_its_last_checkpoint_and_running_while_locked(run_dir, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(run_dir / "train", run)
    assert runs.describe(run).status == "complete"
    with workdir_lock.hold(run, what="train"):
        assert runs.describe(run).status == "running"
    last = runs.checkpoint_steps(run)[-1]
    shutil.rmtree(run / "checkpoints" / str(last))
    described = runs.describe(run)
    assert described.status == "stopped"
    assert described.checkpoint == (runs.checkpoint_steps(run) or [None])[-1] != last


def test_an_epoch_based_run_shows_the_length_the_trainer_resolved(run_dir, tmp_path):
    from _paper_run import STEPS

    run = tmp_path / "epochs"
    shutil.copytree(run_dir / "train", run)
    config = json.loads((run / "config.json").read_text())
    config.update(total_steps=None, total_epochs=2.0, total_examples=None)  # its length depends on the corpus
    (run / "config.json").write_text(json.dumps(config))
    described = runs.describe(run)
    assert described.total == STEPS and described.status == "complete"
    (run / "metrics.jsonl").write_text("")  # before the first log line, the length is not known yet
    assert runs.describe(run).total is None


def test_runs_compare_puts_results_side_by_side(run_dir, tmp_path):
    results = json.loads((run_dir / "transfer" / "results.json").read_text())["results"]
    proc = _weaksup("runs", "--compare", "--format", "csv", str(run_dir / "train"), str(run_dir / "transfer"),
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = list(csv.reader(io.StringIO(proc.stdout)))
    assert table[0] == ["result", str(run_dir / "train"), str(run_dir / "transfer")]
    cells = {row[0]: row[1:] for row in table[1:]}
    for init, evaluators in results.items():
        for name, metrics in evaluators.items():
            for metric, value in metrics.items():
                assert float(cells[f"{init}/{name}/{metric}"][1]) == pytest.approx(value)
                assert cells[f"{init}/{name}/{metric}"][0] == ""  # the pretraining run has no such result
    assert float(cells["pretrain/loss"][0]) > 0
    markdown = _weaksup("runs", "--compare", str(run_dir), cwd=tmp_path).stdout
    assert markdown.splitlines()[0] == f"| result | {run_dir / 'train'} | {run_dir / 'transfer'} |"


def test_runs_names_a_missing_folder(tmp_path):
    proc = _weaksup("runs", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode == 2 and "no such folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = _weaksup("runs", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "no runs under" in proc.stderr


def test_plot_writes_the_runs_curves_and_transfer(run_dir, tmp_path):
    proc = _weaksup("plot", str(run_dir), "--output", str(tmp_path / "a"), cwd=tmp_path)
    assert proc.returncode == 2 and "not a run folder" in proc.stderr  # the folder holding runs is not one
    train, transfer = run_dir / "train", run_dir / "transfer"
    for run in (train, transfer):
        proc = _weaksup("plot", str(run), "--output", str(tmp_path / run.name), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    png = {p.name: p for p in (tmp_path / "train").glob("*.png")} | {p.name: p for p in (tmp_path / "transfer").glob("*.png")}
    assert sorted(png) == ["training.png", "transfer.png"]
    for path in png.values():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 300 and np.asarray(image).std() > 0
    # The curves are the run's metrics: the same metrics draw the same picture, changed ones another.
    records = read_jsonl(train / "metrics.jsonl")
    steps, losses = plot.curves(records, "loss")
    assert losses == [r["loss"] for r in sorted(records, key=lambda r: r["step"]) if "loss" in r] and steps
    same = plot.plot_training(records, tmp_path / "same", "pretraining: train")
    assert same.read_bytes() == (tmp_path / "train" / "training.png").read_bytes()
    changed = [{**r, "loss": 2 * r["loss"]} if "loss" in r else r for r in records]
    assert plot.plot_training(changed, tmp_path / "changed", "pretraining: train").read_bytes() != same.read_bytes()


def test_rerunning_a_finished_run_says_it_is_complete(run_dir, tmp_path):
    from _paper_run import PRETRAIN, STEPS
    from _train_data import tiny_inputs

    corpus, vocab = tiny_inputs(run_dir.parent / "train_inputs")  # built with the run: reused
    shutil.copytree(run_dir / "train", tmp_path / "train")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    # `--config.KEY VALUE` (a space, no `=`) is accepted like `--config.KEY=VALUE`.
    proc = subprocess.run([str(WEAKSUP), "train", "--config", f"{PRETRAIN}:runlocal,vocab=in1k,corpus={corpus},"
                           f"vocab_path={vocab}", "--config.total_steps", str(STEPS), "--workdir", str(tmp_path / "train")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"is already complete (step {STEPS} of {STEPS}); nothing to do" in proc.stdout
    assert f"outputs: {tmp_path / 'train' / 'checkpoints'}" in proc.stdout


def test_configs_by_name_from_any_directory(tmp_path):
    code = ("from weaksup.config import load_config; c = load_config('tiny:runlocal'); "
            "import launch.local; print(c.model.name, launch.local.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["resnet_tiny", "launch.local"]
    proc = _weaksup("train", "--config", "no_such_config", "--workdir", str(tmp_path / "w"), cwd=tmp_path)
    assert proc.returncode == 2 and "no_such_config" in proc.stderr and "tiny" in proc.stderr
    assert not (tmp_path / "w").exists()
