"""Resharded restore (8 -> 4 -> 2 devices) and two trainer processes (jax.distributed, gloo).

One 8-device run (fsdp=2) saves step 4; its state restores bit for bit onto 4 and onto 2
devices, each in its own process. Two processes of one device each train the same config
as one process on 2 devices: the loss curves (and the held-out mAP, gathered over
processes) agree. A two-process job cannot resume the one-process checkpoint (the
data-iterator state is per process) and says so.
"""

import json
import shutil
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from _train_data import tiny_inputs, train_argv, train_env
from weaksup import checkpoint as ckpt_lib
from weaksup import sharding

pytestmark = pytest.mark.slow

SAVED, STEPS = 4, 7

# Restores step 4 onto this process's devices (fsdp=2 mesh) and dumps every leaf.
RESTORE = textwrap.dedent('''
    import sys, jax, numpy as np
    from weaksup import checkpoint as ckpt_lib, sharding
    workdir, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    assert jax.device_count() == n, jax.devices()
    mesh = sharding.make_mesh({"fsdp": 2})
    ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), read_only=True)
    meta = ckpt.state_metadata(4)
    shard = sharding.tree_shardings(meta, mesh, min_size=1)
    target = jax.tree.map(lambda m, s: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=s), meta, shard)
    state = ckpt.restore_state(4, target)
    k = state["params"]["head"]["kernel"]
    assert len(k.addressable_shards) == n and k.sharding.spec == shard["params"]["head"]["kernel"].spec
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    np.savez(out, **{jax.tree_util.keystr(p): np.asarray(x) for p, x in leaves})
''')


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_inputs(tmp_path_factory.getbasetemp() / "train_inputs")


def _restore_here(workdir):
    """The step-4 state on this (8-device) test process, as numpy leaves by path."""
    mesh = sharding.make_mesh({"fsdp": 2})
    ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), read_only=True)
    try:
        meta = ckpt.state_metadata(SAVED)
        shard = sharding.tree_shardings(meta, mesh, min_size=1)
        target = jax.tree.map(lambda m, s: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=s), meta, shard)
        state = ckpt.restore_state(SAVED, target)
    finally:
        ckpt.close()
    assert len(state["params"]["head"]["kernel"].addressable_shards) == 8
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}


def _curve(workdir):
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return ({r["step"]: r["loss"] for r in rows if "loss" in r},
            {r["step"]: r["holdout/mAP"] for r in rows if "holdout/mAP" in r})


def test_reshard_then_two_processes_match_one(inputs, tmp_path, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "jax_cache"
    overrides = ("--config.mesh.fsdp=2", f"--config.checkpoint.every_steps={SAVED}", "--config.log_every_steps=1",
                 "--config.holdout_every_steps=1000")
    run8 = tmp_path / "run8"
    r = subprocess.run(train_argv(inputs, run8, f"steps={SAVED}", overrides), env=train_env(8, cache),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "on 8 devices" in r.stdout

    # --- Resharded restore: 8 -> 4 -> 2 devices, bit for bit. -------------------------
    ref = _restore_here(run8)
    for n in (4, 2):
        out = tmp_path / f"state{n}.npz"
        r = subprocess.run([sys.executable, "-c", RESTORE, str(run8), str(out), str(n)], env=train_env(n, cache),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        got = np.load(out)
        assert sorted(got.files) == sorted(ref)
        for key in ref:
            assert got[key].tobytes() == ref[key].tobytes(), f"{key} differs on {n} devices"

    # --- One process with 2 devices, then two processes of one device each. -----------
    one = tmp_path / "one"
    r = subprocess.run(train_argv(inputs, one, f"steps={STEPS}", overrides), env=train_env(2, cache),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "on 2 devices, 1 process(es)" in r.stdout

    def two_processes(workdir):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs = [
            subprocess.Popen(
                train_argv(inputs, workdir, f"steps={STEPS}", overrides)
                + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
                env=train_env(1, cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            for i in range(2)
        ]
        outs = []
        for p in procs:
            try:
                outs.append(p.communicate(timeout=300)[0])
            finally:
                if p.poll() is None:
                    p.kill()
        return [p.returncode for p in procs], outs

    two = tmp_path / "two"
    codes, outs = two_processes(two)
    assert codes == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    assert "2 process(es)" in outs[0] and "on 2 devices" in outs[0]

    (loss1, map1), (loss2, map2) = _curve(one), _curve(two)
    steps = list(range(1, STEPS + 1))
    assert sorted(loss1) == sorted(loss2) == steps
    np.testing.assert_allclose([loss2[s] for s in steps], [loss1[s] for s in steps], rtol=1e-5)
    assert len(set(loss1.values())) == STEPS  # the curve moves, so agreement is not trivial
    assert sorted(map1) == sorted(map2) == [STEPS] and map1[STEPS] > 0
    np.testing.assert_allclose(map2[STEPS], map1[STEPS], rtol=1e-5)
    assert ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(one), read_only=True).all_steps() == [SAVED, STEPS]
    assert ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(two), read_only=True).all_steps() == [SAVED, STEPS]

    # A two-process job cannot take over the one-process run's data position.
    codes, outs = two_processes(one)
    assert codes == [2, 2], outs[0][-2000:]
    assert "data-iterator state was saved by 1 process(es), this run has 2" in outs[0]
