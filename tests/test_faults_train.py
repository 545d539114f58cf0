"""Faults and hostile input on the training side: locks, failed saves, corrupt checkpoints,
config drift on resume, values out of range. Each case checks the exit status (or the error
class that maps to it), that the message names the cause, and that nothing was lost."""

import datetime
import errno
import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from _train_data import REPO, tiny_inputs, train_argv, train_env
from weaksup import checkpoint as ckpt_lib
from weaksup import config as config_lib
from weaksup import sharding, train, validation, workdir_lock
from weaksup.errors import EXIT_IO_ERROR, EXIT_USAGE, StorageFailed
from weaksup.hashtags import vocab_cli
from weaksup.models import cli as models_cli

BASE_STEPS = 4  # the shared run saves steps 2 and 4
RESUMED_STEPS = 8  # the runs that train on from it (one program: compiled once)
OVERRIDES = ("--config.holdout_records=0", "--config.checkpoint.every_steps=2", "--config.log_every_steps=2")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_inputs(tmp_path_factory.getbasetemp() / "train_inputs")


def _spec(inputs, steps):
    corpus, vocab = inputs
    return f"{REPO / 'configs' / 'tiny.py'}:runlocal,corpus={corpus},vocab={vocab},steps={steps}"


def _config(inputs, steps, *overrides):
    return config_lib.load_config(_spec(inputs, steps), [*OVERRIDES, *overrides])


def _main(inputs, workdir, steps, *extra):
    """`python -m weaksup train ...` in this process (its exit status; stderr via capsys)."""
    return train.main(["--config", _spec(inputs, steps), "--workdir", str(workdir), *OVERRIDES, *extra])


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """The resumed runs below compile one program; the persistent cache compiles it once."""
    saved = {k: getattr(jax.config, k) for k in ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.getbasetemp() / "jax_cache_in_process"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    yield
    for k, v in saved.items():
        jax.config.update(k, v)


@pytest.fixture(scope="module")
def base_run(inputs, tmp_path_factory):
    """A finished 4-step run with checkpoints at steps 2 and 4; tests work on copies."""
    workdir = tmp_path_factory.mktemp("faults") / "base"
    result = train.train_and_evaluate(_config(inputs, BASE_STEPS), workdir)
    assert result["step"] == BASE_STEPS
    return workdir


@pytest.fixture
def run_copy(base_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(base_run, workdir)
    return workdir


def _state(workdir, step=None):
    """The train state of `step` (default: the newest intact one), restored and verified."""
    ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), read_only=True, warn=lambda m: None)
    try:
        step = ckpt.latest_good_step() if step is None else step
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding.replicated(sharding.make_mesh())),
            ckpt.state_metadata(step))
        return step, jax.tree.map(np.asarray, ckpt.restore_state(step, target))
    finally:
        ckpt.close()


