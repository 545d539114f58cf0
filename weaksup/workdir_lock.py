"""One writer per folder: an exclusive lock file held for a whole run.

    with workdir_lock.hold(workdir, what="train"):
        ...  # only this process writes under workdir

The lock is the file `FOLDER/.weaksup-lock`, created atomically (a hard link of a fully
written temporary file, which fails if the name exists), holding the holder's host, pid,
start time and command as JSON. That works on a file system shared by several hosts,
where `fcntl` locks are not reliable. A second process finds the file and stops with
`WorkdirBusy` (exit status 2) naming the holder. A lock left by a process that died on
the SAME host (its pid is gone, or belongs to a process started after the lock) is taken
over with a message on stderr; a lock held from another host cannot be checked from here,
so the message says which file to remove once that process is known to be gone.

A multi-process run takes one lock: process 0 holds it (see `weaksup.train`), the others
wait for its go-ahead. Holding is re-entrant within a process (a nested `hold` of the same
folder is a no-op), so a command may lock a folder its library calls lock again.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from weaksup.atomic import TMP_PREFIX
from weaksup.errors import UsageError

log = logging.getLogger(__name__)

LOCK_NAME = ".weaksup-lock"

# Folders this process holds: resolved path -> (token, nesting depth).
_held: dict[Path, tuple[str, int]] = {}


class WorkdirBusy(UsageError):
    """The folder is locked by another live process (or one this host cannot check)."""


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of `folder`."""
    return Path(folder).resolve() / LOCK_NAME


def holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The holder recorded in `folder`'s lock file ({host, pid, started, what, token}), or None."""
    try:
        return json.loads(lock_path(folder).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written by a fallback writer, or damaged: held by someone unknown


def describe(info: dict[str, Any] | None) -> str:
    """'train (host H, pid P, started T)' for a message."""
    if not info:
        return "an unknown process"
    return (f"{info.get('what', '?')} (host {info.get('host', '?')}, pid {info.get('pid', '?')}, "
            f"started {info.get('started', '?')})")


def _process_start(pid: int) -> float | None:
    """The start time (epoch seconds) of a live local process, where /proc tells it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime, field 22 of proc(5), in clock ticks since boot
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _alive(info: dict[str, Any]) -> bool:
    """Whether the local process recorded in `info` still runs (and is the same process)."""
    try:
        pid = int(info["pid"])
        os.kill(pid, 0)
    except (KeyError, TypeError, ValueError):
        return True  # cannot tell: treat as held
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    started = _process_start(pid)
    try:
        locked_at = datetime.datetime.fromisoformat(info["started"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return True
    # A pid reused by a process started after the lock was taken is not the holder.
    return started is None or started <= locked_at + 2.0


def _create(path: Path, info: dict[str, Any]) -> bool:
    """Creates the lock file with `info` atomically; False if it already exists."""
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")
    tmp.write_text(json.dumps(info) + "\n")
    try:
        os.link(tmp, path)  # atomic and exclusive, also on NFS
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        # File systems without hard links: exclusive create, then write.
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(info) + "\n")
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, stale: dict[str, Any], info: dict[str, Any]) -> bool:
    """Replaces a dead local holder's lock with ours; False if someone else got there first."""
    # Processes of one host serialise their take-overs on a kernel lock that dies with them.
    with open(path.with_name(path.name + ".takeover"), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        current = holder(path.parent)
        if current is None:
            return _create(path, info)
        if current.get("token") != stale.get("token"):
            return False
        path.unlink(missing_ok=True)
        return _create(path, info)


def acquire(folder: str | os.PathLike[str], what: str = "train") -> str:
    """Locks `folder` (created if missing) for this process; returns the lock's token.

    Raises WorkdirBusy naming the holder when another live process holds it, and
    UsageError when the folder cannot be created or written.
    """
    folder = Path(folder).resolve()
    if folder in _held:
        token, depth = _held[folder]
        _held[folder] = (token, depth + 1)
        return token
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {folder}: {e.strerror or e}") from None
    path = folder / LOCK_NAME
    host = socket.gethostname()
    info = {"host": host, "pid": os.getpid(), "what": what, "token": uuid.uuid4().hex,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        got = _create(path, info)
        if not got:
            current = holder(folder)
            if current and current.get("host") == host and not _alive(current):
                got = _take_over(path, current, info)
                if got:
                    log.warning(f"{what}: taking over the lock of {folder} left by {describe(current)}, "
                                "which is no longer running")
            if not got:
                current = holder(folder)
                where = ("" if not current or current.get("host") == host else
                         f"; that host cannot be checked from here: remove {path} once that process is gone")
                raise WorkdirBusy(f"{folder} is in use by {describe(current)}{where}")
    except OSError as e:
        raise UsageError(f"cannot lock {folder}: {e.strerror or e} ({path})") from None
    _held[folder] = (info["token"], 1)
    return info["token"]


def release(folder: str | os.PathLike[str]) -> None:
    """Releases this process's lock of `folder` (the outermost `acquire`'s release removes the file)."""
    folder = Path(folder).resolve()
    if folder not in _held:
        return
    token, depth = _held[folder]
    if depth > 1:
        _held[folder] = (token, depth - 1)
        return
    del _held[folder]
    current = holder(folder)
    if current and current.get("token") == token:  # never remove a lock someone else took over
        lock_path(folder).unlink(missing_ok=True)


@contextlib.contextmanager
def hold(folder: str | os.PathLike[str], what: str = "train") -> Iterator[Path]:
    """Holds the lock of `folder` for the block; yields the folder's resolved path."""
    acquire(folder, what)
    try:
        yield Path(folder).resolve()
    finally:
        release(folder)


def in_use(folder: str | os.PathLike[str]) -> bool:
    """Whether a live process holds `folder` (a lock from another host counts as held)."""
    current = holder(folder)
    if current is None:
        return False
    return current.get("host") != socket.gethostname() or _alive(current)
