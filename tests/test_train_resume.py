"""Exact resume after SIGKILL, and a clean stop on SIGTERM (real subprocesses)."""

import signal
import subprocess

import numpy as np
import pytest

from _train_data import tiny_inputs, train_argv, train_env, wait_for_step
from weaksup import checkpoint as ckpt_lib

pytestmark = pytest.mark.slow

STEPS = 14


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
    overrides = ("--config.log_every_steps=1", "--config.checkpoint.every_steps=4")
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


def test_sigterm_saves_and_exits_cleanly(inputs, env, tmp_path):
    run = tmp_path / "term"
    argv = train_argv(inputs, run, "steps=200", ("--config.log_every_steps=1", "--config.checkpoint.every_steps=1000"))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_step(run, 3, proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 75, out[-3000:]
    assert "stopped by SIGTERM after step" in out
    steps = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(run), read_only=True).all_steps()
    assert len(steps) == 1 and 3 <= steps[0] < 200
    assert f"checkpoint {ckpt_lib.checkpoint_dir(run) / str(steps[0])} saved" in out
