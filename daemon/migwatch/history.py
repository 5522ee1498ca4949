"""Reads `_prisma_migrations`, read-only: SQLite via the stdlib here, PostgreSQL in `pghistory`.

`pghistory` (psycopg, ~80 ms to import) is imported only when a PostgreSQL history is read, so
`migwatch status` on a SQLite project and the guard never load the driver.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from migwatch.dburl import redact
from migwatch.model import DatabaseRef, History, HistoryRow

log = logging.getLogger(__name__)

TABLE = "_prisma_migrations"
COLUMNS = "id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count"


@dataclass(frozen=True)
class ReadOptions:
    connect_timeout: float = 5.0  # libpq rounds anything below 2 s up to 2 s
    statement_timeout_ms: int = 10_000


DEFAULT_OPTIONS = ReadOptions()


class HistoryError(Exception):
    """The database could not be reached or read; one line, password-free."""


class HistoryDenied(HistoryError):
    """The server answered, but the role may not read the history table (no SELECT privilege)."""


# Tables listed for a database without a history table (enough to tell empty from not).
TABLES_SHOWN = 5


def read_history(ref: DatabaseRef, options: ReadOptions = DEFAULT_OPTIONS) -> History:
    """Connect, read the whole history table, disconnect. Never raises for database problems."""
    try:
        if ref.provider == "postgresql":
            from migwatch import pghistory  # the driver, only when a PostgreSQL history is read

            with pghistory.connect_postgres(ref, options) as conn:
                return pghistory.read_postgres(conn, ref)
        if ref.provider == "sqlite":
            return read_sqlite(ref)
    except HistoryError as exc:
        denied = isinstance(exc, HistoryDenied)
        return History(database=ref, reachable=False, has_table=False, error=str(exc), denied=denied)
    return History(
        database=ref, reachable=False, has_table=False, error=f"provider {ref.provider} is not supported"
    )


def sqlite_file(ref: DatabaseRef) -> Path:
    """The database file of a SQLite DatabaseRef (its id is `file:/abs/path`, already decoded)."""
    # Not parsed as a URL again: a decoded path may hold `?` or `%` (a folder named `a%20b`).
    return Path(ref.id.removeprefix("file:"))


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """Open an existing SQLite file read-only (`mode=ro`: never creates or writes it)."""
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        raise HistoryError(f"cannot open {path}: {exc}") from None
    # Text that is not valid UTF-8 is read losslessly (surrogate escapes), never a failed read.
    conn.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    return conn


def read_sqlite(ref: DatabaseRef) -> History:
    """Open the file read-only (never creates it) and read the table."""
    path = sqlite_file(ref)
    if not path.exists():
        return History(database=ref, reachable=True, has_table=False, error=f"{path} does not exist yet")
    conn = connect_sqlite(path)
    try:
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        if not has_table:
            found = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name LIMIT ?",
                (TABLES_SHOWN,),
            ).fetchall()
            return History(
                database=ref, reachable=True, has_table=False, tables=tuple(str(t[0]) for t in found)
            )
        cursor = conn.execute(f"SELECT {COLUMNS} FROM {TABLE} ORDER BY started_at")
        rows = tuple(parse_row(values) for values in cursor.fetchall())
    except sqlite3.DatabaseError as exc:
        raise HistoryError(f"cannot read {TABLE} in {path}: {exc}") from None
    finally:
        conn.close()
    return History(database=ref, reachable=True, has_table=True, rows=rows)


def fingerprint_sqlite(ref: DatabaseRef) -> str:
    """File identity, size, mtime and SQLite's file change counter: any committed write changes it."""
    path = sqlite_file(ref)
    parts: list[str] = []
    for candidate in (path, Path(f"{path}-wal")):
        try:
            stat = candidate.stat()
        except FileNotFoundError:
            parts.append("-")
            continue
        except OSError as exc:
            raise HistoryError(f"cannot stat {candidate}: {exc.strerror}") from None
        parts.append(f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}")
    # An UPDATE keeps the file size, and coarse file clocks (Linux < 6.13: a few ms) can give two quick
    # commits the same mtime; the header's change counter (offset 24) is bumped by every commit.
    try:
        with open(path, "rb") as handle:
            header = handle.read(28)
    except OSError:
        header = b""
    parts.append(str(int.from_bytes(header[24:28], "big")) if len(header) == 28 else "-")
    return "|".join(parts)


def parse_row(values: Sequence[Any]) -> HistoryRow:
    id_, checksum, finished, name, logs, rolled_back, started, steps = values
    return HistoryRow(
        id=_text(id_) or "",
        migration_name=_text(name) or "",
        checksum=_text(checksum),
        started_at=parse_timestamp(started),
        finished_at=parse_timestamp(finished),
        rolled_back_at=parse_timestamp(rolled_back),
        logs=_text(logs),
        applied_steps_count=_int(steps),
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # NULL, text, NaN, infinity
        return 0


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime.max.replace(tzinfo=timezone.utc)  # `infinity`, or after year 9999
EARLIEST = datetime.min.replace(tzinfo=timezone.utc)  # `-infinity`, or before year 1 (BC)
_NUMERIC = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_INFINITE = {"infinity": LATEST, "+infinity": LATEST, "-infinity": EARLIEST}


def parse_timestamp(value: Any) -> datetime | None:
    """Timestamps as Prisma stores them: timestamptz, integer milliseconds (SQLite), RFC 3339 text.

    A value that is present but unreadable still means "set" (it is not NULL), so it maps to the epoch;
    one beyond what Python can hold (`infinity`, year 10000, BC) maps to the nearest end of its range.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, bool):
        return _EPOCH
    text = value if isinstance(value, (int, float)) else (_text(value) or "").strip()
    if isinstance(text, str) and text.lower() in _INFINITE:
        return _INFINITE[text.lower()]
    if isinstance(text, (int, float)) or _NUMERIC.match(text):
        return _from_milliseconds(float(text))
    text = text.replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return _EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _from_milliseconds(milliseconds: float) -> datetime:
    if milliseconds != milliseconds:  # NaN
        return _EPOCH
    try:
        return datetime.fromtimestamp(milliseconds / 1000.0, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return LATEST if milliseconds > 0 else EARLIEST


def driver_message(exc: BaseException) -> str:
    """The driver's first line, without any password."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else type(exc).__name__
    return redact(message)
