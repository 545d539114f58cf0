"""Multi-process start-up: `jax.distributed.initialize` from flags or the environment.

On SLURM and TPU pods JAX finds the coordinator itself; elsewhere (and on one machine for
tests) pass --coordinator HOST:PORT --num-processes N --process-id I, or set
WEAKSUP_COORDINATOR / WEAKSUP_NUM_PROCESSES / WEAKSUP_PROCESS_ID. On CPU the cross-process
collectives use gloo.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import jax

from weaksup.config import ConfigError


@dataclass(frozen=True)
class DistributedArgs:
    """Where to find the coordinator; all None means "single process or auto-detect"."""

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --coordinator / --num-processes / --process-id to a command's parser."""
    group = parser.add_argument_group("multi-process")
    group.add_argument("--coordinator", help="HOST:PORT of process 0 (explicit multi-process start)")
    group.add_argument("--num-processes", type=int, help="total number of processes")
    group.add_argument("--process-id", type=int, help="this process's index, 0-based")


def from_namespace(ns: argparse.Namespace) -> DistributedArgs:
    """Flags first, then WEAKSUP_* environment variables."""
    env = os.environ

    def pick(value, name, cast):
        if value is not None:
            return value
        raw = env.get(name)
        return cast(raw) if raw not in (None, "") else None

    return DistributedArgs(
        coordinator=pick(getattr(ns, "coordinator", None), "WEAKSUP_COORDINATOR", str),
        num_processes=pick(getattr(ns, "num_processes", None), "WEAKSUP_NUM_PROCESSES", int),
        process_id=pick(getattr(ns, "process_id", None), "WEAKSUP_PROCESS_ID", int),
    )


def _cluster_detected() -> bool:
    env = os.environ
    slurm = "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1
    tpu = "TPU_WORKER_HOSTNAMES" in env or "MEGASCALE_COORDINATOR_ADDRESS" in env
    return slurm or tpu


_initialized = False


def initialize(args: DistributedArgs | None = None) -> bool:
    """Starts jax.distributed when asked or when a cluster is detected; True if started.

    Must run before anything touches a JAX backend. Idempotent.
    """
    global _initialized
    if _initialized:
        return True
    args = args or DistributedArgs()
    explicit = args.coordinator is not None or args.num_processes is not None or args.process_id is not None
    if explicit:
        missing = [n for n, v in (("--coordinator", args.coordinator), ("--num-processes", args.num_processes),
                                  ("--process-id", args.process_id)) if v is None]
        if missing:
            raise ConfigError(f"multi-process start needs {', '.join(missing)} as well")
        if not 0 <= args.process_id < args.num_processes:
            raise ConfigError(f"--process-id {args.process_id} is outside 0..{args.num_processes - 1}")
        if args.num_processes == 1:
            return False
    elif not _cluster_detected():
        return False
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "") == "cpu":
        # CPU processes need a collectives backend to talk to each other.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if explicit:
        jax.distributed.initialize(
            coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
        )
    else:
        jax.distributed.initialize()
    _initialized = True
    return True
