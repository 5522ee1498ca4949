"""Prisma's `_prisma_migrations` table, created and filled exactly as Prisma's migrate engine does it."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Union

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

HISTORY_TABLE = "_prisma_migrations"

# psycopg connections of any row factory, or stdlib sqlite3.
HistoryConnection = Union["psycopg.Connection[Any]", sqlite3.Connection]
# unix_ms: the native Prisma engine (integer milliseconds); rfc3339: driver adapters and other tools.
TimestampStyle = Literal["unix_ms", "rfc3339"]
RowState = Literal["applied", "failed", "rolled_back"]

POSTGRES_TABLE_COLUMNS = (
    '"id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ, '
    '"migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ, '
    '"started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0'
)
# Byte for byte what Prisma's SQLite connector runs (SQLite keeps this text in sqlite_master).
SQLITE_CREATE_TABLE = """CREATE TABLE "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)"""
_COLUMNS = (
    "id",
    "checksum",
    "finished_at",
    "migration_name",
    "logs",
    "rolled_back_at",
    "started_at",
    "applied_steps_count",
)
_TIMESTAMP_COLUMNS = frozenset({"finished_at", "rolled_back_at", "started_at"})


def prisma_checksum(sql_bytes: bytes) -> str:
    """SHA-256 hex of migration.sql as Prisma computes it: UTF-8 text, invalid bytes replaced, BOM kept."""
    return hashlib.sha256(sql_bytes.decode("utf-8", "replace").encode("utf-8")).hexdigest()


def _check_provider(provider: str) -> None:
    if provider not in ("postgresql", "sqlite"):
        raise ValueError(f"provider must be 'postgresql' or 'sqlite', not {provider!r}")


def _commit(conn: HistoryConnection) -> None:
    if isinstance(conn, sqlite3.Connection) or not conn.autocommit:
        conn.commit()


def _table(schema: str | None) -> sql.Composable:
    if schema is None:
        return sql.Identifier(HISTORY_TABLE)
    return sql.Identifier(schema, HISTORY_TABLE)


def create_history_table(conn: HistoryConnection, provider: str, *, schema: str | None = None) -> None:
    """Create `_prisma_migrations` with Prisma's layout (PostgreSQL: in `schema`, created if missing)."""
    _check_provider(provider)
    if isinstance(conn, sqlite3.Connection):
        if provider != "sqlite" or schema is not None:
            raise ValueError("a sqlite3 connection needs provider='sqlite' and no schema")
        conn.execute(SQLITE_CREATE_TABLE)
    else:
        if provider != "postgresql":
            raise ValueError("a psycopg connection needs provider='postgresql'")
        if schema is not None:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {} (" + POSTGRES_TABLE_COLUMNS + ")").format(_table(schema)))
    _commit(conn)


def _sqlite_timestamp(value: datetime, style: TimestampStyle) -> int | str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if style == "unix_ms":
        return int(value.timestamp() * 1000)
    # What Prisma 6's driver adapters (libsql) write: 2026-01-01T12:00:00.123+00:00
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def insert_row(
    conn: HistoryConnection,
    provider: str,
    *,
    schema: str | None = None,
    timestamp_style: TimestampStyle = "unix_ms",
    **fields: Any,
) -> str:
    """Insert one history row with exactly the given columns (plus `id` if absent); returns the id.

    Values are stored as given, so tests can write garbage; datetimes in SQLite follow `timestamp_style`.
    """
    _check_provider(provider)
    unknown = sorted(set(fields) - set(_COLUMNS))
    if unknown:
        raise ValueError(f"not a column of {HISTORY_TABLE}: {', '.join(unknown)}")
    row: dict[str, Any] = {"id": str(uuid.uuid4()), **fields}
    if isinstance(conn, sqlite3.Connection):
        values = [
            _sqlite_timestamp(value, timestamp_style)
            if column in _TIMESTAMP_COLUMNS and isinstance(value, datetime)
            else value
            for column, value in row.items()
        ]
        columns = ", ".join(f'"{column}"' for column in row)
        placeholders = ", ".join("?" for _ in row)
        conn.execute(f'INSERT INTO "{HISTORY_TABLE}" ({columns}) VALUES ({placeholders})', values)
    else:
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            _table(schema),
            sql.SQL(", ").join(sql.Identifier(column) for column in row),
            sql.SQL(", ").join(sql.Placeholder() for _ in row),
        )
        conn.execute(statement, list(row.values()))
    _commit(conn)
    return str(row["id"])


