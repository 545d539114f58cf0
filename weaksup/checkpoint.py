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

Failures are seen at once and never cost the previous checkpoint:
- a save that fails (disk full, permission denied), also one that fails in Orbax's
  background thread, raises `StorageFailed` (exit status 74) naming the cause, at the next
  `poll` (the trainer polls after every step), `save`, `wait` or `close`; the failed step is
  never finalised, so the previous one stays the latest;
- once a step is finalised, process 0 writes `<step>/checksums.json` (sha256 and size of
  every file of the step, written atomically). Every restore verifies the step first; a
  file that is missing, resized or changed raises `CheckpointCorrupt` naming it.
  `latest_good_step` falls back from a corrupt latest step to the newest intact one with
  a warning (or refuses, `on_corrupt="fail"`). A step without checksums (a run stopped
  between the save and its checksums, or saved before they existed) restores unverified,
  with a warning.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grain.checkpoint
import jax
import ml_collections
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from weaksup import atomic, sharding, train_lib
from weaksup import config as config_lib
from weaksup import optimizer as optim_lib
from weaksup.errors import StorageFailed, UsageError, os_cause
from weaksup.hashtags.vocabulary import Vocabulary

log = logging.getLogger(__name__)

STATE, DATA, CONFIG, VOCAB = "state", "data", "config", "vocab"
CHECKSUMS = "checksums.json"  # inside each step's folder, written after the step is final
CORRUPT_SUFFIX = ".corrupt"  # a corrupt step set aside (a name Orbax does not take for a step)
ON_CORRUPT = ("fallback", "fail")