def _same(a, b):
    return all(x.tobytes() == y.tobytes() for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _snapshot(workdir):
    """{relative path: bytes} of every file under `workdir`."""
    return {p.relative_to(workdir).as_posix(): p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}


# --- 1. one process per workdir ------------------------------------------------------------


def _fake_holder(folder, pid, host=None):
    """Writes the lock file another process would hold (taken now)."""
    folder.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info = {"host": host or socket.gethostname(), "pid": pid, "what": "train", "token": "other", "started": started}
    (folder / workdir_lock.LOCK_NAME).write_text(json.dumps(info))
    return info


def test_second_train_on_a_locked_workdir_exits_2_naming_the_holder(inputs, run_copy, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        # A live process on this host holds the run.
        info = _fake_holder(run_copy, holder.pid)
        before = _snapshot(run_copy)
        r = subprocess.run(train_argv(inputs, run_copy, f"steps={BASE_STEPS + 2}", OVERRIDES),
                           env=train_env(1, tmp_path / "jax_cache"), capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == EXIT_USAGE, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("train: error: ") and f"in use by train (host {socket.gethostname()}, pid {holder.pid}, " \
        f"started {info['started']})" in last, last
    assert _snapshot(run_copy) == before  # not a byte written, the holder's lock untouched
    assert _state(run_copy)[0] == BASE_STEPS


def test_lock_is_exclusive_under_a_race(tmp_path):
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from weaksup import workdir_lock as w\n"
            "try:\n    with w.hold(sys.argv[1]):\n        print('got', flush=True); sys.stdin.read()\n"
            "except w.WorkdirBusy as e:\n    print('busy', e, flush=True)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "w"), str(REPO)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    lines = [p.stdout.readline() for p in procs]
    for p in procs:
        p.communicate("")
    assert sorted(line.split()[0] for line in lines) == ["busy", "busy", "busy", "got"], lines
    winner = procs[[line.startswith("got") for line in lines].index(True)].pid
    assert all(f"pid {winner}," in line for line in lines if line.startswith("busy"))
    assert not (tmp_path / "w" / workdir_lock.LOCK_NAME).exists()  # released when the holder ended


def test_stale_lock_of_a_dead_local_process_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _fake_holder(tmp_path / "w", dead.pid)
    assert not workdir_lock.in_use(tmp_path / "w")
    with workdir_lock.hold(tmp_path / "w", "train") as folder:
        assert workdir_lock.holder(folder)["pid"] == os.getpid() and workdir_lock.in_use(folder)
        with workdir_lock.hold(folder, "evaluate"):  # re-entrant within a process
            pass
        assert workdir_lock.holder(folder)["pid"] == os.getpid()
    assert f"taking over the lock of {tmp_path / 'w'} left by train (host {socket.gethostname()}, pid {dead.pid}" \
        in caplog.text
    assert workdir_lock.holder(tmp_path / "w") is None


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    _fake_holder(tmp_path / "w", 1, host="some-other-host")
    assert workdir_lock.in_use(tmp_path / "w")
    with pytest.raises(workdir_lock.WorkdirBusy, match=r"host some-other-host, pid 1, .* remove .*\.weaksup-lock"):
        workdir_lock.acquire(tmp_path / "w")
    assert workdir_lock.holder(tmp_path / "w")["host"] == "some-other-host"


# --- 2. a save that cannot be written ---------------------------------------------------------


def _failing_json_writes(monkeypatch, code):
    """Orbax's JSON item writer (it runs in the background commit of an async save) raises `code`."""
    async def fail(self, x, directory):
        raise OSError(code, os.strerror(code), str(directory))

    monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", fail)


def test_disk_full_during_async_save_stops_with_exit_74(inputs, run_copy, monkeypatch, capsys):
    _, before = _state(run_copy)
    _failing_json_writes(monkeypatch, errno.ENOSPC)
    status = _main(inputs, run_copy, RESUMED_STEPS, "--config.checkpoint.every_steps=1", "--allow-config-change")
    err = capsys.readouterr().err
    assert status == EXIT_IO_ERROR == 74, err[-2000:]
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("train: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    msg = lines[0]
    assert f"saving checkpoint step {BASE_STEPS + 1} " in msg and "No space left on device (ENOSPC)" in msg, msg
    assert f"step {BASE_STEPS} stays the latest checkpoint" in msg
    # Seen within one step of the failure (the save of step 5 fails; at most step 6 ran).
    stopped = int(msg.rsplit("training stopped after step ", 1)[1])
    assert BASE_STEPS + 1 <= stopped <= BASE_STEPS + 2, msg
    monkeypatch.undo()
    step, after = _state(run_copy)
    assert step == BASE_STEPS and _same(before, after)


def test_permission_denied_in_a_synchronous_save_names_the_cause(tmp_path, monkeypatch):
    ckpt = ckpt_lib.Checkpointer(tmp_path / "checkpoints", async_save=False)
    ckpt.save(1, {"w": np.arange(4.0)}, config={"a": 1})
    _failing_json_writes(monkeypatch, errno.EACCES)
    with pytest.raises(StorageFailed, match=r"saving checkpoint step 2 .* failed: Permission denied \(EACCES\); "
                                             r"step 1 stays the latest checkpoint"):
        ckpt.save(2, {"w": np.arange(4.0) + 1}, config={"a": 1})
    monkeypatch.undo()
    assert ckpt.all_steps() == [1] and ckpt.latest_good_step() == 1
    ckpt.close()


# --- 3. checkpoint integrity ------------------------------------------------------------------


def _largest_state_file(workdir, step):
    files = [p for p in (ckpt_lib.checkpoint_dir(workdir) / str(step) / ckpt_lib.STATE).rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size)


def _flip(path, n=64):
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + n] = bytes(b ^ 0xFF for b in data[mid:mid + n])
    path.write_bytes(bytes(data))


def test_every_step_has_checksums_of_all_its_files(base_run):
    for step in (2, BASE_STEPS):
        step_dir = ckpt_lib.checkpoint_dir(base_run) / str(step)
        manifest = json.loads((step_dir / ckpt_lib.CHECKSUMS).read_text())
        on_disk = {p.relative_to(step_dir).as_posix() for p in step_dir.rglob("*")
                   if p.is_file() and p.name != ckpt_lib.CHECKSUMS}
        assert set(manifest["files"]) == on_disk and any(f.startswith("state/") for f in on_disk)
        assert ckpt_lib.verify_step(step_dir) == []


def test_flipped_bytes_are_found_and_the_run_resumes_from_the_step_before(inputs, run_copy, capsys):
    _, good = _state(run_copy, 2)
    bad = _largest_state_file(run_copy, BASE_STEPS)
    _flip(bad)
    rel = bad.relative_to(ckpt_lib.checkpoint_dir(run_copy) / str(BASE_STEPS)).as_posix()
    # Refused when asked to (exit 2 class), naming the file, before anything is compiled or written.
    with pytest.raises(ckpt_lib.CheckpointCorrupt, match=rf"/{BASE_STEPS} is corrupt: {rel} does not match"):
        train.train_and_evaluate(_config(inputs, BASE_STEPS + 2, "--config.checkpoint.on_corrupt=fail"), run_copy)
    # Evaluation's loader falls back too; an explicit corrupt step is refused.
    _, _, _, variables = ckpt_lib.load_pretrained(run_copy)
    assert _same(variables["params"], good["params"])
    with pytest.raises(ckpt_lib.CheckpointCorrupt, match=rel):
        ckpt_lib.load_pretrained(run_copy, step=BASE_STEPS)
    capsys.readouterr()
    # Training falls back to step 2 with a warning, sets step 4 aside and trains past it.
    result = train.train_and_evaluate(_config(inputs, RESUMED_STEPS), run_copy, allow_config_change=True)
    err = capsys.readouterr().err
    assert f"{rel} does not match its sha256; falling back" in err
    assert result["step"] == RESUMED_STEPS
    assert (ckpt_lib.checkpoint_dir(run_copy) / f"{BASE_STEPS}{ckpt_lib.CORRUPT_SUFFIX}").is_dir()
    assert _state(run_copy)[0] == RESUMED_STEPS
    assert _state(run_copy, BASE_STEPS)[0] == BASE_STEPS  # saved anew, beside the corrupt one set aside


def test_a_missing_file_is_reported_and_all_corrupt_refuses(run_copy):
    for step in (2, BASE_STEPS):
        _largest_state_file(run_copy, step).unlink()
    ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(run_copy), read_only=True, warn=lambda m: None)
    with pytest.raises(ckpt_lib.CheckpointCorrupt, match=r"is missing"):
        ckpt.verify(BASE_STEPS)
    with pytest.raises(ckpt_lib.CheckpointCorrupt, match=r"every checkpoint .* is corrupt \(steps \[2, 4\]; the newest: checkpoint .*/4 is corrupt"):
        ckpt.latest_good_step()
    ckpt.close()


# --- 4. config drift on resume ------------------------------------------------------------------


def test_changed_config_on_resume_stops_listing_the_changes(inputs, run_copy, capsys):
    before = _snapshot(run_copy)
    status = _main(inputs, run_copy, BASE_STEPS + 2, "--config.optim.base_lr=0.1", "--config.loss=sigmoid")
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err[-2000:]
    assert "loss \"softmax\" -> \"sigmoid\", optim.base_lr 0.4 -> 0.1" in err and "--allow-config-change" in err
    assert _snapshot(run_copy) == before  # config.json, metrics and checkpoints untouched
    assert _state(run_copy)[0] == BASE_STEPS


def test_allowed_config_change_is_recorded(inputs, run_copy, capsys):
    # The run is complete at step 4: it resumes, records the change and has nothing to train.
    status = _main(inputs, run_copy, BASE_STEPS, "--config.optim.base_lr=0.2", "--config.log_every_steps=1",
                   "--allow-config-change")
    assert status == 0, capsys.readouterr().err[-2000:]
    (entry,) = [json.loads(ln) for ln in (run_copy / train.CONFIG_CHANGES).read_text().splitlines()]
    assert entry["step"] == BASE_STEPS and entry["changes"] == {"log_every_steps": [2, 1], "optim.base_lr": [0.4, 0.2]}
    assert json.loads((run_copy / "config.json").read_text())["optim"]["base_lr"] == 0.2
    assert _state(run_copy)[0] == BASE_STEPS


def test_only_watching_settings_may_change_without_the_flag():
    old = config_lib.config_to_json(config_lib.pretrain_config())
    new = json.loads(json.dumps(old))
    new["log_every_steps"], new["checkpoint"]["keep"], new["input"]["num_workers"] = 1, 9, 4
    del old["checkpoint"]["on_corrupt"]  # a run saved before the field existed
    changes = config_lib.config_diff(old, new)
    assert list(changes) == ["checkpoint.keep", "checkpoint.on_corrupt", "input.num_workers", "log_every_steps"]
    assert [k for k in changes if not train._may_change(k)] == ["input.num_workers"]
    assert [k for k, v in changes.items() if train._blocks_resume(k, *v)] == ["input.num_workers"]


def test_a_field_added_later_blocks_resume_only_off_its_default():
    """A run saved before a field existed resumes when the field is at its default."""
    old = config_lib.config_to_json(config_lib.pretrain_config())
    del old["input"]["allow_corpus_mismatch"], old["input"]["label_noise"]
    new = config_lib.config_to_json(config_lib.pretrain_config())
    new["input"]["label_noise"] = 0.5
    changes = config_lib.config_diff(old, new)
    assert list(changes) == ["input.allow_corpus_mismatch", "input.label_noise"]
    assert [k for k, v in changes.items() if train._blocks_resume(k, *v)] == ["input.label_noise"]
    # A key the defaults do not hold (an experiment config's own section) is a change.
    assert train._blocks_resume("data.vocab_num_posts", config_lib.ABSENT, 0)


def test_rejected_command_leaves_no_workdir_behind(inputs, tmp_path, capsys):
    new = tmp_path / "new"
    assert _main(inputs, new, 4, "--config.input.resampling=bogus") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "config.input.resampling must be one of natural, sqrt, uniform" in err and "got 'bogus'" in err
    assert not new.exists()


def test_rejected_command_on_an_existing_run_touches_nothing(inputs, run_copy, capsys):
    before = _snapshot(run_copy)
    assert _main(inputs, run_copy, 4, "--config.input.resampling=bogus") == EXIT_USAGE
    assert _snapshot(run_copy) == before


# --- 5. values out of range ---------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("--config.optim.base_lr=-1", "config.optim.base_lr must be a number > 0, got -1.0"),
    ("--config.input.max_labels=0", "config.input.max_labels must be an int >= 1, got 0"),
    ("--config.input.image_size=0", "config.input.image_size must be an int in [8, 4096], got 0"),
    ("--config.optim.momentum=1.5", "config.optim.momentum must be a number in [0, 1), got 1.5"),
    ("--config.checkpoint.on_corrupt=ignore", "config.checkpoint.on_corrupt must be one of fallback, fail"),
    ("--config.model.overrides=dict(width=3)", "model.overrides is a group; give a Python dict literal"),
])
def test_out_of_range_config_values_exit_2_naming_key_and_range(inputs, tmp_path, capsys, override, message):
    status = _main(inputs, tmp_path / "run", 4, override)
    err = capsys.readouterr().err
    assert status == EXIT_USAGE and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("train: error: ") and message in last, err
    assert not (tmp_path / "run").exists()


