"""Compiling the package's native sources (weaksup/native/) into the cache at set-up.

Each library lives at `cache/native/NAME-DIGEST.so`, the digest taken over its source (and
whatever else its binary depends on, e.g. the jaxlib whose FFI headers it includes), so
an edited source or a new jaxlib builds a new file and a stale one is never loaded. The
compiler writes to a temporary name that is renamed into place only on success
(`weaksup.atomic`): a failed or killed build never leaves a library that looks built.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from weaksup import atomic, paths

NATIVE_DIR = Path(__file__).resolve().parent / "native"


class BuildError(RuntimeError):
    """A native source did not compile (the message holds the command and the compiler's errors)."""


def library_path(source: Path, extra_key: bytes = b"") -> Path:
    """Where the compiled library of `source` (and `extra_key`) lives in the cache."""
    digest = hashlib.sha256(source.read_bytes() + extra_key).hexdigest()[:12]
    return paths.cache_dir() / "native" / f"{source.stem}-{digest}.so"


def compile_library(source: Path, target: Path, *, cxx: bool, flags: Sequence[str], libs: Sequence[str],
                    provided_by: str) -> Path:
    """Compiles `source` into the shared library `target`; `provided_by` names what provides the
    headers and libraries (for the error message)."""
    env, names = (("CXX", ("c++", "g++")) if cxx else ("CC", ("cc", "gcc")))
    compiler = os.environ.get(env) or next((shutil.which(n) for n in names if shutil.which(n)), None)
    if not compiler:
        raise BuildError(f"no {'C++' if cxx else 'C'} compiler ({'/'.join(names)}) on PATH; install {names[-1]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(target) as tmp:
        cmd = [compiler, *flags, "-shared", "-fPIC", "-o", str(tmp), str(source), *libs]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise BuildError(f"{' '.join(cmd)} failed (headers and libraries: {provided_by}):\n{proc.stderr.strip()}")
    return target
