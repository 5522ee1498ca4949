"""The test infrastructure works: PostgreSQL, Prisma's history rows, git worktrees, notifications, leaks."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import select
import sqlite3
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from desktop_notifier import DesktopNotifier, Urgency

from tests.support import leaks
from tests.support.gitrepo import (
    SEED_BEHAVIORAL,
    SEED_MAIN_MIGRATIONS,
    SEED_VECTOR_INDEXES,
    PrismaRepo,
    run_git,
    seed_migrations,
)
from tests.support.notifyserver import NotificationServer
from tests.support.pg import PgDatabase, PgServer
from tests.support.prisma_rows import (
    SQLITE_CREATE_TABLE,
    TimestampStyle,
    apply_like_prisma,
    create_history_table,
    insert_row,
    prisma_checksum,
    read_rows,
)

ORACLE = Path(__file__).resolve().parents[2] / "shared" / "prisma-oracle" / "prisma-oracle"


def libpq_url(prisma_url: str) -> str:
    """Prisma's URL without `?schema=…`, which libpq does not accept."""
    return prisma_url.split("?", 1)[0]


# -- PostgreSQL ----------------------------------------------------------------------------------------------


def test_pg_url_is_a_fresh_empty_database_with_a_password(pg_server: PgServer, pg_url: str) -> None:
    assert re.fullmatch(
        rf"postgresql://migwatch_test:secret@127\.0\.0\.1:{pg_server.port}/test_\d+_[0-9a-f]{{8}}\?schema=public",
        pg_url,
    )
    with psycopg.connect(libpq_url(pg_url)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("migwatch_test",)
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables.fetchall() == []


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_its_own_database(pg_database: PgDatabase, attempt: int) -> None:
    # Both runs create the same table: the second would fail if the database were shared.
    with pg_database.connect() as conn:
        conn.execute('CREATE TABLE "Marker" (attempt integer)')
        conn.execute('INSERT INTO "Marker" VALUES (%s)', (attempt,))
        assert conn.execute('SELECT attempt FROM "Marker"').fetchall() == [(attempt,)]


def test_wrong_password_is_refused(pg_server: PgServer, pg_database: PgDatabase) -> None:
    wrong = pg_server.url(pg_database.name, password="wrong")
    with pytest.raises(
        psycopg.OperationalError, match='password authentication failed for user "migwatch_test"'
    ):
        psycopg.connect(libpq_url(wrong), connect_timeout=2)


@pytest.mark.leakcheck
def test_stop_and_start_keep_the_data_and_the_port(pg_server: PgServer, pg_database: PgDatabase) -> None:
    port = pg_server.port
    with pg_database.connect() as conn:
        conn.execute("CREATE TABLE kept (x integer)")
        conn.execute("INSERT INTO kept VALUES (42)")
    live = psycopg.connect(libpq_url(pg_database.url))
    try:
        pg_server.stop()
        assert not pg_server.running
        with pytest.raises(psycopg.OperationalError):
            live.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="Connection refused"):
            psycopg.connect(libpq_url(pg_database.url), connect_timeout=2)
    finally:
        live.close()
        pg_server.start()
    assert pg_server.port == port
    with psycopg.connect(libpq_url(pg_database.url)) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]


def test_readonly_role_can_only_read(pg_server: PgServer, pg_database: PgDatabase) -> None:
    with pg_database.connect() as conn:
        conn.execute("CREATE TABLE before_grant (x integer)")
        conn.execute("INSERT INTO before_grant VALUES (1)")
    pg_server.create_readonly_role(pg_database.name, "migwatch_reader", "reader-pw")
    with pg_database.connect() as conn:
        conn.execute("CREATE TABLE after_grant (y integer)")
    reader_url = libpq_url(pg_server.url(pg_database.name, "migwatch_reader", "reader-pw"))
    with psycopg.connect(reader_url, autocommit=True) as conn:
        assert conn.execute("SELECT x FROM before_grant").fetchall() == [(1,)]
        assert conn.execute("SELECT y FROM after_grant").fetchall() == []
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege, match="permission denied for table before_grant"
        ):
            conn.execute("INSERT INTO before_grant VALUES (2)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema public"):
            conn.execute("CREATE TABLE sneaky (z integer)")


