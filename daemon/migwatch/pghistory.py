"""Reads `_prisma_migrations` from PostgreSQL via psycopg 3, only ever inside read-only transactions."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from migwatch.dburl import UrlError, parse_postgres
from migwatch.history import (
    DEFAULT_OPTIONS,
    TABLE,
    TABLES_SHOWN,
    HistoryDenied,
    HistoryError,
    ReadOptions,
    driver_message,
    parse_row,
)
from migwatch.model import DatabaseRef, History

PRISMA_ADVISORY_LOCK = 72707369


def connect_postgres(ref: DatabaseRef, options: ReadOptions = DEFAULT_OPTIONS) -> psycopg.Connection[Any]:
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
    timeout_ms = int(_timeouts.get(conn, DEFAULT_OPTIONS.statement_timeout_ms))
    with conn.cursor() as cur:
        # One round trip for both (no parameters: the simple query protocol takes several statements).
        cur.execute(f"BEGIN READ ONLY; SET LOCAL statement_timeout = {timeout_ms}")
        try:
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
            rows = tuple(parse_row(values) for values in cur.fetchall())
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


_LOCK_HELD = (
    "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
    f"AND objid = {PRISMA_ADVISORY_LOCK} AND objsubid = 1 AND granted)"
)


def _lock_held(cur: psycopg.Cursor[Any]) -> bool:
    cur.execute(f"SELECT {_LOCK_HELD}")
    row = cur.fetchone()
    return bool(row and row[0])


def fingerprint_postgres(conn: psycopg.Connection[Any], ref: DatabaseRef) -> str:
    """A cheap value that changes whenever any history row changes (or the table appears)."""
    return poll_postgres(conn, ref)[0]


def poll_postgres(conn: psycopg.Connection[Any], ref: DatabaseRef) -> tuple[str, bool]:
    """The fingerprint and whether a Prisma migrate command holds its lock, in one read-only transaction
    of four round trips: the daemon polls every few seconds, and each round trip wakes it up."""
    # The whole row as text: every column counts (logs too: Prisma writes them after the row), and NULL
    # stays distinct from a value, which concat_ws would drop.
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {}.{} AS t"
    ).format(sql.Identifier(ref.schema), sql.Identifier(TABLE))
    try:
        with read_only(conn) as cur:
            cur.execute(f"SELECT to_regclass(%s) IS NOT NULL, {_LOCK_HELD}", (_qualified(ref.schema),))
            exists, running = cur.fetchone() or (False, False)
            if not exists:
                return "no-table", bool(running)
            cur.execute(query)
            row = cur.fetchone()
    except psycopg.Error as exc:
        raise _read_error(exc, ref) from None
    return (f"{row[0]}:{row[1]}" if row else "empty"), bool(running)


def _qualified(schema: str) -> str:
    return '"' + schema.replace('"', '""') + '".' + TABLE
