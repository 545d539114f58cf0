"""SWAG's trunks: ViT-B/16, L/16, H/14 and RegNetY-16/32/128GF, and their CPU variants.

The published models are only ever counted or traced from shapes (jax.eval_shape); real
parameters are made for the tiny variants alone.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from weaksup.models import (
    RegNet,
    RegNetConfig,
    ResNet,
    ResNetConfig,
    ViT,
    ViTConfig,
    get_model,
    list_models,
    model_config,
)
from weaksup.models.counting import count_macs, count_params
from weaksup.models.regnet import YBlock
from weaksup.models.vit import (
    EncoderBlock,
    bicubic_matrix,
    resize_posemb,
    resize_posemb_params,
)

# Parameters with a 1000-class head at 224 px (SWAG / torchvision / timm), and GMACs at
# 224 px as torchvision lists them ("GFLOPS", which count multiply-adds).
PUBLISHED = {
    "vit_b16": (86_567_656, 17.56),
    "vit_l16": (304_326_632, 61.55),
    "vit_h14": (632_045_800, 167.29),
    "regnety_16gf": (83_590_140, 15.91),
    "regnety_32gf": (145_046_770, 32.28),
    "regnety_128gf": (644_812_894, 127.52),
}
TINY = ("vit_tiny", "regnety_tiny")


def _abstract_init(model, size, batch=1):
    x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)


@functools.cache
def _init_tiny(name, **kw):
    model = get_model(name, 10, **kw)
    x = jnp.zeros((2, 32, 32, 3), jnp.float32)
    return jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)


def _tiny(name, **kw):
    """(model, variables) of a tiny variant with 10 classes, really initialised at 32 px.

    Regularisation overrides change no parameter, so their variables are shared (one
    init per layout, which is most of these tests' compile time).
    """
    layout = {k: v for k, v in kw.items() if k not in ("drop_path", "dropout", "attention_dropout", "remat")}
    return get_model(name, 10, **kw), _init_tiny(name, **layout)


def _images(n=8, seed=1):
    return jax.random.normal(jax.random.key(seed), (n, 32, 32, 3), jnp.float32)


# ----------------------------------------------------------------------------------------
# Published sizes.
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_sizes_match_published(name):
    params, gmacs = PUBLISHED[name]
    model = get_model(name, 1000)
    assert count_params(model, 224) == params
    macs = count_macs(model, 224) / 1e9
    assert abs(macs - gmacs) / gmacs < 0.002, macs


def test_regnet_stage_widths_follow_the_quantised_rule():
    # Widths and depths of torchvision's regnet_y_16gf/32gf/128gf (block_params).
    expected = {
        "regnety_16gf": ([224, 448, 1232, 3024], [2, 4, 11, 1], 112),
        "regnety_32gf": ([232, 696, 1392, 3712], [2, 5, 12, 1], 232),
        "regnety_128gf": ([528, 1056, 2904, 7392], [2, 7, 17, 1], 264),
    }
    for name, (widths, depths, group) in expected.items():
        stages = model_config(name).stages()
        assert [s.width for s in stages] == widths, name
        assert [s.depth for s in stages] == depths, name
        assert all(s.group_width == group and s.width % group == 0 for s in stages), name
        assert model_config(name).feature_dim == widths[-1]
    # The group width is capped at the stage width (32GF's first stage is one group).
    assert model_config("regnety_32gf").stages()[0].groups == 1


def test_regnet_se_width_follows_the_block_input():
    variables = _abstract_init(get_model("regnety_16gf", 1000), 64)
    trunk = variables["params"]["trunk"]
    # First block of stage 1: input is the 32-channel stem -> SE hidden 8; the second
    # block's input is the stage width 224 -> 56.
    assert trunk["stage1_block1"]["se"]["reduce"]["kernel"].shape == (224, 8)
    assert trunk["stage1_block2"]["se"]["reduce"]["kernel"].shape == (224, 56)
    assert trunk["stage1_block1"]["b"]["kernel"].shape == (3, 3, 112, 224)  # 2 groups of 112
    assert "proj" in trunk["stage1_block1"] and "proj" not in trunk["stage1_block2"]


def test_vit_position_embedding_sizes_and_layouts():
    for name, size, tokens in (("vit_b16", 224, 197), ("vit_l16", 224, 197), ("vit_h14", 224, 257)):
        trunk = _abstract_init(get_model(name, 1000), size)["params"]["trunk"]
        width = model_config(name).width
        assert trunk["pos_embedding"].shape == (1, tokens, width)
        assert trunk["class_token"].shape == (1, 1, width)
        # One fused qkv projection per block, torch's in_proj layout (D, 3D).
        assert trunk["encoder_layer_0"]["self_attention"]["in_proj"]["kernel"].shape == (width, 3 * width)
    # SWAG's fine-tuning resolutions: B/16 at 384, L/16 at 512, H/14 at 518 px.
    for name, size, tokens in (("vit_b16", 384, 577), ("vit_l16", 512, 1025), ("vit_h14", 518, 1370)):
        trunk = _abstract_init(get_model(name, 1000), size)["params"]["trunk"]
        assert trunk["pos_embedding"].shape == (1, tokens, model_config(name).width)
    # Sizes that do not divide into patches drop the last partial patch (a VALID conv).
    trunk = _abstract_init(get_model("vit_h14", 7), 32)["params"]["trunk"]
    assert trunk["pos_embedding"].shape == (1, 5, 1280)
    with pytest.raises(ValueError, match="smaller than one"):
        _abstract_init(get_model("vit_h14", 7), 8)
    bv = _abstract_init(get_model("vit_b16", 1000, posemb="big_vision"), 224)["params"]["trunk"]
    assert bv["pos_embedding"].shape == (1, 196, 768)
    assert count_params(get_model("vit_b16", 1000, posemb="big_vision")) == PUBLISHED["vit_b16"][0] - 768


@pytest.mark.parametrize("name,size", [
    ("vit_b16", 32), ("vit_l16", 48), ("vit_h14", 28),
    ("regnety_16gf", 32), ("regnety_32gf", 32), ("regnety_128gf", 32),
])
def test_published_models_forward_at_small_resolution(name, size):
    model = get_model(name, 1000)
    variables = _abstract_init(model, size, batch=2)
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    feats = jax.eval_shape(lambda v, x: model.apply(v, x, method="features"), variables, x)
    assert logits.shape == (2, 1000) and logits.dtype == jnp.float32
    assert feats.shape == (2, model_config(name).feature_dim) and feats.dtype == jnp.float32
    if name.startswith("regnet"):
        assert set(variables) == {"params", "batch_stats"}
        train_out = jax.eval_shape(
            lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, x
        )
        assert train_out[0].shape == (2, 1000)
    else:
        assert set(variables) == {"params"}


# ----------------------------------------------------------------------------------------
# The interface the package relies on, on the tiny variants.
# ----------------------------------------------------------------------------------------


def test_tiny_variants_are_registered_and_small():
    assert {*PUBLISHED, *TINY} <= set(list_models())
    for name in TINY:
        assert model_config(name).image_size == 32
        n = count_params(get_model(name, 1000), 32)
        assert 50_000 < n < 3_000_000, (name, n)


@pytest.mark.parametrize("name", TINY)
def test_contract_trunk_head_features(name):
    model, variables = _tiny(name)
    x = _images(4)
    assert set(variables["params"]) == {"trunk", "head"}
    assert set(variables) == ({"params", "batch_stats"} if name.startswith("regnet") else {"params"})
    # A non-zero head (the ViT's starts at zero) to check that logits = head(features).
    head = {"kernel": jax.random.normal(jax.random.key(2), variables["params"]["head"]["kernel"].shape),
            "bias": jnp.arange(10, dtype=jnp.float32)}
    v = {**variables, "params": {**variables["params"], "head": head}}

    @jax.jit
    def run(v, x):
        logits, updates = model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(3)})
        return logits, updates, model.apply(v, x, method="features"), model.apply(v, x)

    logits, updates, feats, eval_logits = run(v, x)
    dim = model_config(name).feature_dim
    assert logits.shape == eval_logits.shape == (4, 10) and logits.dtype == jnp.float32
    assert feats.shape == (4, dim) and feats.dtype == jnp.float32
    np.testing.assert_allclose(eval_logits, feats @ head["kernel"] + head["bias"], rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(np.asarray(logits)))
    if name.startswith("regnet"):
        before, after = jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(updates["batch_stats"])
        assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    else:
        assert not updates  # no batch norm, nothing to update


def test_head_initialisation():
    _, vit = _tiny("vit_tiny")
    assert not np.any(np.asarray(vit["params"]["head"]["kernel"]))  # zero, as SWAG/timm
    assert not np.any(np.asarray(vit["params"]["head"]["bias"]))
    _, reg = _tiny("regnety_tiny")
    k = np.asarray(reg["params"]["head"]["kernel"])
    assert 0.005 < k.std() < 0.015 and not np.any(np.asarray(reg["params"]["head"]["bias"]))


@pytest.mark.parametrize("name", TINY)
def test_finetuning_clone_replaces_only_the_head(name):
    model, variables = _tiny(name)
    target = model.clone(num_classes=7, parent=None)
    fresh = _abstract_init(target, 32)
    shapes = lambda t: jax.tree.map(lambda a: a.shape, t)  # noqa: E731
    assert shapes(fresh["params"]["trunk"]) == shapes(variables["params"]["trunk"])
    assert fresh["params"]["head"]["kernel"].shape == (model_config(name).feature_dim, 7)


def test_mixed_precision_keeps_float32_params_and_outputs():
    x = _images(2)
    for name in TINY:
        model, variables = _tiny(name)
        bf16 = model.clone(dtype=jnp.bfloat16)
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
        run = jax.jit(lambda v, x, f32=model, low=bf16: (
            f32.apply(v, x, method="features"), low.apply(v, x, method="features"), low.apply(v, x)
        ))
        f32_feats, bf16_feats, bf16_logits = run(variables, x)
        assert bf16_feats.dtype == bf16_logits.dtype == jnp.float32
        np.testing.assert_allclose(bf16_feats, f32_feats, rtol=0.1, atol=0.1)
        assert not np.array_equal(np.asarray(bf16_feats), np.asarray(f32_feats))
    assert get_model("vit_tiny", 5, dtype="bfloat16").dtype == jnp.bfloat16


# ----------------------------------------------------------------------------------------
# Training: one SGD step, stochastic depth, remat.
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TINY)
def test_sgd_steps_lower_the_loss(name):
    model, variables = _tiny(name, drop_path=0.1)
    x = _images(8)
    labels = jnp.arange(8) % 10
    tx = optax.sgd(0.05, momentum=0.9)

    def loss_fn(params, stats, rng):
        # The train step's call: mutable batch_stats, the "dropout" rng collection.
        logits, updates = model.apply({"params": params, **stats}, x, train=True,
                                      mutable=["batch_stats"], rngs={"dropout": rng})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, updates

    @jax.jit
    def step(params, stats, opt_state, rng):
        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, rng)
        upd, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, upd), {**stats, **updates}, opt_state, loss

    params = variables["params"]
    stats = {k: v for k, v in variables.items() if k != "params"}
    opt_state = tx.init(params)
    losses = []
    for i in range(4):
        params, stats, opt_state, loss = step(params, stats, opt_state, jax.random.key(10 + i))
        losses.append(float(loss))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    if name == "vit_tiny":
        assert losses[0] == pytest.approx(np.log(10), abs=1e-5)  # zero head: uniform logits
    leaves_before = jax.tree.leaves(variables["params"]["trunk"])
    leaves_after = jax.tree.leaves(params["trunk"])
    assert all(np.all(np.isfinite(np.asarray(p))) for p in leaves_after)
    changed = sum(not np.array_equal(a, b) for a, b in zip(leaves_before, leaves_after, strict=True))
    assert changed > len(leaves_after) // 2, (changed, len(leaves_after))


@pytest.mark.parametrize("name", TINY)
def test_drop_path_only_in_training_and_from_the_dropout_rng(name):
    model, variables = _tiny(name, drop_path=0.5)
    plain = model.clone(config=dataclasses.replace(model.config, drop_path=0.0))
    x = _images(8)
    kw = {"train": True, "mutable": ["batch_stats"], "method": "features"}

    @jax.jit
    def run(v, x, key):
        train = model.apply(v, x, rngs={"dropout": key}, **kw)[0]
        return train, model.apply(v, x, method="features"), plain.apply(v, x, method="features")

    a, e1, p1 = run(variables, x, jax.random.key(1))
    a2, e2, _ = run(variables, x, jax.random.key(1))
    b, _, _ = run(variables, x, jax.random.key(2))
    np.testing.assert_array_equal(a, a2)  # the same rng draws the same blocks
    assert not np.allclose(a, b, atol=1e-4)  # another rng drops other blocks
    # Inference is deterministic and ignores drop_path: the model without it agrees.
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_allclose(e1, p1, rtol=1e-6, atol=1e-6)
    with pytest.raises(Exception, match="dropout"):  # training needs the "dropout" rng
        jax.eval_shape(lambda v: model.apply(v, x, **kw), variables)


def test_vit_train_mode_without_regularisation_is_deterministic():
    model, variables = _tiny("vit_tiny")
    x = _images(4)
    train = model.apply(variables, x, train=True, method="features")  # no rng needed at rate 0
    np.testing.assert_allclose(train, model.apply(variables, x, method="features"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,block_cls", [("vit_tiny", EncoderBlock), ("regnety_tiny", YBlock)])
def test_drop_path_increases_linearly_over_depth(name, block_cls):
    model, variables = _tiny(name, drop_path=0.3)
    rates = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, block_cls) and context.method_name == "__call__":
            rates.append(context.module.drop_path)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):  # tracing is enough: the rates are set at setup
        jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, 32, 32, 3))), variables)
    # timm's schedule: linspace(0, drop_path, number of blocks).
    np.testing.assert_allclose(rates, np.linspace(0.0, 0.3, len(rates)))
    assert len(rates) == 6


def test_vit_remat_keeps_parameters_outputs_and_gradients():
    model, variables = _tiny("vit_tiny", drop_path=0.2)
    remat = model.clone(config=dataclasses.replace(model.config, remat=True))
    x = _images(4)
    fresh = jax.jit(lambda x: remat.init(jax.random.key(0), x, train=False))(x)
    same = jax.tree.map(np.array_equal, fresh["params"], variables["params"])
    assert all(jax.tree.leaves(same))

    def loss(m, p):
        return jnp.sum(m.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.key(4)},
                               method="features") ** 2)

    g0, g1 = jax.jit(lambda p: (jax.grad(functools.partial(loss, model))(p),
                                jax.grad(functools.partial(loss, remat))(p)))(variables["params"])
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------------------
# Position-embedding layouts and resizing.
# ----------------------------------------------------------------------------------------


def test_big_vision_layout_adds_no_position_to_the_class_token():
    model, variables = _tiny("vit_tiny", posemb="big_vision")
    assert variables["params"]["trunk"]["pos_embedding"].shape == (1, 64, 192)
    x = _images(2)
    out = model.apply(variables, x, method="features")
    assert out.shape == (2, 192) and np.all(np.isfinite(np.asarray(out)))


def test_resize_posemb_shapes_identity_and_class_slot():
    pos = jax.random.normal(jax.random.key(5), (1, 1 + 14 * 14, 8))
    assert resize_posemb(pos, 14) is pos
    out = resize_posemb(pos, 24)
    assert out.shape == (1, 1 + 24 * 24, 8)
    np.testing.assert_array_equal(out[:, 0], pos[:, 0])  # class slot kept
    assert resize_posemb(pos, (10, 12)).shape == (1, 1 + 120, 8)
    bv = resize_posemb(pos[:, 1:], 7, layout="big_vision")
    assert bv.shape == (1, 49, 8)
    # The interpolation matrix of an unchanged grid is the identity, and align_corners
    # keeps the corner values of any resize.
    np.testing.assert_allclose(bicubic_matrix(14, 14), np.eye(14), atol=1e-12)
    grid_in, grid_out = pos[0, 1:].reshape(14, 14, 8), out[0, 1:].reshape(24, 24, 8)
    for (i, j), (k, m) in (((0, 0), (0, 0)), ((13, 13), (23, 23)), ((0, 13), (0, 23))):
        np.testing.assert_allclose(grid_out[k, m], grid_in[i, j], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="square"):
        resize_posemb(pos[:, :-1], 7)
    with pytest.raises(ValueError, match="layout"):
        resize_posemb(pos, 7, layout="timm")


def test_resize_posemb_bicubic_on_constant_ramp_and_smooth_fields():
    old, new = 14, 24
    ii, jj = np.meshgrid(np.arange(old), np.arange(old), indexing="ij")
    # Constant: exact (the kernel's weights sum to one).
    const = jnp.full((1, 1 + old * old, 3), 0.7)
    np.testing.assert_allclose(resize_posemb(const, new), 0.7, rtol=1e-6)
    # Linear ramp at the new positions i * (old - 1) / (new - 1).
    src = np.arange(new) * (old - 1) / (new - 1)
    ramp = jnp.asarray((2.0 * ii + 0.5 * jj).reshape(1, -1, 1), jnp.float32)
    truth = (2.0 * src[:, None] + 0.5 * src[None, :])
    # Keys' a = -0.5 reproduces it exactly wherever all four taps are inside the grid ...
    keys = np.asarray(resize_posemb(ramp, new, layout="big_vision", cubic_a=-0.5)).reshape(new, new)
    inside = (np.floor(src) >= 1) & (np.floor(src) + 2 <= old - 1)
    np.testing.assert_allclose(keys[np.ix_(inside, inside)], truth[np.ix_(inside, inside)], atol=1e-4)
    # ... and both kernels stay within a tenth of a grid step everywhere (border clamping,
    # and torch's a = -0.75 bias).
    torch_like = np.asarray(resize_posemb(ramp, new, layout="big_vision")).reshape(new, new)
    for est in (keys, torch_like):
        assert np.abs(est - truth).max() < 0.1 * 2.5
    # A smooth field is interpolated to within a few percent of its range.
    field = lambda u, v: np.sin(u / 4.0) * np.cos(v / 5.0)  # noqa: E731
    smooth = jnp.asarray(field(ii, jj).reshape(1, -1, 1), jnp.float32)
    est = np.asarray(resize_posemb(smooth, new, layout="big_vision")).reshape(new, new)
    assert np.abs(est - field(src[:, None], src[None, :])).max() < 0.03


def test_bicubic_matrix_matches_jax_image_resize_away_from_borders():
    # jax.image.resize ("cubic": Keys a = -0.5, half-pixel centres) is an independent
    # implementation of the same kernel; only the border handling differs.
    old, new = 8, 13
    ref = np.asarray(jax.image.resize(jnp.eye(old), (new, old), "cubic"))
    mine = bicubic_matrix(old, new, align_corners=False, cubic_a=-0.5)
    src = (np.arange(new) + 0.5) * old / new - 0.5
    inside = (np.floor(src) >= 1) & (np.floor(src) + 2 <= old - 1)
    assert inside.sum() >= 6
    np.testing.assert_allclose(mine[inside], ref[inside], atol=1e-5)


def test_resized_params_run_at_the_new_resolution():
    model, variables = _tiny("vit_tiny")
    x48 = jax.random.normal(jax.random.key(6), (2, 48, 48, 3))
    with pytest.raises(Exception, match="pos_embedding"):
        model.apply(variables, x48)
    params = resize_posemb_params(variables["params"], model.config, 48)
    assert params["trunk"]["pos_embedding"].shape == (1, 1 + 12 * 12, 192)
    assert params["trunk"]["conv_proj"] is variables["params"]["trunk"]["conv_proj"]
    out = model.apply({"params": params}, x48, method="features")
    assert out.shape == (2, 192) and np.all(np.isfinite(np.asarray(out)))


# ----------------------------------------------------------------------------------------
# Registry.
# ----------------------------------------------------------------------------------------


def test_get_model_builds_each_family_with_its_overrides():
    vit = get_model("vit_b16", 10, drop_path=0.1, remat=True, posemb="big_vision", param_dtype="bfloat16")
    assert isinstance(vit, ViT) and isinstance(vit.config, ViTConfig)
    assert (vit.config.drop_path, vit.config.remat, vit.config.posemb) == (0.1, True, "big_vision")
    assert vit.param_dtype == jnp.bfloat16 and vit.num_classes == 10
    reg = get_model("regnety_16gf", 10, bn_groups=4, conv_impl="native", drop_path=0.05)
    assert isinstance(reg, RegNet) and isinstance(reg.config, RegNetConfig)
    assert (reg.bn_groups, reg.conv_impl, reg.config.drop_path) == (4, "native", 0.05)
    assert isinstance(model_config("regnety_tiny"), RegNetConfig)


def test_resnet_models_are_built_exactly_as_before():
    model = get_model("resnext_tiny", 5, bn_groups=2)
    direct = ResNet(config=ResNetConfig(stage_sizes=(2, 2, 2), planes=(16, 32, 64), groups=8, width_per_group=32,
                                        stem="small_pool", stem_width=32, zero_init_residual=False),
                    num_classes=5, bn_groups=2)
    assert type(model) is ResNet and model.config == direct.config and model.bn_groups == 2
    x = jnp.zeros((1, 16, 16, 3))
    a, b = jax.jit(lambda x: (model.init(jax.random.key(0), x), direct.init(jax.random.key(0), x)))(x)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


def test_bad_overrides_are_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        get_model("vit_b17", 10)
    with pytest.raises(ValueError, match="unknown architecture overrides"):
        get_model("vit_tiny", 10, depth=3)
    with pytest.raises(ValueError, match="unknown architecture overrides.*bn_groups"):
        get_model("vit_tiny", 10, bn_groups=2)
    with pytest.raises(ValueError, match="unknown architecture overrides.*conv_impl"):
        get_model("vit_b16", 10, conv_impl="native")
    with pytest.raises(ValueError, match="unknown architecture overrides"):
        get_model("regnety_tiny", 10, stage_sizes=(1, 1))
    with pytest.raises(ValueError, match="posemb"):
        get_model("vit_tiny", 10, posemb="sincos")
    with pytest.raises(ValueError, match="drop_path"):
        get_model("vit_tiny", 10, drop_path=1.5)
    with pytest.raises(ValueError, match="drop_path"):
        get_model("regnety_tiny", 10, drop_path=-0.1)
    with pytest.raises(ValueError, match="divisible"):
        get_model("vit_tiny", 10, num_heads=5)
    with pytest.raises(ValueError, match="conv_impl"):
        get_model("regnety_tiny", 10, conv_impl="winograd")
    with pytest.raises(ValueError, match="dtype"):
        get_model("vit_tiny", 10, dtype="float8")
    with pytest.raises(ValueError, match="RegNet"):
        get_model("regnety_tiny", 10, w0=30)
    with pytest.raises(ValueError, match="num_classes"):
        get_model("vit_tiny", 0)


def test_cli_summary_and_architecture(capsys):
    from weaksup.models import cli

    assert cli.default_image_size("vit_h14") == 224 and cli.default_image_size("regnety_tiny") == 32
    assert cli.main(["--summary", "--model", "vit_b16", "--model", "regnety_16gf", "--model", "vit_tiny"]) == 0
    out = capsys.readouterr().out
    assert "86,567,656" in out and "17.564" in out and "83,590,140" in out and "15.912" in out
    assert "12 x pre-LN encoder block: 12 heads of 64" in out
    assert "'swag' position embedding (1, 197, 768) at 224 px" in out
    assert "stage3: 11 x Y block 1x1 1232 -> 3x3 1232 (11 groups of 112), stride 2 -> SE 112, then 308" in out
    assert "(1, 65, 192) at 32 px" in out