# -- Prisma's history table ----------------------------------------------------------------------------------


def test_prisma_checksum_replaces_invalid_utf8_and_keeps_the_bom() -> None:
    assert prisma_checksum(b"SELECT 1;\n") == hashlib.sha256(b"SELECT 1;\n").hexdigest()
    assert prisma_checksum(b"-- caf\xe9\n") == hashlib.sha256("-- caf\ufffd\n".encode()).hexdigest()
    assert prisma_checksum(b"\xef\xbb\xbfSELECT 1;") == hashlib.sha256(b"\xef\xbb\xbfSELECT 1;").hexdigest()
    assert prisma_checksum(b"SELECT 1;\r\n") != prisma_checksum(b"SELECT 1;\n")


def test_apply_like_prisma_on_postgresql(tmp_path: Path, pg_database: PgDatabase) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "postgresql")
    folders = [repo.migrations_path(repo.main) / name for name in SEED_MAIN_MIGRATIONS]
    start = datetime(2025, 10, 16, 12, 0, tzinfo=timezone.utc)
    with pg_database.connect() as conn:
        create_history_table(conn, "postgresql")
        for offset, folder in enumerate(folders):
            apply_like_prisma(
                conn, folder, provider="postgresql", started_at=start + timedelta(minutes=offset)
            )
        failed = repo.write_migration(repo.main, SEED_VECTOR_INDEXES, "CREATE INDEX broken ON nowhere (x);\n")
        apply_like_prisma(
            conn, failed, provider="postgresql", state="failed", started_at=start + timedelta(hours=1)
        )
        rows = read_rows(conn)
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'Mission' "
            "ORDER BY ordinal_position"
        ).fetchall()
    assert [row["migration_name"] for row in rows] == [*SEED_MAIN_MIGRATIONS, SEED_VECTOR_INDEXES]
    for row, folder in zip(rows, [*folders, failed], strict=True):
        assert row["checksum"] == prisma_checksum((folder / "migration.sql").read_bytes())
        assert len(str(row["id"])) == 36
    assert [
        (row["applied_steps_count"], row["finished_at"] is None, row["rolled_back_at"]) for row in rows
    ] == [
        (1, False, None),
        (1, False, None),
        (1, False, None),
        (0, True, None),
    ]
    assert rows[0]["started_at"] == start
    assert str(rows[3]["logs"]).startswith("A migration failed to apply.")
    assert columns == [("id",), ("userId",), ("title",), ("orchestration",)]


