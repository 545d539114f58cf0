"""What a command shows on the terminal: log records with a verbosity, and progress bars.

Modules log through `logging.getLogger(__name__)` (all below the `weaksup` logger). A
command's `setup(verbosity)` sends INFO and DEBUG records to stdout as plain lines (what a
command reports as it goes) and warnings and errors to stderr with their level; `-q`
keeps warnings and errors only, `-v` adds DEBUG. Results a command exists to print (a
table, JSON lines) go to stdout with `print`, whatever the verbosity.

`progress(...)` is a tqdm bar on stderr counting the real unit of the work (images, steps,
strengths, posts) with its rate and ETA. It stays silent under `-q`, when
`WEAKSUP_PROGRESS=0`, and redraws rarely when stderr is not a terminal (a log file gets a
line every 30 s, not every update).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

LOGGER = "weaksup"
T = TypeVar("T")


class _Terminal(logging.Handler):
    """Writes to sys.stdout or sys.stderr as they are at each record (so redirections and
    captured output in tests see every line), below or from WARNING respectively."""

    def __init__(self, stream: str):
        super().__init__(logging.WARNING if stream == "stderr" else logging.NOTSET)
        self.stream_name = stream

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream_name == "stdout" and record.levelno >= logging.WARNING:
            return
        try:
            stream = getattr(sys, self.stream_name)
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # a closed stream must not end the run
            self.handleError(record)


def setup(verbosity: int = 0) -> None:
    """Routes the package's log records for a command: -1 quiet, 0 normal, 1 verbose."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _Terminal):
            logger.removeHandler(handler)
    out, err = _Terminal("stdout"), _Terminal("stderr")
    out.setFormatter(logging.Formatter("%(message)s"))
    err.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(out)
    logger.addHandler(err)
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO)
    logger.propagate = False
    quiet_third_party(verbose=verbosity > 0)


def ensure_setup() -> None:
    """`setup(0)` unless a command line (or the caller) already configured the output."""
    # Only this module's handlers count: a test runner's capture handlers are not an output.
    if not any(isinstance(h, _Terminal) for h in logging.getLogger(LOGGER).handlers):
        setup(0)


def quiet_third_party(verbose: bool = False) -> None:
    """Silences libraries' messages that tell a user nothing (shown again with -v)."""
    if verbose:
        return
    # absl (Orbax, grain, TFDS) logs INFO chatter and deprecation notes through Python logging.
    logging.getLogger("absl").setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for module in ("orbax", "grain", "tensorflow_datasets", "jax._src.xla_bridge"):
        warnings.filterwarnings("ignore", module=module)


def progress_enabled() -> bool:
    """Whether progress bars are drawn (not under -q, not with WEAKSUP_PROGRESS=0)."""
    return os.environ.get("WEAKSUP_PROGRESS", "1") != "0" and logging.getLogger(LOGGER).getEffectiveLevel() <= logging.INFO


def progress(iterable: Iterable[T] | None = None, *, total: float | None = None, desc: str = "",
             unit: str = "it", enabled: bool = True, **kwargs: Any) -> tqdm:
    """A progress bar on stderr with rate and ETA (see the module docstring for when it is silent;
    `enabled=False` silences it too)."""
    tty = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=not (enabled and progress_enabled()), mininterval=0.5 if tty else 30.0, leave=tty,
                **kwargs)
