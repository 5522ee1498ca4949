"""Reads `_prisma_migrations` (PostgreSQL via psycopg 3, SQLite via the stdlib), read-only."""

from __future__ import annotations

import logging
import re
import sqlite3
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from migwatch.dburl import UrlError, parse_postgres, redact
from migwatch.model import DatabaseRef, History, HistoryRow

log = logging.getLogger(__name__)

TABLE = "_prisma_migrations"
PRISMA_ADVISORY_LOCK = 72707369
COLUMNS = "id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count"


@dataclass(frozen=True)
class ReadOptions:
    connect_timeout: float = 5.0  # libpq rounds anything below 2 s up to 2 s
    statement_timeout_ms: int = 10_000


class HistoryError(Exception):
    """The database could not be reached or read; one line, password-free."""


class HistoryDenied(HistoryError):
    """The server answered, but the role may not read the history table (no SELECT privilege)."""


# Tables listed for a database without a history table (enough to tell empty from not).
TABLES_SHOWN = 5


def read_history(ref: DatabaseRef, options: ReadOptions = ReadOptions()) -> History:
    """Connect, read the whole history table, disconnect. Never raises for database problems."""
    try:
        if ref.provider == "postgresql":
            with connect_postgres(ref, options) as conn:
                return read_postgres(conn, ref)
        if ref.provider == "sqlite":
            return read_sqlite(ref)
    except HistoryError as exc:
        denied = isinstance(exc, HistoryDenied)
        return History(database=ref, reachable=False, has_table=False, error=str(exc), denied=denied)
    return History(
        database=ref, reachable=False, has_table=False, error=f"provider {ref.provider} is not supported"
    )


def connect_postgres(ref: DatabaseRef, options: ReadOptions = ReadOptions()) -> psycopg.Connection[Any]:
    """An autocommit session that reads only inside read-only transactions (`read_only`).

    Nothing is sent at start-up but libpq's own parameters and the URL's: connection poolers refuse
    startup `options` (PgBouncer: "unsupported startup parameter: options"), so read-only and the
    statement timeout are set per transaction, and no statement is ever prepared on the server
    (PgBouncer in transaction mode hands each transaction to any server connection).
    """
    try:
        target = parse_postgres(ref.url)
    except UrlError as exc:
        raise HistoryError(str(exc)) from None
    kwargs: dict[str, Any] = dict(target.params)
    try:
        conn = psycopg.connect(
            host=target.host,
            port=target.port,
            dbname=target.dbname,
            user=target.user,
            password=target.password,
            connect_timeout=max(2, round(options.connect_timeout)),
            autocommit=True,
            application_name="migwatch",
            **kwargs,
        )
    except psycopg.Error as exc:
        raise HistoryError(f"cannot connect to {ref.id}: {driver_message(exc)}") from None
    conn.prepare_threshold = None
    _timeouts[conn] = options.statement_timeout_ms
    return conn


_timeouts: weakref.WeakKeyDictionary[psycopg.Connection[Any], int] = weakref.WeakKeyDictionary()


@contextmanager
def read_only(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Cursor[Any]]:
    """A cursor inside `BEGIN READ ONLY` with a statement timeout, rolled back at the end."""
    timeout_ms = int(_timeouts.get(conn, ReadOptions().statement_timeout_ms))
    with conn.cursor() as cur:
        cur.execute("BEGIN READ ONLY")
        try:
            cur.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
            yield cur
        finally:
            # If the connection broke, the error that broke it is the one to report.
            if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                with suppress(psycopg.Error):
                    cur.execute("ROLLBACK")


def read_postgres(conn: psycopg.Connection[Any], ref: DatabaseRef) -> History:
    """Read the table on an open connection (the daemon keeps one)."""
    try:
        with read_only(conn) as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (_qualified(ref.schema),))
            row = cur.fetchone()
            has_table = bool(row and row[0])
            running = _lock_held(cur)
            if not has_table:
                cur.execute(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = %s "
                    "ORDER BY table_name LIMIT %s",
                    (ref.schema, TABLES_SHOWN),
                )
                tables = tuple(str(values[0]) for values in cur.fetchall())
                return History(
                    database=ref, reachable=True, has_table=False, migration_running=running, tables=tables
                )
            # Every column as text: a timestamp Python cannot hold (`infinity`, year 10000, BC) or a value
            # of an unexpected type is one odd row, never a failed read of the whole table.
            query = sql.SQL(
                "SELECT id::text, checksum::text, {finished}, migration_name::text, logs::text, "
                "{rolled_back}, {started}, applied_steps_count::text FROM {}.{} ORDER BY started_at"
            ).format(
                sql.Identifier(ref.schema),
                sql.Identifier(TABLE),
                finished=_epoch_ms("finished_at"),
                rolled_back=_epoch_ms("rolled_back_at"),
                started=_epoch_ms("started_at"),
            )
            cur.execute(query)
            rows = tuple(_row(values) for values in cur.fetchall())
    except psycopg.Error as exc:
        raise _read_error(exc, ref) from None
    return History(database=ref, reachable=True, has_table=True, rows=rows, migration_running=running)


def _epoch_ms(column: str) -> sql.Composable:
    # Milliseconds since the epoch as text; `Infinity`/`-Infinity` for the infinite timestamps.
    return sql.SQL("(extract(epoch FROM {}) * 1000)::text").format(sql.Identifier(column))


def _read_error(exc: psycopg.Error, ref: DatabaseRef) -> HistoryError:
    """The one line a failed read becomes: a lost connection, a missing privilege, anything else."""
    if isinstance(exc, psycopg.OperationalError):
        return HistoryError(f"lost connection to {ref.id}: {driver_message(exc)}")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        role = getattr(exc.diag, "message_primary", None) or driver_message(exc)
        return HistoryDenied(
            f"the database role lacks the SELECT privilege on {ref.schema}.{TABLE} in {ref.id} ({role})"
        )
    return HistoryError(f"cannot read {ref.schema}.{TABLE} in {ref.id}: {driver_message(exc)}")


def migration_running(conn: psycopg.Connection[Any]) -> bool:
    """Whether a Prisma migrate command (deploy, resolve, dev's apply step) holds its advisory lock."""
    with read_only(conn) as cur:
        return _lock_held(cur)


def _lock_held(cur: psycopg.Cursor[Any]) -> bool:
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
        "AND objid = %s AND objsubid = 1 AND granted)",
        (PRISMA_ADVISORY_LOCK,),
    )
    row = cur.fetchone()
    return bool(row and row[0])


def fingerprint_postgres(conn: psycopg.Connection[Any], ref: DatabaseRef) -> str:
    """A cheap value that changes whenever any history row changes (or the table appears)."""
    # The whole row as text: every column counts (logs too: Prisma writes them after the row), and NULL
    # stays distinct from a value, which concat_ws would drop.
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {}.{} AS t"
    ).format(sql.Identifier(ref.schema), sql.Identifier(TABLE))
    try:
        with read_only(conn) as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (_qualified(ref.schema),))
            exists = cur.fetchone()
            if not (exists and exists[0]):
                return "no-table"
            cur.execute(query)
            row = cur.fetchone()
    except psycopg.Error as exc:
        raise _read_error(exc, ref) from None
    return f"{row[0]}:{row[1]}" if row else "empty"


def _qualified(schema: str) -> str:
    return '"' + schema.replace('"', '""') + '".' + TABLE


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
        rows = tuple(_row(values) for values in cursor.fetchall())
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


def _row(values: Sequence[Any]) -> HistoryRow:
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
