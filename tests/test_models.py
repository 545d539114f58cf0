"""ResNet/ResNeXt zoo: published sizes, API shape, mixed precision, batch-norm modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weaksup.models import get_model, list_models, model_config
from weaksup.models.counting import count_macs, count_params
from weaksup.models.norm import BatchNorm

# (params with a 1000-class head, GMACs at 224 px): torchvision / the paper.
PUBLISHED = {
    "resnet50": (25_557_032, 4.1),
    "resnet101": (44_549_160, 7.8),
    "resnext101_32x8d": (88_791_336, 16.5),
    "resnext101_32x16d": (194e6, 36.0),
    "resnext101_32x32d": (468e6, 87.0),
    "resnext101_32x48d": (829e6, 153.0),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_sizes_match_published(name):
    params, gmacs = PUBLISHED[name]
    model = get_model(name, 1000)
    n = count_params(model)
    if isinstance(params, int):
        assert n == params
    else:
        assert abs(n - params) / params < 0.005, n
    macs = count_macs(model, 224) / 1e9
    assert abs(macs - gmacs) / gmacs < 0.015, macs


def test_mac_count_follows_resolution_and_head():
    model = get_model("resnet50", 1000)
    m224, m448 = count_macs(model, 224), count_macs(model, 448)
    head = 2048 * 1000
    # Convolutions scale with pixels; the head does not.
    assert (m448 - head) == 4 * (m224 - head)
    assert count_macs(get_model("resnet50", 10), 224) == m224 - 2048 * 990


def test_all_registered_models_build():
    assert {"resnet50", "resnext101_32x4d", "resnext_tiny", "resnet_tiny"} <= set(list_models())
    for name in list_models():
        assert count_params(get_model(name, 7), 32) > 0


def _init(name, x, **kw):
    model = get_model(name, 5, **kw)
    return model, jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)



def test_contract_trunk_head_features():
    x = jax.random.normal(jax.random.key(1), (4, 16, 16, 3))
    model, variables = _init("resnext_tiny", x)
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["params"]) == {"trunk", "head"}
    assert set(variables["batch_stats"]) == {"trunk"}

    @jax.jit
    def run(v, x):
        logits, updates = model.apply(v, x, train=True, mutable=["batch_stats"])
        feats = model.apply(v, x, train=False, method="features")
        return logits, updates, feats, model.apply(v, x)

    logits, updates, feats, eval_logits = run(variables, x)
    assert logits.shape == (4, 5) and logits.dtype == jnp.float32
    assert feats.shape == (4, model_config("resnext_tiny").feature_dim) == (4, 256)
    # The head is a Dense layer on the trunk's features.
    head = variables["params"]["head"]
    np.testing.assert_allclose(eval_logits, feats @ head["kernel"] + head["bias"], rtol=1e-5, atol=1e-5)
    # Training mode updates the running statistics.
    before = jax.tree.leaves(variables["batch_stats"])
    after = jax.tree.leaves(updates["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_grouped_conv_kernel_layout_matches_nn_conv():
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    model = get_model("resnext_tiny", 5)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    k = variables["params"]["trunk"]["stage1_block1"]["conv2"]["kernel"]
    # nn.Conv(feature_group_count=8) layout: (kh, kw, Cin / groups, Cout)
    assert k.shape == (3, 3, 64 // 8, 64)


@pytest.mark.parametrize("zero_init", [False, True])
def test_last_bn_scale_of_residual_branch_follows_zero_init_residual(zero_init):
    model = get_model("resnet_tiny", 5, zero_init_residual=zero_init)
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x))(jnp.zeros((1, 4, 4, 3)))
    trunk = variables["params"]["trunk"]
    blocks = [b for n, b in trunk.items() if n.startswith("stage")]
    assert blocks
    for block in blocks:
        assert np.all(np.asarray(block["bn3"]["scale"]) == (0 if zero_init else 1))
        assert np.all(np.asarray(block["bn1"]["scale"]) == 1)


def test_paper_models_zero_init_residual_and_cpu_variants_do_not():
    for name in ("resnet50", "resnet101", "resnext101_32x8d", "resnext101_32x48d"):
        assert model_config(name).zero_init_residual, name
    for name in ("resnet_tiny", "resnext_tiny", "resnet_small", "resnext_small"):
        assert not model_config(name).zero_init_residual, name


def test_mixed_precision_keeps_float32_params_and_logits():
    x = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
    model, variables = _init("resnext_tiny", x, dtype="bfloat16")
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
    f32_model = get_model("resnext_tiny", 5)

    @jax.jit
    def run(v, x):
        logits, updates = model.apply(v, x, train=True, mutable=["batch_stats"])
        bf16 = model.apply(v, x, method="features")
        return logits, updates, bf16, f32_model.apply(v, x, method="features")

    logits, updates, bf16, f32 = run(variables, x)
    assert logits.dtype == jnp.float32
    assert all(s.dtype == jnp.float32 for s in jax.tree.leaves(updates["batch_stats"]))
    # bf16 compute stays close to f32 compute on the same parameters ...
    np.testing.assert_allclose(bf16, f32, rtol=0.1, atol=0.05)
    # ... and the compute really is bf16 (a different number).
    assert not np.array_equal(np.asarray(bf16), np.asarray(f32))


def test_batchnorm_groups_normalise_each_group_separately():
    # Two groups with very different scales: per-group statistics normalise each.
    a = jax.random.normal(jax.random.key(4), (8, 3, 3, 4))
    x = jnp.concatenate([a, 100.0 + 10.0 * a], axis=0)
    bn_group = BatchNorm(groups=2)
    v = bn_group.init(jax.random.key(0), x, train=False)
    y, _ = bn_group.apply(v, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(y[:8], y[8:], rtol=1e-3, atol=1e-3)
    for half in (y[:8], y[8:]):
        np.testing.assert_allclose(jnp.mean(half, axis=(0, 1, 2)), 0.0, atol=1e-4)
        np.testing.assert_allclose(jnp.std(half, axis=(0, 1, 2)), 1.0, rtol=1e-3)
    # Global statistics do not: the first half sits far below zero.
    y_global, upd = BatchNorm(groups=0).apply(v, x, train=True, mutable=["batch_stats"])
    assert float(jnp.mean(y_global[:8])) < -0.9
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * jnp.mean(x, axis=(0, 1, 2)), rtol=1e-5)
    with pytest.raises(ValueError, match="not divisible"):
        BatchNorm(groups=3).apply(v, x, train=True, mutable=["batch_stats"])


def test_bn_groups_override_changes_training_forward():
    x = jnp.concatenate([jnp.zeros((2, 8, 8, 3)), jnp.ones((2, 8, 8, 3)) * 3.0])
    x = x + 0.1 * jax.random.normal(jax.random.key(5), x.shape)
    model_g, variables = _init("resnet_tiny", x, bn_groups=2)
    model_0 = get_model("resnet_tiny", 5)
    kw = dict(train=True, mutable=["batch_stats"], method="features")
    out_g, out_0 = jax.jit(lambda v, x: (model_g.apply(v, x, **kw)[0], model_0.apply(v, x, **kw)[0]))(variables, x)
    assert not np.allclose(out_g, out_0, atol=1e-3)


def test_bad_names_and_overrides_are_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        get_model("resnet51", 10)
    with pytest.raises(ValueError, match="conv_impl"):
        get_model("resnext_tiny", 10, conv_impl="winograd")
    with pytest.raises(ValueError, match="unknown architecture overrides"):
        get_model("resnext_tiny", 10, depth=3)
    with pytest.raises(ValueError, match="dtype"):
        get_model("resnext_tiny", 10, dtype="float8")
    m = get_model("resnext_tiny", 10, stage_sizes=[2, 1, 1], groups=4)
    assert m.config.stage_sizes == (2, 1, 1) and m.config.groups == 4


def test_cli_summary_prints_counts(capsys):
    from weaksup.models import cli

    assert cli.main(["--summary", "--model", "resnet50", "--model", "resnext_tiny"]) == 0
    out = capsys.readouterr().out
    assert "25,557,032" in out and "4.089" in out
    assert "stage1: 2 x bottleneck 1x1 64 -> 3x3 64 (8 groups of 8)" in out
    assert "stem 32 ch (3x3/1 conv + 3x3/2 max-pool)" in out
    with pytest.raises(SystemExit):
        cli.main(["--model", "resnet51"])
