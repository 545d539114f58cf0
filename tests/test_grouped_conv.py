"""The CPU grouped-convolution path equals the native feature_group_count convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weaksup.models import grouped_conv as gc


def _pair(shape_x, kernel_shape, seed=0):
    kx, kk = jax.random.split(jax.random.key(seed))
    return jax.random.normal(kx, shape_x), jax.random.normal(kk, kernel_shape) * 0.3


def _conv_fn(impl, groups, strides, padding):
    return lambda x, k: gc.grouped_conv(x, k, groups=groups, strides=strides, padding=padding, impl=impl)


@pytest.mark.parametrize(
    "cin,cout,groups,ksize,strides",
    [
        (16, 16, 8, 3, 1),  # 2 channels a group: all groups merged block-diagonally
        (32, 32, 8, 3, 1),  # 4 a group: two block-diagonal super-groups of 16 channels
        (32, 64, 4, 3, 2),  # 8 in / 16 out a group, strided: one dense convolution a group
        (64, 64, 2, 3, 1),  # 32 a group: plain per-group dense convolutions
        (24, 12, 3, 1, 1),  # 1x1, unequal in/out
    ],
)
def test_fast_path_matches_native_forward_and_gradients(cin, cout, groups, ksize, strides):
    x, k = _pair((2, 9, 9, cin), (ksize, ksize, cin // groups, cout))
    pad = ((ksize // 2, ksize // 2),) * 2
    native = jax.jit(_conv_fn("native", groups, (strides, strides), pad))
    fast = jax.jit(_conv_fn("fast", groups, (strides, strides), pad))
    y_nat, y_fast = native(x, k), fast(x, k)
    assert y_fast.shape == y_nat.shape
    np.testing.assert_allclose(y_fast, y_nat, rtol=1e-4, atol=1e-4)

    # Gradients w.r.t. input and kernel, through a non-trivial cotangent.
    w = jax.random.normal(jax.random.key(9), y_nat.shape)
    loss = lambda f: (lambda x, k: jnp.sum(jnp.tanh(f(x, k)) * w))  # noqa: E731
    gx_n, gk_n = jax.jit(jax.grad(loss(native), argnums=(0, 1)))(x, k)
    gx_f, gk_f = jax.jit(jax.grad(loss(fast), argnums=(0, 1)))(x, k)
    assert gk_f.shape == k.shape
    np.testing.assert_allclose(gx_f, gx_n, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gk_f, gk_n, rtol=1e-4, atol=1e-3)


def test_fast_path_is_not_the_native_op_on_cpu():
    x, k = _pair((1, 8, 8, 16), (3, 3, 2, 16))
    jaxpr = str(jax.make_jaxpr(_conv_fn("fast", 8, (1, 1), "SAME"))(x, k))
    assert "feature_group_count=1" in jaxpr and "feature_group_count=8" not in jaxpr
    jaxpr = str(jax.make_jaxpr(_conv_fn("native", 8, (1, 1), "SAME"))(x, k))
    assert "feature_group_count=8" in jaxpr


def test_auto_picks_by_backend():
    assert jax.default_backend() == "cpu"
    assert gc.resolve_impl("xla") == "fast"  # "auto" may pick oneDNN: tests/test_onednn.py
    assert gc.resolve_impl("native") == "native"
    with pytest.raises(ValueError, match="conv_impl"):
        gc.resolve_impl("im2col")


def test_super_groups_and_block_diagonal_kernel():
    assert gc.super_group_size(8, 2) == 8
    assert gc.super_group_size(8, 4) == 4
    assert gc.super_group_size(32, 8) == 1
    assert gc.super_group_size(32, 4) == 4
    assert gc.super_group_size(4, 2) == 4  # never more than all the groups
    assert gc.super_group_size(8, 32) == 1
    k = jnp.arange(1 * 1 * 2 * 4, dtype=jnp.float32).reshape(1, 1, 2, 4) + 1
    dense = gc.block_diagonal_kernel(k, groups=2)[0, 0]
    # Group 0: inputs 0-1 -> outputs 0-1; group 1: inputs 2-3 -> outputs 2-3.
    np.testing.assert_array_equal(dense[:2, :2], k[0, 0][:, :2])
    np.testing.assert_array_equal(dense[2:, 2:], k[0, 0][:, 2:])
    assert not np.any(dense[:2, 2:]) and not np.any(dense[2:, :2])


def test_mismatched_channels_are_rejected():
    x, k = _pair((1, 4, 4, 10), (3, 3, 2, 8))
    with pytest.raises(ValueError, match="do not fit 4 groups"):
        gc.grouped_conv(x, k, groups=4)


def test_model_outputs_agree_across_impls():
    from weaksup.models import get_model

    x = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
    fast = get_model("resnext_tiny", 4, conv_impl="fast")
    native = get_model("resnext_tiny", 4, conv_impl="native")
    variables = jax.jit(lambda x: fast.init(jax.random.key(0), x))(x)
    # Checkpoint portability: identical parameter trees from either path.
    v_native = jax.eval_shape(lambda x: native.init(jax.random.key(0), x), x)
    assert jax.tree.structure(v_native) == jax.tree.structure(variables)
    assert [a.shape for a in jax.tree.leaves(v_native)] == [a.shape for a in jax.tree.leaves(variables)]
    feats = lambda m: jax.jit(lambda v, x: m.apply(v, x, method="features"))(variables, x)  # noqa: E731
    np.testing.assert_allclose(feats(fast), feats(native), rtol=1e-4, atol=1e-4)
