"""Feature extraction over the 8-device mesh, and its on-disk cache."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_tfds
from weaksup import evaluators, models, sharding
from weaksup.config import ConfigError
from weaksup.evaluators import features as F
from weaksup.evaluators.context import Context, FeatureCache
from weaksup.evaluators.features import carve_validation, target_features
from weaksup.input_pipeline import EvalDataError, Target, make_eval_iterator
from weaksup.train_lib import make_feature_fn, normalize_images

SIZE = 16


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny_tfds.build(d)
    return d


@pytest.fixture(scope="module")
def model_and_vars():
    model = models.get_model("resnet_tiny", 5)
    variables = model.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)), train=False)
    return model, variables


def _split(data_dir, model, variables, mesh, cache_dir=None, checkpoint_id="", step=None, feature_fn=None):
    target = Target(dataset=tiny_tfds.NAME, data_dir=str(data_dir), image_size=SIZE, batch_size=8)
    cache = None if cache_dir is None else FeatureCache(cache_dir, checkpoint_id)
    return F.split_features(feature_fn or make_feature_fn(model, mesh), variables, mesh, target, "test", cache, step)


def test_sharded_features_match_single_device(data_dir, model_and_vars):
    model, variables = model_and_vars
    mesh = sharding.make_mesh({"data": -1})
    assert mesh.devices.size == 8
    x, y = _split(data_dir, model, variables, mesh)
    assert x.shape == (11, 256) and x.dtype == np.float32  # the 3 padding rows are gone
    assert y.tolist() == [i % 3 for i in range(11)]
    ref = []
    target = Target(dataset=tiny_tfds.NAME, data_dir=str(data_dir), image_size=SIZE, batch_size=8)
    for b in make_eval_iterator(target, "test", process_index=0, process_count=1):
        f = model.apply(variables, normalize_images(jnp.asarray(b["image"])), train=False, method="features")
        ref.append(np.asarray(f)[b["mask"]])
    np.testing.assert_allclose(x, np.concatenate(ref), rtol=1e-4, atol=1e-5)


def test_cache_hit_miss_and_corruption(data_dir, model_and_vars, tmp_path):
    model, variables = model_and_vars
    mesh = sharding.make_mesh({"data": -1})
    x, y = _split(data_dir, model, variables, mesh, cache_dir=tmp_path, checkpoint_id="run-a", step=7)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz" and "test_7" in files[0].name

    def must_not_run(*a, **k):
        raise AssertionError("cache hit expected")

    x2, y2 = _split(data_dir, model, variables, mesh, cache_dir=tmp_path, checkpoint_id="run-a", step=7,
                    feature_fn=must_not_run)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    # another step (or checkpoint) is another entry
    with pytest.raises(AssertionError, match="cache hit expected"):
        _split(data_dir, model, variables, mesh, cache_dir=tmp_path, checkpoint_id="run-a", step=8,
               feature_fn=must_not_run)
    # a damaged file is recomputed, with a warning, and rewritten whole
    files[0].write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable"):
        x3, _ = _split(data_dir, model, variables, mesh, cache_dir=tmp_path, checkpoint_id="run-a", step=7)
    np.testing.assert_allclose(x3, x, rtol=1e-6)
    assert F.load_cached(files[0]) is not None
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_atomic_save_leaves_nothing_on_failure(tmp_path):
    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        F.save_cached(tmp_path / "x.npz", Boom(), np.zeros(1))
    assert list(tmp_path.iterdir()) == []


def test_target_carves_validation_and_reports_bad_names(data_dir, model_and_vars):
    model, variables = model_and_vars
    mesh = sharding.make_mesh({"data": -1})
    t = Target(dataset=tiny_tfds.NAME, data_dir=str(data_dir), image_size=SIZE, batch_size=8, val_fraction=0.25)
    assert t.num_classes() == 3
    data = target_features(Context(model, mesh, target=t), variables)
    assert len(data["train"][1]) == 9 and len(data["val"][1]) == 3 and len(data["test"][1]) == 11
    (a, _), (b, _) = carve_validation(np.arange(20)[:, None], np.arange(20), 0.25, seed=0)
    assert sorted(np.concatenate([a[:, 0], b[:, 0]]).tolist()) == list(range(20))
    with pytest.raises(EvalDataError, match="no_such_dataset"):
        Target(dataset="no_such_dataset", data_dir=str(data_dir)).check()
    with pytest.raises(EvalDataError, match="'fine_label'"):
        Target(dataset=tiny_tfds.NAME, data_dir=str(data_dir), label_key="fine_label").check()
    with pytest.raises(EvalDataError, match="validation"):
        Target(dataset=tiny_tfds.NAME, data_dir=str(data_dir), val_split="validation").check()


def test_evaluators_run_the_way_the_trainer_calls_them(data_dir, model_and_vars, tmp_path):
    """Periodic evaluation during pretraining: build(type, options, model=, mesh=, image_size=).run(variables)."""
    model, variables = model_and_vars
    mesh = sharding.make_mesh({"data": -1})
    opts = dict(dataset=tiny_tfds.NAME, data_dir=str(data_dir), batch_size=8, val_fraction=0.25)
    kw = dict(model=model, mesh=mesh, image_size=SIZE, cache_dir=tmp_path, checkpoint_id="run")
    probe = evaluators.build("linear_probe", {**opts, "l2_grid": (1e-3,)}, **kw)
    assert probe.target.image_size == SIZE and probe.target.batch_size == 8
    out = probe.run(variables)
    assert set(out) == {"l2", "val_top1", "val_top5", "test_top1", "test_top5", "lbfgs_iterations"}
    ridge = evaluators.build("fewshot_ridge", {**opts, "shots": (1,), "seeds": (0,)}, **kw)
    assert set(ridge.run(variables)) == {"1shot_top1", "1shot_top1_std", "1shot_l2"}
    assert list(tmp_path.iterdir()) == []  # weights change during training: no step, no cache
    ridge.run(variables, step=3)
    assert len(list(tmp_path.iterdir())) == 2  # with a step the train and test features are cached
    # Bad options and datasets are ConfigErrors naming them, raised before any compilation.
    with pytest.raises(ConfigError, match="unknown options.*l2_grdi"):
        evaluators.build("linear_probe", {**opts, "l2_grdi": (1e-3,)}, **kw)
    with pytest.raises(ConfigError, match="shotz"):
        evaluators.build("fewshot_ridge", {**opts, "shotz": (1,)}, **kw)
    with pytest.raises(EvalDataError, match="no_such_split"):
        evaluators.build("fewshot_ridge", {**opts, "test_split": "no_such_split"}, **kw)
    with pytest.raises(ConfigError, match="needs a target"):
        evaluators.get_evaluator("finetune")(Context(model, mesh), steps=1)
