"""A checkpoint saved on 8 devices restores onto 4 and 2 (each in its own process)."""

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from _train_data import tiny_inputs, train_argv, train_env
from weaksup import checkpoint as ckpt_lib

pytestmark = pytest.mark.slow

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


def test_restore_onto_fewer_devices(inputs, tmp_path, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "jax_cache"
    run8 = tmp_path / "run8"
    overrides = ("--config.mesh.fsdp=2", "--config.checkpoint.every_steps=4")
    r = subprocess.run(train_argv(inputs, run8, "steps=4", overrides), env=train_env(8, cache),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "on 8 devices" in r.stdout

    dumps = {}
    for n in (8, 4, 2):
        out = tmp_path / f"state{n}.npz"
        r = subprocess.run([sys.executable, "-c", RESTORE, str(run8), str(out), str(n)], env=train_env(n, cache),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        dumps[n] = np.load(out)
    for n in (4, 2):
        assert sorted(dumps[n].files) == sorted(dumps[8].files)
        for key in dumps[8].files:
            assert dumps[n][key].tobytes() == dumps[8][key].tobytes(), f"{key} differs on {n} devices"

    # Training continues from the 8-device checkpoint on 2 devices.
    run2 = tmp_path / "run2"
    shutil.copytree(run8, run2)
    r = subprocess.run(train_argv(inputs, run2, "steps=6", overrides), env=train_env(2, cache),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from {ckpt_lib.checkpoint_dir(run2) / '4'}" in r.stdout and "on 2 devices" in r.stdout
    assert ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(run2), read_only=True).latest_step() == 6
