"""Test set-up: eight host CPU devices, so sharding tests see a real mesh, one persistent
compilation cache for the session, the shared demo run, and the file order `make test`'s
pytest-xdist workers take."""

import atexit
import fcntl
import itertools
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
    RUN/transfer/results.{json,md}; corpora under RUN/../data. Under pytest-xdist
    (`make test` runs `pytest -n`) the workers share one run: the first to need it builds
    it under a lock in the session's common temporary folder, the others wait and read it.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return _build_demo_run(tmp_path_factory.mktemp("demo"))
    root = tmp_path_factory.getbasetemp().parent / "demo"
    root.mkdir(exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (root / "built").exists():
            if (root / "demo.log").exists():  # another worker's build failed
                pytest.fail(f"demo failed (log {root / 'demo.log'})")
            (root / "built").write_text(str(_build_demo_run(root)))
    return Path((root / "built").read_text())


def _build_demo_run(root: Path) -> Path:
    run = root / "run"
    cmd = [sys.executable, "-m", "weaksup", "demo", "--config", "configs/emojigram_demo.py:runlocal",
           "--workdir", str(run), "--data-root", str(root / "data"), "--tfds-dir", str(root / "tfds")]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device, like a laptop run
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    (root / "demo.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"demo failed (log {root / 'demo.log'}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return run


def pytest_collection_modifyitems(config, items) -> None:
    """Orders test files for `make test`, which hands whole files to its pytest-xdist workers
    in collection order (`--dist loadfile --no-loadscope-reorder`): the long files first, so
    none is handed out last while the other workers idle, and among them the files that
    read the demo run alternating with the others, so one worker trains the demo while the
    next one runs something else. Within a file the order is unchanged."""
    heavy, demo = set(), set()
    for item in items:
        if "demo_run" in getattr(item, "fixturenames", ()):
            heavy.add(item.path)
            demo.add(item.path)
        elif item.get_closest_marker("slow"):
            heavy.add(item.path)
    files = list(dict.fromkeys(item.path for item in items))
    with_demo = [f for f in files if f in demo]
    without = [f for f in files if f in heavy and f not in demo]
    first = [f for pair in itertools.zip_longest(with_demo, without) for f in pair if f is not None]
    rank = {f: i for i, f in enumerate(first)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))  # stable: the rest as collected
