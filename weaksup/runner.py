"""The command runner of `train`, `evaluate` and `demo`: arguments, config, processes, exit status.

    python -m weaksup COMMAND --config FILE.py[:arg] --workdir DIR [--config.key=value ...]
                              [--coordinator HOST:PORT --num-processes N --process-id I]

`run_config_command` parses these, loads and locks the config (overrides applied), starts
multi-process JAX when asked (or detected), calls the command's body and maps what
happens to one exit-status convention (`weaksup.errors`): 0 done; 2 bad usage, config or
input (one line on stderr naming the file or key, never a traceback); 1 the run failed;
75 stopped by a signal after saving (the body returns it; run the same command again).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import ml_collections

from weaksup import config as config_lib
from weaksup import distributed
from weaksup.errors import EXIT_FAILED, EXIT_USAGE, RunFailed, UsageError

Body = Callable[[ml_collections.ConfigDict, argparse.Namespace], int]


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
    parser = argparse.ArgumentParser(prog=f"python -m weaksup {command}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=config_default is None, default=config_default,
                        help="configs/NAME.py[:key=value,...]" + (f" (default {config_default})" if config_default else ""))
    parser.add_argument("--workdir", required=workdir_default is None, default=workdir_default,
                        help=workdir_help + (f" (default {workdir_default})" if workdir_default else ""))
    if add_arguments is not None:
        add_arguments(parser)
    distributed.add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    bad = [a for a in rest if not a.startswith("--config.")]
    if bad:
        parser.error(f"unrecognised arguments: {' '.join(bad)}")  # exits with status 2
    try:
        config = config_lib.load_config(args.config, rest)
        distributed.initialize(distributed.from_namespace(args))
        return int(body(config, args))
    except UsageError as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailed as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_FAILED
