"""Mesh and partition rules on 8 host devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from weaksup import sharding
from weaksup.sharding import ShardingError


def test_mesh_shapes():
    assert jax.device_count() == 8
    m = sharding.make_mesh({"data": -1, "fsdp": 2})
    assert dict(m.shape) == {"data": 4, "fsdp": 2}
    assert dict(sharding.make_mesh(None).shape) == {"data": 8, "fsdp": 1}
    with pytest.raises(ShardingError, match="does not divide"):
        sharding.make_mesh({"fsdp": 3})
    with pytest.raises(ShardingError, match="!= 8 devices"):
        sharding.make_mesh({"data": 2, "fsdp": 2})
    with pytest.raises(ShardingError, match="unknown mesh axes"):
        sharding.make_mesh({"model": 2})


def test_fsdp_rule_shards_largest_divisible_axis():
    assert sharding.fsdp_spec((3, 3, 64, 128), 4, min_size=1) == P(None, None, None, "fsdp")
    assert sharding.fsdp_spec((3, 3, 64, 6), 4, min_size=1) == P(None, None, "fsdp", None)
    assert sharding.fsdp_spec((5, 7), 4, min_size=1) == P()
    assert sharding.fsdp_spec((1024, 1024), 1) == P()
    assert sharding.fsdp_spec((16,), 4) == P()  # small: replicated


def test_tree_shardings_place_params():
    m = sharding.make_mesh({"fsdp": 4})
    tree = {"w": jnp.zeros((256, 512)), "b": jnp.zeros((512,))}
    sh = sharding.tree_shardings(tree, m)
    placed = jax.device_put(tree, sh)
    assert placed["w"].sharding.spec == P(None, "fsdp")
    assert placed["w"].addressable_shards[0].data.shape == (256, 128)
    assert placed["b"].sharding.spec == P()


def test_global_batch_and_layout_checks():
    m = sharding.make_mesh({"fsdp": 2})
    assert sharding.check_batch_layout(16, m, process_count=2) == 8
    with pytest.raises(ShardingError, match="not divisible by the 8 devices"):
        sharding.check_batch_layout(12, m)
    local = {"image": np.arange(16 * 2).reshape(16, 2).astype(np.uint8), "labels": np.arange(16, dtype=np.int32)}
    g = sharding.make_global_batch(local, m)
    assert g["image"].shape == (16, 2)
    assert len(g["labels"].addressable_shards) == 8
    assert g["labels"].addressable_shards[0].data.shape == (2,)
    np.testing.assert_array_equal(np.asarray(g["labels"]), local["labels"])
