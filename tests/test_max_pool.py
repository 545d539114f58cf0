"""The native max pool equals flax's `nn.max_pool` bit for bit, forward and gradient.

XLA's max-pool gradient sends each output's gradient to the first maximal element of its
window (select-and-scatter; a padded position counts as -inf) and sums what an input
position receives in output order. The native pool (`onednn.max_pool`, used on the
"onednn" path) must do exactly the same, so the checks are exact equality, on inputs
full of ties (ReLU zeros, values rounded to quarters), odd sizes, overlapping and
non-overlapping windows, and -inf entries.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weaksup.models import get_model, onednn, pooling

pytestmark = pytest.mark.skipif(
    not onednn.library_path().exists(),
    reason=f"oneDNN handlers not built ({onednn.library_path()}; run `python -m weaksup onednn build`)",
)

# (input shape, window, stride, padding)
GEOMETRIES = [((4, 32, 32, 32), 3, 2, 1), ((3, 15, 17, 5), 3, 2, 1), ((2, 9, 9, 3), 2, 2, 0),
              ((2, 10, 11, 4), 3, 1, 1), ((1, 7, 7, 67), 5, 3, 2)]


def _flax(x, window, stride, padding):
    return nn.max_pool(x, (window, window), (stride, stride), ((padding, padding), (padding, padding)))


def _inputs(shape, dtype, seed):
    x = jax.nn.relu(jax.random.normal(jax.random.key(seed), shape))
    x = jnp.round(x * 4) / 4  # many exact ties, as after ReLU and in bfloat16
    return x.astype(dtype)


def _value_and_grad(pool, x, g):
    y, vjp = jax.vjp(pool, x)
    return y, vjp(g)[0]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("shape,window,stride,padding", GEOMETRIES)
def test_native_pool_is_flax_pool_bit_for_bit(shape, window, stride, padding, dtype):
    x = _inputs(shape, dtype, 0)
    want_y = _flax(x, window, stride, padding)
    g = jax.random.normal(jax.random.key(1), want_y.shape).astype(dtype)
    args = (window, stride, padding)
    want = jax.jit(lambda x, g: _value_and_grad(lambda v: _flax(v, *args), x, g))(x, g)
    got = jax.jit(lambda x, g: _value_and_grad(lambda v: onednn.max_pool(v, *args), x, g))(x, g)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_minus_infinity_inputs_route_like_padding():
    """A window of -inf beside the padding: XLA's first maximum is the padded tap, so the
    gradient falls off the edge; the native pool must drop it too."""
    x = _inputs((2, 8, 8, 4), jnp.float32, 2).at[:, :3, :3, :].set(-jnp.inf)
    g = jnp.ones((2, 4, 4, 4))
    want = _value_and_grad(lambda v: _flax(v, 3, 2, 1), x, g)
    got = _value_and_grad(lambda v: onednn.max_pool(v, 3, 2, 1), x, g)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_vmap_runs_per_element():
    x = _inputs((3, 2, 8, 8, 4), jnp.float32, 3)
    got = jax.vmap(lambda v: onednn.max_pool(v, 3, 2, 1))(x)
    want = jax.vmap(lambda v: _flax(v, 3, 2, 1))(x)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _calls_native_pool(model, images) -> bool:
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), images))
    hlo = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])).lower(
        variables, images).as_text()
    return "weaksup_max_pool_fwd" in hlo


def test_the_model_pools_natively_on_the_onednn_path_only(monkeypatch):
    monkeypatch.delenv(onednn.DISABLE_ENV, raising=False)
    images = jnp.zeros((2, 16, 16, 3))
    assert _calls_native_pool(get_model("resnet_tiny", 10, conv_impl="onednn"), images)
    assert _calls_native_pool(get_model("resnet_tiny", 10, conv_impl="auto"), images)
    assert not _calls_native_pool(get_model("resnet_tiny", 10, conv_impl="xla"), images)
    # With the fast path disabled, "auto" is flax's pool again.
    monkeypatch.setenv(onednn.DISABLE_ENV, "1")
    assert not _calls_native_pool(get_model("resnet_tiny", 10, conv_impl="auto"), images)
    x = _inputs((2, 8, 8, 4), jnp.float32, 4)
    np.testing.assert_array_equal(np.asarray(pooling.max_pool(x, 3, 2, 1, "auto")),
                                  np.asarray(_flax(x, 3, 2, 1)))


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="NHWC float32/bfloat16"):
        onednn.max_pool(jnp.zeros((8, 8, 4)), 3, 2, 1)
    with pytest.raises(ValueError, match="NHWC float32/bfloat16"):
        onednn.max_pool(jnp.zeros((1, 8, 8, 4), jnp.float16), 3, 2, 1)
