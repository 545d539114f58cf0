"""The oneDNN convolution path agrees with XLA's convolution, forward and gradients.

Every distinct convolution of resnext_tiny and resnet_tiny (16 px, batch 1 and 2) and of
ResNeXt-101 32x8d (32 px, batch 1: stages at 8, 4, 2 and 1 px; 1x1 convolutions up to
2048 channels, 3x3 ones of 32 groups) is run through the oneDNN
custom calls and through XLA's own convolution (`feature_group_count`), in float32 and
bfloat16; the output, input gradient and kernel gradient must agree to
`TOLERANCE[dtype]` of the largest magnitude of XLA's result: 2e-5 in float32 (summation
order only), 1e-2 in bfloat16 (both round the float32 accumulator to bfloat16, whose
spacing is 2^-8 relative, so a few units in the last place apart at most).
Skipped only when the handlers are not built (`python -m weaksup onednn build`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from weaksup import train_lib
from weaksup.models import get_model, onednn
from weaksup.models.grouped_conv import ConvShape, conv_shapes, grouped_conv, resolve_impl
from weaksup.models.resnet import Conv

pytestmark = pytest.mark.skipif(
    not onednn.library_path().exists(),
    reason=f"oneDNN handlers not built ({onednn.library_path()}; run `python -m weaksup onednn build`)",
)

TOLERANCE = {jnp.float32: 2e-5, jnp.bfloat16: 1e-2}


# (model, batch, image side): small pictures keep the run short; every stage still has its shapes.
MODELS = (("resnext_tiny", 1, 16), ("resnet_tiny", 2, 16), ("resnext101_32x8d", 1, 32))


def _xla_conv(x, k, s: ConvShape):
    return lax.conv_general_dilated(x, k, s.strides, s.padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=s.groups)


def _onednn_conv(x, k, s: ConvShape):
    return onednn.conv(x, k, groups=s.groups, strides=s.strides, padding=s.padding)


def _relative_error(a: jax.Array, b: jax.Array) -> float:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _shape_name(s: ConvShape) -> str:
    return f"{'x'.join(map(str, s.x_shape))} * {'x'.join(map(str, s.kernel_shape))} g{s.groups} s{s.strides[0]}"


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("name,batch,size", MODELS)
def test_every_convolution_of_the_model_agrees_with_xla(name, batch, size, dtype):
    """Output, input gradient and kernel gradient of each distinct convolution of the model."""
    shapes = conv_shapes(get_model(name, 10), (batch, size, size, 3))
    inputs = []
    for i, s in enumerate(shapes):
        kx, kk, ky = jax.random.split(jax.random.key(i), 3)
        fan_in = s.kernel_shape[0] * s.kernel_shape[1] * s.kernel_shape[2]
        x = jax.random.normal(kx, s.x_shape, dtype)
        k = (jax.random.normal(kk, s.kernel_shape) / np.sqrt(fan_in)).astype(dtype)
        y = jax.eval_shape(lambda x, k, s=s: _xla_conv(x, k, s), x, k)
        inputs.append((x, k, jax.random.normal(ky, y.shape, dtype)))

    def all_convs(conv, inputs):
        # One jitted program for all shapes: compiling one per shape would dominate the test.
        out = []
        for s, (x, k, dy) in zip(shapes, inputs):
            y, vjp = jax.vjp(lambda x, k, s=s: conv(x, k, s), x, k)
            out.append((y, *vjp(dy)))
        return out

    got = jax.jit(lambda i: all_convs(_onednn_conv, i))(inputs)
    want = jax.jit(lambda i: all_convs(_xla_conv, i))(inputs)
    failures = []
    for s, g3, w3 in zip(shapes, got, want):
        for what, g, w in zip(("output", "input gradient", "kernel gradient"), g3, w3):
            assert g.shape == w.shape and g.dtype == w.dtype, (_shape_name(s), what)
            err = _relative_error(g, w)
            if not err <= TOLERANCE[dtype]:
                failures.append(f"{_shape_name(s)} {what}: relative error {err:.2e}")
    assert not failures, f"tolerance {TOLERANCE[dtype]:.0e}: " + "; ".join(failures)
    assert len(shapes) >= 14  # the stem, and every stage's 1x1, 3x3 and projection convolutions


def test_model_logits_and_gradients_agree():
    """A training-mode forward and backward of resnext_tiny (20 convolutions, batch norm), float32.

    (bfloat16 differences grow chaotically through a whole network; the per-convolution
    test above bounds them where they arise.)
    """
    images = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    variables = get_model("resnext_tiny", 10).init(jax.random.key(0), images)

    def logits_and_grads(impl: str):
        model = get_model("resnext_tiny", 10, conv_impl=impl)

        def loss(params):
            logits, _ = model.apply({**variables, "params": params}, images, train=True, mutable=["batch_stats"])
            return jnp.mean(logits ** 2), logits

        grads, logits = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
        return logits, jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads)])

    # XLA's own grouped convolution as the reference: it compiles faster than the "xla" path.
    ref_logits, ref_grads = logits_and_grads("native")
    logits, grads = logits_and_grads("onednn")
    assert _relative_error(logits, ref_logits) <= 2e-4
    assert _relative_error(grads, ref_grads) <= 2e-4


def test_on_a_device_mesh_the_calls_are_exact_and_the_trainer_names_their_cost():
    """XLA does not partition the custom calls: on a mesh every device computes the whole
    batch, so a batch sharded over the devices gives one device's logits and gradients,
    and train_lib's warning says the work is not divided."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:4]), ("data",))
    images = jax.random.normal(jax.random.key(1), (8, 16, 16, 3))
    model = get_model("resnet_tiny", 10, conv_impl="onednn")
    variables = model.init(jax.random.key(0), images)

    def loss(params, x):
        logits, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return jnp.mean(logits ** 2), logits

    step = jax.jit(jax.grad(loss, has_aux=True))
    one = step(variables["params"], images)
    data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    sharded = step(jax.device_put(variables["params"], replicated), jax.device_put(images, data))
    for got, want in zip(jax.tree.leaves(sharded), jax.tree.leaves(one)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-7)

    warning = train_lib.unpartitioned_path_warning(model, 4)
    assert "every device computes the whole batch" in warning and "'onednn'" in warning
    assert train_lib.unpartitioned_path_warning(model, 1) is None
    assert train_lib.unpartitioned_path_warning(get_model("resnet_tiny", 10, conv_impl="xla"), 4) is None
    assert train_lib.unpartitioned_path_warning(get_model("vit_tiny", 10), 4) is None  # no convolutions


