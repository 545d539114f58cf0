"""Bad configurations fail before any compilation; a non-finite loss stops the run by step."""

import json
import subprocess

import jax
import numpy as np
import pytest

from _train_data import REPO, tiny_inputs, train_argv, train_env
from weaksup import checkpoint as ckpt_lib
from weaksup import config as config_lib
from weaksup import train
from weaksup.config import ConfigError
from weaksup.errors import EXIT_FAILED, EXIT_USAGE
from weaksup.hashtags.vocabulary import Vocabulary


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_inputs(tmp_path_factory.getbasetemp() / "train_inputs")


class CompileLog:
    """Counts XLA backend compilations (JAX's own monitoring event) while active."""

    def __init__(self):
        self.count = 0
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event, duration, **kw):
        if self.active and event == "/jax/core/compile/backend_compile_duration":
            self.count += 1


@pytest.fixture(scope="module")
def compile_log():
    return CompileLog()


def _config(inputs, arg="", overrides=()):
    corpus, vocab = inputs
    spec = f"{REPO / 'configs' / 'tiny.py'}:runlocal,corpus={corpus},vocab={vocab}" + (f",{arg}" if arg else "")
    return config_lib.load_config(spec, list(overrides))


def _fails_before_compiling(compile_log, config, workdir, match):
    compile_log.active, compile_log.count = True, 0
    try:
        with pytest.raises(ConfigError, match=match):
            train.train_and_evaluate(config, workdir)
    finally:
        compile_log.active = False
    assert compile_log.count == 0, "compiled before reporting a configuration error"


def test_compile_log_sees_compilations(compile_log):
    # Without this, "no compilation" below could hold because nothing is counted.
    compile_log.active, compile_log.count = True, 0
    jax.jit(lambda x: x * 3 + 1)(np.arange(7.0))
    compile_log.active = False
    assert compile_log.count >= 1


@pytest.mark.parametrize(
    "arg, overrides, match",
    [
        ("batch=12", (), r"global batch 12 .* 8"),  # 8 data-parallel devices in tests
        ("model=resnet_nonesuch", (), r"unknown model 'resnet_nonesuch'"),
        ("corpus=/nonexistent/corpus", (), r"corpus not found: /nonexistent/corpus"),
        ("vocab=/nonexistent/vocab.json", (), r"vocabulary not found: /nonexistent/vocab.json"),
        ("", ("--config.holdout_records=100000",), r"holdout_records=100000"),
        ("", ("--config.optim.grad_accum_steps=4",), r"global batch 16 .* 8 devices x 4 accumulation"),
        ("", ("--config.loss=hinge",), r"config.loss must be"),
        ("", ("--config.optim.schedule=spiral",), r"config.optim.schedule must be one of step, cosine, linear, constant, got .spiral."),
    ],
)
def test_bad_config_errors_before_compiling(inputs, compile_log, tmp_path, arg, overrides, match):
    _fails_before_compiling(compile_log, _config(inputs, arg, overrides), tmp_path / "run", match)


def test_unknown_config_key_is_an_error(inputs):
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lr'"):
        _config(inputs, overrides=("--config.optim.lr=0.1",))
    with pytest.raises(ConfigError, match=r"unknown config argument 'stepz'"):
        _config(inputs, arg="stepz=3")


def test_vocabulary_not_matching_the_checkpoint(inputs, compile_log, tmp_path):
    corpus, vocab_path = inputs
    vocab = Vocabulary.load(vocab_path)
    n = vocab.num_classes - 1
    smaller = Vocabulary(
        wnids=vocab.wnids[:n], names=vocab.names[:n], frequencies=vocab.frequencies[:n],
        hashtags=vocab.hashtags[:n], hypernyms=[[i for i in h if i < n] for h in vocab.hypernyms[:n]],
        build=vocab.build,
    )
    smaller.save(tmp_path / "smaller.json")
    workdir = tmp_path / "run"
    ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), async_save=False)
    ckpt.save(3, {"step": np.int32(3)}, vocab=vocab.to_json())
    ckpt.close()
    config = _config(inputs, f"vocab={tmp_path / 'smaller.json'}")
    _fails_before_compiling(compile_log, config, workdir, rf"vocabulary {n} classes .* does not match checkpoint .*/3: {n + 1} classes")


def test_cli_reports_a_config_problem_in_one_line(inputs, tmp_path, tmp_path_factory):
    env = train_env(1, tmp_path_factory.getbasetemp() / "jax_cache")
    argv = train_argv(inputs, tmp_path / "run", "corpus=/nonexistent/corpus")
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == EXIT_USAGE == 2
    assert r.stderr.strip().splitlines()[-1].startswith("train: error: corpus not found: /nonexistent/corpus")
    assert "Traceback" not in r.stderr

    r = subprocess.run(train_argv(inputs, tmp_path / "run", overrides=("--config.optim.lr=1",)), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown config key 'optim.lr'" in r.stderr


def _logged_steps(workdir):
    return [r["step"] for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_non_finite_loss_stops_naming_the_step(inputs, tmp_path, tmp_path_factory):
    # Warm-up makes step 1's rate 0 and step 2's astronomically large: the parameters
    # overflow at step 2, deterministically.
    env = train_env(1, tmp_path_factory.getbasetemp() / "jax_cache")
    overrides = ("--config.optim.base_lr=1e38", "--config.log_every_steps=1", "--config.checkpoint.every_steps=1",
                 "--config.max_rollbacks=2", "--config.holdout_records=0")
    stop = tmp_path / "stop"
    r = subprocess.run(train_argv(inputs, stop, "steps=8", overrides), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == EXIT_FAILED == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last == "train: error: non-finite loss or parameters at step 2; stopping (nan_policy=stop, rollbacks so far 0)"
    assert _logged_steps(stop) == [1]  # the bad step is never logged as a result
    # No checkpoint of the overflowed state.
    assert ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(stop), read_only=True).all_steps() == [1]

    back = tmp_path / "rollback"
    r = subprocess.run(train_argv(inputs, back, "steps=8", (*overrides, "--config.nan_policy=rollback")), env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "non-finite loss or parameters at step 2: rolling back to step 1 (1/2)" in r.stdout
    assert "non-finite loss or parameters at step 2: rolling back to step 1 (2/2)" in r.stdout
    assert "skipping the batch of step 2" in r.stdout
    assert r.stderr.strip().splitlines()[-1] == (
        "train: error: non-finite loss or parameters at step 2; stopping (nan_policy=rollback, rollbacks so far 2)")
