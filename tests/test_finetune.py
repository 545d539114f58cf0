"""Fine-tuning: fresh head on the pretrained trunk, trained with the trainer's step, resumable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_tfds
from transfer_data import IMAGE_SIZE, target_dir
from weaksup import checkpoint as ckpt_lib
from weaksup import models, sharding
from weaksup import evaluators
from weaksup.evaluators.finetune import FinetuneError, transfer_variables


def _variables(name="resnet_tiny", classes=7, seed=0):
    model = models.get_model(name, classes)
    return model, model.init(jax.random.key(seed), jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3)), train=False)


def test_transfer_keeps_trunk_and_replaces_head():
    model, variables = _variables()
    target_model, tv = transfer_variables(model, variables, 3, jax.random.PRNGKey(1), IMAGE_SIZE)
    assert target_model.num_classes == 3
    assert tv["params"]["head"]["kernel"].shape == (256, 3)
    for a, b in zip(jax.tree.leaves(tv["params"]["trunk"]), jax.tree.leaves(variables["params"]["trunk"])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(tv["batch_stats"]), jax.tree.leaves(variables["batch_stats"]["trunk"])):
        np.testing.assert_array_equal(a, b)
    other = models.get_model("resnext_tiny", 7)
    other_vars = jax.eval_shape(lambda: other.init(jax.random.key(0), jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3)),
                                                   train=False))
    with pytest.raises(FinetuneError, match="pretrained trunk parameters do not fit"):
        transfer_variables(model, other_vars, 3, jax.random.PRNGKey(1), IMAGE_SIZE)


def test_finetune_learns_target_and_resumes_from_its_checkpoint(tmp_path):
    model, variables = _variables()
    mesh = sharding.make_mesh({"data": -1})
    opts = dict(dataset=tiny_tfds.NAME, data_dir=str(target_dir()), batch_size=8,
                val_split="", test_split="test", steps=12, base_lr=0.4, warmup_steps=2)
    kw = dict(model=model, mesh=mesh, image_size=IMAGE_SIZE, workdir=tmp_path / "ft")
    ev = evaluators.build("finetune", opts, **kw)
    out = ev.run(variables)
    assert set(out) >= {"test_top1", "test_top5", "train_loss", "steps"}
    # three flat grey levels: learnable in a dozen steps, far above chance (1/3)
    assert out["test_top1"] >= 0.8
    assert out["test_top5"] == 1.0
    assert ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(tmp_path / "ft"), read_only=True).all_steps() == [12]
    # A second run finds the finished checkpoint: no training, same weights, same numbers.
    again = evaluators.build("finetune", opts, **kw).run(variables)
    assert again["test_top1"] == out["test_top1"]
    # Nothing was trained the second time; the loss reported is the one saved with the checkpoint.
    assert again["train_loss"] == out["train_loss"]
