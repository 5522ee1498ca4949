"""Logging, configured once by `cli.main`: stderr for the user, a rotating file for the daemon."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from migwatch.display import COMMAND_LIMIT, FIELD_LIMIT, visible
from migwatch.scrub import scrub

# platformdirs and logging.handlers are imported where they are used: `configure_stderr` runs for
# every command, including `migwatch guard`, which must start in tens of milliseconds.

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LOG_NAME = "migwatch.log"


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


def configure_stderr(verbose: bool) -> None:
    """Warnings (or debug with -v) to stderr, for the one-shot commands."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(_VisibleFormatter("migwatch: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for noisy in ("watchdog", "apscheduler", "git", "asyncio", "desktop_notifier", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_file_log(
    path: Path,
    level: str,
    *,
    max_bytes: int = 5_000_000,
    backups: int = 5,
    logger: logging.Logger | None = None,
) -> logging.Handler:
    """A rotating, one-line-per-event log file (UTC timestamps) on `logger` (default: the root logger).

    Returns the handler to remove later.
    """
    import logging.handlers

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
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
