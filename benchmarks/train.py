"""Pretraining loop speed: the full loop against the bare jitted step, in one run.

    python benchmarks/train.py [--corpus DIR --vocab PATH] [--steps 120] [--batch 64]
        [--model resnet_tiny] [--size 32] [--every 30] [--dtype bfloat16] [--conv-impl auto]

The demo's trainer: `--model resnext_tiny --batch 128 --dtype bfloat16 --conv-impl auto`.

The full loop is `weaksup.train.train_and_evaluate` on configs/tiny.py: grain data
(decode + crop in threads), per-step metrics, JSON lines + TensorBoard, the non-finite
check, and asynchronous Orbax checkpoints every `--every` steps. The bare step is the same
model and the same jitted `make_train_step` fed one batch already on the device. Rounds
alternate bare / full / bare so that load from other processes hits both; the rate of the
full loop is taken from its own log (wall time between logged steps, compilation excluded)
and compared with the mean of the bare rounds. Also printed: how long the training thread
was blocked by each checkpoint save. Without --corpus, a small EmojiGram corpus (64 px
pictures, as the demo stores them) and
vocabulary are built in a temporary directory first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build_inputs(root: Path, posts: int) -> tuple[Path, Path]:
    """A small EmojiGram corpus (local runner) and a top-100 vocabulary."""
    from weaksup.corpus.pipeline import BuildConfig, build
    from weaksup.labels import build_from_corpus

    corpus, vocab = root / "corpus", root / "vocab.json"
    options = {"num_posts": posts, "seed": 0, "image_size": 64}  # stored as the demo stores them
    build(BuildConfig(source="emojigram", options=options, num_shards=4), str(corpus), runner="local", progress=False)
    build_from_corpus(corpus, vocab, mode="topk", top_k=100)
    return corpus, vocab


def bare_rate(config, steps: int) -> float:
    """images/s of the jitted train step on one device-resident batch (after compiling)."""
    import jax

    from weaksup import config as config_lib
    from weaksup import input_pipeline, losses, sharding
    from weaksup import optimizer as optim_lib
    from weaksup.hashtags.vocabulary import Vocabulary
    from weaksup import train_lib
    from weaksup.train_lib import create_train_state, make_train_step

    vocab = Vocabulary.load(config.vocab_path)
    mesh = sharding.make_mesh(config.mesh)
    gbs = config.input.global_batch_size
    model = train_lib.model_from_config(config.model, vocab.num_classes)
    total = config_lib.total_steps(config)
    tx, lr_fn = optim_lib.optimizer_from_config(config.optim, gbs, total, config_lib.warmup_steps(config))
    state, shardings = create_train_state(model, mesh, config.input.image_size, tx=tx, rng=jax.random.PRNGKey(0))
    step = make_train_step(model, tx, losses.make_loss_fn(config.loss), mesh, shardings, learning_rate_fn=lr_fn)
    it = input_pipeline.make_pretrain_iterator_from_config(config)
    batch = sharding.make_global_batch(next(it), mesh)
    state, m = step(state, batch)  # compile
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, batch)
    jax.block_until_ready((state, m))
    return steps * gbs / (time.perf_counter() - t0)


def full_rate(config, workdir: Path, skip: int) -> tuple[float, list[float]]:
    """images/s of the full loop (from its metrics log) and the per-save blocked seconds."""
    from weaksup.train import train_and_evaluate

    train_and_evaluate(config, workdir)
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["time"]) for r in rows if "loss" in r and r["step"] >= skip]
    (s0, t0), (s1, t1) = logged[0], logged[-1]
    blocked = [r["checkpoint/blocked_sec"] for r in rows if "checkpoint/blocked_sec" in r]
    return (s1 - s0) * config.input.global_batch_size / (t1 - t0), blocked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus")
    parser.add_argument("--vocab")
    parser.add_argument("--posts", type=int, default=2048, help="posts of the corpus built when --corpus is absent")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--model", default="resnet_tiny")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--every", type=int, default=30, help="checkpoint every N steps in the full loop")
    parser.add_argument("--rounds", type=int, default=2, help="full-loop rounds (each between two bare rounds)")
    parser.add_argument("--dtype", default="float32", help="compute dtype (model override)")
    parser.add_argument("--conv-impl", default="xla", help="convolution path (model override): xla, onednn, auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, e.g. --set input.num_threads=1 (repeatable)")
    args = parser.parse_args()
    from weaksup import host_memory

    host_memory.retain_freed_memory()  # as `weaksup train` does, before JAX starts its threads

    import jax

    from weaksup import config as config_lib

    with tempfile.TemporaryDirectory(prefix="weaksup-bench-train-") as tmp:
        tmp = Path(tmp)
        if args.corpus and args.vocab:
            corpus, vocab = Path(args.corpus), Path(args.vocab)
        else:
            corpus, vocab = build_inputs(tmp / "inputs", args.posts)
        spec = (f"{REPO / 'configs' / 'tiny.py'}:corpus={corpus},vocab={vocab},steps={args.steps},"
                f"batch={args.batch},model={args.model}")
        overrides = [f"--config.input.image_size={args.size}", f"--config.checkpoint.every_steps={args.every}",
                     "--config.log_every_steps=10", "--config.holdout_records=0", *(f"--config.{kv}" for kv in args.set)]
        config = config_lib.load_config(spec, overrides)
        with config.unlocked():
            config.model.overrides = {"dtype": args.dtype, "conv_impl": args.conv_impl}
        skip = 10  # the first logged step: compilation and start-up are behind it

        bare, full, blocked = [bare_rate(config, args.steps)], [], []
        for r in range(args.rounds):
            rate, saves = full_rate(config, tmp / f"run{r}", skip)
            full.append(rate)
            blocked += saves
            bare.append(bare_rate(config, args.steps))

    print(f"devices {jax.device_count()} ({jax.devices()[0].platform}), model {args.model} ({args.dtype}, "
          f"conv_impl {args.conv_impl}) at {args.size} px, "
          f"global batch {args.batch}, {args.steps} steps, checkpoint every {args.every} steps")
    print(f"bare jitted step (device-resident batch): {' '.join(f'{x:.1f}' for x in bare)} img/s")
    print(f"full loop (data, metrics, async checkpoints): {' '.join(f'{x:.1f}' for x in full)} img/s")
    ratio = statistics.mean(full) / statistics.mean(bare)
    print(f"full / bare: {ratio:.3f} (target >= 0.9)")
    print(f"blocked per checkpoint save: mean {1e3 * statistics.mean(blocked):.1f} ms, "
          f"max {1e3 * max(blocked):.1f} ms over {len(blocked)} saves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
