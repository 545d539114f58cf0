"""The command runner of `train`, `evaluate` and `demo`: arguments, config, processes, exit status.

    python -m weaksup COMMAND --config FILE.py[:arg] --workdir DIR [--config.key=value ...]
                              [--coordinator HOST:PORT --num-processes N --process-id I]

`run_config_command` parses these, loads and locks the config (overrides applied), checks
that --workdir can be a folder this process writes (creating nothing), starts
multi-process JAX when asked (or detected), calls the command's body and maps what
happens to one exit-status convention (`weaksup.errors`): 0 done; 2 bad usage, config or
input (one line on stderr naming the file or key, never a traceback); 1 the run failed;
74 output could not be written (disk full, permission); 75 stopped by a signal after
saving (the body returns it; run the same command again).

`hold_workdir` is how a command's body locks its workdir for the run (`weaksup.workdir_lock`):
process 0 takes the lock, the other processes start once it holds it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from weaksup import config as config_lib
from weaksup import console, distributed, validation, workdir_lock
from weaksup.errors import EXIT_FAILED, EXIT_IO_ERROR, EXIT_USAGE, RunFailed, StorageFailed, UsageError

Body = Callable[[ml_collections.ConfigDict, argparse.Namespace], int]


OVERRIDES_HELP = """config overrides (after the options, any number):
  --config.KEY=VALUE or --config.KEY VALUE   set one field of the loaded config, e.g.
                                             --config.optim.base_lr=0.05 --config.input.resampling natural
  VALUE is a Python literal of the field's type (strings may go unquoted); a group takes a dict.
  Unknown keys and values outside a field's allowed range are refused (exit status 2)."""


def join_override_values(args: list[str]) -> list[str]:
    """['--config.a', 'v', '--config.b=w'] -> ['--config.a=v', '--config.b=w']."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--config.") and "=" not in arg and i + 1 < len(args) and not args[i + 1].startswith("--"):
            out.append(f"{arg}={args[i + 1]}")
            i += 2
        else:
            out.append(arg)
            i += 1
    return out


def run_config_command(
    command: str,
    description: str,
    argv: list[str],
    body: Body,
    *,
    config_default: str | None = None,
    workdir_default: str | None = None,
    workdir_help: str = "run directory",
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Runs `body(config, args)` for `python -m weaksup COMMAND`; returns the exit status."""
    console.ensure_setup()
    parser = argparse.ArgumentParser(prog=f"weaksup {command}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=OVERRIDES_HELP)
    parser.add_argument("--config", required=config_default is None, default=config_default,
                        help="a config file or a shipped config's name, with its argument: configs/NAME.py[:ARG] "
                        "or NAME[:ARG], e.g. tiny:runlocal" + (f" (default {config_default})" if config_default else ""))
    parser.add_argument("--workdir", required=workdir_default is None, default=workdir_default,
                        help=workdir_help + (f" (default {workdir_default})" if workdir_default else ""))
    if add_arguments is not None:
        add_arguments(parser)
    distributed.add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    rest = join_override_values(rest)
    bad = [a for a in rest if not a.startswith("--config.")]
    if bad:
        parser.error(f"unrecognised arguments: {' '.join(bad)}")  # exits with status 2
    try:
        config = config_lib.load_config(args.config, rest)
        validation.writable_folder(args.workdir, "--workdir")
        with deterministic_gpu_ops(bool(config.get("deterministic", True))):
            distributed.initialize(distributed.from_namespace(args))
            return int(body(config, args))
    except UsageError as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except StorageFailed as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_IO_ERROR
    except RunFailed as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_FAILED


_DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"


@contextlib.contextmanager
def deterministic_gpu_ops(enabled: bool) -> Iterator[None]:
    """XLA's deterministic-GPU flag in XLA_FLAGS while the block runs (`config.deterministic`,
    see weaksup.config); the variable is restored afterwards.

    XLA reads its flags once, when JAX's backend starts, so this acts where the block starts
    JAX (every command line); a flag the user set either way is kept. Restoring the
    variable leaves an in-process caller's environment (a notebook, a test) as it was.
    """
    before = os.environ.get("XLA_FLAGS")
    if enabled and "xla_gpu_deterministic_ops" not in (before or ""):
        os.environ["XLA_FLAGS"] = f"{before or ''} {_DETERMINISTIC_FLAG}".strip()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = before


@contextlib.contextmanager
def hold_workdir(workdir: str | os.PathLike[str], what: str) -> Iterator[Path]:
    """Holds the run's lock on `workdir` (created if missing) for the block; yields it resolved.

    Process 0 takes the lock before any process writes there; the others wait for its
    go-ahead and stop with it when the folder is held elsewhere (WorkdirBusy, exit 2). A
    folder this call created is removed again when the block fails with a usage error
    before writing anything, so a rejected command leaves nothing behind.
    """
    workdir = validation.writable_folder(workdir, "--workdir")
    created = not workdir.exists()
    error: UsageError | None = None
    if jax.process_index() == 0:
        try:
            workdir_lock.acquire(workdir, what)
        except UsageError as e:
            error = e
    if jax.process_count() > 1:
        go = int(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
        if not go and error is None:
            error = workdir_lock.WorkdirBusy(f"{workdir}: process 0 could not lock it (its message says why)")
    if error is not None:
        raise error
    rejected = False
    try:
        yield workdir
    except UsageError:
        rejected = True
        raise
    finally:
        if jax.process_index() == 0:
            workdir_lock.release(workdir)
            if rejected and created and workdir.is_dir() and not any(workdir.iterdir()):
                workdir.rmdir()
