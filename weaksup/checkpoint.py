"""Orbax checkpoints: train state, data-iterator state, config and vocabulary, together.

`WORKDIR/checkpoints/<step>/` holds four items:
  state    the train state pytree {params, batch_stats, opt_state, step, rng} (PyTree
           handler: sharded arrays, restorable onto any mesh by giving target shardings)
  data     the grain iterator state, one JSON file per process (grain's Orbax handler)
  config   the run's config as JSON, plus the derived run facts (`run` key)
  vocab    the vocabulary JSON, so the label space travels with the weights

Orbax writes each step to a temporary directory and renames it when every item is
complete, so a run killed mid-save leaves nothing that looks like a checkpoint; such
leftovers are ignored on restart. `load_pretrained(workdir)` rebuilds config, vocabulary,
model and variables from the directory alone.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grain.checkpoint
import jax
import ml_collections
import orbax.checkpoint as ocp

from weaksup import config as config_lib
from weaksup import optimizer as optim_lib
from weaksup import sharding, train_lib
from weaksup.errors import UsageError
from weaksup.hashtags.vocabulary import Vocabulary

STATE, DATA, CONFIG, VOCAB = "state", "data", "config", "vocab"


class CheckpointError(UsageError, RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the run."""


def checkpoint_dir(workdir: str | os.PathLike) -> Path:
    """Where a run keeps its checkpoints."""
    return Path(workdir).resolve() / "checkpoints"


class Checkpointer:
    """A CheckpointManager for one run: async saves, keep the last K and the best one."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        keep: int = 3,
        best_metric: str | None = None,
        best_mode: str = "min",
        async_save: bool = True,
        read_only: bool = False,
    ):
        self.directory = Path(directory).resolve()
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        policies: list[Any] = [ocp.checkpoint_managers.LatestN(n=max(int(keep), 1))]
        if best_metric:
            policies.append(
                ocp.checkpoint_managers.BestN(
                    get_metric_fn=lambda m: float(m[best_metric]),
                    reverse=best_mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=False,
                )
            )
        self.best_metric = best_metric
        # Seconds the caller was blocked in each `save` (async saves return once the arrays
        # are off the devices; the rest is written in the background).
        self.save_blocked_s: list[float] = []
        options = ocp.CheckpointManagerOptions(
            create=not read_only,
            read_only=read_only,
            enable_async_checkpointing=async_save,
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            # Partial saves of a killed run: Orbax never lists them; removing them on start
            # keeps the directory tidy.
            cleanup_tmp_directories=not read_only,
        )
        handlers = {
            STATE: ocp.PyTreeCheckpointHandler(),
            DATA: grain.checkpoint.CheckpointHandler(),
            CONFIG: ocp.JsonCheckpointHandler(),
            VOCAB: ocp.JsonCheckpointHandler(),
        }
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def state_metadata(self, step: int) -> Any:
        """The saved train state's tree of array metadata (shape, dtype) at `step`."""
        if step not in self.all_steps():
            raise CheckpointError(f"no complete checkpoint for step {step} in {self.directory}")
        meta = self.manager.item_metadata(step)[STATE]
        if meta is None:
            raise CheckpointError(f"checkpoint {self._step_dir(step)} is broken: no state metadata")
        return meta.tree if hasattr(meta, "tree") else meta

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of all complete checkpoints, ascending."""
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def save(
        self,
        step: int,
        state: Any,
        *,
        data_iterator: Any = None,
        config: Mapping[str, Any] | None = None,
        vocab: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> bool:
        """Starts saving step `step` (asynchronously); all processes must call it together.

        Returns once the arrays are copied off the devices, so the caller may donate or
        overwrite `state` right away; the data-iterator state is captured at call time.
        """
        t0 = time.perf_counter()
        items: dict[str, Any] = {STATE: ocp.args.PyTreeSave(_snapshot(state))}
        if data_iterator is not None:
            items[DATA] = grain.checkpoint.CheckpointSave(data_iterator)
        if config is not None:
            items[CONFIG] = ocp.args.JsonSave(dict(config))
        if vocab is not None:
            items[VOCAB] = ocp.args.JsonSave(dict(vocab))
        clean_metrics = None
        if metrics is not None and self.best_metric and self.best_metric in metrics:
            clean_metrics = {k: float(v) for k, v in metrics.items()}
        started = self.manager.save(step, args=ocp.args.Composite(**items), metrics=clean_metrics, force=True)
        self.save_blocked_s.append(time.perf_counter() - t0)
        return started

    def _step_dir(self, step: int) -> Path:
        return self.directory / str(step)

    def restore_state(self, step: int, abstract_state: Any, data_iterator: Any = None) -> Any:
        """Restores the train state onto the shardings of `abstract_state` (ShapeDtypeStructs).

        The target shardings may differ from the saved ones (another device count or mesh):
        Orbax reads each shard where the new layout needs it. `data_iterator`, if given, is
        set to the saved position.
        """
        restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_state)
        items: dict[str, Any] = {STATE: ocp.args.PyTreeRestore(item=abstract_state, restore_args=restore_args)}
        if data_iterator is not None:
            self._check_data_processes(step)
            items[DATA] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self._restore(step, items)
        return restored[STATE]

    def _check_data_processes(self, step: int) -> None:
        """The data state is one file per process: a run on another process count cannot use it."""
        data_dir = self._step_dir(step) / DATA
        pi, pc = jax.process_index(), jax.process_count()
        if not data_dir.is_dir() or (data_dir / f"process_{pi}-of-{pc}.json").is_file():
            return  # a missing item is reported by _restore
        saved = sorted(p.name for p in data_dir.glob("process_*-of-*.json"))
        counts = sorted({name.rsplit("-of-", 1)[1].removesuffix(".json") for name in saved})
        raise CheckpointError(
            f"checkpoint {self._step_dir(step)}: the data-iterator state was saved by {'/'.join(counts) or 'no'} "
            f"process(es), this run has {pc}; resume with the same number of processes (the train state "
            "itself restores onto any device count)"
        )

    def restore_params(self, step: int, abstract_variables: Any) -> Any:
        """Restores only {params, batch_stats} (no optimiser state) onto the given shardings."""
        restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_variables)
        items = {
            STATE: ocp.args.PyTreeRestore(item=abstract_variables, restore_args=restore_args, partial_restore=True)
        }
        return self._restore(step, items)[STATE]

    def restore_json(self, step: int, name: str) -> dict[str, Any]:
        """The `config` or `vocab` item of a step."""
        return dict(self._restore(step, {name: ocp.args.JsonRestore()})[name])

    def _restore(self, step: int, items: dict[str, Any]) -> Any:
        step_dir = self._step_dir(step)
        if step not in self.all_steps():
            raise CheckpointError(f"no complete checkpoint for step {step} in {self.directory}")
        for name in items:
            if not (step_dir / name).is_dir():
                raise CheckpointError(f"checkpoint {step_dir} is broken: item {name!r} is missing")
        try:
            return self.manager.restore(step, args=ocp.args.Composite(**items))
        except CheckpointError:
            raise
        except Exception as e:  # Orbax/TensorStore raise many unrelated types
            raise CheckpointError(f"checkpoint {step_dir} is broken or does not fit: {type(e).__name__}: {e}") from e

    def wait(self) -> None:
        """Blocks until pending async saves are committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()


