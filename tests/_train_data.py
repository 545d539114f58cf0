"""A tiny EmojiGram corpus and vocabulary for the trainer's tests, built once per session."""

from __future__ import annotations

import fcntl
from pathlib import Path

NUM_POSTS = 384
IMAGE_SIZE = 32


def tiny_inputs(root: Path) -> tuple[Path, Path]:
    """(corpus_dir, vocab_path) under `root`: the corpus build (local runner) and vocab builder."""
    root.mkdir(parents=True, exist_ok=True)
    corpus_dir, vocab_path = root / "corpus", root / "vocab.json"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if vocab_path.is_file():
            return corpus_dir, vocab_path
        from weaksup.corpus.pipeline import BuildConfig, build
        from weaksup.labels import build_from_corpus

        options = {"num_posts": NUM_POSTS, "seed": 0, "image_size": IMAGE_SIZE, "unit_size": NUM_POSTS // 2}
        build(BuildConfig(source="emojigram", options=options, num_shards=2), str(corpus_dir),
              runner="local", workers=2, progress=False)
        build_from_corpus(corpus_dir, vocab_path, mode="topk", top_k=40)
        return corpus_dir, vocab_path


REPO = Path(__file__).resolve().parent.parent


def train_env(devices: int, cache_dir: Path) -> dict[str, str]:
    """Environment for a trainer subprocess: its own device count, a shared compile cache."""
    import os

    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    # The same program compiled once serves every run of the session (and changes no result).
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def train_argv(inputs: tuple[Path, Path], workdir: Path, arg: str = "", overrides: tuple[str, ...] = ()) -> list[str]:
    """`python -m weaksup train` on configs/tiny.py:runlocal with the tiny inputs."""
    import sys

    corpus, vocab = inputs
    spec = f"{REPO / 'configs' / 'tiny.py'}:runlocal,corpus={corpus},vocab={vocab}" + (f",{arg}" if arg else "")
    return [sys.executable, "-m", "weaksup", "train", "--config", spec, "--workdir", str(workdir), *overrides]


def wait_for_step(workdir: Path, step: int, proc, timeout: float = 240.0) -> int:
    """Polls metrics.jsonl until a logged step >= `step`; returns the latest logged step."""
    import json
    import time

    path = workdir / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        if path.is_file():
            steps = []
            for line in path.read_text().splitlines():
                try:
                    steps.append(json.loads(line)["step"])
                except (ValueError, KeyError):
                    pass
            if steps and max(steps) >= step:
                return max(steps)
        time.sleep(0.05)
    raise AssertionError(f"no step {step} in {path} after {timeout}s")