class CheckpointError(UsageError, RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the run."""


class CheckpointCorrupt(CheckpointError):
    """A checkpoint whose files differ from the checksums written when it was saved."""


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def step_checksums(step_dir: Path) -> dict[str, Any]:
    """{format, algorithm, files: {relative path: {size, sha256}}} of every file of a step."""
    files = {}
    for path in sorted(step_dir.rglob("*")):
        if path.is_file() and path.name != CHECKSUMS and not path.name.startswith(atomic.TMP_PREFIX):
            files[path.relative_to(step_dir).as_posix()] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    return {"format": 1, "algorithm": "sha256", "files": files}


def verify_step(step_dir: Path) -> list[str] | None:
    """What differs from the step's checksums ([] if nothing); None if it has no checksums."""
    try:
        manifest = json.loads((step_dir / CHECKSUMS).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return [f"{CHECKSUMS} unreadable ({e})"]
    problems = []
    for name, want in manifest.get("files", {}).items():
        path = step_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != want["size"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, {want['size']} were saved")
        elif _sha256(path) != want["sha256"]:
            problems.append(f"{name} does not match its sha256")
    return problems


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
        warn: Callable[[str], None] = log.warning,
    ):
        self.directory = Path(directory).resolve()
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        self.async_save = bool(async_save)
        self._warn = warn
        self._unsealed: list[int] = []  # finalised (or finalising) steps without checksums yet
        self._saving: int | None = None  # the step whose save may still be running
        self._verified: set[int] = set()
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
            # A reader saves nothing: saying so up front spares a warning per option Orbax
            # would otherwise reset for it.
            save_interval_steps=0 if read_only else 1,
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
        """The newest complete checkpoint's step, or None (not verified: see `latest_good_step`)."""
        return self.manager.latest_step()

    def latest_good_step(self, on_corrupt: str = "fallback", *, set_aside: bool = False) -> int | None:
        """The newest step whose files match their checksums, or None if there is no checkpoint.

        A corrupt newer step is reported by file and skipped with a warning ("fallback"), or
        raises CheckpointCorrupt ("fail"). With `set_aside` (a run that will save again)
        process 0 renames each skipped step to `<step>.corrupt`, so a later save of that step
        does not collide with it and the evidence stays. Raises CheckpointCorrupt if every
        step is corrupt.
        """
        if on_corrupt not in ON_CORRUPT:
            raise ValueError(f"on_corrupt must be one of {ON_CORRUPT}, got {on_corrupt!r}")
        steps = self.all_steps()
        bad: list[int] = []
        newest_problem = ""
        for step in reversed(steps):
            try:
                self.verify(step)
            except CheckpointCorrupt as e:
                if on_corrupt == "fail":
                    raise CheckpointCorrupt(f"{e}; refusing to resume (checkpoint.on_corrupt='fail'): set it to "
                                            "'fallback' to resume from the newest intact step") from None
                self._warn(f"warning: {e}; falling back to the checkpoint before it")
                bad.append(step)
                newest_problem = newest_problem or str(e)
                continue
            if bad and set_aside:
                self._set_aside(bad)
            return step
        if steps:
            raise CheckpointCorrupt(f"every checkpoint in {self.directory} is corrupt (steps {steps}; the newest: "
                                    f"{newest_problem}); remove them to start again")
        return None

    def _set_aside(self, steps: list[int]) -> None:
        if jax.process_count() > 1:  # every process has verified before the steps move
            multihost_utils.sync_global_devices("weaksup-checkpoint-set-aside-start")
        if jax.process_index() == 0:
            for step in steps:
                target = self.directory / f"{step}{CORRUPT_SUFFIX}"
                if target.exists():
                    target = self.directory / f"{step}{CORRUPT_SUFFIX}-{int(time.time())}"
                os.replace(self._step_dir(step), target)
                self._warn(f"warning: moved the corrupt checkpoint {self._step_dir(step)} to {target}")
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("weaksup-checkpoint-set-aside-end")
        self.manager.reload()

    def verify(self, step: int) -> None:
        """Checks step `step`'s files against its checksums; raises CheckpointCorrupt naming them."""
        if step in self._verified:
            return
        step_dir = self._step_dir(step)
        problems = verify_step(step_dir)
        if problems is None:
            self._warn(f"warning: checkpoint {step_dir} has no {CHECKSUMS} (the run stopped right after saving "
                       "it, or it predates checksums); restoring it unverified")
        elif problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            raise CheckpointCorrupt(f"checkpoint {step_dir} is corrupt: {shown}")
        self._verified.add(step)

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
        Raises StorageFailed if this save, or the previous one, could not be written.
        """
        t0 = time.perf_counter()
        self._raise_if_failed(self._finish())
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
        self._saving = step
        try:
            started = self.manager.save(step, args=ocp.args.Composite(**items), metrics=clean_metrics, force=True)
        except Exception as e:  # Orbax/TensorStore raise many types; the OS error is in the chain
            self._raise_if_failed(self._failure(step, e))
            raise
        self._unsealed.append(step)
        if not self.async_save:
            self._raise_if_failed(self._finish())
        self.save_blocked_s.append(time.perf_counter() - t0)
        return started

    def poll(self) -> str | None:
        """Never blocks: once the running save has ended, its failure (one line), else None.

        Also writes the checksums of steps finalised since the last call.
        """
        if self.manager.is_saving_in_progress():
            return None
        return self._finish()

    def _finish(self) -> str | None:
        """Waits for the running save, then seals finalised steps; a failure as one line, else None."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # the background save's own exception, re-raised by Orbax
            step, self._saving = self._saving, None
            self._unsealed = [s for s in self._unsealed if s != step]
            return self._failure(step, e)
        self._saving = None
        try:
            self._seal()
        except OSError as e:
            return self._failure(None, e, what=f"writing the {CHECKSUMS} of a checkpoint")
        return None

    def _seal(self) -> None:
        """Writes the checksums of every finalised step still without them (process 0 only)."""
        steps, self._unsealed = self._unsealed, []
        if jax.process_index() != 0:
            return
        for step in steps:
            step_dir = self._step_dir(step)
            if step_dir.is_dir() and not (step_dir / CHECKSUMS).exists():  # not removed by the keep policy
                atomic.write_json(step_dir / CHECKSUMS, step_checksums(step_dir), fsync=True)
                self._verified.add(step)

    def _failure(self, step: int | None, e: BaseException, what: str | None = None) -> str:
        cause = os_cause(e) or f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        self.manager.reload()
        latest = self.manager.latest_step()
        kept = f"step {latest} stays the latest checkpoint" if latest is not None else "no earlier checkpoint exists"
        what = what or f"saving checkpoint step {step}"
        return f"{what} in {self.directory} failed: {cause}; {kept} (free space or fix permissions, then rerun to resume)"

    @staticmethod
    def _raise_if_failed(message: str | None) -> None:
        if message is not None:
            raise StorageFailed(message)

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
        self.verify(step)
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
        """Blocks until pending async saves are committed; raises StorageFailed if one failed."""
        self._raise_if_failed(self._finish())

    def close(self) -> None:
        """Waits for pending saves and releases the manager; raises StorageFailed if a save failed."""
        failed = self._finish()
        self.manager.close()
        self._raise_if_failed(failed)


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
        step = ckpt.latest_good_step() if step is None else step  # an explicit step is verified on restore
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