def failure_logs(migration_name: str) -> str:
    """The kind of text Prisma stores in `logs` for a migration that failed on PostgreSQL."""
    return (
        "A migration failed to apply. New migrations cannot be applied before the error is recovered from. "
        "Read more about how to resolve migration issues in a production database: "
        "https://pris.ly/d/migrate-resolve\n\n"
        f"Migration name: {migration_name}\n\n"
        "Database error code: 42P01\n\n"
        "Database error:\n"
        'ERROR: relation "Missing" does not exist\n'
    )


def apply_like_prisma(
    conn: HistoryConnection,
    migration_dir: Path,
    *,
    provider: str,
    state: RowState = "applied",
    checksum: str | None = None,
    started_at: datetime | None = None,
    logs: str | None = None,
    schema: str | None = None,
    timestamp_style: TimestampStyle = "unix_ms",
) -> str:
    """Record `migration_dir` in the history table as Prisma would (running its SQL when `applied`).

    `failed`: finished_at and rolled_back_at NULL, `logs` set; `rolled_back`: a failed row later marked
    with `migrate resolve --rolled-back`. Returns the row id. The history table must exist.
    """
    _check_provider(provider)
    name = migration_dir.name
    sql_file = migration_dir / "migration.sql"
    sql_bytes = sql_file.read_bytes() if sql_file.is_file() else None
    if checksum is None:
        if sql_bytes is None:
            raise ValueError(f"{sql_file} does not exist: pass checksum= for a migration without SQL")
        checksum = prisma_checksum(sql_bytes)
    start = started_at or datetime.now(timezone.utc)
    fields: dict[str, Any] = {"checksum": checksum, "migration_name": name, "started_at": start}
    if state == "applied":
        if sql_bytes is not None:
            _run_script(conn, sql_bytes)
        fields.update(finished_at=start + timedelta(milliseconds=5), applied_steps_count=1, logs=logs)
    elif state == "failed":
        fields.update(
            finished_at=None, rolled_back_at=None, applied_steps_count=0, logs=logs or failure_logs(name)
        )
    elif state == "rolled_back":
        fields.update(
            finished_at=None,
            rolled_back_at=start + timedelta(seconds=1),
            applied_steps_count=0,
            logs=logs or failure_logs(name),
        )
    else:
        raise ValueError(f"state must be 'applied', 'failed' or 'rolled_back', not {state!r}")
    return insert_row(conn, provider, schema=schema, timestamp_style=timestamp_style, **fields)


def _run_script(conn: HistoryConnection, sql_bytes: bytes) -> None:
    # Prisma sends the text as is; a leading BOM would only be a syntax error in the database.
    script = sql_bytes.decode("utf-8", "replace").removeprefix("\ufeff")
    if isinstance(conn, sqlite3.Connection):
        conn.executescript(script)
    else:
        conn.execute(script)
    _commit(conn)


def read_rows(conn: HistoryConnection, *, schema: str | None = None) -> list[Mapping[str, Any]]:
    """All history rows as dicts, `ORDER BY started_at` (for assertions in tests)."""
    if isinstance(conn, sqlite3.Connection):
        cursor = conn.execute(f'SELECT {", ".join(_COLUMNS)} FROM "{HISTORY_TABLE}" ORDER BY started_at')
        return [dict(zip(_COLUMNS, record, strict=True)) for record in cursor.fetchall()]
    query = sql.SQL("SELECT {} FROM {} ORDER BY started_at").format(
        sql.SQL(", ").join(sql.Identifier(column) for column in _COLUMNS), _table(schema)
    )
    # A tuple cursor, whatever row factory the caller's connection has.
    records = conn.cursor(row_factory=tuple_row).execute(query).fetchall()
    return [dict(zip(_COLUMNS, record, strict=True)) for record in records]
