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
4. weaksup beside PyTorch (CPU build, oneDNN): resnext_tiny and resnet_tiny rebuilt layer
   for layer in torch.nn (same parameter counts: 771,988 and 446,740 with an 884-way
   head), channels-last, bfloat16 through torch.autocast; forward + backward + Nesterov
   SGD with weight decay on soft targets, batch 128 at 32 px, float32 and bfloat16. Each
   weaksup conv_impl ("xla", "onednn") and PyTorch run in turn, a few steps at a time,
   for several rounds in this one process, so other load on the machine falls on all of
   them alike; the table gives median images/s and the median over rounds of weaksup /
   PyTorch within the round. Skipped, saying so, when torch is not installed (it is in
   the dev extra). `--torch-only` runs only this.
5. `--mesh N` instead: the batch sharded over N forced host devices (a data-parallel mesh
   on this one machine), resnext_tiny training images/s in bfloat16 through XLA and
   through oneDNN. XLA does not partition oneDNN's custom calls, so there every device
   computes the whole batch (README "CPU training path").

    .venv/bin/python benchmarks/models.py [--batch 128] [--image-size 32] [--quick]
        [--torch-only] [--rounds 5] [--dtypes float32,bfloat16] [--mesh N]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from weaksup import host_memory
from weaksup.models import get_model, onednn
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
    for spec in names:
        name, _, impl = spec.partition(":")
        model = get_model(name, num_classes, conv_impl=impl or "xla")
        t = _step_seconds(model, images, targets, iters=iters if impl != "native" else 1)
        print(f"    {spec:<22} {t * 1e3:>9.1f} ms/step {batch / t:>9.0f} images/s")


def _step_seconds(model, images: jax.Array, targets: jax.Array, iters: int,
                  place=lambda state: state) -> float:
    """Seconds per SGD step of `model` on a fixed batch; `place` puts the fresh state on devices."""
    tx = optax.sgd(0.1, momentum=0.9, nesterov=True)
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x))(images[:2])
    state = place([variables["params"], variables["batch_stats"], tx.init(variables["params"])])
    step = train_step_fn(model, tx)

    def run():
        state[0], state[1], state[2], loss = step(*state, images, targets)
        return loss

    return _time(run, iters=iters)


def bench_mesh(batch: int, size: int, iters: int, num_classes: int = 1000) -> None:
    """resnext_tiny training images/s, bfloat16, with the batch sharded over every device."""
    mesh = Mesh(np.array(jax.devices()), ("data",))
    data, replicated = NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())
    print(f"\n[5] data-parallel mesh of {mesh.size} devices: resnext_tiny, bfloat16, {size} px, batch {batch}")
    images = jax.device_put(jax.random.normal(jax.random.key(2), (batch, size, size, 3)), data)
    targets = jax.device_put(jax.nn.one_hot(jnp.arange(batch) % num_classes, num_classes), data)
    for impl in ("xla", "onednn") if onednn.available(jnp.bfloat16) else ("xla",):
        model = get_model("resnext_tiny", num_classes, conv_impl=impl, dtype=jnp.bfloat16)
        t = _step_seconds(model, images, targets, iters, place=lambda state: jax.device_put(state, replicated))
        print(f"    {impl:<8} {t * 1e3:>9.1f} ms/step {batch / t:>9.0f} images/s")


WEIGHT_DECAY = 5e-5


def _torch_resnet(torch, name: str, num_classes: int):
    """`name` (resnext_tiny or resnet_tiny) rebuilt in torch.nn, layer for layer as weaksup's."""
    nn = torch.nn
    cfg = {"resnext_tiny": dict(groups=8, width_per_group=32), "resnet_tiny": dict(groups=1, width_per_group=64)}[name]
    planes, expansion, stem_width = (16, 32, 64), 4, 32

    class Bottleneck(nn.Module):
        def __init__(self, cin, p, stride, groups, width):
            super().__init__()
            out = p * expansion
            self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3, self.bn3 = nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out)
            self.down = None
            if stride != 1 or cin != out:
                self.down = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = torch.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    layers = [nn.Conv2d(3, stem_width, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_width), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    cin = stem_width
    for i, p in enumerate(planes):
        width = int(p * cfg["width_per_group"] / 64) * cfg["groups"]
        for j in range(2):
            layers.append(Bottleneck(cin, p, 2 if i > 0 and j == 0 else 1, cfg["groups"], width))
            cin = p * expansion
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def _torch_step_fn(torch, name: str, batch: int, size: int, num_classes: int, dtype: str):
    """One PyTorch training step of `name` on fixed random data (channels-last, autocast for bf16)."""
    torch.manual_seed(0)
    model = _torch_resnet(torch, name, num_classes).to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=WEIGHT_DECAY)
    images = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
    targets = torch.nn.functional.one_hot(torch.arange(batch) % num_classes, num_classes).float()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            logits = model(images)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step, params


