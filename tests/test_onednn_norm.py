"""oneDNN batch norm (training mode, fused ReLU) agrees with XLA's, forward and gradients.

Every distinct batch norm of resnext_tiny, resnet_tiny and ResNeXt-101 32x8d (its input
shape, whether a ReLU follows, whether a residual is added first) runs as the model runs
it, `BatchNorm(impl="onednn")` against `BatchNorm(impl="xla")`, in float32 and bfloat16:
the output, the new running mean and variance, and the gradients of the input, residual,
scale and bias must agree to `TOLERANCE[dtype]` of the largest magnitude of XLA's result.
float32 differs only in summation order (oneDNN's two-pass variance against XLA's one
pass); bfloat16 outputs are both the float32 result rounded once, a unit in the last
place apart at most. Skipped only when the handlers are not built.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weaksup.models import get_model, onednn
from weaksup.models.norm import BatchNorm

pytestmark = pytest.mark.skipif(
    not onednn.library_path().exists(),
    reason=f"oneDNN handlers not built ({onednn.library_path()}; run `python -m weaksup onednn build`)",
)

TOLERANCE = {jnp.float32: 2e-5, jnp.bfloat16: 1e-2}

# (model, batch, image side): every stage's batch norms at a small batch. Each channel's
# statistics cover at least 8 values: over 2 (ResNeXt-101's last stage at 1 px, batch 2)
# the variance of a channel can be a thousandth of its mean square, and XLA's one-pass
# E[x^2] - E[x]^2 then loses most of its float32 digits (relative error 3e-3 against
# oneDNN's two-pass variance, measured), which says nothing about the oneDNN path.
MODELS = (("resnext_tiny", 4, 16), ("resnet_tiny", 4, 16), ("resnext101_32x8d", 8, 32))


def _norm_calls(name: str, batch: int, size: int) -> list[tuple[tuple[int, ...], bool, bool]]:
    """(input shape, relu, residual) of each distinct batch norm call of the model in training."""
    calls = set()

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, BatchNorm) and context.method_name == "__call__":
            calls.add((args[0].shape, bool(kwargs.get("relu")), kwargs.get("residual") is not None))
        return next_fun(*args, **kwargs)

    model = get_model(name, 10)
    images = jnp.zeros((batch, size, size, 3))
    with nn.intercept_methods(record):
        variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), images)
        jax.eval_shape(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, images)
    return sorted(calls)


def _relative_error(a, b) -> float:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _run(impl: str, calls, inputs, dtype, groups: int = 0):
    """Outputs, running statistics and gradients of each call, in one jitted program."""
    out = []
    for (shape, relu, has_residual), (x, r, dy, params) in zip(calls, inputs):
        bn = BatchNorm(dtype=dtype, groups=groups, impl=impl)
        stats = {"mean": jnp.zeros(shape[-1]), "var": jnp.ones(shape[-1])}

        def f(x, r, params, bn=bn, stats=stats, relu=relu, has_residual=has_residual):
            return bn.apply({"params": params, "batch_stats": stats}, x, True, relu=relu,
                            residual=r if has_residual else None, mutable=["batch_stats"])

        y, vjp, new = jax.vjp(f, x, r, params, has_aux=True)
        dx, dr, dp = vjp(dy)
        out.append((y, new["batch_stats"]["mean"], new["batch_stats"]["var"], dx, dr, dp["scale"], dp["bias"]))
    return out


def _inputs(calls, dtype):
    inputs = []
    for i, (shape, _, _) in enumerate(calls):
        kx, kr, kd, ks, kb = jax.random.split(jax.random.key(i), 5)
        # Off-centre, scaled activations, as a convolution hands them over.
        x = (jax.random.normal(kx, shape) * 2.0 + 0.5).astype(dtype)
        params = {"scale": 1.0 + 0.1 * jax.random.normal(ks, shape[-1:]),
                  "bias": 0.1 * jax.random.normal(kb, shape[-1:])}
        inputs.append((x, jax.random.normal(kr, shape).astype(dtype), jax.random.normal(kd, shape).astype(dtype),
                       params))
    return inputs


WHAT = ("output", "running mean", "running var", "input gradient", "residual gradient", "scale gradient",
        "bias gradient")


def _compare(calls, got, want, dtype) -> list[str]:
    failures = []
    for call, g7, w7 in zip(calls, got, want):
        for what, g, w in zip(WHAT, g7, w7):
            assert g.shape == w.shape and g.dtype == w.dtype, (call, what)
            err = _relative_error(g, w)
            if not err <= TOLERANCE[dtype]:
                failures.append(f"{call} {what}: relative error {err:.2e}")
    return failures


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("name,batch,size", MODELS)
def test_every_batch_norm_of_the_model_agrees_with_xla(name, batch, size, dtype):
    calls = _norm_calls(name, batch, size)
    assert any(relu and not res for _, relu, res in calls) and any(res for _, _, res in calls)
    inputs = _inputs(calls, dtype)
    onednn_calls = [c for c in calls if onednn.batch_norm_is_fast(c[0], dtype, relu=c[1] and not c[2])]
    assert onednn_calls == calls, "every batch norm of these models has oneDNN JIT kernels"
    got = jax.jit(lambda i: _run("onednn", calls, i, dtype))(inputs)
    want = jax.jit(lambda i: _run("xla", calls, i, dtype))(inputs)
    failures = _compare(calls, got, want, dtype)
    assert not failures, f"tolerance {TOLERANCE[dtype]:.0e}: " + "; ".join(failures)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_per_group_statistics_agree_with_xla(dtype):
    """bn_groups=4: each quarter of the batch normalised with its own statistics."""
    calls = [((8, 4, 4, 32), True, False), ((8, 4, 4, 64), False, False), ((8, 2, 2, 64), True, True)]
    inputs = _inputs(calls, dtype)
    got = jax.jit(lambda i: _run("onednn", calls, i, dtype, groups=4))(inputs)
    want = jax.jit(lambda i: _run("xla", calls, i, dtype, groups=4))(inputs)
    failures = _compare(calls, got, want, dtype)
    assert not failures, "; ".join(failures)


def test_batch_norm_returns_statistics_per_group():
    x = jax.random.normal(jax.random.key(0), (6, 3, 3, 16)) * 3.0
    x = x.at[:3].add(5.0)  # the two halves have different means
    y, mean, var = onednn.batch_norm(x, jnp.ones(16), jnp.zeros(16), epsilon=1e-5, groups=2)
    halves = np.asarray(x).reshape(2, 3, 3, 3, 16)
    np.testing.assert_allclose(mean, halves.mean(axis=(1, 2, 3)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(var, halves.var(axis=(1, 2, 3)), rtol=1e-4)
    assert y.shape == x.shape and mean.shape == var.shape == (2, 16)


def test_slow_kernels_fall_back_to_xla():
    """bfloat16 with channels not a multiple of 16 has only oneDNN's generic loops: XLA's runs."""
    assert onednn.batch_norm_is_fast((8, 4, 4, 64), jnp.bfloat16, relu=True)
    assert not onednn.batch_norm_is_fast((8, 4, 4, 56), jnp.bfloat16, relu=True)
    x = jax.random.normal(jax.random.key(0), (8, 4, 4, 56), jnp.bfloat16)
    bn = {impl: BatchNorm(dtype=jnp.bfloat16, impl=impl) for impl in ("onednn", "xla")}
    variables = bn["xla"].init(jax.random.key(0), x, False)
    ys = [bn[impl].apply(variables, x, True, relu=True, mutable=["batch_stats"])[0] for impl in bn]
    np.testing.assert_array_equal(np.asarray(ys[0], np.float32), np.asarray(ys[1], np.float32))
    hlo = jax.jit(lambda v, x: bn["onednn"].apply(v, x, True, relu=True, mutable=["batch_stats"])).lower(
        variables, x).as_text()
    assert "weaksup_onednn_bn" not in hlo


def test_disabled_path_is_xla_bit_for_bit(monkeypatch):
    """With WEAKSUP_NO_ONEDNN set, impl='auto' batch norm is exactly the XLA path."""
    monkeypatch.setenv(onednn.DISABLE_ENV, "1")
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 32))
    bn = {impl: BatchNorm(impl=impl) for impl in ("auto", "xla")}
    variables = bn["xla"].init(jax.random.key(0), x, False)

    def grads(m):
        return jax.jit(jax.grad(lambda v, x: jnp.sum(m.apply(v, x, True, relu=True, mutable=["batch_stats"])[0] ** 2),
                                argnums=(0, 1)))(variables, x)

    got, want = grads(bn["auto"]), grads(bn["xla"])
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_inference_uses_running_statistics_on_every_path():
    x = jax.random.normal(jax.random.key(2), (4, 4, 4, 32))
    variables = {"params": {"scale": jnp.full(32, 2.0), "bias": jnp.ones(32)},
                 "batch_stats": {"mean": jnp.full(32, 0.5), "var": jnp.full(32, 4.0)}}
    want = np.maximum((np.asarray(x) - 0.5) / np.sqrt(4.0 + 1e-5) * 2.0 + 1.0, 0.0)
    for impl in ("onednn", "xla"):
        y = BatchNorm(impl=impl).apply(variables, x, False, relu=True)
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="NHWC float32/bfloat16"):
        onednn.batch_norm(jnp.zeros((4, 8, 16)), jnp.ones(16), jnp.zeros(16), epsilon=1e-5)
    with pytest.raises(ValueError, match="divisible by 3 groups"):
        onednn.batch_norm(jnp.zeros((4, 2, 2, 16)), jnp.ones(16), jnp.zeros(16), epsilon=1e-5, groups=3)
    with pytest.raises(ValueError, match="NHWC float32/bfloat16"):
        onednn.batch_norm(jnp.zeros((4, 2, 2, 16), jnp.float16), jnp.ones(16), jnp.zeros(16), epsilon=1e-5)
