"""weaksup.host_memory: a worker thread's large allocations stop faulting their pages in anew.

Each case runs in a fresh interpreter (the settings are process-wide and must precede the
threads): a worker thread allocates, fills and frees a 64 MiB buffer twenty times, as
XLA:CPU does with a step's temporaries; the minor page faults of a second such round are
counted. With glibc's defaults every round maps fresh pages (16,384 faults per buffer);
with the memory retained the heap's pages are reused.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from weaksup import host_memory

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")

SCRIPT = r"""
import ctypes, resource, sys, threading
from weaksup import host_memory
applied = host_memory.retain_freed_memory() if sys.argv[1] == "retain" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 64 << 20

def work():
    for _ in range(20):
        p = libc.malloc(SIZE)
        ctypes.memset(p, 1, SIZE)
        libc.free(p)

for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = threading.Thread(target=work)
    t.start()
    t.join()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **env: str) -> tuple[bool, int]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    applied, faults = proc.stdout.split()
    return applied == "True", int(faults)


def test_retained_memory_is_reused_without_page_faults():
    default_applied, default_faults = _faults("default")
    applied, faults = _faults("retain")
    assert not default_applied and applied
    assert default_faults > 20 * 16384 // 2, default_faults  # each buffer faulted in afresh
    assert faults < default_faults // 20, (faults, default_faults)


def test_system_malloc_env_keeps_glibc_defaults():
    applied, faults = _faults("retain", **{host_memory.DISABLE_ENV: "1"})
    assert not applied
    assert faults > 20 * 16384 // 2, faults
