"""Exact resume after SIGKILL; SIGTERM, then resume to the end with every output checked (real subprocesses)."""

import signal
import subprocess

import numpy as np
import pytest

from _train_data import tiny_inputs, train_argv, train_env, wait_for_step
from weaksup import checkpoint as ckpt_lib
from weaksup.hashtags.vocabulary import Vocabulary

pytestmark = pytest.mark.slow

STEPS = 10


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_inputs(tmp_path_factory.getbasetemp() / "train_inputs")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return train_env(1, tmp_path_factory.getbasetemp() / "jax_cache")


def _final_params(workdir, step):
    ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), read_only=True)
    try:
        assert ckpt.latest_step() == step
        import jax

        from weaksup import sharding

        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding.replicated(sharding.make_mesh())),
            ckpt.state_metadata(step),
        )
        state = ckpt.restore_state(step, target)
    finally:
        ckpt.close()
    return jax.tree.map(np.asarray, state)


def _assert_bitwise_equal(a, b):
    import jax

    la, ta = jax.tree.flatten_with_path(a)[0], jax.tree.structure(a)
    lb, tb = jax.tree.flatten_with_path(b)[0], jax.tree.structure(b)
    assert ta == tb
    for (path, x), (_, y) in zip(la, lb):
        assert x.dtype == y.dtype and x.shape == y.shape, path
        assert x.tobytes() == y.tobytes(), f"differs at {jax.tree_util.keystr(path)}"


def test_sigkill_then_resume_is_bitwise_identical(inputs, env, tmp_path):
    # Synchronous saves: the step-4 checkpoint is complete once step 6 is logged (an
    # asynchronous one may still be in flight when the kill lands, and is then rightly ignored).
    overrides = ("--config.log_every_steps=1", "--config.checkpoint.every_steps=4", "--config.holdout_records=0",
                 "--config.checkpoint.async_save=False")
    ref = tmp_path / "ref"
    r = subprocess.run(train_argv(inputs, ref, f"steps={STEPS}", overrides), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    run = tmp_path / "killed"
    proc = subprocess.Popen(train_argv(inputs, run, f"steps={STEPS}", overrides), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Past the step-4 checkpoint and between two saves: the restart must redo steps.
        wait_for_step(run, 6, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(run), read_only=True).all_steps())
    assert 4 <= killed_at < STEPS

    r = subprocess.run(train_argv(inputs, run, f"steps={STEPS}", overrides), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from {ckpt_lib.checkpoint_dir(run) / str(killed_at)}" in r.stdout

    a, b = _final_params(ref, STEPS), _final_params(run, STEPS)
    assert int(a["step"]) == STEPS
    _assert_bitwise_equal(a, b)
    # The comparison has teeth: the state after fewer steps is different.
    earlier = min(ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(ref), read_only=True).all_steps())
    assert earlier < STEPS
    early = _final_params_at(ref, earlier)
    assert not np.array_equal(early["params"]["head"]["kernel"], a["params"]["head"]["kernel"])


def _final_params_at(workdir, step):
    import jax

    from weaksup import sharding

    ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), read_only=True)
    try:
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding.replicated(sharding.make_mesh())),
            ckpt.state_metadata(step),
        )
        return jax.tree.map(np.asarray, ckpt.restore_state(step, target))
    finally:
        ckpt.close()


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    import warnings

    import tiny_tfds

    d = tmp_path_factory.mktemp("tiny_tfds")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny_tfds.build(d)
    return d


E2E_STEPS = 8


def test_sigterm_then_resume_runs_to_the_end(inputs, env, tfds_dir, tmp_path):
    """The CLI on configs/tiny.py:runlocal, stopped by SIGTERM and restarted: every output a run promises."""
    import tiny_tfds

    run = tmp_path / "term"
    probe = {"probe": {"type": "linear_probe", "every_steps": 4, "dataset": tiny_tfds.NAME, "data_dir": str(tfds_dir),
                       "l2_grid": (1e-3,), "batch_size": 16}}
    overrides = ("--config.log_every_steps=1", "--config.checkpoint.every_steps=1000", "--config.holdout_every_steps=4",
                 f"--config.evals={probe!r}")
    argv = train_argv(inputs, run, f"steps={E2E_STEPS}", overrides)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_step(run, 2, proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 75, out[-3000:]
    assert "stopped by SIGTERM after step" in out
    steps = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(run), read_only=True).all_steps()
    assert len(steps) == 1 and 2 <= steps[0] < E2E_STEPS, steps
    stopped_at = steps[0]
    assert f"checkpoint {ckpt_lib.checkpoint_dir(run) / str(stopped_at)} saved" in out

    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"resumed from {ckpt_lib.checkpoint_dir(run) / str(stopped_at)}" in r.stdout
    assert ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(run), read_only=True).all_steps() == [stopped_at, E2E_STEPS]

    # config.json: the run's config, as loaded.
    import json

    saved = json.loads((run / "config.json").read_text())
    assert saved["total_steps"] == E2E_STEPS and saved["model"]["name"] == "resnet_tiny"
    assert saved["evals"]["probe"]["type"] == "linear_probe" and saved["holdout_records"] == 32

    # metrics.jsonl, read as a notebook reads it: each step trained exactly once.
    from weaksup import metrics

    rows = metrics.read_jsonl(run / "metrics.jsonl")
    loss_steps = [r["step"] for r in rows if "loss" in r]
    assert loss_steps == list(range(1, E2E_STEPS + 1))
    maps = {r["step"]: r["holdout/mAP"] for r in rows if "holdout/mAP" in r}
    probes = {r["step"]: r for r in rows if "probe/test_top1" in r}
    assert {4, 8} <= set(maps) and all(0.0 < v <= 1.0 for v in maps.values()), maps
    assert {4, 8} <= set(probes), sorted(probes)
    for r in probes.values():
        assert 0.0 <= r["probe/test_top1"] <= 1.0 and 0.0 <= r["probe/val_top1"] <= 1.0 and r["probe/l2"] == 1e-3

    # TensorBoard reads the event files of both processes.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert sorted({e.step for e in acc.Scalars("loss")}) == list(range(1, E2E_STEPS + 1))
    assert {e.step for e in acc.Scalars("holdout/mAP")} >= {4, 8}
    assert {e.step for e in acc.Scalars("probe/test_top1")} >= {4, 8}

    # load_pretrained rebuilds config, vocabulary, model and the final weights from the directory.
    import jax

    config, vocab, model, variables = ckpt_lib.load_pretrained(run)
    assert config.total_steps == E2E_STEPS and vocab.num_classes == Vocabulary.load(inputs[1]).num_classes
    final = _final_params(run, E2E_STEPS)
    _assert_bitwise_equal(jax.tree.map(np.asarray, variables["params"]), final["params"])
    images = np.zeros((2, 32, 32, 3), np.float32)
    logits = model.apply(variables, images, train=False)
    assert logits.shape == (2, vocab.num_classes) and np.all(np.isfinite(np.asarray(logits)))
