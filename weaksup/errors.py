"""The two kinds of error a command reports, and the exit statuses they map to.

Every command (`python -m weaksup train`, `evaluate`, `demo`, ...) exits with one convention
(`weaksup.runner`): 0 done; 1 the run failed (`RunFailed`: a non-finite loss, a stage that
broke); 2 bad usage, config or input (`UsageError`: a wrong key, a missing corpus, a
checkpoint that does not fit, a folder another process holds -- fix the command and run it
again); 74 the run could not write its output (`StorageFailed`: disk full, permission denied;
the previous checkpoint stays the latest -- free space and run the same command again); 75
stopped by a signal after saving (run the same command again to resume). The codes above 2
follow BSD's sysexits.h. Each module's own error class
derives from one of the two, so a message names the file or key and no user error prints
a traceback.
"""

from __future__ import annotations

import errno
import os

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_IO_ERROR = 74  # EX_IOERR: "an error occurred while doing I/O on some file"
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "temporary failure, try again"


class UsageError(Exception):
    """Bad usage, config or input: the message says what to fix. Exit status 2."""


class RunFailed(RuntimeError):
    """A run that started correctly but could not finish. Exit status 1."""


class StorageFailed(RunFailed):
    """Output could not be written (disk full, permission denied). Exit status 74."""


def os_cause(exc: BaseException) -> str | None:
    """'No space left on device (ENOSPC)' for the first OSError in `exc`'s chain, else None.

    Libraries that write in C++ (TensorStore) report the OS error only in their message
    text, so the messages of the whole chain are searched for a known errno text too.
    """
    seen: set[int] = set()
    chain: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        chain.append(e)
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
        todo += list(getattr(e, "exceptions", ()))  # exception groups
    for e in chain:
        if isinstance(e, OSError) and e.errno:
            return f"{os.strerror(e.errno)} ({errno.errorcode.get(e.errno, e.errno)})"
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO):
        text = os.strerror(code)
        if any(text.lower() in str(e).lower() for e in chain):
            return f"{text} ({errno.errorcode[code]})"
    return None
