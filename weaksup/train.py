"""Pretraining on hashtags: the config-driven, jit-sharded loop with Orbax checkpoints.

    python -m weaksup train --config configs/tiny.py[:arg] --workdir DIR [--config.key=value ...]

`train_and_evaluate(config, workdir)` reads top to bottom in sections: set-up and checks /
mesh / data / model / optimiser / state / checkpoint / compiled steps / loop. The pieces it
jits are pure functions of this module (`create_train_state`, `make_train_step`,
`make_predict_fn`), reused by fine-tuning and tests.

Determinism (what exact resume rests on): the state's rng is folded with the step, the
data order is a function of the checkpointed iterator state, nothing on the host draws
random numbers, and XLA:CPU runs the same program on the same devices bit for bit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from weaksup import config as config_lib
from weaksup import distributed, losses, metrics, sharding
from weaksup.config import ConfigError

# Exit statuses of `python -m weaksup train`: a configuration, input or checkpoint problem
# found before training (fix the command); a run that failed while training (non-finite
# loss); a run stopped by SIGTERM/SIGINT after saving ("temporary failure, resume").
EXIT_CONFIG = 2
EXIT_FAILED = 1
EXIT_PREEMPTED = 75

State = dict[str, Any]
Batch = dict[str, Any]


class TrainingError(RuntimeError):
    """The run cannot continue (non-finite loss, mismatched checkpoint...)."""


# ----------------------------------------------------------------------------------------
# Pure pieces: state, train step, predict. Shared with fine-tuning.
# ----------------------------------------------------------------------------------------


def default_preprocess(images: jax.Array) -> jax.Array:
    """uint8 images -> the model's float input, on device (the input pipeline's normaliser)."""
    from weaksup.input_pipeline import normalize_images

    return normalize_images(images)


def create_train_state(
    model: Any, tx: optax.GradientTransformation, rng: jax.Array, image_size: int, mesh: Any
) -> tuple[State, State]:
    """Initialises {params, batch_stats, opt_state, step, rng} directly in its shardings.

    `rng` is a raw uint32 key (jax.random.PRNGKey), which checkpoints as a plain array.
    Returns (state, state_shardings).
    """

    init = _init_fn(model, tx, image_size)
    abstract = jax.eval_shape(init, rng)
    shardings = sharding.tree_shardings(abstract, mesh)
    state = jax.jit(init, out_shardings=shardings)(rng)
    return state, shardings


def abstract_state(state_shardings: State, shapes: State) -> State:
    """ShapeDtypeStructs carrying target shardings (restore targets)."""
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, state_shardings)


def _split_micro(x: jax.Array, n: int) -> jax.Array:
    """(B, ...) -> (n, B/n, ...) taking rows i*n + j into micro-batch j.

    Interleaving keeps every micro-batch spread over all devices (a contiguous split would
    put each micro-batch on a few devices only).
    """
    b = x.shape[0]
    return jnp.swapaxes(x.reshape((b // n, n) + x.shape[1:]), 0, 1)


def make_train_step(
    model: Any,
    tx: optax.GradientTransformation,
    loss_fn: losses.LossFn,
    mesh: Any,
    state_shardings: State,
    *,
    label_key: str = "labels",
    grad_accum_steps: int = 1,
    preprocess: Callable[[jax.Array], jax.Array] | None = None,
    learning_rate_fn: optax.Schedule | None = None,
    precision_ks: tuple[int, ...] = (1, 5),
    donate: bool = True,
) -> Callable[[State, Batch], tuple[State, dict[str, jax.Array]]]:
    """The jitted update `(state, batch) -> (state, metrics)`, with explicit shardings.

    `batch` holds "image" uint8 (B, H, W, 3), `label_key` labels (padded indices (B, L) for
    hashtags, or int classes (B,) for classification fine-tuning) and optionally "mask"
    (B,) bool marking real examples. `loss_fn(logits, labels) -> (B,)` (see losses.py).
    The loss is averaged over real, labelled examples. With `grad_accum_steps` = n the batch
    is processed as n micro-batches in a lax.scan and their gradients summed, the same
    update as one large batch up to batch-norm statistics. Metrics are replicated scalars:
    loss, prec@k, grad_norm, param_norm, lr, labelled (fraction of examples with labels).
    The state is donated: do not reuse the input state after a call.
    """
    preprocess = preprocess or default_preprocess
    n_micro = int(grad_accum_steps)

    def weights_of(batch: Batch) -> jax.Array:
        w = losses.has_label(batch[label_key])
        if "mask" in batch:
            w = w & batch["mask"].astype(bool)
        return w.astype(jnp.float32)

    def micro_grads(params, batch_stats, micro: Batch, rng, total_weight):
        def loss_of(p):
            logits, updates = model.apply(
                {"params": p, "batch_stats": batch_stats},
                preprocess(micro["image"]),
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": rng},
            )
            w = weights_of(micro)
            per_example = loss_fn(logits, micro[label_key])
            # Normalised by the whole batch's weight so micro-batch gradients simply add up.
            loss = jnp.sum(per_example * w) / total_weight
            return loss, (updates.get("batch_stats", {}), logits, w)

        (loss, (new_stats, logits, w)), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
        precs = {k: jnp.sum(metrics.precision_at_k(logits, micro[label_key], k) * w) for k in precision_ks}
        return loss, grads, new_stats, precs

    def train_step(state: State, batch: Batch) -> tuple[State, dict[str, jax.Array]]:
        step = state["step"]
        rng = jax.random.fold_in(state["rng"], step)
        params, batch_stats = state["params"], state["batch_stats"]
        total_weight = jnp.maximum(jnp.sum(weights_of(batch)), 1.0)
        if n_micro == 1:
            loss, grads, batch_stats, precs = micro_grads(params, batch_stats, batch, rng, total_weight)
        else:
            micro = jax.tree.map(lambda x: _split_micro(x, n_micro), batch)

            def body(carry, xs):
                grads_acc, stats, loss_acc, precs_acc = carry
                mb, i = xs
                loss, grads, stats, precs = micro_grads(params, stats, mb, jax.random.fold_in(rng, i), total_weight)
                grads_acc = jax.tree.map(jnp.add, grads_acc, grads)
                precs_acc = {k: precs_acc[k] + precs[k] for k in precs_acc}
                return (grads_acc, stats, loss_acc + loss, precs_acc), None

            zeros = jax.tree.map(jnp.zeros_like, params)
            init = (zeros, batch_stats, jnp.zeros((), jnp.float32), {k: jnp.zeros((), jnp.float32) for k in precision_ks})
            (grads, batch_stats, loss, precs), _ = jax.lax.scan(body, init, (micro, jnp.arange(n_micro)))
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        params = optax.apply_updates(params, updates)
        new_state = {
            "params": params,
            "batch_stats": batch_stats,
            "opt_state": opt_state,
            "step": step + 1,
            "rng": state["rng"],
        }
        out = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(params),
            "labelled": total_weight / batch[label_key].shape[0],
        }
        out.update({f"prec@{k}": v / total_weight for k, v in precs.items()})
        if learning_rate_fn is not None:
            out["lr"] = learning_rate_fn(step)
        return new_state, out

    return jax.jit(
        train_step,
        in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
        out_shardings=(state_shardings, sharding.replicated(mesh)),
        donate_argnums=(0,) if donate else (),
    )


def make_predict_fn(
    model: Any, mesh: Any, variable_shardings: Any, preprocess: Callable[[jax.Array], jax.Array] | None = None
) -> Callable[[Any, jax.Array], jax.Array]:
    """Jitted `(variables, images uint8) -> logits` in inference mode, batch-sharded."""
    preprocess = preprocess or default_preprocess

    def predict(variables, images):
        return model.apply(variables, preprocess(images), train=False).astype(jnp.float32)

    return jax.jit(
        predict,
        in_shardings=(variable_shardings, sharding.batch_sharding(mesh)),
        out_shardings=sharding.batch_sharding(mesh),
    )


def _init_fn(model: Any, tx: optax.GradientTransformation, image_size: int) -> Callable[[jax.Array], State]:
    def init(rng: jax.Array) -> State:
        init_rng, state_rng = jax.random.split(rng)
        dummy = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
        variables = model.init(init_rng, dummy, train=False)
        return {
            "params": variables["params"],
            "batch_stats": variables.get("batch_stats", {}),
            "opt_state": tx.init(variables["params"]),
            "step": jnp.zeros((), jnp.int32),
            "rng": state_rng,
        }

    return init


def abstract_train_state(model: Any, tx: optax.GradientTransformation, image_size: int, mesh: Any) -> State:
    """The train state as ShapeDtypeStructs with their target shardings (no computation)."""
    shapes = jax.eval_shape(_init_fn(model, tx, image_size), jax.random.PRNGKey(0))
    return abstract_state(sharding.tree_shardings(shapes, mesh), shapes)


# ----------------------------------------------------------------------------------------
# Held-out mAP: the last records of the corpus, decoded with the evaluation crop.
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class HoldoutSet:
    """Images and padded labels of the held-out records, this process's share."""

    images: np.ndarray  # uint8 (N_local, H, W, 3), N_local a multiple of the local batch
    labels: np.ndarray  # int32 (N_local, L), -1 padded; padding rows all -1
    mask: np.ndarray  # bool (N_local,)
    records: int  # held-out records over all processes
    record_ids: np.ndarray  # int64 (N_local,) corpus index of each row; -1 for padding