def test_auto_picks_onednn_on_cpu_when_available(monkeypatch):
    monkeypatch.delenv(onednn.DISABLE_ENV, raising=False)
    assert onednn.available(jnp.float32), onednn.unavailable_reason(jnp.float32)
    assert resolve_impl("auto", jnp.float32) == "onednn"
    assert resolve_impl("xla", jnp.float32) == "fast"
    # float16 has no oneDNN path here: auto keeps XLA's.
    assert resolve_impl("auto", jnp.float16) == "fast"
    assert "float32 or bfloat16" in onednn.unavailable_reason(jnp.float16)


def test_fallback_when_disabled_is_the_xla_path(monkeypatch):
    """With the fast path disabled, conv_impl='auto' is exactly today's XLA path, bit for bit."""
    monkeypatch.setenv(onednn.DISABLE_ENV, "1")
    assert not onednn.available(jnp.float32)
    assert onednn.DISABLE_ENV in onednn.unavailable_reason(jnp.float32)
    assert resolve_impl("auto", jnp.float32) == "fast"
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 64))
    conv = {impl: Conv(64, (3, 3), 2, 8, impl) for impl in ("auto", "xla")}
    variables = conv["auto"].init(jax.random.key(0), x)
    got, want = (jax.jit(jax.grad(lambda v, c=c: jnp.sum(c.apply(v, x) ** 2)))(variables) for c in conv.values())
    np.testing.assert_array_equal(np.asarray(got["params"]["kernel"]), np.asarray(want["params"]["kernel"]))


def test_default_is_xla():
    assert get_model("resnext_tiny", 10).conv_impl == "xla"


def test_rejects_bad_inputs():
    x = jnp.zeros((1, 8, 8, 16), jnp.float32)
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        onednn.conv(x, jnp.zeros((3, 3, 16, 16), jnp.bfloat16))
    with pytest.raises(ValueError, match="do not fit"):
        onednn.conv(x, jnp.zeros((3, 3, 4, 18), jnp.float32), groups=4)
    with pytest.raises(ValueError, match="conv_impl"):
        grouped_conv(x, jnp.zeros((3, 3, 16, 16)), groups=1, impl="mkl")
    with pytest.raises(ValueError, match="conv_impl 'onednn' unavailable: .*float32 or bfloat16"):
        get_model("resnet_tiny", 10, conv_impl="onednn", dtype="float16")


def test_explicit_onednn_when_disabled_is_a_config_error(monkeypatch):
    monkeypatch.setenv(onednn.DISABLE_ENV, "1")
    with pytest.raises(ValueError, match=f"conv_impl 'onednn' unavailable: disabled by {onednn.DISABLE_ENV}"):
        get_model("resnext_tiny", 10, conv_impl="onednn")


def test_describe_names_vectorised_kernels():
    names = onednn.describe((2, 16, 16, 64), (3, 3, 8, 64), groups=8, padding=((1, 1), (1, 1)))
    assert set(names) == {"fwd", "bwd_data", "bwd_weights"}
    assert all(n and "ref" not in n for n in names.values()), names
