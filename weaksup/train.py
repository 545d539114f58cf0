"""Pretraining on hashtags: the config-driven, jit-sharded loop with Orbax checkpoints.

    python -m weaksup train --config configs/tiny.py[:arg] --workdir DIR [--config.key=value ...]
                            [--allow-config-change]

`train_and_evaluate(config, workdir)` reads top to bottom in sections: set-up and checks /
mesh / evaluators / data / optimiser / workdir (locked; the newest intact checkpoint and its
config checked against this one) / state / compiled step / loop. Nothing is written before
the workdir section, so a rejected command leaves no trace. Everything
it jits is the training library's (`weaksup.train_lib`): the state set-up, the update step
and the predictions, shared with fine-tuning, the evaluators and the notebooks. Held-out
metrics are evaluators (`weaksup.evaluators`), run every so many steps.

Determinism (what exact resume rests on): the state's rng is folded with the step, the
data order is a function of the checkpointed iterator state, nothing on the host draws
random numbers, and XLA:CPU runs the same program on the same devices bit for bit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from weaksup import atomic, evaluators, input_pipeline, losses, metrics, models, runner, sharding, train_lib
from weaksup import checkpoint as ckpt_lib
from weaksup import config as config_lib
from weaksup import optimizer as optim_lib
from weaksup.config import ConfigError
from weaksup.errors import EXIT_OK, EXIT_PREEMPTED, RunFailed, StorageFailed, UsageError
from weaksup.hashtags.vocabulary import Vocabulary

log = logging.getLogger(__name__)


class TrainingError(RunFailed):
    """The run cannot continue (non-finite loss or parameters)."""


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
    got = multihost_utils.process_allgather(np.asarray(flags, np.int32))
    return [bool(x) for x in np.asarray(got).reshape(-1, len(flags)).max(axis=0)]


def _finite(step_metrics: Mapping[str, jax.Array]) -> bool:
    """Whether a step's loss and parameter norm are finite.

    The loss judges the parameters the step started from; the parameter norm judges the
    ones it produced, so a checkpoint is never taken of an overflowed state.
    """
    loss, norm = jax.device_get((step_metrics["loss"], step_metrics["param_norm"]))
    return math.isfinite(float(loss)) and math.isfinite(float(norm))


# ----------------------------------------------------------------------------------------
# Set-up helpers: every configuration error surfaces before compilation.
# ----------------------------------------------------------------------------------------


def _check_inputs(config: ml_collections.ConfigDict) -> Vocabulary:
    """Config, corpus, vocabulary and model checks that need no compilation; returns the vocab."""
    config_lib.check_config(config)
    corpus_dir = Path(config.corpus_dir)
    if not (corpus_dir / "manifest.json").is_file():
        raise ConfigError(f"corpus not found: {corpus_dir} has no manifest.json (build it with `python -m weaksup corpus build`)")
    vocab_path = Path(config.vocab_path)
    if not vocab_path.is_file():
        raise ConfigError(f"vocabulary not found: {vocab_path} (build it with `python -m weaksup vocab build`)")
    vocab = Vocabulary.load(vocab_path)
    if config.model.name not in models.list_models():
        raise ConfigError(f"unknown model {config.model.name!r}; known: {', '.join(models.list_models())}")
    if config.holdout_records < 0:
        raise ConfigError(f"holdout_records must be >= 0, got {config.holdout_records}")
    return vocab


def _make_train_iterator(config: ml_collections.ConfigDict) -> input_pipeline.BatchIterator:
    """The pretraining iterator; its input errors name the corpus or the setting."""
    try:
        return input_pipeline.make_pretrain_iterator_from_config(config)
    except UsageError:
        raise
    except ValueError as e:  # holdout_records out of range, bad label_noise, batch vs processes
        raise ConfigError(f"input settings (corpus {config.corpus_dir}): {e}") from None


def _make_evaluators(config: ml_collections.ConfigDict, model: Any, mesh: Any, workdir: Path,
                     vocab: Vocabulary) -> dict[str, tuple[int, evaluators.Evaluator]]:
    """{name: (every_steps, evaluator)}: the held-out hashtag mAP and `config.evals`.

    `config.evals` = {name: {type, every_steps, ...options}}, built by `evaluators.build`
    as the evaluate command builds them, without a feature cache (each step has new
    weights). The held-out mAP (`holdout_records` > 0) is the evaluator "holdout" of type
    holdout_map, every `holdout_every_steps` (0: every `log_every_steps`). Options and
    the targets' splits are checked here, so a bad evaluator fails before any compilation.
    """
    specs: dict[str, dict[str, Any]] = {}
    if config.holdout_records:
        specs["holdout"] = dict(type="holdout_map", every_steps=config.holdout_every_steps or config.log_every_steps,
                                corpus_dir=config.corpus_dir, vocab_path=config.vocab_path,
                                records=config.holdout_records, image_size=config.input.image_size,
                                max_labels=config.input.max_labels,
                                batch_size=config.input.global_batch_size)
    specs.update({name: dict(spec) for name, spec in config.evals.items()})
    out = {}
    for name, spec in specs.items():
        kind = spec.pop("type", None)
        if not kind:
            raise ConfigError(f"evals.{name}: no `type` (e.g. linear_probe, fewshot_ridge)")
        every = int(spec.pop("every_steps", 0) or 0)
        if every <= 0:
            continue
        try:
            out[name] = (every, evaluators.build(kind, spec, model=model, mesh=mesh,
                                                 image_size=config.input.image_size, checkpoint_id=str(workdir),
                                                 labels=vocab))
        except UsageError as e:
            raise ConfigError(f"evals.{name} ({kind}): {e}") from None
    return out


def _check_resume_vocab(ckpt: ckpt_lib.Checkpointer, step: int, vocab: Vocabulary) -> None:
    saved = ckpt.restore_json(step, ckpt_lib.VOCAB)
    if saved.get("num_classes") != vocab.num_classes or saved.get("hash") != vocab.hash:
        raise ConfigError(
            f"vocabulary {vocab.num_classes} classes (hash {vocab.hash[:12]}) does not match checkpoint "
            f"{ckpt.directory / str(step)}: {saved.get('num_classes')} classes (hash {str(saved.get('hash'))[:12]})"
        )


# Settings that change how a run is watched, evaluated or stored, or (`deterministic`) whether
# GPU reductions keep one order, never what it trains: they may differ on resume without
# --allow-config-change (a difference is still recorded).
# Everything else (data, model, optimiser, loss, duration, mesh, workers) is a change.
RESUME_MAY_CHANGE = ("log_every_steps", "holdout_every_steps", "evals", "checkpoint.every_steps",
                     "checkpoint.every_minutes", "checkpoint.keep", "checkpoint.best_metric", "checkpoint.best_mode",
                     "checkpoint.async_save", "checkpoint.on_corrupt", "nan_policy", "max_rollbacks",
                     "deterministic")
CONFIG_CHANGES = "config_changes.jsonl"


def _may_change(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUME_MAY_CHANGE)


_DEFAULTS = config_lib.flatten(config_lib.config_to_json(config_lib.pretrain_config()))


def _blocks_resume(key: str, old: Any, new: Any) -> bool:
    """Whether a config difference stops a resume without --allow-config-change.

    A field a later version added, at its default, is no change: the run trained as if it
    had it (input.allow_corpus_mismatch on a run saved before the field existed).
    """
    if _may_change(key):
        return False
    return not (old is config_lib.ABSENT and key in _DEFAULTS and new == _DEFAULTS[key])


def _format_changes(changes: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {config_lib.format_value(old)} -> {config_lib.format_value(new)}"
                     for k, (old, new) in changes.items())


def _check_resume_config(ckpt: ckpt_lib.Checkpointer, step: int, config_json: Mapping[str, Any],
                         allow: bool) -> dict[str, tuple[Any, Any]]:
    """The differences from the config the checkpoint was trained with; ConfigError if not allowed."""
    saved = ckpt.restore_json(step, ckpt_lib.CONFIG)
    changes = config_lib.config_diff(saved, config_json)
    blocking = {k: v for k, v in changes.items() if _blocks_resume(k, *v)}
    if blocking and not allow:
        raise ConfigError(
            f"the config differs from the one checkpoint {ckpt.directory / str(step)} was trained with: "
            f"{_format_changes(blocking)}; rerun with the run's settings, or pass --allow-config-change "
            f"to resume with the new ones (recorded in {CONFIG_CHANGES})")
    return changes


def _record_config_changes(workdir: Path, step: int, changes: Mapping[str, tuple[Any, Any]]) -> None:
    """Appends one JSON line {step, time, changes: {key: [old, new]}} to the run's change log."""
    line = json.dumps({"step": step, "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "changes": {k: [old, new] for k, (old, new) in changes.items()}}, default=str)
    with open(workdir / CONFIG_CHANGES, "a", encoding="utf-8") as f:
        f.write(line + "\n")  # one write of a whole line: a reader never sees half of it
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------------------
# The run.
# ----------------------------------------------------------------------------------------


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       allow_config_change: bool = False) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming from its latest intact checkpoint); returns final metrics.

    The result holds the last logged scalars plus "step" and "stopped" (None, or the
    name of the signal that stopped the run early after saving). Every check runs before
    anything is written; the workdir is then locked for the run (`runner.hold_workdir`).
    Resuming with a config that differs from the checkpoint's in a setting that changes
    what is computed raises ConfigError listing the changes, unless `allow_config_change`
    (they are then recorded in `config_changes.jsonl`).
    """
    workdir = Path(workdir).resolve()

    # --- Set-up and checks. ----------------------------------------------------------
    vocab = _check_inputs(config)
    gbs = int(config.input.global_batch_size)
    try:
        mesh = sharding.make_mesh(config.mesh)
        sharding.check_batch_layout(gbs, mesh)
    except sharding.ShardingError as e:
        raise ConfigError(f"config.mesh / input.global_batch_size: {e}") from None
    accum = int(config.optim.grad_accum_steps)
    n_dev = mesh.devices.size
    if gbs % (n_dev * accum):
        raise ConfigError(f"global batch {gbs} is not divisible by {n_dev} devices x {accum} accumulation steps")
    model = train_lib.model_from_config(config.model, vocab.num_classes)
    if (warning := train_lib.unpartitioned_path_warning(model, n_dev)) and jax.process_index() == 0:
        log.warning(warning)
    evals = _make_evaluators(config, model, mesh, workdir, vocab)

    # --- Data: this process's share of every global batch. ---------------------------
    train_iter = _make_train_iterator(config)
    num_examples = int(train_iter.stats()["epoch_size"])
    total = config_lib.total_steps(config, num_examples)
    warmup = config_lib.warmup_steps(config, num_examples)

    # --- Optimiser and loss. ----------------------------------------------------------
    try:
        tx, lr_fn = optim_lib.optimizer_from_config(config.optim, gbs, total, warmup)
        loss_fn = losses.make_loss_fn(config.loss, config.optim.label_smoothing)
    except ValueError as e:
        raise ConfigError(f"config.optim: {e}") from None

    # --- Workdir: locked for the run; nothing is written there before this point. -----
    with runner.hold_workdir(workdir, "train"):
        ckpt_cfg = config.checkpoint
        checkpointer = ckpt_lib.Checkpointer(
            ckpt_lib.checkpoint_dir(workdir),
            keep=ckpt_cfg.keep,
            best_metric=ckpt_cfg.best_metric or None,
            best_mode=ckpt_cfg.best_mode,
            async_save=ckpt_cfg.async_save,
        )
        resume_step = checkpointer.latest_good_step(ckpt_cfg.on_corrupt, set_aside=True)
        config_json = config_lib.config_to_json(config)
        changes: dict[str, tuple[Any, Any]] = {}
        if resume_step is not None:
            _check_resume_vocab(checkpointer, resume_step, vocab)
            changes = _check_resume_config(checkpointer, resume_step, config_json, allow_config_change)
        if jax.process_index() == 0:
            if changes:
                _record_config_changes(workdir, resume_step, changes)
            atomic.write_json(workdir / "config.json", config_json, sort_keys=True)
        writer = metrics.MetricWriter(workdir)
        if changes:
            writer.write_text(f"resuming step {resume_step} with a changed config: {_format_changes(changes)}")

        # --- State: initialised in place, or restored onto this mesh (any device count). ---
        def restore(step_at: int) -> train_lib.State:
            state_at, _ = train_lib.create_train_state(model, mesh, config.input.image_size, tx=tx,
                                                       checkpoint=(checkpointer, step_at), data_iterator=train_iter)
            return state_at

        if resume_step is None:
            state, state_shardings = train_lib.create_train_state(model, mesh, config.input.image_size, tx=tx,
                                                                  rng=jax.random.PRNGKey(int(config.seed)))
        else:
            _, state_shardings = train_lib.create_train_state(model, mesh, config.input.image_size, tx=tx, abstract=True)
            state = restore(resume_step)
            writer.write_text(f"resumed from {checkpointer.directory / str(resume_step)}")

        # --- Compiled step. ---------------------------------------------------------------
        train_step = train_lib.make_train_step(model, tx, loss_fn, mesh, state_shardings, grad_accum_steps=accum,
                                               learning_rate_fn=lr_fn)

        # --- Loop. ------------------------------------------------------------------------
        step = int(jax.device_get(state["step"]))
        log_every = int(config.log_every_steps)
        progress = metrics.Progress(total, gbs, n_dev, step)
        first_step = step
        last_save_step, last_save_time = step, time.time()
        skip_steps: set[int] = set()
        rollbacks = 0
        pending: tuple[int, Any] | None = None  # a step whose metrics are not checked yet
        # A resumed run starts from what it logged at its checkpoint, so a run restarted after
        # it finished (the demo run again) still reports its final metrics.
        last: dict[str, float] = _logged_at(workdir, step) if resume_step is not None else {}
        stopped = None
        writer.write_text(f"training {config.model.name} for {total} steps (from step {step}), "
                          f"global batch {gbs} on {n_dev} devices, {jax.process_count()} process(es)")

        def save(step_now: int, extra_metrics: Mapping[str, float] | None = None) -> None:
            try:
                checkpointer.save(step_now, state, data_iterator=train_iter, config=config_json,
                                  vocab=vocab.to_json(), metrics=extra_metrics)
            except StorageFailed as e:
                raise StorageFailed(f"{e}; training stopped after step {step_now}") from None
            # How long the training thread waited for this (asynchronous) save.
            writer.write_scalars(step_now, {"checkpoint/blocked_sec": checkpointer.save_blocked_s[-1]})

        def nonfinite(bad: int) -> int:
            """Stops the run, or rolls back to the newest checkpoint; returns the step resumed at."""
            nonlocal state, rollbacks
            checkpointer.wait()
            if config.nan_policy != "rollback" or rollbacks >= config.max_rollbacks:
                checkpointer.close()
                raise TrainingError(f"non-finite loss or parameters at step {bad}; stopping "
                                    f"(nan_policy={config.nan_policy}, rollbacks so far {rollbacks})")
            back = checkpointer.latest_good_step(ckpt_cfg.on_corrupt, set_aside=True)
            if back is None:
                checkpointer.close()
                raise TrainingError(f"non-finite loss or parameters at step {bad} and no checkpoint to roll back to")
            rollbacks += 1
            writer.write_text(f"non-finite loss or parameters at step {bad}: rolling back to step {back} "
                              f"({rollbacks}/{config.max_rollbacks})")
            state = restore(back)
            skip_steps.add(bad)
            return back

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
                if step == first_step + 1:
                    jax.block_until_ready(m)
                    progress.start(step)  # throughput excludes compilation
                log_now = step % log_every == 0 or step == total
                evals_now = [name for name, (every, _) in evals.items() if step % every == 0 or step == total]
                due = ckpt_lib.save_interval_due(step, last_save_step, last_save_time, time.time(),
                                                 ckpt_cfg.every_steps, ckpt_cfg.every_minutes)
                # A background save that failed stops every process within this step.
                save_error = checkpointer.poll()
                due, stop_now, save_failed = _agree([due, stop.signal is not None, save_error is not None])
                if save_failed:
                    raise StorageFailed(f"{save_error or 'a checkpoint save failed on another process'}; "
                                        f"training stopped after step {step}")
                save_now = due or stop_now or step == total

                # The one finiteness check: every step's metrics are checked once, a step late
                # (so the host stays a step ahead of the devices) unless this step is logged,
                # evaluated or saved, which reads or keeps its state now.
                sync = bool(log_now or evals_now or save_now)
                unchecked = [pending] if pending is not None else []
                if sync:
                    unchecked.append((step, m))
                pending = None if sync else (step, m)
                bad = next((s for s, sm in unchecked if not _finite(sm)), None)
                if bad is not None:
                    step, pending = nonfinite(bad), None
                    continue

                if log_now:
                    scalars = dict(jax.device_get(m))
                    scalars.update(progress.report(step))
                    scalars.update({f"data/{k}": v for k, v in train_iter.stats().items()
                                    if k in ("skipped_unreadable", "examples")})
                    # The resolved length: an epoch-based config's total depends on the corpus,
                    # and `weaksup runs` reads it from here.
                    scalars["total_steps"] = total
                    writer.write_scalars(step, scalars)
                    last = {k: float(v) for k, v in scalars.items()}
                    eta = metrics.format_eta(scalars.get("perf/eta_sec", float("nan")))
                    writer.write_text(f"step {step}/{total} loss {scalars['loss']:.4f} prec@1 {scalars['prec@1']:.3f} "
                                      f"lr {scalars.get('lr', 0):.4g} "
                                      f"{scalars.get('perf/images_per_sec', float('nan')):.1f} img/s ETA {eta}")
                if evals_now:
                    variables = train_lib.variables_of(state)
                    eval_scalars = {f"{name}/{k}": float(v) for name in evals_now
                                    for k, v in evals[name][1].run(variables, step=step).items()}
                    writer.write_scalars(step, eval_scalars)
                    last.update(eval_scalars)
                if save_now:
                    save(step, {**last, "loss": float(jax.device_get(m["loss"]))})
                    last_save_step, last_save_time = step, time.time()
                if stop_now:
                    name = signal.Signals(stop.signal).name if stop.signal else "a stop request on another process"
                    checkpointer.wait()
                    writer.write_text(f"stopped by {name} after step {step}: checkpoint {checkpointer.directory / str(step)} "
                                      "saved; run the same command again to resume")
                    stopped = name
                    break
        if pending is not None and not _finite(pending[1]):  # the data ran out right after a bad step
            checkpointer.close()
            raise TrainingError(f"non-finite loss or parameters at step {pending[0]}; stopping (the data is exhausted)")
        if step == total and checkpointer.latest_step() != step:
            save(step, last)
        checkpointer.close()
        writer.close()
        return {**last, "step": step, "stopped": stopped, "first_step": first_step, "total_steps": total}


def _logged_at(workdir: str | os.PathLike, step: int) -> dict[str, float]:
    """The scalars `metrics.jsonl` in `workdir` holds for `step` (empty when it holds none),
    without the checkpoint timings, which the run's final metrics never carry."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.is_file():
        return {}
    return {k: float(v) for rec in metrics.read_jsonl(path) if rec["step"] == step
            for k, v in rec.items()
            if k not in ("step", "time") and not k.startswith("checkpoint/") and isinstance(v, (int, float))}


