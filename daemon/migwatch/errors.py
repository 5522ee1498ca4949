"""The one exit-code table and the base of every error a user can fix (pre-commit's FatalError).

`cli.main` has one handler: a `UserError` prints its `lines()` (one line each, passwords redacted)
and exits with its `exit_code`; anything else is an internal error, exit 3, traceback in the log.
Light on purpose: `migwatch --version` and `migwatch guard` import it on every start.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class ExitCode(enum.IntEnum):
    """What `migwatch` exits with (SPEC §9); `guard` passes the guarded command's own code through."""

    OK = 0  # nothing to report
    PROBLEMS = 1  # status found an error or warning; notify-test had a failing notifier; guard refused
    USAGE = 2  # the user's input is wrong: arguments, config file, init, service
    INTERNAL = 3  # a bug: the traceback is in internal-errors.log
    INTERRUPTED = 130  # Ctrl-C


class UserError(Exception):
    """A problem the user can fix. Subclasses set `exit_code` and, if needed, a `prefix` or `lines()`."""

    exit_code: ClassVar[ExitCode] = ExitCode.USAGE
    prefix: ClassVar[str] = ""  # e.g. "migwatch: " for messages that do not name their command

    def lines(self) -> list[str]:
        """What the user is shown, one line each."""
        return [f"{self.prefix}{str(self) or type(self).__name__}"]


class UsageError(UserError):
    """Wrong arguments (argparse's own messages included); exit 2."""
