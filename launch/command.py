"""The command line that every launcher starts, one per process.

Launchers differ in how they start processes; they all start the same
`python -m weaksup train --config C --workdir W [overrides] [distributed flags]`
(or `evaluate`, which takes the same arguments, for transfer runs).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

# `python -m weaksup` commands that take --config/--workdir and the distributed flags.
COMMANDS = ("train", "evaluate")


def add_command_argument(parser) -> None:
    """The launchers' `--command` option (train or evaluate)."""
    parser.add_argument("--command", choices=COMMANDS, default="train",
                        help="weaksup command to run (default train; evaluate for transfer configs)")


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Splits `argv` at the first `--`: (launcher args, args passed to the trainer)."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def train_argv(
    config: str,
    workdir: str,
    extra: Sequence[str] = (),
    python: str = "python",
    command: str = "train",
) -> list[str]:
    """`python -m weaksup COMMAND --config CONFIG --workdir WORKDIR EXTRA...` as a list.

    `extra` holds trainer arguments passed through verbatim, e.g. config overrides
    like `--config.total_steps=10`.
    """
    if not config:
        raise ValueError("a --config is required (e.g. configs/tiny.py:runlocal)")
    if not workdir:
        raise ValueError("a --workdir is required")
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r} (expected one of {', '.join(COMMANDS)})")
    return [*shlex.split(python), "-m", "weaksup", command, "--config", config,
            "--workdir", workdir, *extra]


def distributed_argv(coordinator: str, num_processes: int | str, process_id: int | str) -> list[str]:
    """The trainer's multi-process flags; values may be shell expressions such as
    `$SLURM_PROCID` when the launcher renders them into a script."""
    return ["--coordinator", str(coordinator), "--num-processes", str(num_processes),
            "--process-id", str(process_id)]


def shell_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """One copy-pastable shell line: `env K=V ... argv...` (quoted)."""
    words = [f"{k}={v}" for k, v in (env or {}).items()]
    line = shlex.join(list(argv))
    if words:
        return "env " + " ".join(shlex.quote(w) for w in words) + " " + line
    return line
