"""The two kinds of error a command reports, and the exit statuses they map to.

Every command (`python -m weaksup train`, `evaluate`, `demo`, ...) exits with one convention
(`weaksup.runner`): 0 done; 1 the run failed (`RunFailed`: a non-finite loss, a stage that
broke); 2 bad usage, config or input (`UsageError`: a wrong key, a missing corpus, a
checkpoint that does not fit -- fix the command and run it again); 75 stopped by a signal
after saving (run the same command again to resume). Each module's own error class
derives from one of the two, so a message names the file or key and no user error prints
a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "temporary failure, try again"


class UsageError(Exception):
    """Bad usage, config or input: the message says what to fix. Exit status 2."""


class RunFailed(RuntimeError):
    """A run that started correctly but could not finish. Exit status 1."""
