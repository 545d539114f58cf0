"""Runs the trainer on every worker of a Cloud TPU pod slice.

    python -m launch.tpu --name my-v4-128 --zone us-central2-b \
        --config configs/paper_pretrain.py:model=32x8d,vocab=in1k --workdir gs://bucket/runs/r101 \
        --repo-dir '~/weaksup' [--dry-run] [-- --config.seed=1]

One `gcloud compute tpus tpu-vm ssh NAME --zone Z --worker=all --command CMD` starts the
same command on all hosts of the slice. Each worker reads its rank and the slice's worker
list from the TPU VM metadata server (as `jax.distributed` itself does on Cloud TPU) and
passes them as the trainer's `--coordinator / --num-processes / --process-id`, so the job
does not depend on the trainer's cluster auto-detection. `--dry-run` prints the gcloud
command and runs nothing.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `launch` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from launch.command import add_command_argument, split_passthrough, train_argv

# jax.distributed's default coordinator port on Cloud TPU.
COORDINATOR_PORT = 8476

# Worker rank and worker list from the metadata server. `worker-network-endpoints` is
# either "host,host,..." or "name:id:ip,..." (the same two formats JAX parses); the list is
# ordered by worker number, so its first entry is worker 0, the coordinator.
_METADATA_SNIPPET = (
    "md=http://metadata.google.internal/computeMetadata/v1/instance/attributes; "
    "wid=$(curl -sf -H 'Metadata-Flavor: Google' $md/agent-worker-number); "
    "eps=$(curl -sf -H 'Metadata-Flavor: Google' $md/worker-network-endpoints); "
    "first=${eps%%,*}; first=${first##*:}; "
    "nproc=$(printf '%s' \"$eps\" | tr ',' '\\n' | grep -c .)"
)


def remote_command(
    config: str,
    workdir: str,
    repo_dir: str | None = None,
    setup: Sequence[str] = (),
    python: str = "python3",
    extra: Sequence[str] = (),
    log_file: str | None = None,
    coordinator_port: int = COORDINATOR_PORT,
    command: str = "train",
) -> str:
    """The shell command every TPU worker runs (bash)."""
    parts = ["set -e"]
    if repo_dir:
        # `~` must expand on the worker, so it is left unquoted.
        parts.append("cd " + (repo_dir if repo_dir.startswith("~") and " " not in repo_dir
                              else shlex.quote(repo_dir)))
    parts += list(setup)
    parts.append(_METADATA_SNIPPET)
    train = shlex.join(train_argv(config, workdir, (), python, command))
    train += (f' --coordinator "$first:{int(coordinator_port)}" --num-processes "$nproc"'
              ' --process-id "$wid"')
    if extra:
        train += " " + shlex.join(list(extra))
    if log_file:
        train += f" 2>&1 | tee -a {shlex.quote(log_file)}; exit ${{PIPESTATUS[0]}}"
    parts.append(train)
    return "; ".join(parts)


def gcloud_argv(
    name: str,
    zone: str,
    command: str,
    project: str | None = None,
    worker: str = "all",
    internal_ip: bool = False,
) -> list[str]:
    """`gcloud compute tpus tpu-vm ssh NAME --zone Z --worker=all --command CMD`."""
    if not name or not zone:
        raise ValueError("--name and --zone are required")
    argv = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", name, "--zone", zone,
            f"--worker={worker}"]
    if project:
        argv += ["--project", project]
    if internal_ip:
        argv.append("--internal-ip")
    return argv + ["--command", command]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.tpu",
        description="Run `python -m weaksup train` on all workers of a TPU VM pod slice "
                    "via gcloud ssh. Arguments after `--` go to the trainer.")
    p.add_argument("--name", required=True, help="TPU VM name")
    p.add_argument("--zone", required=True)
    p.add_argument("--project")
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True, help="shared storage, e.g. gs://bucket/run")
    add_command_argument(p)
    p.add_argument("--repo-dir", help="checkout on the workers to cd into, e.g. ~/weaksup")
    p.add_argument("--setup", action="append", default=[],
                   help="shell line run on each worker before training (repeatable)")
    p.add_argument("--python", default="python3")
    p.add_argument("--log-file", help="also tee each worker's output to this file on the worker")
    p.add_argument("--worker", default="all")
    p.add_argument("--coordinator-port", type=int, default=COORDINATOR_PORT)
    p.add_argument("--internal-ip", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the gcloud command only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns gcloud's exit status (0 for a dry run)."""
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(own)
    try:
        cmd = remote_command(args.config, args.workdir, args.repo_dir, args.setup,
                             args.python, extra, args.log_file, args.coordinator_port, args.command)
        argv_ = gcloud_argv(args.name, args.zone, cmd, args.project, args.worker,
                            args.internal_ip)
    except ValueError as e:
        print(f"launch.tpu: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(shlex.join(argv_))
        return 0
    try:
        return subprocess.run(argv_, check=False).returncode
    except FileNotFoundError:
        print("launch.tpu: gcloud not found (install the Google Cloud SDK)", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
