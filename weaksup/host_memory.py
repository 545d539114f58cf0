"""Host memory for XLA:CPU: freed memory stays in the process for the next step.

XLA:CPU allocates the temporaries of each execution of a compiled step as one buffer
(tens to hundreds of MB for a training step) and frees it when the step ends. glibc
serves an allocation that large with a fresh `mmap` and returns it with `munmap` (always
from the per-thread arenas that XLA's worker threads allocate in, whatever
M_MMAP_THRESHOLD says), so every step faults all of its pages in again and the kernel
zeroes each one. On resnext_tiny, bfloat16, batch 128 (benchmarks/models.py) that was
37,500 page faults and 80 ms of system time per step, more than a third of the step.

`retain_freed_memory()` has glibc serve every thread from its main heap and never hand
freed memory back to the system, as PyTorch's caching allocators keep theirs: 4,200 faults
and 12 ms per step on the same model. The price is that the process's resident memory
stays at its peak until it exits, which is what a training or evaluation run reaches
anyway after its first step. It must run before JAX starts its CPU worker threads (each
thread keeps the arena it first allocated in); the commands that run JAX programs call it
first thing. WEAKSUP_SYSTEM_MALLOC (any non-empty value) leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

DISABLE_ENV = "WEAKSUP_SYSTEM_MALLOC"

# glibc's mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_INT_MAX = 2**31 - 1

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Makes glibc keep freed memory for reuse (one arena, no mmap, no trimming).

    Returns whether the settings are in force: False where the C library is not glibc or
    WEAKSUP_SYSTEM_MALLOC is set. Calling it again changes nothing.
    """
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get(DISABLE_ENV):
        log.debug(f"host memory: glibc malloc defaults kept ({DISABLE_ENV} is set)")
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # One arena: worker threads allocate from the main heap, which can serve any size
    # without mmap; no mmap at all; and no trimming, so the heap's top is never returned.
    ok = all(libc.mallopt(param, value) == 1 for param, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _INT_MAX)))
    log.debug(f"host memory: glibc keeps freed memory ({'in force' if ok else 'mallopt refused'})")
    return ok
