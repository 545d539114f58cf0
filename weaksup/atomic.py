"""Atomic file writes: a file appears under its name complete, or not at all.

Every writer in the package goes through `replacing`: the content is written to a
temporary name in the same folder (so the final `os.replace` is a rename on one file
system) and renamed into place only when the writer finished without an exception. A
killed or failed write leaves at most a temporary file named `.tmp-<random>-<name>`,
which never looks like the real thing and which `corpus.shards.remove_incomplete`
recognises by its prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def temporary_name(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary name beside `path` (unique per call, so concurrent writers never share one)."""
    path = Path(path)
    return path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yields a temporary path to write; renames it to `path` if the block succeeds.

    The parent folder is created when missing. On any exception the temporary file is
    removed and the exception propagates; `path` is then untouched. `fsync` flushes the
    file to disk before the rename (for files whose loss after a crash would cost a rebuild).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> None:
    """Writes `data` to `path` atomically."""
    with replacing(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> None:
    """Writes UTF-8 `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 1, sort_keys: bool = False,
               fsync: bool = False) -> None:
    """Writes `obj` as JSON (UTF-8, a final newline) to `path` atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False, default=str) + "\n"
    write_text(path, text, fsync=fsync)