def test_workdir_that_is_a_file_exits_2_naming_it(inputs, tmp_path, capsys):
    path = tmp_path / "a_file"
    path.write_text("x")
    assert _main(inputs, path, 4) == EXIT_USAGE
    assert f"--workdir {path} is not a folder" in capsys.readouterr().err
    assert path.read_text() == "x"


def test_every_numeric_config_field_has_a_rule():
    def leaves(c, prefix=""):
        for k, v in c.items():
            if hasattr(v, "items") and k not in ("evals", "overrides"):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v
    for defaults, table in ((config_lib.pretrain_config(), validation.PRETRAIN),
                            (config_lib.evaluate_config(), validation.EVALUATE)):
        numeric = {k for k, v in leaves(defaults) if isinstance(v, (int, float)) and not isinstance(v, bool)}
        assert numeric - set(table) == set()
    # The defaults pass, except the batch size every experiment must set.
    assert validation.problems(config_lib.evaluate_config(), validation.EVALUATE) == []
    assert validation.problems(config_lib.pretrain_config(), validation.PRETRAIN) == [
        "input.global_batch_size must be an int >= 1, got 0"]


@pytest.mark.parametrize("argv, message", [
    (["vocab", "build", "--corpus", "c", "--mode", "topk", "--top-k", "-3", "--output", "v.json"],
     "argument --top-k/--k: must be an int >= 1, got -3"),
    (["models", "--summary", "--num-classes", "0"], "argument --num-classes: must be an int >= 1, got 0"),
])
def test_cli_options_out_of_range_exit_2(argv, message, capsys):
    main = {"vocab": vocab_cli.main, "models": models_cli.main}[argv[0]]
    with pytest.raises(SystemExit) as exit_info:
        main(argv[1:])
    assert exit_info.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_vocab_output_that_is_a_folder_exits_2(tmp_path, capsys):
    assert vocab_cli.main(["build", "--corpus", str(tmp_path), "--mode", "topk", "--top-k", "3",
                           "--output", str(tmp_path)]) == EXIT_USAGE
    assert f"--output {tmp_path} is a folder, not a file" in capsys.readouterr().err