def test_history_table_in_another_schema_and_rolled_back_rows(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    folder = tmp_path / "20251001000000_init"
    folder.mkdir()
    (folder / "migration.sql").write_bytes(b"SELECT 1;\n")
    with pg_database.connect() as conn:
        create_history_table(conn, "postgresql", schema="tenant_a")
        apply_like_prisma(conn, folder, provider="postgresql", state="rolled_back", schema="tenant_a")
        rows = read_rows(conn, schema="tenant_a")
        in_public = conn.execute("SELECT to_regclass('public._prisma_migrations')").fetchone()
        layout = conn.execute(
            "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
            "FROM information_schema.columns "
            "WHERE table_schema = 'tenant_a' AND table_name = '_prisma_migrations' "
            "ORDER BY ordinal_position"
        ).fetchall()
    assert in_public == (None,)
    assert len(rows) == 1
    assert rows[0]["finished_at"] is None
    assert rows[0]["rolled_back_at"] is not None
    assert layout == [
        ("id", "character varying", 36, "NO", None),
        ("checksum", "character varying", 64, "NO", None),
        ("finished_at", "timestamp with time zone", None, "YES", None),
        ("migration_name", "character varying", 255, "NO", None),
        ("logs", "text", None, "YES", None),
        ("rolled_back_at", "timestamp with time zone", None, "YES", None),
        ("started_at", "timestamp with time zone", None, "NO", "now()"),
        ("applied_steps_count", "integer", None, "NO", "0"),
    ]


@pytest.mark.parametrize(("style", "sqlite_type"), [("unix_ms", "integer"), ("rfc3339", "text")])
def test_apply_like_prisma_on_sqlite(tmp_path: Path, style: TimestampStyle, sqlite_type: str) -> None:
    repo = PrismaRepo.create(tmp_path, provider="sqlite")
    migrations = seed_migrations("sqlite")
    folder = repo.write_migration(repo.main, SEED_MAIN_MIGRATIONS[0], migrations[SEED_MAIN_MIGRATIONS[0]])
    started = datetime(2025, 10, 1, 0, 0, 0, 123000, tzinfo=timezone.utc)
    conn = sqlite3.connect(tmp_path / "dev.db")
    try:
        create_history_table(conn, "sqlite")
        apply_like_prisma(conn, folder, provider="sqlite", started_at=started, timestamp_style=style)
        insert_row(conn, "sqlite", migration_name="garbage", checksum="NOT-HEX", started_at="yesterday")
        table_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = '_prisma_migrations'").fetchone()
        stored = conn.execute(
            "SELECT started_at, typeof(started_at), typeof(finished_at) FROM _prisma_migrations "
            "WHERE migration_name = ?",
            (folder.name,),
        ).fetchone()
        rows = read_rows(conn)
        user_table = conn.execute("SELECT name FROM sqlite_master WHERE name = 'User'").fetchone()
    finally:
        conn.close()
    assert table_sql == (SQLITE_CREATE_TABLE,)
    expected_started = 1759276800123 if style == "unix_ms" else "2025-10-01T00:00:00.123+00:00"
    assert stored == (expected_started, sqlite_type, sqlite_type)
    assert [row["migration_name"] for row in rows] == [folder.name, "garbage"]
    assert rows[0]["checksum"] == prisma_checksum((folder / "migration.sql").read_bytes())
    assert user_table == ("User",)


def _oracle_diagnose(schema: Path, url: str) -> dict[str, object]:
    completed = subprocess.run(
        [str(ORACLE), "--diagnose", "--schema", str(schema), "--url", url],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    document: dict[str, object] = json.loads(completed.stdout)
    return document


@pytest.mark.leakcheck
def test_prisma_agrees_with_apply_like_prisma(tmp_path: Path, pg_database: PgDatabase) -> None:
    """The real Prisma engine reads our rows as Prisma's own: one edited, one failed, one unapplied."""
    repo = PrismaRepo.seed_story(tmp_path, "postgresql")
    migrations = seed_migrations("postgresql")
    main_folders = [repo.migrations_path(repo.main) / name for name in SEED_MAIN_MIGRATIONS]
    with pg_database.connect() as conn:
        create_history_table(conn, "postgresql")
        for folder in main_folders[:2]:
            apply_like_prisma(conn, folder, provider="postgresql")
        apply_like_prisma(conn, main_folders[2], provider="postgresql", state="failed")
    edited = main_folders[1] / "migration.sql"
    edited.write_bytes(edited.read_bytes() + b"-- edited after it was applied\n")
    repo.write_migration(repo.main, SEED_BEHAVIORAL, migrations[SEED_BEHAVIORAL])
    verdict = _oracle_diagnose(repo.schema_path(repo.main), pg_database.url)
    diagnose = verdict["diagnose"]
    assert isinstance(diagnose, dict), verdict
    assert diagnose["editedMigrationNames"] == [SEED_MAIN_MIGRATIONS[1]]
    assert diagnose["failedMigrationNames"] == [SEED_MAIN_MIGRATIONS[2]]
    assert diagnose["hasMigrationsTable"] is True
    assert diagnose["history"]["unappliedMigrationNames"] == [SEED_BEHAVIORAL]


# -- git -----------------------------------------------------------------------------------------------------


def _worktrees(repo_path: Path) -> list[tuple[str, str]]:
    porcelain = run_git(repo_path, "worktree", "list", "--porcelain")
    entries = []
    for block in porcelain.split("\n\n"):
        fields = dict(line.split(" ", 1) for line in block.splitlines() if " " in line)
        entries.append((fields["worktree"], fields["branch"]))
    return entries


def test_seed_story_has_three_real_worktrees(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = PrismaRepo.seed_story(
        tmp_path, "postgresql", database_url="postgresql://u:p@127.0.0.1:1/db", env=git_env
    )
    assert _worktrees(repo.main) == [
        (str(tmp_path / "Americano"), "refs/heads/main"),
        (str(tmp_path / "Americano-epic3"), "refs/heads/feature/epic-3-knowledge-graph"),
        (str(tmp_path / "Americano-epic5"), "refs/heads/feature/epic-5-behavioral-twin"),
    ]
    for worktree in (repo.main, repo.epic3, repo.epic5):
        names = sorted(path.name for path in repo.migrations_path(worktree).iterdir() if path.is_dir())
        assert names == list(SEED_MAIN_MIGRATIONS)
        assert (
            repo.package_path(worktree) / ".env"
        ).read_text() == 'DATABASE_URL="postgresql://u:p@127.0.0.1:1/db"\n'
    assert repo.git(repo.epic3, "status", "--porcelain") == ""  # .env is ignored
    assert json.loads((repo.package_path(repo.main) / "package.json").read_text())["devDependencies"] == {
        "prisma": "6.19.3"
    }
    assert 'url      = env("DATABASE_URL")' in repo.schema_path(repo.main).read_text()
    lock = (repo.migrations_path(repo.main) / "migration_lock.toml").read_text()
    assert lock.endswith('provider = "postgresql"\n')


@pytest.mark.leakcheck
def test_worktree_add_commit_merge_remove(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite", env=git_env)
    migrations = seed_migrations("sqlite")
    repo.write_migration(repo.epic5, SEED_BEHAVIORAL, migrations[SEED_BEHAVIORAL])
    sha = repo.commit(repo.epic5, "Add behavioral pattern models")
    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    repo.merge(repo.epic3, "feature/epic-5-behavioral-twin")
    assert (repo.migrations_path(repo.epic3) / SEED_BEHAVIORAL / "migration.sql").is_file()
    assert repo.git(repo.epic5, "log", "-1", "--format=%an <%ae>") == "Migwatch Test <test@migwatch.invalid>"
    extra = repo.add_worktree("Americano-tmp", "tmp/scratch")
    assert len(_worktrees(repo.main)) == 4
    repo.remove_worktree(extra)
    assert not extra.exists()
    assert len(_worktrees(repo.main)) == 3


def test_git_env_shuts_out_the_machines_git_config(tmp_path: Path, git_env: dict[str, str]) -> None:
    assert os.environ["HOME"] == git_env["HOME"] != str(Path("/root"))
    assert run_git(tmp_path, "config", "--global", "init.defaultBranch") == "main"
    assert run_git(tmp_path, "var", "GIT_AUTHOR_IDENT").startswith("Migwatch Test <test@migwatch.invalid> ")
    assert "GIT_DIR" not in os.environ


def test_plain_and_prisma7_layouts(tmp_path: Path) -> None:
    plain = PrismaRepo.create(tmp_path / "plain", package_dir="", provider="sqlite", prisma_version=None)
    assert plain.schema_path(plain.main) == plain.main / "prisma" / "schema.prisma"
    assert "devDependencies" not in json.loads((plain.main / "package.json").read_text())
    seven = PrismaRepo.create(tmp_path / "seven", prisma7_config=True, prisma_version="7.10.0")
    config = (seven.package_path(seven.main) / "prisma.config.ts").read_text()
    assert 'import "dotenv/config";' in config
    assert 'datasource: { url: env("DATABASE_URL") },' in config
    assert "url" not in seven.schema_path(seven.main).read_text()


# -- notifications -------------------------------------------------------------------------------------------


@pytest.mark.leakcheck
def test_notification_round_trip(notifications: NotificationServer) -> None:
    async def send() -> None:
        notifier = DesktopNotifier(app_name="migwatch")
        await notifier.send(
            title="Americano-epic3: behind the database",
            message="20251016231054_add_story_5_1_behavioral_pattern_models was applied from Americano-epic5",
            urgency=Urgency.Critical,
        )

    asyncio.run(send())
    notifications.wait_for_displayed(1)
    assert notifications.history() == [
        {
            "summary": "Americano-epic3: behind the database",
            "body": "20251016231054_add_story_5_1_behavioral_pattern_models was applied from Americano-epic5",
            "urgency": "critical",
            "appname": "migwatch",
        }
    ]
    assert notifications.displayed_count() == 0
    notifications.clear()
    assert notifications.history() == []


def test_wait_for_times_out_with_what_it_saw(notifications: NotificationServer) -> None:
    with pytest.raises(AssertionError, match=r"no matching notifications within 0.2 s; history: \[\]"):
        notifications.wait_for(lambda seen: len(seen) > 0, timeout=0.2)


# -- leaks ---------------------------------------------------------------------------------------------------


def test_find_leaks_reports_a_thread_until_it_ends() -> None:
    before = leaks.snapshot()
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="leaky-worker", daemon=True)
    thread.start()
    try:
        assert leaks.find_leaks(before, grace=0.1) == [
            "thread 'leaky-worker' (daemon=True, target=Event.wait) is still running"
        ]
    finally:
        release.set()
    assert leaks.find_leaks(before, grace=2.0) == []


def test_find_leaks_reports_child_processes_and_zombies() -> None:
    before = leaks.snapshot()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert leaks.find_leaks(before, grace=0.1) == [
            f"child process pid {sleeper.pid} (sleep 30), state S is still there"
        ]
    finally:
        sleeper.kill()
        sleeper.wait()
    quick = subprocess.Popen(["true"])
    pidfd = os.pidfd_open(quick.pid)
    try:
        select.select([pidfd], [], [], 5)  # exited, not yet reaped: a zombie
    finally:
        os.close(pidfd)
    assert leaks.find_leaks(before, grace=0.1) == [
        f"child process pid {quick.pid} (true), a zombie: it exited and was never waited for is still there"
    ]
    quick.wait()
    assert leaks.find_leaks(before, grace=0.1) == []


def test_no_leaks_fixture_fails_a_leaking_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leaks, "DEFAULT_GRACE", 0.2)
    pytester.makeconftest("from tests.conftest import no_leaks, _leakcheck_marker, pytest_configure\n")
    pytester.makepyfile(
        """
        import threading
        import pytest

        stop = threading.Event()

        def test_leaks(no_leaks):
            threading.Thread(target=stop.wait, name="forgotten", daemon=True).start()

        @pytest.mark.leakcheck
        def test_marked_leaks():
            threading.Thread(target=stop.wait, name="forgotten-too", daemon=True).start()

        def test_clean(no_leaks):
            worker = threading.Thread(target=lambda: None)
            worker.start()

        def test_zz_release():
            stop.set()
        """
    )
    started = time.monotonic()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*leaked: thread 'forgotten' (daemon=True, target=Event.wait) is still running",
            "*leaked: thread 'forgotten-too' (daemon=True, target=Event.wait) is still running",
        ]
    )
    assert time.monotonic() - started < 5
