"""Speed of the grouped convolution paths and of the demo models on this machine.

One run, side by side (so CPU contention affects every figure alike):

1. The grouped 3x3 convolution of each stage of the demo model (resnext_tiny on 32 px
   pictures: after the pooled stem, 64 channels in 8 groups at 16x16, 128 at 8x8, 256 at
   4x4; the stride-1 convolution of each stage's second block), batch 128, forward +
   backward (input and kernel gradients): the CPU fast path, XLA's native
   feature_group_count, and dense convolutions of equal useful FLOPs (C/4 -> C/2 and
   C/2 -> C/4 channels: 9*C/4*C/2 = 9*C*C/8 MACs per pixel). Targets: fast >= 10x native,
   fast >= 50% of the best dense useful-FLOP rate.
2. The first grouped bottleneck block (1x1 -> grouped 3x3 -> 1x1 + BN), fast vs native.
3. Training images/s (fwd + bwd + Nesterov SGD update, jitted) of the demo models at
   32 px, batch 128.

    .venv/bin/python benchmarks/models.py [--batch 128] [--image-size 32] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import optax
from jax import lax

from weaksup.models import get_model
from weaksup.models.grouped_conv import grouped_conv
from weaksup.models.resnet import Bottleneck


def _time(fn, *args, iters: int, min_seconds: float = 0.0) -> float:
    """Seconds per call of a jitted `fn` after one warm-up (compile) call."""
    jax.block_until_ready(fn(*args))
    n, start = 0, time.perf_counter()
    while n < iters or time.perf_counter() - start < min_seconds:
        jax.block_until_ready(fn(*args))
        n += 1
    return (time.perf_counter() - start) / n


def _fwd_bwd(conv):
    """Jitted forward + backward (gradients w.r.t. input and kernel) of conv(x, k)."""
    return jax.jit(jax.grad(lambda x, k: jnp.sum(conv(x, k)), argnums=(0, 1)))


def bench_grouped_conv(batch: int, size: int, channels: int, groups: int, iters: int) -> dict:
    """Fast path vs native vs dense convolutions of equal useful FLOPs."""
    kx, kk = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (batch, size, size, channels))
    k = jax.random.normal(kk, (3, 3, channels // groups, channels)) * 0.05
    useful = 3 * 2 * batch * size * size * 9 * (channels // groups) * channels  # fwd+bwd ~ 3x fwd
    pad = ((1, 1), (1, 1))
    results = {}
    for impl in ("fast", "native"):
        conv = functools.partial(grouped_conv, groups=groups, padding=pad, impl=impl)
        results[impl] = _time(_fwd_bwd(conv), x, k, iters=iters if impl == "fast" else 1)
    # Dense convolutions doing the same useful MACs per pixel: cin * cout = channels^2 / groups.
    for cin, cout in ((channels // 4, channels // 2), (channels // 2, channels // 4)):
        assert cin * cout * groups == channels * channels
        kd = jax.random.normal(kk, (3, 3, cin, cout)) * 0.05
        dense = lambda x, k: lax.conv_general_dilated(x, k, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"))  # noqa: E731
        results[f"dense {cin}->{cout}"] = _time(_fwd_bwd(dense), x[..., :cin], kd, iters=iters)
    print(f"\n[1] grouped 3x3 conv, {channels} ch / {groups} groups, {size}x{size}, batch {batch}, fwd+bwd")
    print(f"    {'path':<16} {'ms':>9} {'images/s':>10} {'useful GFLOP/s':>15}")
    for name, t in results.items():
        print(f"    {name:<16} {t * 1e3:>9.1f} {batch / t:>10.0f} {useful / t / 1e9:>15.1f}")
    best_dense = min(t for n, t in results.items() if n.startswith("dense"))
    speedup = results["native"] / results["fast"]
    rate = best_dense / results["fast"]
    print(f"    fast / native speed: {speedup:.1f}x (target >= 10x)")
    print(f"    fast useful-FLOP rate / best dense: {rate:.0%} (target >= 50%)")
    return {"speedup": speedup, "dense_rate": rate}


def bench_block(batch: int, size: int, iters: int) -> None:
    """The demo model's first grouped bottleneck (train mode), fast vs native."""
    x = jax.random.normal(jax.random.key(1), (batch, size, size, 64))
    times = {}
    for impl in ("fast", "native"):
        block = Bottleneck(planes=16, width=64, strides=1, groups=8, expansion=4, zero_init=False, dtype=jnp.float32,
                           param_dtype=jnp.float32, bn_groups=0, conv_impl=impl)
        variables = jax.jit(lambda x: block.init(jax.random.key(0), x, train=False))(x)

        def loss(params, x, block=block, variables=variables):
            y, _ = block.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
            return jnp.mean(y ** 2)

        times[impl] = _time(jax.jit(jax.grad(loss, argnums=(0, 1))), variables["params"], x,
                            iters=iters if impl == "fast" else 1)
    print(f"\n[2] grouped bottleneck block 64 -> 3x3 64 (8 groups) -> 64, {size}x{size}, batch {batch}, fwd+bwd")
    for impl, t in times.items():
        print(f"    {impl:<8} {t * 1e3:>9.1f} ms {batch / t:>9.0f} images/s")
    print(f"    fast / native: {times['native'] / times['fast']:.1f}x")


def train_step_fn(model, tx):
    """A jitted SGD step on soft-target softmax cross-entropy (the pretraining loss)."""

    def step(params, batch_stats, opt_state, images, targets):
        def loss_fn(p):
            logits, upd = model.apply({"params": p, "batch_stats": batch_stats}, images,
                                      train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy(logits, targets).mean(), upd["batch_stats"]

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def bench_training(names: list[str], batch: int, size: int, iters: int, num_classes: int = 1000) -> None:
    """Training images/s of each model (fwd + bwd + update)."""
    print(f"\n[3] training images/s, {size} px, batch {batch}, {num_classes} classes, float32")
    images = jax.random.normal(jax.random.key(2), (batch, size, size, 3))
    targets = jax.nn.one_hot(jnp.arange(batch) % num_classes, num_classes)
    tx = optax.sgd(0.1, momentum=0.9, nesterov=True)
    for spec in names:
        name, _, impl = spec.partition(":")
        model = get_model(name, num_classes, conv_impl=impl or "auto")
        variables = jax.jit(lambda x, m=model: m.init(jax.random.key(0), x))(images[:2])
        state = [variables["params"], variables["batch_stats"], tx.init(variables["params"])]
        step = train_step_fn(model, tx)

        def run():
            state[0], state[1], state[2], loss = step(*state, images, targets)
            return loss

        t = _time(run, iters=iters if impl != "native" else 1)
        print(f"    {spec:<22} {t * 1e3:>9.1f} ms/step {batch / t:>9.0f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the native-path training step")
    args = parser.parse_args()
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s)")
    # resnext_tiny's stages: the stem pools to 1/2 of the picture side, stages 2-3 halve it again.
    for k, channels in enumerate((64, 128, 256)):
        bench_grouped_conv(args.batch, args.image_size // 2 ** (k + 1), channels, 8, args.iters)
    bench_block(args.batch, args.image_size // 2, args.iters)
    models = ["resnet_tiny", "resnext_tiny", "resnet_small", "resnext_small"]
    if not args.quick:
        models.append("resnext_tiny:native")
    bench_training(models, args.batch, args.image_size, args.iters)


if __name__ == "__main__":
    main()
