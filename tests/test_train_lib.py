"""The training library: one state set-up in every mode, placed by the partition rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weaksup import checkpoint as ckpt_lib
from weaksup import models, sharding
from weaksup import optimizer as optim_lib
from weaksup.train_lib import (
    MEAN_RGB,
    STDDEV_RGB,
    create_train_state,
    make_feature_fn,
    make_predict_fn,
    normalize_images,
    variables_of,
)

SIZE = 16
CLASSES = 300  # a head big enough (256 x 300 = 76,800 > 2**14) for the fsdp rule to shard it


@pytest.fixture(scope="module")
def model():
    return models.get_model("resnet_tiny", CLASSES)


def _fsdp_mesh():
    return sharding.make_mesh({"data": 2, "fsdp": 4})


def _equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_random_train_state_is_sharded_by_the_rules_and_matches_its_abstract_twin(model):
    mesh = _fsdp_mesh()
    tx = optim_lib.make_optimizer(0.1)
    state, shardings = create_train_state(model, mesh, SIZE, tx=tx, rng=jax.random.PRNGKey(3))
    assert set(state) == {"params", "batch_stats", "opt_state", "step", "rng"} and int(state["step"]) == 0
    kernel = state["params"]["head"]["kernel"]
    assert kernel.sharding.spec == sharding.fsdp_spec(kernel.shape, 4)
    assert "fsdp" in tuple(kernel.sharding.spec) and len(kernel.addressable_shards) == 8
    assert kernel.addressable_shards[0].data.shape[1] == CLASSES // 4  # really split 4 ways
    abstract, abstract_shardings = create_train_state(model, mesh, SIZE, tx=tx, abstract=True)
    assert jax.tree.structure(abstract) == jax.tree.structure(state)
    for a, s in zip(jax.tree.leaves(abstract), jax.tree.leaves(state)):
        assert isinstance(a, jax.ShapeDtypeStruct) and a.shape == s.shape and a.dtype == s.dtype
        assert a.sharding == s.sharding
    assert jax.tree.leaves(abstract_shardings) == jax.tree.leaves(shardings)


def test_variables_only_init_is_model_init_with_the_key_as_given(model):
    mesh = sharding.make_mesh({"data": -1})
    variables, _ = create_train_state(model, mesh, SIZE, rng=jax.random.PRNGKey(7))
    assert set(variables) == {"params", "batch_stats"}
    ref = jax.jit(lambda r: model.init(r, jnp.zeros((1, SIZE, SIZE, 3)), train=False))(jax.random.PRNGKey(7))
    _equal(variables, {"params": ref["params"], "batch_stats": ref["batch_stats"]})
    # A train state splits the key: its params are not model.init(key)'s.
    state, _ = create_train_state(model, mesh, SIZE, tx=optim_lib.make_optimizer(0.1), rng=jax.random.PRNGKey(7))
    assert not np.array_equal(np.asarray(state["params"]["head"]["kernel"]), np.asarray(ref["params"]["head"]["kernel"]))


def test_train_state_from_given_variables_starts_a_fresh_optimiser(model):
    mesh = _fsdp_mesh()
    given, _ = create_train_state(model, sharding.make_mesh({"data": -1}), SIZE, rng=jax.random.PRNGKey(1))
    tx = optim_lib.make_optimizer(0.1, momentum=0.9)
    state, _ = create_train_state(model, mesh, SIZE, tx=tx, variables=given, rng=jax.random.PRNGKey(5))
    _equal(variables_of(state), given)
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(state["opt_state"]) if x.size)
    assert int(state["step"]) == 0
    np.testing.assert_array_equal(np.asarray(state["rng"]), np.asarray(jax.random.PRNGKey(5)))
    assert "fsdp" in tuple(state["params"]["head"]["kernel"].sharding.spec)
    with pytest.raises(ValueError, match="needs `rng`"):
        create_train_state(model, mesh, SIZE, tx=tx, variables=given)
    with pytest.raises(ValueError, match="needs rng, variables or checkpoint"):
        create_train_state(model, mesh, SIZE, tx=tx)


def test_checkpoint_restores_onto_another_mesh_whole_or_variables_only(model, tmp_path):
    tx = optim_lib.make_optimizer(0.1)
    saved, _ = create_train_state(model, sharding.make_mesh({"data": -1}), SIZE, tx=tx, rng=jax.random.PRNGKey(2))
    ckpt = ckpt_lib.Checkpointer(tmp_path / "ckpt", async_save=False)
    ckpt.save(4, saved)
    mesh = _fsdp_mesh()
    state, _ = create_train_state(model, mesh, SIZE, tx=tx, checkpoint=(ckpt, 4))
    _equal(state, saved)
    assert "fsdp" in tuple(state["params"]["head"]["kernel"].sharding.spec)
    variables, _ = create_train_state(model, mesh, SIZE, checkpoint=(ckpt, 4))
    assert set(variables) == {"params", "batch_stats"}
    _equal(variables, variables_of(saved))
    ckpt.close()


def test_normalisation_and_sharded_inference_equal_unsharded(model):
    img = jnp.full((1, 2, 2, 3), 255, jnp.uint8)
    out = normalize_images(img)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out[0, 0, 0], (1 - np.asarray(MEAN_RGB)) / np.asarray(STDDEV_RGB), rtol=1e-6)

    mesh = _fsdp_mesh()
    variables, shardings = create_train_state(model, mesh, SIZE, rng=jax.random.PRNGKey(0))
    images = np.random.default_rng(0).integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    batch = sharding.make_global_batch({"image": images}, mesh)
    logits = make_predict_fn(model, mesh, shardings)(variables, batch["image"])
    feats = make_feature_fn(model, mesh)(variables, batch["image"])
    host = jax.device_get(variables)
    x = normalize_images(jnp.asarray(images))
    np.testing.assert_allclose(np.asarray(logits), np.asarray(model.apply(host, x, train=False)), rtol=1e-4, atol=1e-5)
    ref_feats = model.apply(host, x, train=False, method="features")
    np.testing.assert_allclose(np.asarray(feats), np.asarray(ref_feats), rtol=1e-4, atol=1e-5)
    assert logits.shape == (8, CLASSES) and feats.shape == (8, 256)