def load_holdout(corpus_dir: str, vocab: Any, num_records: int, image_size: int, max_labels: int,
                 local_batch: int) -> HoldoutSet:
    """The last `num_records` records of the corpus (labelled or not), split over processes.

    These are exactly the records the pretraining iterator's `holdout_records` keeps out of
    sampling. An unreadable record is left out of the metric, never fatal.
    """
    from weaksup import augment
    from weaksup.corpus.record import RecordError, decode_post
    from weaksup.corpus.shards import Corpus

    corpus = Corpus(corpus_dir)
    n = min(int(num_records), len(corpus))
    first = len(corpus) - n
    source = corpus.data_source()
    images, labels, record_ids = [], [], []
    for i in range(first, len(corpus)):
        try:
            post = decode_post(source[i])
            img = augment.eval_crop(post.image, image_size)
        except (RecordError, ValueError, OSError):
            continue  # a bad record is left out of the metric, never fatal
        lab = np.full(max_labels, -1, np.int32)
        ids = vocab.labels_of_post(post.hashtags)[:max_labels]
        lab[: len(ids)] = ids
        images.append(img)
        labels.append(lab)
        record_ids.append(i)
    if not images:
        empty = np.zeros((0,), np.int64)
        return HoldoutSet(np.zeros((0, image_size, image_size, 3), np.uint8), np.zeros((0, max_labels), np.int32),
                          np.zeros((0,), bool), 0, empty)
    pc, pi = jax.process_count(), jax.process_index()
    per_process = -(-len(images) // (pc * local_batch)) * local_batch
    pad = per_process * pc - len(images)
    images += [np.zeros((image_size, image_size, 3), np.uint8)] * pad
    labels += [np.full(max_labels, -1, np.int32)] * pad
    record_ids += [-1] * pad
    mask = np.arange(per_process * pc) < (per_process * pc - pad)
    sl = slice(pi * per_process, (pi + 1) * per_process)
    return HoldoutSet(np.stack(images)[sl], np.stack(labels)[sl], mask[sl], len(images) - pad,
                      np.asarray(record_ids, np.int64)[sl])


def holdout_map(predict: Callable, variables: Any, holdout: HoldoutSet, mesh: Any, local_batch: int,
                num_classes: int) -> float:
    """mAP of `predict` over the held-out set (classes with at least one positive)."""
    from jax.experimental import multihost_utils

    scores, labels, masks = [], [], []
    for s in range(0, len(holdout.images), local_batch):
        sl = slice(s, s + local_batch)
        g = sharding.make_global_batch({"image": holdout.images[sl]}, mesh)
        logits = predict(variables, g["image"])
        scores.append(multihost_utils.process_allgather(logits, tiled=True))
        labels.append(multihost_utils.process_allgather(holdout.labels[sl], tiled=True))
        masks.append(multihost_utils.process_allgather(holdout.mask[sl], tiled=True))
    if not scores:
        return float("nan")
    mask = np.concatenate(masks)
    s = np.concatenate(scores)[mask]
    pos = metrics.positives_from_labels(np.concatenate(labels)[mask], num_classes)
    return metrics.mean_average_precision(s, pos)


# ----------------------------------------------------------------------------------------
# Pre-emption: SIGTERM/SIGINT finish the step, save, wait, exit.
# ----------------------------------------------------------------------------------------


class StopRequest:
    """Records SIGTERM/SIGINT; the loop checks it between steps."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C gives up waiting
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)


def _agree(flags: list[bool]) -> list[bool]:
    """OR of each flag over all processes, so every process takes the same branch."""
    if jax.process_count() == 1:
        return flags
    from jax.experimental import multihost_utils

    got = multihost_utils.process_allgather(np.asarray(flags, np.int32))
    return [bool(x) for x in np.asarray(got).reshape(-1, len(flags)).max(axis=0)]


# ----------------------------------------------------------------------------------------
# The run.
# ----------------------------------------------------------------------------------------


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _check_inputs(config: Any) -> Any:
    """Config, corpus, vocabulary and model checks that need no compilation; returns the vocab."""
    from weaksup import models
    from weaksup.hashtags.vocabulary import Vocabulary, VocabularyError

    config_lib.check_config(config)
    corpus_dir = Path(config.corpus_dir)
    if not (corpus_dir / "manifest.json").is_file():
        raise ConfigError(f"corpus not found: {corpus_dir} has no manifest.json (build it with `python -m weaksup corpus build`)")
    vocab_path = Path(config.vocab_path)
    if not vocab_path.is_file():
        raise ConfigError(f"vocabulary not found: {vocab_path} (build it with `python -m weaksup vocab build`)")
    try:
        vocab = Vocabulary.load(vocab_path)
    except VocabularyError as e:
        raise ConfigError(str(e)) from None
    if config.model.name not in models.list_models():
        raise ConfigError(f"unknown model {config.model.name!r}; known: {', '.join(models.list_models())}")
    holdout = int(config.get("holdout_records", 0) or 0)
    if holdout < 0:
        raise ConfigError(f"holdout_records must be >= 0, got {holdout}")
    return vocab


def _make_train_iterator(config: Any) -> Any:
    """The pretraining iterator; its input errors become ConfigErrors naming the file or key."""
    from weaksup import input_pipeline
    from weaksup.corpus.shards import CorpusError
    from weaksup.hashtags.vocabulary import VocabularyError

    try:
        return input_pipeline.make_pretrain_iterator_from_config(config)
    except (CorpusError, VocabularyError) as e:
        raise ConfigError(str(e)) from None
    except ValueError as e:  # holdout_records out of range, bad label_noise, batch vs processes
        raise ConfigError(f"input settings (corpus {config.corpus_dir}): {e}") from None


def _check_resume_vocab(ckpt: Any, step: int, vocab: Any) -> None:
    from weaksup.checkpoint import VOCAB

    saved = ckpt.restore_json(step, VOCAB)
    if saved.get("num_classes") != vocab.num_classes or saved.get("hash") != vocab.hash:
        raise ConfigError(
            f"vocabulary {vocab.num_classes} classes (hash {vocab.hash[:12]}) does not match checkpoint "
            f"{ckpt.directory / str(step)}: {saved.get('num_classes')} classes (hash {str(saved.get('hash'))[:12]})"
        )


def train_and_evaluate(config: Any, workdir: str | os.PathLike) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming from its latest checkpoint); returns final metrics.

    The result holds the last logged scalars plus "step" and "stopped" (None, or the
    name of the signal that stopped the run early after saving).
    """
    from weaksup import checkpoint as ckpt_lib
    from weaksup import models
    from weaksup import optimizer as optim_lib

    workdir = Path(workdir).resolve()

    # --- Set-up and checks: every configuration error surfaces before compilation. ----
    vocab = _check_inputs(config)
    gbs = int(config.input.global_batch_size)
    try:
        mesh = sharding.make_mesh(config.mesh)
        local_batch = sharding.check_batch_layout(gbs, mesh)
    except sharding.ShardingError as e:
        raise ConfigError(f"config.mesh / input.global_batch_size: {e}") from None
    accum = int(config.optim.get("grad_accum_steps", 1) or 1)
    n_dev = mesh.devices.size
    if gbs % (n_dev * accum):
        raise ConfigError(f"global batch {gbs} is not divisible by {n_dev} devices x {accum} accumulation steps")
    try:
        model = models.get_model(config.model.name, vocab.num_classes, **dict(config.model.get("overrides", {}) or {}))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.model ({config.model.name}): {e}") from None
    evaluators = _make_evaluators(config, model, mesh, vocab, workdir)
    ckpt_cfg = config.get("checkpoint", {})
    checkpointer = ckpt_lib.Checkpointer(
        ckpt_lib.checkpoint_dir(workdir),
        keep=ckpt_cfg.get("keep", 3),
        best_metric=ckpt_cfg.get("best_metric") or None,
        best_mode=ckpt_cfg.get("best_mode", "min"),
        async_save=ckpt_cfg.get("async_save", True),
    )
    resume_step = checkpointer.latest_step()
    if resume_step is not None:
        _check_resume_vocab(checkpointer, resume_step, vocab)
    config_json = config_lib.config_to_json(config)
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(workdir / "config.json", config_json)
    writer = metrics.MetricWriter(workdir)

    # --- Data: this process's share of every global batch. ---------------------------
    train_iter = _make_train_iterator(config)
    data_stats = train_iter.stats()
    num_examples = int(data_stats["epoch_size"])
    total = config_lib.total_steps(config, num_examples)
    warmup = config_lib.warmup_steps(config, num_examples)
    holdout = None
    if config.get("holdout_records", 0):
        holdout = load_holdout(config.corpus_dir, vocab, config.holdout_records, config.input.image_size,
                               config.input.get("max_labels", 8), local_batch)

    # --- Optimiser and loss. ----------------------------------------------------------
    try:
        tx, lr_fn = optim_lib.optimizer_from_config(config.optim, gbs, total, warmup)
        loss_fn = losses.make_loss_fn(config.loss, config.optim.get("label_smoothing", 0.0))
    except ValueError as e:
        raise ConfigError(f"config.optim: {e}") from None

    # --- State: initialised in place, or restored onto this mesh (any device count). ---
    image_size = int(config.input.image_size)
    target = abstract_train_state(model, tx, image_size, mesh)
    state_shardings = jax.tree.map(lambda s: s.sharding, target)
    if resume_step is None:
        init = jax.jit(_init_fn(model, tx, image_size), out_shardings=state_shardings)
        state = init(jax.random.PRNGKey(int(config.seed)))
    else:
        state = checkpointer.restore_state(resume_step, target, data_iterator=train_iter)
        writer.write_text(f"resumed from {checkpointer.directory / str(resume_step)}")
    var_shardings = {"params": state_shardings["params"], "batch_stats": state_shardings["batch_stats"]}

    # --- Compiled functions. ---------------------------------------------------------
    train_step = make_train_step(model, tx, loss_fn, mesh, state_shardings, grad_accum_steps=accum,
                                 learning_rate_fn=lr_fn)
    predict = make_predict_fn(model, mesh, var_shardings)

    # --- Loop. ------------------------------------------------------------------------
    step = int(jax.device_get(state["step"]))
    log_every = int(config.get("log_every_steps", 10))
    every_steps = ckpt_cfg.get("every_steps", None)
    every_minutes = ckpt_cfg.get("every_minutes", None)
    nan_policy = config.get("nan_policy", "stop")
    max_rollbacks = int(config.get("max_rollbacks", 3))
    progress = metrics.Progress(total, gbs, n_dev, step)
    first_step = step
    last_save_step, last_save_time = step, time.time()
    skip_steps: set[int] = set()
    rollbacks = 0
    pending: tuple[int, Any] | None = None  # the previous step's metrics, checked one step late
    last: dict[str, float] = {}
    stopped = None
    writer.write_text(f"training {config.model.name} for {total} steps (from step {step}), "
                      f"global batch {gbs} on {n_dev} devices, {jax.process_count()} process(es)")

    def save(step_now: int, extra_metrics: Mapping[str, float] | None = None) -> None:
        checkpointer.save(step_now, state, data_iterator=train_iter, config=config_json, vocab=vocab.to_json(),
                          metrics=extra_metrics)
        # How long the training thread waited for this (asynchronous) save.
        writer.write_scalars(step_now, {"checkpoint/blocked_sec": checkpointer.save_blocked_s[-1]})

    def check_finite(step_m: int, m: Any) -> bool:
        # The loss judges the parameters the step started from; the parameter norm judges
        # the ones it produced, so a checkpoint is never taken of an overflowed state.
        loss, norm = jax.device_get((m["loss"], m["param_norm"]))
        return math.isfinite(float(loss)) and math.isfinite(float(norm))

    with StopRequest() as stop:
        while step < total:
            try:
                batch = next(train_iter)
            except StopIteration:
                writer.write_text(f"data exhausted at step {step}")
                break
            if step + 1 in skip_steps:
                skip_steps.discard(step + 1)
                writer.write_text(f"skipping the batch of step {step + 1} (non-finite loss before rollback)")
                continue
            state, m = train_step(state, sharding.make_global_batch(batch, mesh))
            step += 1
            if pending is not None and not check_finite(*pending):
                bad = pending[0]
                if nan_policy != "rollback" or rollbacks >= max_rollbacks:
                    checkpointer.wait()
                    raise TrainingError(f"non-finite loss or parameters at step {bad}; stopping "
                                        f"(nan_policy={nan_policy}, rollbacks so far {rollbacks})")
                checkpointer.wait()
                back = checkpointer.latest_step()
                if back is None:
                    raise TrainingError(f"non-finite loss or parameters at step {bad} and no checkpoint to roll back to")
                rollbacks += 1
                writer.write_text(f"non-finite loss or parameters at step {bad}: rolling back to step {back} "
                                  f"({rollbacks}/{max_rollbacks})")
                state = checkpointer.restore_state(back, target, data_iterator=train_iter)
                step, pending = back, None
                skip_steps.add(bad)
                continue
            pending = (step, m)
            if step == first_step + 1:
                jax.block_until_ready(m)
                progress.start(step)  # throughput excludes compilation
            if step % log_every == 0 or step == total:
                scalars = dict(jax.device_get(m))
                if not (math.isfinite(float(scalars["loss"])) and math.isfinite(float(scalars["param_norm"]))):
                    continue  # handled by the check above on the next iteration
                scalars.update(progress.report(step))
                scalars.update({f"data/{k}": v for k, v in train_iter.stats().items()
                                if k in ("skipped_unreadable", "examples")})
                writer.write_scalars(step, scalars)
                last = {k: float(v) for k, v in scalars.items()}
                eta = metrics.format_eta(scalars.get("perf/eta_sec", float("nan")))
                writer.write_text(f"step {step}/{total} loss {scalars['loss']:.4f} prec@1 {scalars['prec@1']:.3f} "
                                  f"lr {scalars.get('lr', 0):.4g} "
                                  f"{scalars.get('perf/images_per_sec', float('nan')):.1f} img/s ETA {eta}")
            eval_scalars = {}
            if holdout is not None and (step % int(config.get("holdout_every_steps", log_every)) == 0 or step == total):
                variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
                eval_scalars["holdout/mAP"] = holdout_map(predict, variables, holdout, mesh, local_batch, vocab.num_classes)
            for name, (every, ev) in evaluators.items():
                if step % every == 0 or step == total:
                    variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
                    eval_scalars.update({f"{name}/{k}": float(v) for k, v in ev.run(variables, step=step).items()})
            if eval_scalars:
                writer.write_scalars(step, eval_scalars)
                last.update({k: float(v) for k, v in eval_scalars.items()})
            due = ckpt_lib.save_interval_due(step, last_save_step, last_save_time, time.time(),
                                             every_steps, every_minutes)
            due, stop_now = _agree([due, stop.signal is not None])
            if due or stop_now or step == total:
                if not check_finite(*pending):
                    continue  # never checkpoint a non-finite state; the check above acts next step
                save(step, {**last, "loss": float(jax.device_get(m["loss"]))})
                last_save_step, last_save_time = step, time.time()
            if stop_now:
                name = signal.Signals(stop.signal).name if stop.signal else "a stop request on another process"
                checkpointer.wait()
                writer.write_text(f"stopped by {name} after step {step}: checkpoint {checkpointer.directory / str(step)} "
                                  "saved; run the same command again to resume")
                stopped = name
                break
    if pending is not None and not check_finite(*pending):
        checkpointer.close()
        raise TrainingError(f"non-finite loss or parameters at step {pending[0]}; stopping "
                            f"(nan_policy={nan_policy}, rollbacks so far {rollbacks})")
    if step == total and checkpointer.latest_step() != step:
        save(step, last)
    checkpointer.close()
    writer.close()
    return {**last, "step": step, "stopped": stopped}


def _make_evaluators(config: Any, model: Any, mesh: Any, vocab: Any, workdir: Path) -> dict[str, tuple[int, Any]]:
    """Periodic evaluators from `config.evals` = {name: {type, every_steps, ...options}}.

    Built as the evaluators' own command line builds them:
    `get_evaluator(type)(model=, mesh=, vocab=, config=, cache_dir=, checkpoint_id=, **options)`
    and run as `run(variables, step=step) -> dict[str, float]` every `every_steps` steps
    and at the end. `cache_dir` defaults to none (each step has new weights, so frozen
    features are not worth keeping); `checkpoint_id` is the workdir. Options are checked
    and the target's splits opened here, so a bad evaluator fails before any compilation.
    """
    evals = config.get("evals", None) or {}
    if not evals:
        return {}
    from weaksup.evaluators import get_evaluator

    out = {}
    for name, cfg in evals.items():
        cfg = dict(cfg)
        kind = cfg.pop("type", None)
        if not kind:
            raise ConfigError(f"evals.{name}: no `type` (e.g. linear_probe, fewshot_ridge)")
        every = int(cfg.pop("every_steps", 0) or 0)
        if every <= 0:
            continue
        cfg.setdefault("cache_dir", None)
        cfg.setdefault("checkpoint_id", str(workdir))
        try:
            ev = get_evaluator(kind)(model=model, mesh=mesh, vocab=vocab, config=config, **cfg)
            target = getattr(ev, "target", None)
            if target is not None and hasattr(target, "check"):
                target.check()
        except (ValueError, TypeError) as e:  # unknown type or options, missing dataset/split/key
            raise ConfigError(f"evals.{name} ({kind}): {e}") from None
        out[name] = (every, ev)
    return out


# ----------------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """`python -m weaksup train --config FILE.py[:arg] --workdir DIR [--config.key=value ...]`.

    Exit status: 0 done; 2 a configuration/input/checkpoint problem (one line on stderr
    naming the file or key); 1 training failed (non-finite loss); 75 stopped by a signal
    after saving (run the same command again to resume).
    """
    parser = argparse.ArgumentParser(prog="python -m weaksup train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="configs/NAME.py[:key=value,...]")
    parser.add_argument("--workdir", required=True, help="run directory: checkpoints, metrics, config.json")
    distributed.add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    bad = [a for a in rest if not a.startswith("--config.")]
    if bad:
        parser.error(f"unrecognised arguments: {' '.join(bad)}")
    from weaksup.checkpoint import CheckpointError
    from weaksup.corpus.shards import CorpusError
    from weaksup.hashtags.vocabulary import VocabularyError

    try:
        config = config_lib.load_config(args.config, rest)
        distributed.initialize(distributed.from_namespace(args))
        result = train_and_evaluate(config, args.workdir)
    except (ConfigError, CheckpointError, VocabularyError, CorpusError, sharding.ShardingError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except TrainingError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    if result.get("stopped"):
        return EXIT_PREEMPTED
    return 0
