"""Logging, configured once by `cli.main`: stderr for the user, a rotating file for the daemon."""

from __future__ import annotations

import logging
import logging.handlers
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import platformdirs

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LOG_NAME = "migwatch.log"


class _UTCFormatter(logging.Formatter):
    @staticmethod
    def converter(timestamp: float | None = None) -> time.struct_time:
        return time.gmtime(timestamp)


def default_log_dir() -> Path:
    """The platform log folder (~/.local/state/migwatch/log, ~/Library/Logs/migwatch)."""
    return platformdirs.user_log_path("migwatch")


def default_log_file() -> Path:
    return default_log_dir() / LOG_NAME


def default_state_dir() -> Path:
    """Where the alert state and the daemon's lock live."""
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
    handler.setFormatter(logging.Formatter("migwatch: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for noisy in ("watchdog", "apscheduler", "git", "asyncio", "desktop_notifier", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_file_log(path: Path, level: str, *, max_bytes: int = 5_000_000, backups: int = 5) -> logging.Handler:
    """A rotating, one-line-per-event log file (UTC timestamps); returns the handler to remove later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setFormatter(_UTCFormatter(LOG_FORMAT, DATE_FORMAT))
    handler.setLevel(getattr(logging, level.upper(), logging.INFO))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, handler.level))
    return handler


_NEEDS_QUOTES = re.compile(r'[\s"=\\]')


def quote_value(value: Any) -> str:
    """A `key=value` log value: as is, or double-quoted (quotes escaped) when it holds spaces or quotes."""
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def key_values(fields: Iterable[tuple[str, object]]) -> str:
    """`code=pending fix="cd /a && …"`: the one `key=value` form of every log line; None values are left out."""
    return " ".join(f"{key}={quote_value(value)}" for key, value in fields if value is not None)


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message (or its type when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