def _jax_step_fn(name: str, impl: str, batch: int, size: int, num_classes: int, dtype: str):
    """One jitted, donated weaksup training step of `name` with conv_impl `impl` on fixed data."""
    model = get_model(name, num_classes, conv_impl=impl, dtype=dtype)
    images = jax.random.normal(jax.random.key(2), (batch, size, size, 3))
    targets = jax.nn.one_hot(jnp.arange(batch) % num_classes, num_classes)
    tx = optax.chain(optax.add_decayed_weights(WEIGHT_DECAY), optax.sgd(0.1, momentum=0.9, nesterov=True))
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x))(images[:2])
    params = sum(x.size for x in jax.tree.leaves(variables["params"]))
    state = [variables["params"], variables["batch_stats"], tx.init(variables["params"])]
    step = train_step_fn(model, tx)

    def run():
        state[0], state[1], state[2], loss = step(*state, images, targets)
        return float(loss)

    return run, params


def bench_vs_torch(names: list[str], dtypes: list[str], batch: int, size: int, rounds: int, steps: int,
                   num_classes: int = 884) -> None:
    """weaksup (each conv_impl) beside PyTorch CPU, alternating, median images/s and ratios."""
    print(f"\n[4] weaksup vs PyTorch CPU, training images/s, {size} px, batch {batch}, {num_classes} classes, "
          f"{rounds} alternating rounds of {steps} steps")
    try:
        import torch
    except ImportError:
        print("    PyTorch is not installed (pip install -e '.[dev]' adds it): skipped")
        return
    print(f"    PyTorch {torch.__version__} ({torch.get_num_threads()} threads, "
          f"{'CUDA build' if torch.version.cuda else 'CPU build'}); JAX {jax.__version__}")
    impls = ["xla"]
    reason = onednn.unavailable_reason()
    if reason is None:
        impls.append("onednn")
    else:
        print(f"    conv_impl onednn unavailable ({reason}): XLA only")
    for name in names:
        for dtype in dtypes:
            runners, counts = {}, {}
            for impl in impls:
                if impl == "onednn" and not onednn.available(dtype):
                    continue
                runners[f"weaksup {impl}"], counts[f"weaksup {impl}"] = _jax_step_fn(
                    name, impl, batch, size, num_classes, dtype)
            runners["pytorch"], counts["pytorch"] = _torch_step_fn(torch, name, batch, size, num_classes, dtype)
            if len(set(counts.values())) != 1:
                raise SystemExit(f"bench: parameter counts differ for {name}: {counts}")
            for run in runners.values():  # compile / warm up
                run()
                run()
            rates = {k: [] for k in runners}
            for _ in range(rounds):
                for k, run in runners.items():
                    start = time.perf_counter()
                    for _ in range(steps):
                        run()
                    rates[k].append(batch * steps / (time.perf_counter() - start))
            torch_rate = statistics.median(rates["pytorch"])
            print(f"    {name} {dtype} ({counts['pytorch']:,} parameters)")
            for k, r in rates.items():
                med = statistics.median(r)
                # The ratio within each round pairs runs seconds apart: load that comes and
                # goes cancels in it, so its median is the figure to quote.
                paired = [a / b for a, b in zip(r, rates["pytorch"])]
                ratio = "" if k == "pytorch" else (
                    f"  {statistics.median(paired):4.2f}x PyTorch (rounds {min(paired):.2f}-{max(paired):.2f})")
                print(f"      {k:<16} {med:>7.0f} images/s (rounds {min(r):.0f}-{max(r):.0f}){ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the native-path training step")
    parser.add_argument("--torch-only", action="store_true", help="only the comparison with PyTorch")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the PyTorch comparison")
    parser.add_argument("--steps", type=int, default=3, help="steps per round of the PyTorch comparison")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="dtypes of the PyTorch comparison")
    parser.add_argument("--mesh", type=int, default=0, help="only section 5, on this many forced host devices")
    args = parser.parse_args()
    if args.mesh:
        # Read when JAX starts its CPU backend, which nothing above has done yet.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={args.mesh}")
    # As the training commands do (before JAX starts its threads); PyTorch in this process
    # runs under the same allocator settings. WEAKSUP_SYSTEM_MALLOC=1 compares without.
    retained = host_memory.retain_freed_memory()
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s); "
          f"host memory: {'freed memory retained (weaksup.host_memory)' if retained else 'glibc defaults'}")
    if args.mesh:
        bench_mesh(args.batch, args.image_size, args.iters)
        return
    if not args.torch_only:
        # resnext_tiny's stages: the stem pools to 1/2 of the picture side, stages 2-3 halve it again.
        for k, channels in enumerate((64, 128, 256)):
            bench_grouped_conv(args.batch, args.image_size // 2 ** (k + 1), channels, 8, args.iters)
        bench_block(args.batch, args.image_size // 2, args.iters)
        models = ["resnet_tiny", "resnext_tiny", "resnet_small", "resnext_small"]
        if onednn.available():
            models += ["resnet_tiny:onednn", "resnext_tiny:onednn"]
        if not args.quick:
            models.append("resnext_tiny:native")
        bench_training(models, args.batch, args.image_size, args.iters)
    bench_vs_torch(["resnext_tiny", "resnet_tiny"], args.dtypes.split(","), args.batch, args.image_size,
                   args.rounds, args.steps)


if __name__ == "__main__":
    main()
