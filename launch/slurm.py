"""Writes (and submits) an sbatch script that runs the trainer on a SLURM GPU cluster.

    python -m launch.slurm --config configs/paper_pretrain.py:model=32x8d,vocab=in1k \
        --workdir /shared/runs/r101 --nodes 42 --gpus-per-node 8 --per gpu \
        --partition gpu --time 72:00:00 [--dry-run] [-- --config.seed=1]

`srun` starts one process per GPU (`--per gpu`: JAX sees one GPU per process) or one per
node (`--per node`: each process drives all the node's GPUs). Every process joins
`jax.distributed` with the coordinator on the job's first node and its rank from the
SLURM environment (`$SLURM_PROCID` of `$SLURM_NTASKS`). `--dry-run` prints the script and
the sbatch command; otherwise the script is written to WORKDIR/launch/ and submitted.
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

# Shell words that must expand inside each task, so they are double-quoted, not escaped.
_TASK_FLAGS = ["--coordinator", '"$WEAKSUP_COORDINATOR"', "--num-processes", '"$SLURM_NTASKS"',
               "--process-id", '"$SLURM_PROCID"']


def sbatch_script(
    config: str,
    workdir: str,
    nodes: int,
    gpus_per_node: int,
    per: str = "gpu",
    partition: str | None = None,
    account: str | None = None,
    time: str | None = None,
    job_name: str = "weaksup",
    cpus_per_task: int | None = None,
    repo_dir: str | None = None,
    setup: Sequence[str] = (),
    python: str = "python",
    extra: Sequence[str] = (),
    port: int | None = None,
    command: str = "train",
) -> str:
    """The sbatch script text for one multi-node pretraining job."""
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError(f"--nodes and --gpus-per-node must be >= 1 (got {nodes}, {gpus_per_node})")
    if per not in ("gpu", "node"):
        raise ValueError(f"--per must be 'gpu' or 'node', got {per!r}")
    tasks_per_node = gpus_per_node if per == "gpu" else 1
    log = f"{workdir}/launch/slurm-%j.out"
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}", f"#SBATCH --nodes={nodes}",
             f"#SBATCH --ntasks-per-node={tasks_per_node}"]
    if per == "gpu":
        # One GPU bound to each task, so every process sees exactly its own device.
        lines.append("#SBATCH --gpus-per-task=1")
    else:
        lines.append(f"#SBATCH --gpus-per-node={gpus_per_node}")
    if cpus_per_task:
        lines.append(f"#SBATCH --cpus-per-task={cpus_per_task}")
    for flag, value in (("partition", partition), ("account", account), ("time", time)):
        if value:
            lines.append(f"#SBATCH --{flag}={value}")
    lines += [f"#SBATCH --output={log}", "#SBATCH --open-mode=append",
              # Preemption: SIGTERM reaches the trainer 120 s early so it can checkpoint.
              "#SBATCH --signal=TERM@120", "", "set -euo pipefail"]
    if repo_dir:
        lines.append(f"cd {shlex.quote(repo_dir)}")
    lines += list(setup)
    port_expr = str(port) if port else "$((SLURM_JOB_ID % 4096 + 61440))"
    lines += [
        "",
        "# jax.distributed: process 0 runs on the first node of the allocation. (awk reads",
        "# all input: `head -n 1` would SIGPIPE scontrol and fail under pipefail.)",
        'head_node="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk \'NR == 1\')"',
        f'export WEAKSUP_COORDINATOR="$head_node:{port_expr}"',
        f'echo "weaksup: $SLURM_NNODES nodes x {tasks_per_node} tasks, '
        f'coordinator $WEAKSUP_COORDINATOR"',
        "",
    ]
    train = shlex.join(train_argv(config, workdir, (), python, command))
    passthrough = (" " + shlex.join(list(extra))) if extra else ""
    task_cmd = f"exec {train} {' '.join(_TASK_FLAGS)}{passthrough}"
    lines.append(f"srun --kill-on-bad-exit=1 bash -c {shlex.quote(task_cmd)}")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.slurm",
        description="Write and submit an sbatch script running `python -m weaksup train` "
                    "on a SLURM GPU cluster. Arguments after `--` go to the trainer.")
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True, help="on storage every node can reach")
    add_command_argument(p)
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--per", choices=("gpu", "node"), default="gpu",
                   help="one process per GPU (default) or one per node")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--time", help="wall-clock limit, e.g. 72:00:00")
    p.add_argument("--job-name", default="weaksup")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--repo-dir", help="checkout to cd into on the nodes (default: none)")
    p.add_argument("--setup", action="append", default=[],
                   help="shell line run before srun, e.g. 'source .venv/bin/activate' (repeatable)")
    p.add_argument("--python", default="python")
    p.add_argument("--port", type=int, help="coordinator port (default: derived from the job id)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the script and the sbatch command; write and submit nothing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns sbatch's exit status (0 for a dry run)."""
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(own)
    try:
        script = sbatch_script(args.config, args.workdir, args.nodes, args.gpus_per_node,
                               args.per, args.partition, args.account, args.time,
                               args.job_name, args.cpus_per_task, args.repo_dir, args.setup,
                               args.python, extra, args.port, args.command)
    except ValueError as e:
        print(f"launch.slurm: {e}", file=sys.stderr)
        return 2
    path = Path(args.workdir) / "launch" / f"{args.job_name}.sbatch"
    submit = ["sbatch", str(path)]
    if args.dry_run:
        print(script, end="")
        print(f"# would be written to {path} and submitted with: {shlex.join(submit)}")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".sbatch.tmp")
    tmp.write_text(script)
    tmp.replace(path)
    try:
        return subprocess.run(submit, check=False).returncode
    except FileNotFoundError:
        print(f"launch.slurm: sbatch not found; the script is at {path}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
