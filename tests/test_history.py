"""Reading `_prisma_migrations` from a real PostgreSQL server and real SQLite files, read-only."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import errors
from psycopg.pq import TransactionStatus

from migwatch.dburl import database_ref
from migwatch.history import (
    EARLIEST,
    LATEST,
    HistoryError,
    ReadOptions,
    connect_sqlite,
    fingerprint_sqlite,
    parse_timestamp,
    read_history,
)
from migwatch.model import DatabaseRef, HistoryRow
from migwatch.pghistory import (
    PRISMA_ADVISORY_LOCK,
    connect_postgres,
    fingerprint_postgres,
    read_only,
    read_postgres,
)
from tests.support.pg import TEST_PASSWORD, TEST_USER, PgDatabase, PgServer
from tests.support.prisma_rows import (
    POSTGRES_TABLE_COLUMNS,
    apply_like_prisma,
    create_history_table,
    insert_row,
    prisma_checksum,
)

T0 = datetime(2025, 10, 1, 12, 0, 0, tzinfo=timezone.utc)


def pg_ref(url: str) -> DatabaseRef:
    return database_ref("postgresql", url, relative_to=Path("/"))


def sqlite_ref(path: Path) -> DatabaseRef:
    return database_ref("sqlite", f"file:{path}", relative_to=Path("/"))


def write_migration(root: Path, name: str, sql: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "migration.sql").write_text(sql, encoding="utf-8")
    return folder


@pytest.fixture
def admin(pg_database: PgDatabase) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with pg_database.connect() as conn:
        yield conn


# -- PostgreSQL: rows -----------------------------------------------------------------------------------


def test_postgres_rows_in_started_at_order_with_flags(
    pg_database: PgDatabase, admin: psycopg.Connection[tuple[object, ...]], tmp_path: Path
) -> None:
    create_history_table(admin, "postgresql")
    init = write_migration(
        tmp_path, "20251001000000_init", 'CREATE TABLE "User" ("id" SERIAL PRIMARY KEY);\n'
    )
    broken = write_migration(tmp_path, "20251002000000_broken", "SELECT 1;\n")
    undone = write_migration(tmp_path, "20251003000000_undone", "SELECT 2;\n")
    # Inserted out of order: rows must come back by started_at.
    undone_id = apply_like_prisma(
        admin, undone, provider="postgresql", state="rolled_back", started_at=T0 + timedelta(hours=2)
    )
    init_id = apply_like_prisma(admin, init, provider="postgresql", started_at=T0)
    broken_id = apply_like_prisma(
        admin, broken, provider="postgresql", state="failed", started_at=T0 + timedelta(hours=1), logs="boom"
    )

    history = read_history(pg_ref(pg_database.url))

    assert history.reachable is True
    assert history.has_table is True
    assert history.error is None
    assert history.migration_running is False
    assert history.rows == (
        HistoryRow(
            id=init_id,
            migration_name="20251001000000_init",
            checksum=prisma_checksum((init / "migration.sql").read_bytes()),
            started_at=T0,
            finished_at=T0 + timedelta(milliseconds=5),
            rolled_back_at=None,
            logs=None,
            applied_steps_count=1,
        ),
        HistoryRow(
            id=broken_id,
            migration_name="20251002000000_broken",
            checksum=prisma_checksum(b"SELECT 1;\n"),
            started_at=T0 + timedelta(hours=1),
            finished_at=None,
            rolled_back_at=None,
            logs="boom",
            applied_steps_count=0,
        ),
        HistoryRow(
            id=undone_id,
            migration_name="20251003000000_undone",
            checksum=prisma_checksum(b"SELECT 2;\n"),
            started_at=T0 + timedelta(hours=2),
            finished_at=None,
            rolled_back_at=T0 + timedelta(hours=2, seconds=1),
            logs=history.rows[2].logs,
            applied_steps_count=0,
        ),
    )
    assert [(row.failed, row.rolled_back) for row in history.rows] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    assert history.rows[2].logs is not None and "20251003000000_undone" in history.rows[2].logs


def test_postgres_other_schema(
    pg_database: PgDatabase, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    create_history_table(admin, "postgresql", schema="other")
    insert_row(
        admin, "postgresql", schema="other", checksum="a" * 64, migration_name="m_other", started_at=T0
    )
    url = pg_database.url.replace("?schema=public", "?schema=other")
    ref = pg_ref(url)
    assert ref.schema == "other"
    assert ref.id.endswith("?schema=other")

    history = read_history(ref)
    assert history.has_table is True
    assert [row.migration_name for row in history.rows] == ["m_other"]
    # The public schema has no table.
    public = read_history(pg_ref(pg_database.url))
    assert (public.reachable, public.has_table, public.rows) == (True, False, ())


def test_postgres_schema_with_odd_characters(
    pg_database: PgDatabase, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    create_history_table(admin, "postgresql", schema='We"ird Schema')
    insert_row(
        admin, "postgresql", schema='We"ird Schema', checksum="b" * 64, migration_name="m", started_at=T0
    )
    url = pg_database.url.replace("?schema=public", "?schema=We%22ird%20Schema")
    history = read_history(pg_ref(url))
    assert [row.migration_name for row in history.rows] == ["m"]


def test_postgres_missing_table(pg_database: PgDatabase) -> None:
    history = read_history(pg_ref(pg_database.url))
    assert history.reachable is True
    assert history.has_table is False
    assert history.rows == ()
    assert history.error is None


def test_postgres_missing_database(pg_server: PgServer) -> None:
    url = pg_server.url("no_such_db")
    history = read_history(pg_ref(url))
    assert history.reachable is False
    assert history.has_table is False
    assert history.error == (
        f"cannot connect to postgresql://{TEST_USER}@127.0.0.1:{pg_server.port}/no_such_db?schema=public: "
        f'connection failed: connection to server at "127.0.0.1", port {pg_server.port} failed: '
        'FATAL:  database "no_such_db" does not exist'
    )
    assert TEST_PASSWORD not in history.error


def test_postgres_wrong_password(pg_database: PgDatabase, pg_server: PgServer) -> None:
    url = pg_server.url(pg_database.name, password="not-the-Secret-42")
    history = read_history(pg_ref(url))
    assert history.reachable is False
    assert history.error == (
        f"cannot connect to postgresql://{TEST_USER}@127.0.0.1:{pg_server.port}/{pg_database.name}"
        f'?schema=public: connection failed: connection to server at "127.0.0.1", port {pg_server.port} '
        f'failed: FATAL:  password authentication failed for user "{TEST_USER}"'
    )
    assert "not-the-Secret-42" not in history.error
    assert "\n" not in history.error


def test_postgres_unknown_host_is_unreachable_quickly() -> None:
    ref = pg_ref("postgresql://kyin:hunter2@nonexistent.invalid:5432/americano?schema=public")
    started = time.monotonic()
    history = read_history(ref, ReadOptions(connect_timeout=2))
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert history.reachable is False
    assert history.error is not None
    prefix = (
        "cannot connect to postgresql://kyin@nonexistent.invalid:5432/americano?schema=public: "
        "failed to resolve host 'nonexistent.invalid': "
    )
    assert history.error.startswith(prefix), history.error
    assert "hunter2" not in history.error
    assert "\n" not in history.error


def test_postgres_nothing_listening() -> None:
    ref = pg_ref("postgresql://kyin:hunter2@127.0.0.1:1/americano")
    history = read_history(ref)
    assert history.reachable is False
    assert history.error == (
        "cannot connect to postgresql://kyin@127.0.0.1:1/americano?schema=public: "
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
    )


def test_postgres_server_stopped_then_back(pg_database: PgDatabase, pg_server: PgServer) -> None:
    ref = pg_ref(pg_database.url)
    live = connect_postgres(ref)
    try:
        pg_server.stop()
        try:
            history = read_history(ref)
            assert history.reachable is False
            assert history.error is not None
            assert history.error.startswith(
                f"cannot connect to {ref.id}: connection failed: connection to server at "
                f'"127.0.0.1", port {pg_server.port} failed: '
            )
            # The daemon's long-lived connection: the read raises one password-free line.
            with pytest.raises(HistoryError) as raised:
                read_postgres(live, ref)
            assert str(raised.value).startswith(f"lost connection to {ref.id}: ")
            assert "\n" not in str(raised.value)
            assert TEST_PASSWORD not in str(raised.value)
        finally:
            pg_server.start()
    finally:
        live.close()
    recovered = read_history(ref)
    assert (recovered.reachable, recovered.has_table, recovered.error) == (True, False, None)


def test_postgres_garbage_rows_are_read(
    pg_database: PgDatabase, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    # A table made by hand (or another tool): no NOT NULL, no key, odd types.
    admin.execute(
        'CREATE TABLE "_prisma_migrations" (id text, checksum text, finished_at timestamptz, '
        "migration_name text, logs text, rolled_back_at timestamptz, started_at timestamptz, "
        "applied_steps_count bigint)"
    )
    admin.execute(
        "INSERT INTO _prisma_migrations VALUES "
        "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "
        "('x', repeat('Z', 200), now(), 'm', '', NULL, '2025-10-01T12:00:00Z', 99999999999)"
    )
    history = read_history(pg_ref(pg_database.url))
    assert history.reachable is True and history.error is None
    named = next(row for row in history.rows if row.migration_name == "m")
    assert named.checksum == "Z" * 200
    assert named.applied_steps_count == 99999999999
    assert named.started_at == T0
    empty = next(row for row in history.rows if row.migration_name == "")
    assert empty == HistoryRow(
        id="", migration_name="", checksum=None, started_at=None, finished_at=None, rolled_back_at=None
    )
    assert empty.failed is True


# -- PostgreSQL: read-only -------------------------------------------------------------------------------


def test_postgres_reads_are_read_only_transactions(
    pg_database: PgDatabase, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    create_history_table(admin, "postgresql")
    with connect_postgres(pg_ref(pg_database.url)) as conn:
        # No startup `options` (poolers refuse them): read-only and the timeout are per transaction.
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
        assert conn.prepare_threshold is None
        with read_only(conn) as cur:
            assert cur.execute("SHOW transaction_read_only").fetchone() == ("on",)
            assert cur.execute("SHOW statement_timeout").fetchone() == ("10s",)
            assert cur.execute("SELECT current_setting('application_name')").fetchone() == ("migwatch",)
            with pytest.raises(errors.ReadOnlySqlTransaction):
                cur.execute(
                    "INSERT INTO _prisma_migrations (id, checksum, migration_name) VALUES ('1', 'c', 'm')"
                )
        with read_only(conn) as cur, pytest.raises(errors.ReadOnlySqlTransaction):
            cur.execute("CREATE TABLE sneaky (i int)")
        assert conn.info.transaction_status == TransactionStatus.IDLE
        assert read_postgres(conn, pg_ref(pg_database.url)).reachable
    assert admin.execute("SELECT count(*) FROM _prisma_migrations").fetchone() == (0,)


def test_url_options_cannot_turn_read_only_off(pg_database: PgDatabase) -> None:
    url = pg_database.url + "&options=-c%20default_transaction_read_only%3Doff%20-c%20search_path%3Dpublic"
    with connect_postgres(pg_ref(url)) as conn, read_only(conn) as cur:
        assert cur.execute("SHOW transaction_read_only").fetchone() == ("on",)
        assert cur.execute("SHOW search_path").fetchone() == ("public",)
        with pytest.raises(errors.ReadOnlySqlTransaction):
            cur.execute("CREATE TABLE sneaky (i int)")


def test_select_only_role_can_read(
    pg_database: PgDatabase,
    pg_server: PgServer,
    admin: psycopg.Connection[tuple[object, ...]],
    tmp_path: Path,
) -> None:
    create_history_table(admin, "postgresql")
    apply_like_prisma(
        admin, write_migration(tmp_path, "20251001000000_init", "SELECT 1;\n"), provider="postgresql"
    )
    pg_server.create_readonly_role(pg_database.name, "reader", "r3ader-pw")
    ref = pg_ref(pg_server.url(pg_database.name, user="reader", password="r3ader-pw"))
    assert ref.id == f"postgresql://reader@127.0.0.1:{pg_server.port}/{pg_database.name}?schema=public"

    history = read_history(ref)
    assert history.reachable is True and history.error is None
    assert [row.migration_name for row in history.rows] == ["20251001000000_init"]
    with connect_postgres(ref) as conn:
        assert fingerprint_postgres(conn, ref).startswith("1:")
        # Even with the session switch turned off, the role cannot write.
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DELETE FROM _prisma_migrations")


# -- PostgreSQL: the advisory lock -----------------------------------------------------------------------


def test_advisory_lock_held_by_another_session_means_migration_running(
    pg_database: PgDatabase, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    ref = pg_ref(pg_database.url)
    assert read_history(ref).migration_running is False
    with pg_database.connect() as prisma_session:
        prisma_session.execute("SELECT pg_advisory_lock(72707369)")
        locks = admin.execute(
            "SELECT classid, objid, objsubid, granted FROM pg_locks "
            "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
        ).fetchall()
        assert locks == [(0, PRISMA_ADVISORY_LOCK, 1, True)]
        # Before the table exists too: Prisma's first deploy takes the lock first.
        history = read_history(ref)
        assert (history.has_table, history.migration_running) == (False, True)
        create_history_table(admin, "postgresql")
        assert read_history(ref).migration_running is True
        prisma_session.execute("SELECT pg_advisory_unlock(72707369)")
        assert read_history(ref).migration_running is False


def test_other_advisory_locks_do_not_count(
    pg_database: PgDatabase, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    ref = pg_ref(pg_database.url)
    with pg_database.connect() as other:
        other.execute("SELECT pg_advisory_lock(72707368)")
        other.execute("SELECT pg_advisory_lock(0, 72707369)")  # two-key form: objsubid 2
        assert read_history(ref).migration_running is False


# -- PostgreSQL: fingerprint -----------------------------------------------------------------------------


def test_postgres_fingerprint_changes_only_with_the_rows(
    pg_database: PgDatabase, admin: psycopg.Connection[tuple[object, ...]], tmp_path: Path
) -> None:
    ref = pg_ref(pg_database.url)
    with connect_postgres(ref) as conn:
        assert fingerprint_postgres(conn, ref) == "no-table"
        create_history_table(admin, "postgresql")
        empty = fingerprint_postgres(conn, ref)
        assert empty != "no-table"
        assert fingerprint_postgres(conn, ref) == empty

        row_id = apply_like_prisma(
            admin,
            write_migration(tmp_path, "20251001000000_a", "SELECT 1;\n"),
            provider="postgresql",
            state="failed",
        )
        one = fingerprint_postgres(conn, ref)
        assert one != empty
        # Unrelated activity changes nothing.
        admin.execute('CREATE TABLE "User" (id int)')
        admin.execute('INSERT INTO "User" VALUES (1)')
        assert fingerprint_postgres(conn, ref) == one

        seen = {empty, one}
        for update in (
            "UPDATE _prisma_migrations SET logs = 'Database error: boom' WHERE id = %s",
            "UPDATE _prisma_migrations SET rolled_back_at = now() WHERE id = %s",
            "UPDATE _prisma_migrations SET checksum = repeat('0', 64) WHERE id = %s",
            "UPDATE _prisma_migrations SET applied_steps_count = 3 WHERE id = %s",
            "UPDATE _prisma_migrations SET rolled_back_at = NULL, finished_at = now() WHERE id = %s",
        ):
            admin.execute(update, (row_id,))
            current = fingerprint_postgres(conn, ref)
            assert current not in seen, update
            seen.add(current)
            assert fingerprint_postgres(conn, ref) == current
        admin.execute("DELETE FROM _prisma_migrations")
        assert fingerprint_postgres(conn, ref) == empty


def test_postgres_fingerprint_tells_null_from_a_moved_value(
    pg_database: PgDatabase, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    ref = pg_ref(pg_database.url)
    create_history_table(admin, "postgresql")
    insert_row(
        admin, "postgresql", id="r", checksum="c" * 64, migration_name="m", started_at=T0, finished_at=T0
    )
    with connect_postgres(ref) as conn:
        before = fingerprint_postgres(conn, ref)
        admin.execute("UPDATE _prisma_migrations SET finished_at = NULL, rolled_back_at = %s", (T0,))
        assert fingerprint_postgres(conn, ref) != before


def test_history_table_layout_matches_testing_md(admin: psycopg.Connection[tuple[object, ...]]) -> None:
    # Guard for the helper the other tests rely on: Prisma's column order and types.
    create_history_table(admin, "postgresql")
    columns = admin.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position"
    ).fetchall()
    assert [name for name, _, _ in columns] == [
        "id", "checksum", "finished_at", "migration_name", "logs", "rolled_back_at", "started_at",
        "applied_steps_count",
    ]  # fmt: skip
    assert "NOT NULL" in POSTGRES_TABLE_COLUMNS


# -- SQLite ----------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    path = tmp_path / "prisma" / "dev.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    create_history_table(conn, "sqlite")
    yield path, conn
    conn.close()


def test_sqlite_integer_ms_and_rfc3339_timestamps(
    sqlite_db: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    path, conn = sqlite_db
    first = write_migration(tmp_path / "m", "20251001000000_init", 'CREATE TABLE "User" ("id" INTEGER);\n')
    second = write_migration(
        tmp_path / "m", "20251002000000_next", 'CREATE TABLE "Mission" ("id" INTEGER);\n'
    )
    apply_like_prisma(conn, first, provider="sqlite", started_at=T0, timestamp_style="unix_ms")
    apply_like_prisma(
        conn, second, provider="sqlite", started_at=T0 + timedelta(minutes=1), timestamp_style="rfc3339"
    )
    stored = conn.execute(
        "SELECT started_at, finished_at FROM _prisma_migrations ORDER BY migration_name"
    ).fetchall()
    assert stored[0] == (int(T0.timestamp() * 1000), int(T0.timestamp() * 1000) + 5)
    assert stored[1] == ("2025-10-01T12:01:00.000+00:00", "2025-10-01T12:01:00.005+00:00")

    history = read_history(sqlite_ref(path))
    assert history.reachable is True and history.has_table is True and history.error is None
    assert [(r.migration_name, r.started_at, r.finished_at, r.applied_steps_count) for r in history.rows] == [
        ("20251001000000_init", T0, T0 + timedelta(milliseconds=5), 1),
        ("20251002000000_next", T0 + timedelta(minutes=1), T0 + timedelta(minutes=1, milliseconds=5), 1),
    ]
    assert history.rows[0].checksum == prisma_checksum((first / "migration.sql").read_bytes())
    assert history.migration_running is False


def test_sqlite_garbage_rows_are_read(sqlite_db: tuple[Path, sqlite3.Connection]) -> None:
    path, conn = sqlite_db
    conn.execute("DROP TABLE _prisma_migrations")
    conn.execute(
        "CREATE TABLE _prisma_migrations (id, checksum, finished_at, migration_name, logs, rolled_back_at, "
        "started_at, applied_steps_count)"
    )
    conn.executemany(
        "INSERT INTO _prisma_migrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("1", None, "yesterday", "weird_time", None, None, "2025-10-01 12:00:00", "three"),
            (2, b"\xffbytes", 1.5e12, "float_ms", b"log \xff", "", "not a date", None),
            ("3", "c" * 64, None, "never_finished", None, None, 99999999999999999, "7"),
            (None, None, None, None, None, None, None, None),
        ],
    )
    conn.commit()
    history = read_history(sqlite_ref(path))
    assert history.reachable is True and history.error is None
    rows = {row.migration_name: row for row in history.rows}
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert rows["weird_time"].started_at == T0
    assert rows["weird_time"].finished_at == epoch  # set but unreadable: still "finished"
    assert rows["weird_time"].applied_steps_count == 0
    assert rows["weird_time"].failed is False
    assert rows["float_ms"].id == "2"
    assert rows["float_ms"].checksum == "\udcffbytes"  # lossless: the byte is kept as a surrogate escape
    assert rows["float_ms"].finished_at == datetime.fromtimestamp(1.5e9, tz=timezone.utc)
    assert rows["float_ms"].logs == "log \udcff"
    assert rows["float_ms"].rolled_back_at == epoch
    assert rows["float_ms"].started_at == epoch
    assert rows["never_finished"].started_at == LATEST  # beyond datetime's range: its latest value
    assert rows["never_finished"].applied_steps_count == 7
    assert rows["never_finished"].failed is True
    assert rows[""].id == ""


def test_sqlite_is_opened_read_only_and_left_untouched(
    sqlite_db: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    path, conn = sqlite_db
    apply_like_prisma(
        conn, write_migration(tmp_path / "m", "20251001000000_init", "SELECT 1;\n"), provider="sqlite"
    )
    conn.close()
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    siblings = sorted(p.name for p in path.parent.iterdir())

    assert len(read_history(sqlite_ref(path)).rows) == 1
    reader = connect_sqlite(path)
    try:
        assert reader.execute("SELECT count(*) FROM _prisma_migrations").fetchone() == (1,)
        with pytest.raises(sqlite3.OperationalError, match="attempt to write a readonly database"):
            reader.execute("DELETE FROM _prisma_migrations")
        with pytest.raises(sqlite3.OperationalError, match="attempt to write a readonly database"):
            reader.execute("CREATE TABLE sneaky (i)")
    finally:
        reader.close()

    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in path.parent.iterdir()) == siblings


def test_sqlite_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "prisma" / "dev.db"
    history = read_history(sqlite_ref(path))
    assert history.reachable is True
    assert history.has_table is False
    assert history.rows == ()
    assert history.error == f"{path} does not exist yet"
    assert not path.exists()
    assert not path.parent.exists()
    with pytest.raises(HistoryError) as raised:
        connect_sqlite(path)
    assert str(raised.value) == f"cannot open {path}: unable to open database file"
    assert not path.exists()


def test_sqlite_file_without_the_table(tmp_path: Path) -> None:
    path = tmp_path / "dev.db"
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE "User" (id INTEGER)')
    conn.close()
    history = read_history(sqlite_ref(path))
    assert (history.reachable, history.has_table, history.rows, history.error) == (True, False, (), None)


def test_sqlite_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "dev.db"
    path.write_bytes(b"this is not sqlite" * 100)
    history = read_history(sqlite_ref(path))
    assert history.reachable is False
    assert history.error == f"cannot read _prisma_migrations in {path}: file is not a database"


def test_sqlite_path_with_uri_special_characters(tmp_path: Path) -> None:
    folder = tmp_path / "my project #1 ?x=y%20"
    folder.mkdir()
    path = folder / "dev db.sqlite"
    conn = sqlite3.connect(path)
    create_history_table(conn, "sqlite")
    insert_row(conn, "sqlite", checksum="a" * 64, migration_name="m", started_at=T0)
    conn.close()
    # The URL percent-encodes `?`, `#` and `%`; the DatabaseRef keeps the decoded path.
    ref = database_ref("sqlite", f"file:{quote(str(path))}", relative_to=Path("/"))
    assert ref.id == f"file:{path}"
    history = read_history(ref)
    assert [row.migration_name for row in history.rows] == ["m"]
    assert fingerprint_sqlite(ref).endswith("|-|2")  # no WAL; two commits so far


def test_sqlite_fingerprint_changes_with_every_commit(sqlite_db: tuple[Path, sqlite3.Connection]) -> None:
    path, conn = sqlite_db
    ref = sqlite_ref(path)
    assert fingerprint_sqlite(sqlite_ref(path.with_name("absent.db"))) == "-|-|-"
    row_id = insert_row(conn, "sqlite", checksum="a" * 64, migration_name="m", started_at=T0)
    first = fingerprint_sqlite(ref)
    assert fingerprint_sqlite(ref) == first
    read_history(ref)
    assert fingerprint_sqlite(ref) == first  # reading changes nothing

    # Prisma finishes a row with an UPDATE a few ms after inserting it: same size, and on a coarse
    # file clock the same mtime. Pin the mtime to prove the fingerprint does not rely on it.
    stat = path.stat()
    conn.execute("UPDATE _prisma_migrations SET finished_at = ? WHERE id = ?", (1, row_id))
    conn.commit()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert fingerprint_sqlite(ref) != first


# -- timestamps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (1759320000000, T0),
        ("1759320000000", T0),
        (1759320000000.0, T0),
        ("2025-10-01T12:00:00Z", T0),
        ("2025-10-01T12:00:00.000+00:00", T0),
        ("2025-10-01T14:00:00+02:00", T0),
        ("2025-10-01 12:00:00", T0),
        (datetime(2025, 10, 1, 12, 0, 0), T0),
        (T0, T0),
        ("garbage", datetime(1970, 1, 1, tzinfo=timezone.utc)),
        ("", datetime(1970, 1, 1, tzinfo=timezone.utc)),
        (10**30, LATEST),
        (-(10**30), EARLIEST),
        ("Infinity", LATEST),
        ("-infinity", EARLIEST),
        ("NaN", datetime(1970, 1, 1, tzinfo=timezone.utc)),
    ],
)
def test_parse_timestamp(value: object, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected
