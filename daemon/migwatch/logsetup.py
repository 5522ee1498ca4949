"""Logging, configured once by `cli.main`: stderr for the user, a rotating file for the daemon.

The daemon's file handler never raises: a full disk, a deleted or rotated file or folder, a file made
read-only — each event still goes somewhere (the file once it can be re-opened, stderr meanwhile, with
one warning per outage), and Python's "--- Logging error ---" traceback never appears.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from migwatch.display import COMMAND_LIMIT, FIELD_LIMIT, visible
from migwatch.scrub import scrub

# platformdirs is imported where it is used: `configure_stderr` runs for every command, including
# `migwatch guard`, which must start in tens of milliseconds.

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LOG_NAME = "migwatch.log"
PRIVATE_FILE = 0o600  # log, state, lock, internal errors: paths, URLs and alert history (issue 16)
PRIVATE_DIR = 0o700


class _VisibleFormatter(logging.Formatter):
    """Every log line's message made visible (display.visible) and bounded: a migration name, a row's
    `logs` or a path can neither add log lines nor send escape sequences to whoever reads the log."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.msg, record.args
        record.msg, record.args = visible(record.getMessage(), COMMAND_LIMIT), None
        try:
            return scrub(super().format(record))  # the traceback part too
        finally:
            record.msg, record.args = saved


class _UTCFormatter(_VisibleFormatter):
    @staticmethod
    def converter(timestamp: float | None = None) -> time.struct_time:
        return time.gmtime(timestamp)


def default_log_dir() -> Path:
    """The platform log folder (~/.local/state/migwatch/log, ~/Library/Logs/migwatch)."""
    import platformdirs

    return platformdirs.user_log_path("migwatch")


def default_log_file() -> Path:
    return default_log_dir() / LOG_NAME


def default_state_dir() -> Path:
    """Where the alert state and the daemon's lock live."""
    import platformdirs

    return platformdirs.user_state_path("migwatch")


def internal_error_log() -> Path:
    """Where `main` writes tracebacks of unexpected errors."""
    return default_log_dir() / "internal-errors.log"


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700 whatever the umask; an existing folder is left as is
    unless migwatch created it. Raises OSError."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        with contextlib.suppress(OSError):
            os.chmod(created, PRIVATE_DIR)
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """`os.open` a file that is created 0600 whatever the umask (its folder 0700); raises OSError."""
    private_dir(path.parent)
    fd = os.open(path, flags | os.O_CLOEXEC, PRIVATE_FILE)
    with contextlib.suppress(OSError):
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode) and mode & 0o077:  # never a device or a FIFO someone pointed us at
            os.fchmod(fd, PRIVATE_FILE)
    return fd


def append_private(path: Path, text: str) -> None:
    """Append `text` to a private (0600) file; raises OSError."""
    fd = open_private(path)
    try:
        os.write(fd, text.encode("utf-8", "backslashreplace"))
    finally:
        os.close(fd)


def replace_private(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace `path` with `text` atomically: a temporary 0600 file in the same (0700) folder, then
    `os.replace`. `durable`: fsync the file and the folder first (the alert ledger; a cache need not).
    Raises OSError."""
    private_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            if durable:
                tmp.flush()
                os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    if durable:
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def configure_stderr(verbose: bool) -> None:
    """Warnings (or debug with -v) to stderr, for the one-shot commands."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = SafeStreamHandler(sys.stderr)
    handler.setFormatter(_VisibleFormatter("migwatch: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for noisy in ("watchdog", "apscheduler", "git", "asyncio", "desktop_notifier", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class SafeStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler that never prints a "--- Logging error ---" traceback (a closed pipe, a name
    that is not valid UTF-8): the record is written with escapes, or dropped."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            stream = self.stream
            stream.write(_encodable(text, stream) + self.terminator)
            stream.flush()
        except Exception:  # nowhere left to report it
            pass

    def handleError(self, record: logging.LogRecord) -> None:
        del record


def _encodable(text: str, stream: TextIO) -> str:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        pass
    return text


class ResilientFileHandler(logging.Handler):
    """A size-rotating log file (0600 in a 0700 folder) that never raises.

    Before each record it checks that the file it holds is still the one at `path` (deleted, moved by
    logrotate, its folder removed): if not, it opens `path` again, re-creating the folder. When the file
    cannot be written (full disk, read-only), records go to `fallback` (stderr) with one warning, and
    the file is tried again on the next record (at most once per `retry_every` seconds).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 5_000_000,
        backups: int = 5,
        fallback: TextIO | None = None,
        retry_every: float = 5.0,
    ) -> None:
        super().__init__()
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.retry_every = retry_every
        self._fallback = fallback
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._failing_since: float | None = None
        self._next_try = 0.0
        self._io_lock = threading.Lock()

    def open(self) -> None:
        """Open (or create) the file now; raises OSError (start-up reports it as the user's to fix)."""
        with self._io_lock:
            self._reopen()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
        except Exception:
            return
        with self._io_lock:
            problem = self._write(data)
        if problem is not None:
            self._to_fallback(data, problem)

    def handleError(self, record: logging.LogRecord) -> None:
        del record

    def close(self) -> None:
        with self._io_lock:
            self._close_fd()
        super().close()

    # -- internals (with _io_lock held) --------------------------------------------------------------------

    def _write(self, data: bytes) -> str | None:
        now = time.monotonic()
        if self._failing_since is not None and now < self._next_try:
            return "still failing"
        try:
            if self._fd is None or not self._same_file():
                self._reopen()
            assert self._fd is not None
            info = os.fstat(self._fd)
            if self.max_bytes and stat.S_ISREG(info.st_mode) and info.st_size + len(data) > self.max_bytes:
                self._rotate()
            os.write(self._fd, data)
        except OSError as exc:
            self._close_fd()
            self._next_try = now + self.retry_every
            first = self._failing_since is None
            if first:
                self._failing_since = now
            return (
                f"cannot write the log file {self.path}: {exc.strerror or exc}" if first else "still failing"
            )
        if self._failing_since is not None:
            self._failing_since = None
            self._fallback_write(f"migwatch: the log file {self.path} is written again\n")
        return None

    def _same_file(self) -> bool:
        try:
            stat = os.stat(self.path)
        except OSError:
            return False
        return (stat.st_dev, stat.st_ino) == self._identity

    def _reopen(self) -> None:
        self._close_fd()
        fd = open_private(self.path)
        stat = os.fstat(fd)
        self._fd, self._identity = fd, (stat.st_dev, stat.st_ino)

    def _rotate(self) -> None:
        self._close_fd()
        for index in range(self.backups - 1, 0, -1):
            source = Path(f"{self.path}.{index}")
            if source.exists():
                os.replace(source, Path(f"{self.path}.{index + 1}"))
        if self.backups > 0:
            os.replace(self.path, Path(f"{self.path}.1"))
        else:
            os.truncate(self.path, 0)
        self._reopen()

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._identity = None, None

    # -- fallback ------------------------------------------------------------------------------------------

    def _to_fallback(self, data: bytes, problem: str) -> None:
        if problem != "still failing":
            self._fallback_write(f"migwatch: warning: {problem}; logging to stderr until it works again\n")
        self._fallback_write(data.decode("utf-8", "replace"))

    def _fallback_write(self, text: str) -> None:
        stream = self._fallback if self._fallback is not None else sys.stderr
        with contextlib.suppress(Exception):
            stream.write(_encodable(text, stream))
            stream.flush()


def add_file_log(
    path: Path,
    level: str,
    *,
    max_bytes: int = 5_000_000,
    backups: int = 5,
    logger: logging.Logger | None = None,
) -> logging.Handler:
    """A rotating, one-line-per-event log file (UTC timestamps, 0600) on `logger` (default: the root
    logger); returns the handler to remove later.

    Raises OSError when the file cannot be opened at all (the caller says so in one line, exit 2)."""
    handler = ResilientFileHandler(path, max_bytes=max_bytes, backups=backups)
    handler.open()
    handler.setFormatter(_UTCFormatter(LOG_FORMAT, DATE_FORMAT))
    handler.setLevel(getattr(logging, level.upper(), logging.INFO))
    target = logger or logging.getLogger()
    target.addHandler(handler)
    target.setLevel(min(target.level or logging.WARNING, handler.level))
    return handler


_NEEDS_QUOTES = re.compile(r'[\s"=\\]')


def quote_value(value: Any, limit: int = FIELD_LIMIT) -> str:
    """A `key=value` log value: as is, or double-quoted (quotes escaped) when it holds spaces, quotes or
    characters that display.visible shows as escapes; clipped to `limit` characters with "…"."""
    text = str(value)[: limit + 1]  # a 10 MB row's `logs` is never copied whole
    if text and not _NEEDS_QUOTES.search(text) and visible(text, limit) == text:
        return text
    return '"' + visible(text.replace("\\", "\\\\").replace('"', '\\"'), limit) + '"'


def key_values(fields: Iterable[tuple[str, object]]) -> str:
    """`code=pending fix="cd /a && …"`: the one `key=value` form of every log line; None values are left out."""
    return " ".join(f"{key}={quote_value(value)}" for key, value in fields if value is not None)


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message (or its type when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
