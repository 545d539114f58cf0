"""The demo's small mode end to end: every stage runs and results.json is complete."""

import json
import shutil
import subprocess
import sys

from conftest import REPO


def test_demo_writes_complete_results(demo_run):
    results = json.loads((demo_run / "results.json").read_text())
    summary = results["summary"]
    for key in ("linear_top1_pretrained", "linear_top1_random", "finetune_top1_pretrained",
                "finetune_top1_random", "linear_top1_gain", "finetune_top1_gain"):
        assert key in summary, key
        assert -1.0 <= summary[key] <= 1.0
    assert set(results["transfer"]) == {"pretrained", "random"}
    for init in ("pretrained", "random"):
        assert {"linear", "fewshot", "finetune"} <= set(results["transfer"][init])
    data = results["data"]
    assert data["corpus_records"] > 1000
    assert data["vocab_classes"] > 10
    assert data["target_classes"] == 40
    assert results["pretraining"]["step"] == 30
    assert (demo_run / "transfer" / "results.md").exists()
    assert (demo_run / "pretrain" / "config.json").exists()


def test_demo_rerun_reuses_finished_stages(demo_run, tmp_path):
    """A second run finds the corpus, vocabulary and checkpoint complete, does not rebuild, and
    reports what the first run measured (on a copy of the fixture's run, which other tests read)."""
    root = demo_run.parent
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    cmd = [sys.executable, "-m", "weaksup", "demo", "--config", "configs/emojigram_demo.py:runlocal",
           "--workdir", str(run), "--data-root", str(root / "data"), "--tfds-dir", str(root / "tfds")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is complete; reusing it" in proc.stdout
    assert "exists; reusing it" in proc.stdout
    assert "for 30 steps (from step 30)" in proc.stdout
    first, again = (json.loads((r / "results.json").read_text()) for r in (demo_run, run))
    assert _untimed(again["pretraining"]) == _untimed(first["pretraining"])
    assert "loss" in again["pretraining"] and "holdout/mAP" in again["pretraining"]
    for init in ("pretrained", "random"):
        for protocol, metrics in first["transfer"][init].items():
            assert _untimed(again["transfer"][init][protocol]) == _untimed(metrics), (init, protocol)


def _untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith("perf/") and k not in ("first_step", "seconds")}


def test_demo_rejects_bad_config_value(tmp_path):
    cmd = [sys.executable, "-m", "weaksup", "demo", "--workdir", str(tmp_path / "run"),
           "--config", "configs/emojigram_demo.py:runlocal", "--config.input.global_batch_size=banana"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "global_batch_size" in proc.stderr
