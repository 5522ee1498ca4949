"""Two branches' migrations applied to a real database in both orders: does one order fail, or do the
two orders leave different schemas? That is what a schema conflict really is, measured, not guessed.

PostgreSQL: each run gets a fresh schema of one database (first on `search_path`, so Prisma's
unqualified names land there), each migration runs as one multi-statement query, as Prisma runs it.
SQLite: each run gets a fresh in-memory database and `executescript`.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tests.support.pg import PgServer

Step = tuple[str, str]  # (label, migration.sql text)
_schemas = itertools.count()


@dataclass(frozen=True)
class Applied:
    """One order's result: where it failed (label and error) and the schema it left."""

    failed_at: str | None
    error: str | None
    schema: frozenset[tuple[object, ...]]


@dataclass(frozen=True)
class Outcome:
    """Both orders of (base, A, B): A then B, and B then A."""

    ab: Applied
    ba: Applied

    @property
    def base_failed(self) -> bool:
        return "base" in (self.ab.failed_at, self.ba.failed_at)

    @property
    def conflict(self) -> bool:
        """One order fails, or the orders leave different schemas (the second undid the first)."""
        failed = self.ab.failed_at is not None or self.ba.failed_at is not None
        return failed or self.ab.schema != self.ba.schema


_PG_SNAPSHOT = [
    "SELECT 'column', table_name, column_name, data_type, udt_name, is_nullable, column_default"
    " FROM information_schema.columns WHERE table_schema = %(s)s",
    "SELECT 'index', tablename, indexname, replace(indexdef, %(s)s || '.', '') FROM pg_indexes"
    " WHERE schemaname = %(s)s",
    "SELECT 'enum', t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid"
    " JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %(s)s",
    "SELECT 'constraint', c.relname, con.conname, pg_get_constraintdef(con.oid) FROM pg_constraint con"
    " JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %(s)s",
]


def apply_pg(connect: Callable[[], psycopg.Connection[tuple[object, ...]]], steps: Sequence[Step]) -> Applied:
    """Run the steps in a fresh schema; stop at the first failing one; snapshot and drop the schema."""
    schema = f"order_{next(_schemas)}"
    with connect() as conn:
        conn.autocommit = True
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        failed_at = error = None
        for label, text in steps:
            try:
                conn.execute(text.encode())  # bytes: no placeholders, the simple query protocol, as Prisma
            except psycopg.Error as exc:
                failed_at, error = label, str(exc).splitlines()[0]
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                break
        rows: set[tuple[object, ...]] = set()
        for query in _PG_SNAPSHOT:
            rows.update(tuple(r) for r in conn.execute(query, {"s": schema}).fetchall())
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return Applied(failed_at, error, frozenset(rows))


def apply_pg_database(server: PgServer, steps: Sequence[Step]) -> Applied:
    """Run the steps in a database of their own (real migrations may name the `public` schema)."""
    name = server.create_database()
    try:
        with server.admin_connect(name) as conn:
            failed_at = error = None
            for label, text in steps:
                try:
                    conn.execute(text.encode())
                except psycopg.Error as exc:
                    failed_at, error = label, str(exc).splitlines()[0]
                    break
            rows: set[tuple[object, ...]] = set()
            for query in _PG_SNAPSHOT:
                rows.update(tuple(r) for r in conn.execute(query, {"s": "public"}).fetchall())
    finally:
        server.drop_database(name)
    return Applied(failed_at, error, frozenset(rows))


def _sqlite_snapshot(conn: sqlite3.Connection) -> frozenset[tuple[object, ...]]:
    rows: set[tuple[object, ...]] = set()
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        if table.startswith("sqlite_"):
            continue
        for col in conn.execute(
            'SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)', (table,)
        ):
            rows.add(("column", table, *col))
        for index in conn.execute('SELECT name, "unique" FROM pragma_index_list(?)', (table,)):
            columns = tuple(r[0] for r in conn.execute("SELECT name FROM pragma_index_info(?)", (index[0],)))
            rows.add(("index", table, *index, columns))
        for key in conn.execute(
            'SELECT "table", "from", "to", on_update, on_delete FROM pragma_foreign_key_list(?)', (table,)
        ):
            rows.add(("foreign key", table, *key))
    return frozenset(rows)


def apply_sqlite(steps: Sequence[Step]) -> Applied:
    """Run the steps in a fresh in-memory database; stop at the first failing one."""
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        failed_at = error = None
        for label, text in steps:
            try:
                conn.executescript(text)
            except sqlite3.Error as exc:
                failed_at, error = label, str(exc)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                break
        if failed_at is None:
            failed_at, error = _dangling_foreign_key(conn)
        return Applied(failed_at, error, _sqlite_snapshot(conn))


def _dangling_foreign_key(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
    """SQLite accepts a foreign key to a missing table (PostgreSQL refuses it); every write then fails."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in sorted(tables):
        for (target,) in conn.execute('SELECT "table" FROM pragma_foreign_key_list(?)', (table,)):
            if target not in tables:
                return "end", f"foreign key of {table} references missing table {target}"
    return None, None


def both_orders(
    apply: Callable[[Sequence[Step]], Applied], base: Sequence[Step], a: Sequence[Step], b: Sequence[Step]
) -> Outcome:
    """Base then A then B, and base then B then A."""
    return Outcome(apply([*base, *a, *b]), apply([*base, *b, *a]))
