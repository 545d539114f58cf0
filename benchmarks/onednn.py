"""Where XLA:CPU loses on the small models' convolutions: each pass, XLA against oneDNN.

For every distinct convolution of a model (default resnext_tiny and resnet_tiny at 32 px,
batch 128), in float32 and bfloat16: the forward pass, the input gradient (backward-data)
and the kernel gradient (backward-weights), each jitted alone, through XLA (the models'
"xla" path: the dense / super-group / matmul decomposition of
weaksup.models.grouped_conv) and through the oneDNN custom calls
(weaksup.models.onednn), with the oneDNN kernel each pass uses; then the stem's max
pool, flax's (XLA's select-and-scatter gradient) against the native one; then
training-mode batch norm with its ReLU, forward + backward, at each distinct activation
shape of the models and at a few channel counts that oneDNN has no JIT kernel for in
bfloat16 (the model keeps XLA's there). The runs alternate per shape, so CPU contention
from other processes affects both alike; quote the ratios.

    .venv/bin/python benchmarks/onednn.py [--models resnext_tiny,resnet_tiny] [--batch 128]
        [--image-size 32] [--dtypes float32,bfloat16] [--iters 5]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

import jax
import flax.linen as nn
import jax.numpy as jnp

from weaksup.models import get_model, onednn
from weaksup.models.grouped_conv import ConvShape, conv_shapes, grouped_conv
from weaksup.models.norm import BatchNorm

PASSES = ("fwd", "bwd_data", "bwd_weights")


def _time(fn, *args, iters: int) -> float:
    """Best seconds per call of a jitted `fn` over `iters` calls after one warm-up call."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def pass_fns(shape: ConvShape, impl: str) -> dict[str, callable]:
    """Jitted forward, input-gradient and kernel-gradient functions of one convolution."""
    conv = functools.partial(grouped_conv, groups=shape.groups, strides=shape.strides,
                             padding=shape.padding, impl=impl)

    def bwd_data(x, k, dy):
        return jax.vjp(lambda x: conv(x, k), x)[1](dy)[0]

    def bwd_weights(x, k, dy):
        return jax.vjp(lambda k: conv(x, k), k)[1](dy)[0]

    return {
        "fwd": jax.jit(lambda x, k, dy: conv(x, k)),
        "bwd_data": jax.jit(bwd_data),
        "bwd_weights": jax.jit(bwd_weights),
    }


def bench_shape(shape: ConvShape, dtype: jnp.dtype, iters: int) -> dict[tuple[str, str], float]:
    """Seconds of each pass, per (impl, pass), the two paths alternating pass by pass."""
    kx, kk, ky = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, shape.x_shape, dtype)
    k = (jax.random.normal(kk, shape.kernel_shape) * 0.05).astype(dtype)
    y = jax.eval_shape(lambda x, k: grouped_conv(x, k, groups=shape.groups, strides=shape.strides,
                                                 padding=shape.padding, impl="native"), x, k)
    dy = jax.random.normal(ky, y.shape, dtype)
    fns = {impl: pass_fns(shape, impl) for impl in ("xla", "onednn")}
    return {(impl, p): _time(fns[impl][p], x, k, dy, iters=iters) for p in PASSES for impl in fns}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="resnext_tiny,resnet_tiny")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}")
    reason = onednn.unavailable_reason()
    if reason is not None:
        print(f"oneDNN path unavailable ({reason}); run `python -m weaksup onednn build`")
        return 0
    for dtype_name in args.dtypes.split(","):
        dtype = jnp.dtype(dtype_name)
        for name in args.models.split(","):
            shapes = conv_shapes(get_model(name, 10), (args.batch, args.image_size, args.image_size, 3))
            print(f"\n{name}, {dtype_name}, batch {args.batch}, {args.image_size} px: ms per pass, "
                  "XLA / oneDNN (ratio = XLA time / oneDNN time)")
            print(f"  {'input':<16} {'kernel':<16} {'g':>2} {'s':>1} "
                  + " ".join(f"{p:>22}" for p in PASSES) + "  oneDNN kernels")
            totals = {(impl, p): 0.0 for impl in ("xla", "onednn") for p in PASSES}
            for shape in shapes:
                t = bench_shape(shape, dtype, args.iters)
                for key, v in t.items():
                    totals[key] += v
                cells = " ".join(
                    f"{t['xla', p] * 1e3:7.2f}/{t['onednn', p] * 1e3:6.2f} {t['xla', p] / t['onednn', p]:5.1f}x"
                    for p in PASSES
                )
                kernels = onednn.describe(shape.x_shape, shape.kernel_shape, groups=shape.groups,
                                               strides=shape.strides, padding=shape.padding, dtype=dtype)
                print(f"  {'x'.join(map(str, shape.x_shape[1:])):<16} {'x'.join(map(str, shape.kernel_shape)):<16} "
                      f"{shape.groups:>2} {shape.strides[0]:>1} {cells}  {' / '.join(kernels.values())}")
            cells = " ".join(
                f"{totals['xla', p] * 1e3:7.2f}/{totals['onednn', p] * 1e3:6.2f} "
                f"{totals['xla', p] / totals['onednn', p]:5.1f}x" for p in PASSES
            )
            print(f"  {'sum (each shape once)':<39} {cells}")
        bench_stem_pool(dtype, args.batch, args.image_size, args.iters)
        bench_batch_norm(shapes, dtype, args.iters)
    return 0