def _snapshot(state: Any) -> Any:
    """Copies CPU arrays so an async save never reads a buffer the next step donates.

    On CPU the "device to host" transfer is a zero-copy view of the device buffer; the
    background writer would then serialise whatever a later, donated step wrote there.
    Accelerator arrays are copied off the device before `save` returns, so they pass as is.
    """
    return jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) and next(iter(x.devices())).platform == "cpu" else x, state)


def load_pretrained(workdir: str | os.PathLike, step: int | None = None, mesh: Any = None, *, ema: bool = False
                    ) -> tuple[ml_collections.ConfigDict, Vocabulary, Any, train_lib.State]:
    """(config, vocab, model, variables) of a run, from its workdir alone.

    `variables` = {"params", "batch_stats"} placed by the partition rules on `mesh`
    (default: all local devices, data-parallel). `step` defaults to the latest. With
    `ema` the params are the run's moving average of the weights (`optim.ema_decay` > 0).
    """
    directory = checkpoint_dir(workdir)
    if not directory.is_dir():
        raise CheckpointError(f"{workdir}: no checkpoints directory ({directory})")
    ckpt = Checkpointer(directory, read_only=True)
    try:
        step = ckpt.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"{directory}: no complete checkpoint")
        config = config_lib.config_from_json(ckpt.restore_json(step, CONFIG))
        vocab = Vocabulary.from_json(ckpt.restore_json(step, VOCAB), f"{directory / str(step) / VOCAB}")
        model = train_lib.model_from_config(config.model, vocab.num_classes)
        mesh = mesh if mesh is not None else sharding.make_mesh({"data": -1})
        size = config.input.image_size
        if not ema:
            variables, _ = train_lib.create_train_state(model, mesh, size, checkpoint=(ckpt, step))
        else:
            if not config.optim.get("ema_decay"):  # runs older than the option lack the key
                raise CheckpointError(f"{directory / str(step)}: the run kept no weight average (optim.ema_decay)")
            # The schedule's length does not change the optimiser state's shapes.
            tx, _ = optim_lib.optimizer_from_config(config.optim, config.input.global_batch_size, 1, 0)
            state, _ = train_lib.create_train_state(model, mesh, size, tx=tx, checkpoint=(ckpt, step))
            variables = {"params": optim_lib.ema_params(state["opt_state"]), "batch_stats": state["batch_stats"]}
    finally:
        ckpt.close()
    return config, vocab, model, variables


def save_interval_due(
    step: int, last_save_step: int, last_save_time: float, now: float, every_steps: int | None, every_minutes: float | None
) -> bool:
    """Whether a periodic save is due at `step` (by steps and/or wall-clock minutes)."""
    if step <= last_save_step:
        return False
    if every_steps and step % int(every_steps) == 0:
        return True
    if every_minutes and now - last_save_time >= datetime.timedelta(minutes=every_minutes).total_seconds():
        return True
    return False
