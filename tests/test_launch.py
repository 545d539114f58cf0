"""Launchers: the dry runs print runnable commands, and the local launcher runs processes."""

from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# launch/ holds scripts beside the package and is not installed: import it from the checkout.
sys.path.insert(0, str(REPO))

from launch import local, slurm, tpu  # noqa: E402


def _launcher(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"launch.{module}", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def _echo_python(tmp_path: Path) -> Path:
    """An interpreter stand-in that records the argv and the env it was started with."""
    out = tmp_path / "calls"
    out.mkdir()
    script = tmp_path / "echo_python"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/bash
        f="{out}/call_${{SLURM_PROCID:-x}}_$$"
        printf '%s\\n' "$@" > "$f.argv"
        echo "$XLA_FLAGS|$JAX_PLATFORMS|$JAX_CPU_COLLECTIVES_IMPLEMENTATION|$PWD" > "$f.env"
        """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _calls(tmp_path: Path) -> list[tuple[list[str], str]]:
    calls = []
    for argv in sorted((tmp_path / "calls").glob("*.argv")):
        env = argv.with_suffix(".env").read_text().strip()
        calls.append((argv.read_text().splitlines(), env))
    return calls


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# --- local -------------------------------------------------------------------------

def test_local_dry_run_prints_one_command_per_process():
    r = _launcher("local", "--config", "configs/tiny.py:runlocal", "--workdir", "runs/x",
                  "--num-processes", "3", "--devices-per-process", "2", "--port", "4321",
                  "--python", "python", "--dry-run", "--", "--config.total_steps=5")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        words = shlex.split(line)
        assert words[0] == "env"
        assert "XLA_FLAGS=--xla_force_host_platform_device_count=2" in words
        assert "JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo" in words
        argv = words[words.index("python"):]
        assert argv[:4] == ["python", "-m", "weaksup", "train"]
        assert _flag(argv, "--config") == "configs/tiny.py:runlocal"
        assert _flag(argv, "--workdir") == "runs/x"
        assert _flag(argv, "--coordinator") == "127.0.0.1:4321"
        assert _flag(argv, "--num-processes") == "3"
        assert _flag(argv, "--process-id") == str(i)
        assert argv[-1] == "--config.total_steps=5"


def test_local_single_process_has_no_distributed_flags():
    cmds = local.build_commands("c.py", "w", num_processes=1, devices_per_process=8,
                                base_env={"XLA_FLAGS": "--xla_force_host_platform_device_count=3 --foo"})
    assert len(cmds) == 1
    argv, env = cmds[0]
    assert "--coordinator" not in argv
    # the caller's other XLA flags survive; the device count is replaced, not duplicated
    assert env["XLA_FLAGS"].split() == ["--foo", "--xla_force_host_platform_device_count=8"]


def test_local_gpu_splits_devices_between_processes():
    cmds = local.build_commands("c.py", "w", num_processes=2, devices_per_process=4,
                                platform="gpu", port=1)
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in cmds] == ["0,1,2,3", "4,5,6,7"]


def test_local_rejects_bad_counts():
    r = _launcher("local", "--config", "c.py", "--workdir", "w", "--num-processes", "0",
                  "--dry-run")
    assert r.returncode == 2 and "--num-processes" in r.stderr


def test_local_runs_every_process_with_its_environment(tmp_path):
    py = _echo_python(tmp_path)
    r = _launcher("local", "--config", "c.py", "--workdir", "w", "--num-processes", "2",
                  "--devices-per-process", "4", "--python", str(py),
                  "--log-dir", str(tmp_path / "logs"))
    assert r.returncode == 0, r.stdout + r.stderr
    calls = _calls(tmp_path)
    assert sorted(_flag(a, "--process-id") for a, _ in calls) == ["0", "1"]
    assert len({_flag(a, "--coordinator") for a, _ in calls}) == 1
    for _, env in calls:
        assert env.startswith("--xla_force_host_platform_device_count=4|cpu|gloo|")
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["process_0.log", "process_1.log"]


def test_local_failure_of_one_process_stops_the_others():
    # The sleeper would outlive the test by far; finishing at all shows it was stopped.
    sleeper = [sys.executable, "-c", "import time; time.sleep(3600)"]
    failer = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
    t0 = time.monotonic()
    status = local.run([(sleeper, {}), (failer, {})], grace_s=5)
    assert status == 3
    assert time.monotonic() - t0 < 600


# --- slurm -------------------------------------------------------------------------

def _fake_slurm_bin(tmp_path: Path, nodes: list[str], tasks: int) -> Path:
    """`scontrol` and `srun` that behave like a SLURM allocation of `tasks` tasks."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "scontrol").write_text("#!/bin/bash\nprintf '%s\\n' " + " ".join(nodes) + "\n")
    (bin_ / "srun").write_text(textwrap.dedent(f"""\
        #!/bin/bash
        while [[ "$1" == --* ]]; do shift; done
        for i in $(seq 0 {tasks - 1}); do SLURM_PROCID=$i SLURM_NTASKS={tasks} "$@" || exit 1; done
        """))
    for f in bin_.iterdir():
        f.chmod(0o755)
    return bin_


@pytest.mark.parametrize("per,tasks", [("gpu", 8), ("node", 2)])
def test_slurm_script_runs_one_process_per_task(tmp_path, per, tasks):
    py = _echo_python(tmp_path)
    workdir = tmp_path / "run"
    r = _launcher("slurm", "--config", "configs/paper.py:x", "--workdir", str(workdir),
                  "--nodes", "2", "--gpus-per-node", "4", "--per", per, "--partition", "gpu",
                  "--python", str(py), "--dry-run", "--", "--config.seed=7")
    assert r.returncode == 0, r.stderr
    script = r.stdout
    assert script.startswith("#!/bin/bash\n")
    assert "#SBATCH --nodes=2" in script and "#SBATCH --partition=gpu" in script
    assert f"#SBATCH --ntasks-per-node={tasks // 2}" in script
    assert ("#SBATCH --gpus-per-task=1" in script) == (per == "gpu")
    assert not workdir.exists(), "a dry run must not write anything"
    # Run the script under a stand-in allocation to check every task's command line.
    (tmp_path / "job.sh").write_text(script)
    env = {**os.environ, "PATH": f"{_fake_slurm_bin(tmp_path, ['gpu-a7', 'gpu-a8'], tasks)}:"
           f"{os.environ['PATH']}", "SLURM_JOB_ID": "4097", "SLURM_NNODES": "2",
           "SLURM_JOB_NODELIST": "gpu-a[7-8]"}
    run = subprocess.run(["bash", str(tmp_path / "job.sh")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    calls = _calls(tmp_path)
    assert len(calls) == tasks
    assert sorted(int(_flag(a, "--process-id")) for a, _ in calls) == list(range(tasks))
    for argv, _ in calls:
        assert argv[:3] == ["-m", "weaksup", "train"]
        assert _flag(argv, "--coordinator") == "gpu-a7:61441"  # 4097 % 4096 + 61440
        assert _flag(argv, "--num-processes") == str(tasks)
        assert _flag(argv, "--workdir") == str(workdir)
        assert argv[-1] == "--config.seed=7"


def test_slurm_rejects_bad_layout():
    with pytest.raises(ValueError, match="--per"):
        slurm.sbatch_script("c.py", "w", nodes=1, gpus_per_node=8, per="socket")


# --- tpu ---------------------------------------------------------------------------

def _fake_metadata_curl(tmp_path: Path, worker: int, endpoints: str) -> Path:
    """A `curl` answering the two TPU VM metadata keys the workers read."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    curl = bin_ / "curl"
    curl.write_text(textwrap.dedent(f"""\
        #!/bin/bash
        case "${{@: -1}}" in
          */agent-worker-number) printf '%s' {worker} ;;
          */worker-network-endpoints) printf '%s' '{endpoints}' ;;
          *) exit 22 ;;
        esac
        """))
    curl.chmod(0o755)
    return bin_


@pytest.mark.parametrize("endpoints", ["t1k-w-0:0:10.0.0.5,t1k-w-1:1:10.0.0.6,t1k-w-2:2:10.0.0.7",
                                       "10.0.0.5,10.0.0.6,10.0.0.7"])
def test_tpu_dry_run_prints_a_gcloud_command_that_runs(tmp_path, endpoints):
    py = _echo_python(tmp_path)
    repo = tmp_path / "checkout"
    repo.mkdir()
    r = _launcher("tpu", "--name", "pod-v4-64", "--zone", "us-central2-b", "--project", "p1",
                  "--config", "configs/paper.py:x", "--workdir", "gs://bucket/run",
                  "--repo-dir", str(repo), "--setup", "export FOO=1", "--python", str(py),
                  "--dry-run", "--", "--config.seed=3")
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout.strip())
    assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod-v4-64"]
    assert _flag(argv, "--zone") == "us-central2-b"
    assert "--worker=all" in argv and _flag(argv, "--project") == "p1"
    remote = _flag(argv, "--command")
    # What worker 2 would run, run here against its metadata: it changes into the checkout
    # and starts the trainer with its rank, the slice's size and worker 0 as coordinator.
    env = {**os.environ, "PATH": f"{_fake_metadata_curl(tmp_path, 2, endpoints)}:{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-c", remote], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    [(call, cwd)] = _calls(tmp_path)
    assert call == ["-m", "weaksup", "train", "--config", "configs/paper.py:x", "--workdir",
                    "gs://bucket/run", "--coordinator", "10.0.0.5:8476", "--num-processes", "3",
                    "--process-id", "2", "--config.seed=3"]
    assert cwd.endswith(f"|{repo}")


def test_tpu_remote_command_keeps_the_trainer_exit_status_with_a_log_file(tmp_path):
    env = {**os.environ, "PATH": f"{_fake_metadata_curl(tmp_path, 0, 'h0')}:{os.environ['PATH']}"}
    log = tmp_path / "log"
    ok = tpu.remote_command("c.py", "w", python="echo", log_file=str(log))
    assert subprocess.run(["bash", "-c", ok], env=env).returncode == 0
    assert "--coordinator h0:8476 --num-processes 1 --process-id 0" in log.read_text()
    failing = tpu.remote_command("c.py", "w", python="false", log_file=str(log))
    assert subprocess.run(["bash", "-c", failing], env=env).returncode != 0


_MULTIPROCESS_CHECK = """
import argparse, sys
import jax, numpy as np
from jax.experimental import multihost_utils
from weaksup import distributed
p = argparse.ArgumentParser()
distributed.add_arguments(p)
args, _ = p.parse_known_args(sys.argv[1:])
assert distributed.initialize(distributed.from_namespace(args))
total = multihost_utils.process_allgather(np.array([jax.process_index() + 1]))
# one write: gloo's own threads print to the same stdout and would split a multi-part print
sys.stdout.write(f"devices {jax.local_device_count()} {jax.device_count()} sum {int(total.sum())}\\n")
"""


def test_local_environment_joins_processes_into_one_jax_job():
    """The launcher's per-process environment and flags give one multi-process JAX job
    (host devices from XLA_FLAGS, gloo collectives), as the trainer starts it."""
    port = local.free_port()
    commands = []
    for argv, env in local.build_commands("c.py", "w", num_processes=2, devices_per_process=3,
                                          port=port, python=sys.executable):
        flags = argv[argv.index("--coordinator"):]
        commands.append(([sys.executable, "-c", _MULTIPROCESS_CHECK, *flags], env))
    r = subprocess.run([sys.executable, "-c", "import sys; from launch import local; "
                        f"sys.exit(local.run({commands!r}))"], cwd=REPO, capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("devices 3 6 sum 3") == 2, r.stdout[-3000:]


@pytest.mark.parametrize("module,args", [
    ("local", ["--num-processes", "2", "--port", "1"]),
    ("slurm", ["--nodes", "1"]),
    ("tpu", ["--name", "t", "--zone", "z"]),
])
def test_launchers_start_evaluate_for_transfer_configs(module, args):
    r = _launcher(module, "--command", "evaluate", "--config", "configs/paper_transfer.py:target=cub",
                  "--workdir", "w", *args, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "-m weaksup evaluate --config configs/paper_transfer.py:target=cub" in r.stdout
    assert " train " not in r.stdout


def test_local_passes_sigterm_on_so_processes_can_save(tmp_path):
    """SIGTERM to the launcher reaches every process, which may take its time to exit."""
    saver = textwrap.dedent(f"""\
        import signal, sys, time
        def stop(*_):
            time.sleep(1.0)  # a checkpoint being written
            open(r"{tmp_path}/saved_" + sys.argv[1], "w").close()
            sys.exit(75)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(60)
        """)
    commands = [([sys.executable, "-c", saver, str(i)], {}) for i in range(2)]
    launcher = subprocess.Popen(
        [sys.executable, "-c", f"import sys; from launch import local; sys.exit(local.run({commands!r}, grace_s=30))"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = 0
    while ready < 2:
        line = launcher.stdout.readline()
        assert line, "launcher ended early"
        ready += "ready" in line
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=60) == 75
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_0", "saved_1"]
