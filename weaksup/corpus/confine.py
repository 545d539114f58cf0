"""Opening paths that user input names, without being led astray.

Corpus sources and the corpus reader open files whose names come from the input (a
manifest row, a download folder's listing, a corpus manifest). Such a file is read only
when it is a regular file inside its root folder: a symlink that leads out of the root is
`unsafe_path`, and a FIFO, device, socket or folder is `not_a_file`. Both are decided by
`stat` before anything is opened, so `/dev/zero` is never read and a FIFO never blocks;
the descriptor is opened non-blocking and checked again with `fstat`, so a file swapped
in between cannot slip through either.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFile(ValueError):
    """A path that must not be opened; `reason` is the stable skip key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def real_root(root: str | os.PathLike[str]) -> Path:
    """The folder paths are confined to, with its own symlinks resolved (a file's folder for a file)."""
    p = Path(os.path.realpath(root))
    return p if p.is_dir() else p.parent


def check_file(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> os.stat_result:
    """Stat of `path` if it is a regular file inside `root` (when given); never opens it.

    Raises UnsafeFile("unsafe_path") for a path whose real location is outside `root`,
    UnsafeFile("not_a_file") for anything but a regular file, FileNotFoundError when it
    does not exist (a dangling symlink included).
    """
    if root is not None:
        base = real_root(root)
        real = Path(os.path.realpath(path))
        if real != base and base not in real.parents:
            raise UnsafeFile("unsafe_path", f"{path}: leads outside {base} (to {real})")
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile("not_a_file", f"{path}: {_kind(st.st_mode)}")
    return st


def read_file(path: str | os.PathLike[str], limit: int, root: str | os.PathLike[str] | None = None) -> bytes:
    """The bytes of a regular file inside `root` (see `check_file`), refusing (ValueError) more than `limit`."""
    st = check_file(path, root)
    if st.st_size > limit:
        raise ValueError(f"{st.st_size} bytes > limit {limit}")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeFile("not_a_file", f"{path}: {_kind(mode)}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"more than {limit} bytes")
    return data