def bench_stem_pool(dtype: jnp.dtype, batch: int, size: int, iters: int) -> None:
    """The tiny models' 3x3/2 stem max pool (32 channels): flax's (XLA) against the native one."""
    x = jax.random.normal(jax.random.key(0), (batch, size, size, 32)).astype(dtype)
    pools = {"xla": lambda v: nn.max_pool(v, (3, 3), (2, 2), ((1, 1), (1, 1))),
             "native": lambda v: onednn.max_pool(v, 3, 2, 1)}
    g = jnp.ones(pools["xla"](x).shape, dtype)
    t = {}
    for impl, pool in pools.items():
        t[impl, "fwd"] = _time(jax.jit(pool), x, iters=iters)
        t[impl, "fwd+bwd"] = _time(jax.jit(lambda v, g, pool=pool: jax.vjp(pool, v)[1](g)[0]), x, g, iters=iters)
    print(f"  stem max pool 3x3/2, {size}x{size}x32: ms, XLA / native: "
          + ", ".join(f"{p} {t['xla', p] * 1e3:.2f}/{t['native', p] * 1e3:.2f} ({t['xla', p] / t['native', p]:.1f}x)"
                      for p in ("fwd", "fwd+bwd")))


def bench_batch_norm(shapes: list[ConvShape], dtype: jnp.dtype, iters: int) -> None:
    """Training-mode batch norm + ReLU (fwd + bwd) at each convolution output shape, XLA against oneDNN."""
    outputs = sorted({tuple(jax.eval_shape(lambda x, k, s=s: grouped_conv(
        x, k, groups=s.groups, strides=s.strides, padding=s.padding),
        jax.ShapeDtypeStruct(s.x_shape, dtype), jax.ShapeDtypeStruct(s.kernel_shape, dtype)).shape) for s in shapes})
    n, h, w, _ = outputs[0]
    outputs += [(n, h, w, c) for c in (24, 56, 152)]  # no bfloat16 JIT kernel for these
    print(f"  batch norm + ReLU, fwd+bwd, ms: XLA / oneDNN (oneDNN kernels)")
    for shape in outputs:
        x = jax.random.normal(jax.random.key(0), shape).astype(dtype) * 2 + 0.5
        g = jax.random.normal(jax.random.key(1), shape).astype(dtype)
        bn = BatchNorm(dtype=dtype, impl="xla")
        variables = bn.init(jax.random.key(0), x, False)
        # oneDNN's kernels called directly: the module would take XLA's where they are slow.
        norms = {
            "xla": lambda p, x: bn.apply({**variables, "params": p}, x, True, relu=True, mutable=["batch_stats"])[0],
            "onednn": lambda p, x: onednn.batch_norm(x, p["scale"], p["bias"], epsilon=1e-5, relu=True)[0],
        }
        t = {impl: _time(jax.jit(lambda p, x, g, f=f: jax.vjp(f, p, x)[1](g)), variables["params"], x, g, iters=iters)
             for impl, f in norms.items()}
        kernels = onednn.describe_batch_norm(shape, dtype, relu=True)[1]
        print(f"  {'x'.join(map(str, shape)):<39} {t['xla'] * 1e3:7.2f} / {t['onednn'] * 1e3:7.2f} "
              f"({t['xla'] / t['onednn']:4.1f}x)  {kernels}")


if __name__ == "__main__":
    sys.exit(main())
