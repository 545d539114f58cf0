"""Test set-up: eight host CPU devices, so sharding tests see a real mesh, and one
persistent compilation cache for the session."""

import atexit
import os
import shutil
import tempfile

# Must happen before JAX initialises its backend anywhere in the test session.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Most of a short training run on CPU is compiling it, and many tests (and the
# subprocesses they start, which inherit the environment) compile the same programs:
# the demo's small mode alone runs in 64 s with a cold cache and 27 s with a warm one.
# A loaded executable is the one the compiler would build, so no result changes.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="weaksup-tests-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A finished run of the demo's small mode (`configs/emojigram_demo.py:runlocal`).

    Shared by the demo and notebook tests: a real corpus, vocabulary, pretraining run
    with checkpoints and transfer results, built once per test session. Its layout:
    RUN/results.json, RUN/pretrain/{config.json,metrics.jsonl,checkpoints/},
    RUN/transfer/results.{json,md}; corpora under RUN/../data.
    """
    root = tmp_path_factory.mktemp("demo")
    run = root / "run"
    cmd = [sys.executable, "-m", "weaksup", "demo", "--config", "configs/emojigram_demo.py:runlocal",
           "--workdir", str(run), "--data-root", str(root / "data"), "--tfds-dir", str(root / "tfds")]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device, like a laptop run
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    (root / "demo.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"demo failed (log {root / 'demo.log'}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return run
