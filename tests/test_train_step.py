"""The pure train step: gradient accumulation gives the big-batch update."""

import jax
import numpy as np
import pytest

from weaksup import losses, models, sharding
from weaksup import optimizer as optim_lib
from weaksup.train_lib import create_train_state, make_train_step

NUM_CLASSES = 5
SIZE = 16


@pytest.fixture(scope="module")
def setup():
    # Two of the session's devices keep compilation cheap and still split every micro-batch.
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]).reshape(2, 1), ("data", "fsdp"))
    model = models.get_model("resnet_tiny", NUM_CLASSES)
    tx = optim_lib.make_optimizer(0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    state, shardings = create_train_state(model, mesh, SIZE, tx=tx, rng=jax.random.PRNGKey(0))
    return mesh, model, tx, state, shardings, {}


def _batch(rng, base_images, n_copies):
    """Each image `n_copies` times in a row, every copy with its own labels.

    The train step gives micro-batch j the rows i*n + j, so every micro-batch holds the
    same images: batch-norm statistics are those of the big batch, and the accumulated
    gradient must equal the big-batch one exactly (up to float rounding).
    """
    images = np.repeat(base_images, n_copies, axis=0)
    labels = np.full((len(images), 3), -1, np.int32)
    labels[:, 0] = rng.integers(0, NUM_CLASSES, len(images))
    labels[::3, 1] = (labels[::3, 0] + 1) % NUM_CLASSES  # some posts carry two labels
    labels[5] = -1  # an unlabelled post is left out of the loss
    return {"image": images, "labels": labels}


def _step(setup, accum, batch):
    mesh, model, tx, state, shardings, compiled = setup
    if accum not in compiled:
        compiled[accum] = make_train_step(model, tx, losses.make_loss_fn("softmax"), mesh, shardings,
                                          grad_accum_steps=accum, donate=False)
    fn = compiled[accum]
    new_state, m = fn(state, sharding.make_global_batch(batch, mesh))
    return jax.tree.map(np.asarray, jax.device_get(new_state)), jax.device_get(m)


def test_grad_accumulation_equals_big_batch(setup):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    batch = _batch(rng, base, 2)
    big, m_big = _step(setup, 1, batch)
    acc, m_acc = _step(setup, 2, batch)

    np.testing.assert_allclose(m_acc["loss"], m_big["loss"], rtol=1e-5)
    np.testing.assert_allclose(m_acc["grad_norm"], m_big["grad_norm"], rtol=1e-4)
    for key in ("prec@1", "prec@5", "labelled"):
        np.testing.assert_allclose(m_acc[key], m_big[key], rtol=1e-6)
    flat_big = jax.tree_util.tree_flatten_with_path(big["params"])[0]
    flat_acc = jax.tree.leaves(acc["params"])
    for (path, b), a in zip(flat_big, flat_acc):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
    start = jax.tree.leaves(jax.device_get(setup[3]["params"]))
    moved = max(float(np.max(np.abs(a - s))) for a, s in zip(flat_acc, start))
    assert moved > 1e-3  # the step really moved the parameters

    # Teeth: the second micro-batch's labels matter, so summing over micro-batches is tested.
    other = dict(batch, labels=batch["labels"].copy())
    other["labels"][1::2] = _batch(np.random.default_rng(1), base, 2)["labels"][1::2]
    changed, _ = _step(setup, 2, other)
    assert not np.allclose(changed["params"]["head"]["kernel"], acc["params"]["head"]["kernel"], rtol=2e-4, atol=1e-6)
