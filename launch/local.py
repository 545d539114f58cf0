"""Runs the trainer as one or several processes on this machine.

    python -m launch.local --config configs/tiny.py:runlocal --workdir runs/x \
        --num-processes 2 --devices-per-process 4 [--dry-run] [-- --config.total_steps=5]

With N > 1 processes each gets `--coordinator 127.0.0.1:PORT --num-processes N
--process-id I`, so `jax.distributed` joins them into one job. On CPU each process sees
`--devices-per-process` host devices (XLA_FLAGS) and uses gloo collectives; on GPU the
machine's GPUs are split between the processes with CUDA_VISIBLE_DEVICES. Output of every
process is echoed prefixed with `[pI]`; if one process fails the others are stopped, and
SIGTERM/SIGINT to the launcher reaches every process as SIGTERM (the trainer saves, then
exits with 75).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `launch` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from launch.command import (add_command_argument, distributed_argv, shell_line,
                            split_passthrough, train_argv)

_DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S+")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for the jax.distributed coordinator)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def process_env(
    process_id: int,
    num_processes: int,
    platform: str,
    devices_per_process: int,
    base_env: Mapping[str, str],
) -> dict[str, str]:
    """The environment variables a launcher sets for one process (not the inherited ones)."""
    env: dict[str, str] = {}
    if platform == "cpu":
        # Keep the caller's other XLA flags but give each process its own device count.
        flags = _DEVICE_COUNT_FLAG.sub("", base_env.get("XLA_FLAGS", "")).split()
        flags.append(f"--xla_force_host_platform_device_count={devices_per_process}")
        env["XLA_FLAGS"] = " ".join(flags)
        env["JAX_PLATFORMS"] = "cpu"
        if num_processes > 1:
            env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
    elif platform == "gpu":
        first = process_id * devices_per_process
        env["CUDA_VISIBLE_DEVICES"] = ",".join(
            str(d) for d in range(first, first + devices_per_process))
    else:
        raise ValueError(f"unknown platform {platform!r} (expected cpu or gpu)")
    return env


def build_commands(
    config: str,
    workdir: str,
    num_processes: int = 1,
    devices_per_process: int = 1,
    platform: str = "cpu",
    port: int = 0,
    python: str = "python",
    extra: Sequence[str] = (),
    base_env: Mapping[str, str] | None = None,
    command: str = "train",
) -> list[tuple[list[str], dict[str, str]]]:
    """(argv, env overrides) for each process; a single process gets no distributed flags."""
    if num_processes < 1:
        raise ValueError(f"--num-processes must be >= 1, got {num_processes}")
    if devices_per_process < 1:
        raise ValueError(f"--devices-per-process must be >= 1, got {devices_per_process}")
    base_env = os.environ if base_env is None else base_env
    base = train_argv(config, workdir, (), python, command)
    out = []
    for i in range(num_processes):
        argv = list(base)
        if num_processes > 1:
            argv += distributed_argv(f"127.0.0.1:{port}", num_processes, i)
        argv += extra
        out.append((argv, process_env(i, num_processes, platform, devices_per_process, base_env)))
    return out


def _pump(stream, prefix: str, log) -> None:
    for line in iter(stream.readline, ""):
        sys.stdout.write(prefix + line)
        sys.stdout.flush()
        if log is not None:
            log.write(line)
            log.flush()
    stream.close()


def run(
    commands: Sequence[tuple[list[str], dict[str, str]]],
    log_dir: Path | None = None,
    grace_s: float = 120.0,
) -> int:
    """Starts every process, echoes their output, and returns the job's exit status.

    The first process to fail stops the others, since a multi-process JAX job cannot
    finish once one member is gone. SIGTERM or SIGINT to the launcher is passed on as
    SIGTERM, so every trainer saves a checkpoint and exits (status 75, "resume me").
    Stopped processes get `grace_s` to finish saving before they are killed.
    """
    procs: list[subprocess.Popen] = []
    threads: list[threading.Thread] = []
    logs = []
    multi = len(commands) > 1
    received: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, _frame: received.append(signum))
    status = 0
    try:
        for i, (argv, env) in enumerate(commands):
            log = None
            if log_dir is not None:
                log_dir.mkdir(parents=True, exist_ok=True)
                log = open(log_dir / f"process_{i}.log", "w", encoding="utf-8")
                logs.append(log)
            p = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, bufsize=1)
            procs.append(p)
            t = threading.Thread(target=_pump, args=(p.stdout, f"[p{i}] " if multi else "", log),
                                 daemon=True)
            t.start()
            threads.append(t)
        while True:
            if received:
                print(f"launch.local: got {signal.Signals(received[0]).name}; asking every "
                      "process to save and stop", file=sys.stderr)
                _stop(procs, grace_s)
                codes = [p.returncode for p in procs]
                status = next((c for c in codes if c != 0), 0)
                break
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, status = failed[0]
                print(f"launch.local: process {i} exited with status {status}; "
                      f"stopping the others", file=sys.stderr)
                break
            if all(c == 0 for c in codes):
                break
            time.sleep(0.2)
    finally:
        _stop(procs, grace_s)
        for t in threads:
            t.join(timeout=5)
        for log in logs:
            log.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _stop(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM to every live process, then SIGKILL to those still alive after `grace_s`."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in live:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.local",
        description="Run `python -m weaksup train` as one or several processes on this "
                    "machine. Arguments after `--` go to the trainer verbatim.")
    p.add_argument("--config", required=True, help="config spec, e.g. configs/tiny.py:runlocal")
    p.add_argument("--workdir", required=True)
    add_command_argument(p)
    p.add_argument("--num-processes", type=int, default=1)
    p.add_argument("--devices-per-process", type=int, default=1,
                   help="CPU: host devices per process (XLA_FLAGS); GPU: GPUs per process")
    p.add_argument("--platform", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--port", type=int, default=0, help="coordinator port (0: pick a free one)")
    p.add_argument("--python", default=sys.executable, help="python interpreter to run")
    p.add_argument("--grace", type=float, default=120.0,
                   help="seconds a stopped process gets to save a checkpoint before SIGKILL")
    p.add_argument("--log-dir", type=Path, default=None,
                   help="also write each process's output to LOG_DIR/process_I.log")
    p.add_argument("--dry-run", action="store_true",
                   help="print the command of every process and run nothing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the job's exit status."""
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(own)
    port = args.port
    if args.num_processes > 1 and port == 0:
        port = free_port()
    try:
        commands = build_commands(args.config, args.workdir, args.num_processes,
                                  args.devices_per_process, args.platform, port,
                                  args.python, extra, command=args.command)
    except ValueError as e:
        print(f"launch.local: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        for argv_i, env in commands:
            print(shell_line(argv_i, env))
        return 0
    return run(commands, args.log_dir, args.grace)


if __name__ == "__main__":
    sys.exit(main())
