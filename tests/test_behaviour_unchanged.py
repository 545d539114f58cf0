"""Refactors change no result: the code of a reference commit and this code, side by side.

`configs/tiny.py:runlocal` trains on the same inputs with the package exported from
REFERENCE_COMMIT and with this checkout; every array of the two final checkpoints must be
bitwise equal. The two runs share one machine and one process layout, so XLA:CPU compiles
the same program for the same processor (a digest stored on another processor could differ
for reasons that have nothing to do with the code).

REFERENCE_COMMIT is the last commit that meant to change results: 281435f made the
training crops' draws counter-based (`augment.train_draws`) instead of a numpy generator
per example, so every crop changed (with the old draws substituted, that commit trained
bitwise like d81926b). Before it, d81926b put the demo's training-mode batch norm on
oneDNN (`conv_impl: auto`), whose two-pass batch statistics differ from XLA's one-pass in
the last bits. The tiny config's training is unchanged since the
training library was split out of the loop (f1ad9d1). A change that is meant to alter
results moves it forward, with a note in its commit saying why the numbers change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests._train_data import REPO, tiny_inputs, train_env
from weaksup.models import onednn

REFERENCE_COMMIT = "281435f887c0b7154f571651c59f81994bbdbe68"


def _export(commit: str, dest: Path) -> Path:
    """The package and configs of `commit`, written under `dest` (git archive)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the reference commit's code is not available")
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "ref.tar"
    proc = subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), commit, "weaksup", "configs",
                           "setup.cfg"], capture_output=True, text=True)
    assert proc.returncode == 0, f"cannot export {commit} (a shallow clone?): {proc.stderr}"
    tree = dest / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def _train(tree: Path, inputs: tuple[Path, Path], workdir: Path, cache: Path) -> None:
    # Each run reads its own copy of the vocabulary, so neither reuses the other's label cache.
    corpus, vocab = inputs
    own_vocab = workdir.parent / f"{workdir.name}-vocab.json"
    shutil.copy(vocab, own_vocab)
    env = train_env(2, cache)
    env["PYTHONPATH"] = str(tree) + os.pathsep + str(REPO)
    env["WEAKSUP_DATA_DIR"] = str(REPO / "data")  # WordNet and the compiled decoder, as set up
    spec = f"{tree / 'configs' / 'tiny.py'}:runlocal,corpus={corpus},vocab={own_vocab}"
    code = "import sys, weaksup, weaksup.__main__ as m; print('package', weaksup.__file__); sys.exit(m.main())"
    proc = subprocess.run([sys.executable, "-c", code, "train", "--config", spec, "--workdir", str(workdir)],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"package {tree / 'weaksup' / '__init__.py'}" in proc.stdout, proc.stdout[:500]


def _state_digests(workdir: Path) -> dict[str, str]:
    """sha256 of every array of the newest checkpoint's train state, read with Orbax alone."""
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    state = ocp.PyTreeCheckpointer().restore(workdir / "checkpoints" / str(steps[-1]) / "state")
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    out = {}
    for path, leaf in leaves:
        a = np.asarray(leaf)
        out[jax.tree_util.keystr(path)] = hashlib.sha256(
            a.dtype.str.encode() + str(a.shape).encode() + a.tobytes()).hexdigest()
    return out


@pytest.mark.slow
def test_tiny_config_trains_to_the_reference_commits_checkpoint(tmp_path, tmp_path_factory):
    inputs = tiny_inputs(tmp_path_factory.getbasetemp() / "tiny_inputs")
    cache = tmp_path_factory.getbasetemp() / "jax_cache"
    reference = _export(REFERENCE_COMMIT, tmp_path / "reference")
    _train(reference, inputs, tmp_path / "reference-run", cache)
    _train(REPO, inputs, tmp_path / "this-run", cache)
    ref, now = _state_digests(tmp_path / "reference-run"), _state_digests(tmp_path / "this-run")
    assert len(ref) > 10 and sorted(ref) == sorted(now)
    different = [k for k in ref if ref[k] != now[k]]
    assert not different, f"{len(different)} of {len(ref)} arrays differ from the reference commit's run: {different[:5]}"


def _comparable(results: dict) -> dict:
    """What a demo run computed, without its timings."""
    transfer = {init: {ev: {k: v for k, v in m.items() if k != "seconds"} for ev, m in evs.items()}
                for init, evs in results["transfer"].items()}
    pretraining = {k: v for k, v in results["pretraining"].items() if not k.startswith("perf/") and "_sec" not in k}
    return {"summary": results["summary"], "transfer": transfer, "pretraining": pretraining,
            "coverage": results["data"]["vocab_coverage"], "classes": results["data"]["vocab_classes"]}


@pytest.mark.slow
def test_demo_runlocal_results_equal_the_reference_commits(demo_run, tmp_path):
    reference = _export(REFERENCE_COMMIT, tmp_path / "reference")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device, as the demo_run fixture
    env["PYTHONPATH"] = str(reference)
    env["WEAKSUP_DATA_DIR"] = str(REPO / "data")
    # The reference's own oneDNN handlers (its source may differ from this checkout's; the
    # cache keys each build by its source), so that `conv_impl: auto` takes the same path.
    build = subprocess.run([sys.executable, "-m", "weaksup", "onednn", "build"], cwd=reference, env=env,
                           capture_output=True, text=True, timeout=600)
    assert (build.returncode == 0) == onednn.available(), build.stdout + build.stderr
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "weaksup", "demo", "--config", "configs/emojigram_demo.py:runlocal", "--workdir",
           str(run), "--data-root", str(tmp_path / "data"), "--tfds-dir", str(tmp_path / "tfds")]
    proc = subprocess.run(cmd, cwd=reference, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    ref = _comparable(json.loads((run / "results.json").read_text()))
    now = _comparable(json.loads((demo_run / "results.json").read_text()))
    assert ref["transfer"]["pretrained"] and ref["pretraining"]["step"] == now["pretraining"]["step"]
    assert now == ref