# ----------------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------------


def summary(result: Mapping[str, Any], workdir: str | os.PathLike, seconds: float) -> str:
    """What a finished `train` did, its final figures and where its outputs are (a few lines)."""
    step, first, total = result["step"], result.get("first_step", 0), result.get("total_steps")
    workdir = Path(workdir)
    if result.get("stopped"):
        head = f"train: stopped by {result['stopped']} at step {step} of {total}; run the same command to resume"
    elif first == step == total:
        head = f"train: {workdir} is already complete (step {step} of {total}); nothing to do"
    else:
        start = f"resumed at step {first}" if first else "from scratch"
        head = f"train: complete, step {step} of {total} ({start}) in {seconds / 60:.1f} min"
    figures = [f"{label} {result[key]:.4g}" for key, label in
               (("loss", "loss"), ("prec@1", "prec@1"), ("holdout/mAP", "held-out hashtag mAP"))
               if isinstance(result.get(key), (int, float))]
    lines = [head]
    if figures:
        lines.append("  final: " + ", ".join(figures))
    lines.append(f"  outputs: {workdir / 'checkpoints'}, {workdir / 'metrics.jsonl'}, {workdir / 'tensorboard'}")
    lines.append(f"  next: weaksup plot {workdir} | weaksup evaluate --config ... pretrained={workdir}")
    return "\n".join(lines)


def _run(config: ml_collections.ConfigDict, args: argparse.Namespace) -> int:
    t0 = time.time()
    result = train_and_evaluate(config, args.workdir, allow_config_change=args.allow_config_change)
    if jax.process_index() == 0:
        log.info(summary(result, args.workdir, time.time() - t0))
    return EXIT_PREEMPTED if result.get("stopped") else EXIT_OK


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-config-change", action="store_true",
                        help="resume although the config differs from the run's (the change is recorded "
                             f"in WORKDIR/{CONFIG_CHANGES})")


def main(argv: list[str]) -> int:
    """`python -m weaksup train --config FILE.py[:arg] --workdir DIR [--config.key=value ...]`.

    Exit status (`weaksup.errors`): 0 done; 2 a configuration, input or checkpoint problem,
    a config changed on resume, or a workdir another process holds (one line on stderr
    naming the file or key); 1 training failed (non-finite loss); 74 a checkpoint could not
    be written (disk full, permission; the previous checkpoint stays the latest); 75
    stopped by a signal after saving (run the same command again to resume).
    """
    return runner.run_config_command("train", __doc__.split("\n\n")[0], argv, _run,
                                     workdir_help="run directory: checkpoints, metrics, config.json",
                                     add_arguments=_add_arguments)
