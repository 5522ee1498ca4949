"""Hostile input, property-based (issue 15): whatever a migrations folder or a history table holds, reading
it, diagnosing it and a daemon check never raise — the odd item becomes a finding about that item.

Real things: folders on disk (names as bytes, files where folders belong, unreadable bits), a real
SQLite file and a real PostgreSQL table (any text, bytes, NULLs, huge logs, duplicate ids, infinite and
ancient timestamps), and the real `Daemon` class checking a real git repository.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migwatch.config import load_config
from migwatch.daemon import Daemon
from migwatch.dburl import group_key
from migwatch.diagnose import ProjectSnapshot, WorktreeSnapshot, analyse, findings
from migwatch.diagnose.evidence import Evidence
from migwatch.history import read_history
from migwatch.migrations import ChecksumCache, read_folder
from migwatch.model import DatabaseRef, History
from migwatch.pghistory import read_postgres
from tests.support.gitrepo import PrismaRepo
from tests.support.pg import PgDatabase
from tests.support.prisma_rows import apply_like_prisma, create_history_table

EXAMPLES = 25
HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# A folder name as bytes: anything but "/" and NUL, sometimes not UTF-8, sometimes a control character.
NAME_BYTES = (
    st.binary(min_size=1, max_size=40)
    .map(lambda b: b.replace(b"/", b"_").replace(b"\x00", b"_"))
    .filter(lambda b: b not in (b".", b".."))
)
CONTENT = st.one_of(st.binary(max_size=300), st.just(b"<<<<<<< HEAD\nSELECT 1;\n=======\n>>>>>>> x\n"))
ENTRY = st.tuples(
    NAME_BYTES, st.sampled_from(["migration", "empty", "file", "unreadable", "sql_dir"]), CONTENT
)

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60
)  # PostgreSQL text holds any character but NUL
TIMESTAMP = st.sampled_from(
    [
        None,
        "infinity",
        "-infinity",
        "10000-01-01 00:00:00+00",
        "0044-03-15 00:00:00+00 BC",
        "1970-01-01 00:00:00+00",
        "2025-10-01 12:00:00+00",
    ]
)
PG_ROW = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["1", "1", "2", "x" * 36]),  # duplicates on purpose
        "checksum": st.one_of(TEXT, st.just("0" * 64)),
        "name": st.one_of(TEXT, st.sampled_from(["20251001000000_init", "20251002000000_second"])),
        "logs": st.one_of(st.none(), TEXT, st.just("L" * 2_000_000)),
        "started": TIMESTAMP.filter(lambda t: t is not None),
        "finished": TIMESTAMP,
        "rolled_back": TIMESTAMP,
        "steps": st.integers(min_value=-(2**31), max_value=2**31 - 1),
    }
)
SQLITE_VALUE = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.sampled_from(["infinity", "10000-01-01T00:00:00Z", "-0044-03-15", "2025-10-01T12:00:00.000Z"]),
)
SQLITE_ROW = st.lists(SQLITE_VALUE, min_size=8, max_size=8)


def _write_entries(folder: Path, entries: list[tuple[bytes, str, bytes]]) -> None:
    base = os.fsencode(folder)
    for raw_name, kind, content in entries:
        path = base + b"/" + raw_name
        if os.path.lexists(path):
            continue
        if kind == "file":
            with open(path, "wb") as handle:
                handle.write(content)
            continue
        os.mkdir(path)
        if kind in ("migration", "unreadable"):
            with open(path + b"/migration.sql", "wb") as handle:
                handle.write(content)
            if kind == "unreadable":
                os.chmod(path + b"/migration.sql", 0o000)
        elif kind == "sql_dir":
            os.mkdir(path + b"/migration.sql")


def _reset(folder: Path) -> None:
    for entry in os.scandir(os.fsencode(folder)):
        path = entry.path
        if entry.is_dir(follow_symlinks=False):
            for root, _dirs, files in os.walk(path):
                for name in files:
                    os.chmod(os.path.join(root, name), 0o644)
            shutil.rmtree(path)
        else:
            os.unlink(path)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "migrations"
    folder.mkdir()
    yield folder
    _reset(folder)


# ---------------------------------------------------------------------------------- migrations reader


@HOSTILE
@given(entries=st.lists(ENTRY, max_size=8))
def test_any_migrations_folder_reads_and_diagnoses_without_an_exception(
    scratch: Path, entries: list[tuple[bytes, str, bytes]]
) -> None:
    _reset(scratch)
    _write_entries(scratch, entries)
    folder = read_folder(scratch, ChecksumCache())
    names = {m.name for m in folder.migrations}
    assert all(isinstance(n, str) for n in names)
    for migration in folder.migrations:
        n = os.fsencode(migration.name)
        first_kind = next(kind for raw, kind, _ in entries if raw == n)  # the first entry of a name wins
        if first_kind == "sql_dir":
            assert migration.read_error is not None
    history = History(database=_sqlite_ref(scratch.parent / "none.db"), reachable=True, has_table=True)
    assert isinstance(_diagnose(scratch, folder, history), list)


# ------------------------------------------------------------------------------------ history readers


@pytest.fixture
def pg_admin(pg_database: PgDatabase) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with pg_database.connect() as conn:
        # Prisma's layout without the primary key: a hand-edited table can hold duplicate ids.
        conn.execute(
            "CREATE TABLE _prisma_migrations (id varchar(36) NOT NULL, checksum varchar(64) NOT NULL, "
            "finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text, "
            "rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT now(), "
            "applied_steps_count integer NOT NULL DEFAULT 0)"
        )
        yield conn


@HOSTILE
@given(rows=st.lists(PG_ROW, max_size=6))
def test_any_postgresql_history_reads_as_rows_never_an_outage(
    pg_admin: psycopg.Connection[tuple[object, ...]], pg_database: PgDatabase, rows: list[dict[str, Any]]
) -> None:
    pg_admin.execute("TRUNCATE _prisma_migrations")
    for row in rows:
        pg_admin.execute(
            "INSERT INTO _prisma_migrations VALUES (%s, left(%s, 64), %s, left(%s, 255), %s, %s, %s, %s)",
            (
                row["id"],
                row["checksum"],
                row["finished"],
                row["name"],
                row["logs"],
                row["rolled_back"],
                row["started"],
                row["steps"],
            ),
        )
    ref = DatabaseRef(provider="postgresql", url=pg_database.url, id=pg_database.name, schema="public")
    with psycopg.connect(pg_database.url.split("?")[0], autocommit=True) as conn:
        history = read_postgres(conn, ref)
    assert history.reachable and history.has_table and len(history.rows) == len(rows)
    assert all(r.started_at is not None for r in history.rows)
    assert isinstance(_diagnose(None, None, history), list)


@HOSTILE
@given(rows=st.lists(SQLITE_ROW, max_size=6))
def test_any_sqlite_history_reads_as_rows_never_an_outage(tmp_path: Path, rows: list[list[Any]]) -> None:
    path = tmp_path / "hostile.db"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE _prisma_migrations (id, checksum, finished_at, migration_name, logs, rolled_back_at, "
            "started_at, applied_steps_count)"
        )
        for row in rows:
            conn.execute("INSERT INTO _prisma_migrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        # Text that is not UTF-8, as another tool could have written it.
        conn.execute(
            "INSERT INTO _prisma_migrations VALUES ('z', 'c', 1, CAST(X'6E616D65FF' AS TEXT), NULL, NULL, 1, 1)"
        )
    conn.close()
    history = read_history(_sqlite_ref(path))
    assert history.reachable and history.has_table and history.error is None
    assert len(history.rows) == len(rows) + 1
    assert isinstance(_diagnose(None, None, history), list)


# ---------------------------------------------------------------------------------- the daemon's check


@pytest.fixture(scope="module")
def sqlite_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrismaRepo, Path, Path]]:
    root = tmp_path_factory.mktemp("hostile-daemon")
    database = root / "dev.db"
    repo = PrismaRepo.seed_story(root / "projects", "sqlite", database_url=f"file:{database}")
    with sqlite3.connect(database) as conn:
        create_history_table(conn, "sqlite")
        for folder in sorted(p for p in repo.migrations_path(repo.main).iterdir() if p.is_dir()):
            apply_like_prisma(conn, folder, provider="sqlite")
        # Prisma's columns without their constraints: a hand-edited or foreign table may hold anything.
        conn.execute("CREATE TABLE loose AS SELECT * FROM _prisma_migrations")
        conn.execute("DROP TABLE _prisma_migrations")
        conn.execute("ALTER TABLE loose RENAME TO _prisma_migrations")
    conn.close()
    config = root / "config.yaml"
    config.write_text(
        f"projects:\n  - repo: {repo.main}\nnotifiers:\n  desktop: {{enabled: false}}\n"
        f"log: {{file: {root / 'migwatch.log'}}}\n",
        encoding="utf-8",
    )
    yield repo, database, config


class Collector:
    name = "collector"

    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, alert: object) -> None:
        self.sent.append(alert)

    def check(self) -> str | None:
        return None

    def close(self) -> None:
        pass


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(entries=st.lists(ENTRY, max_size=5), rows=st.lists(SQLITE_ROW, max_size=3))
def test_a_daemon_check_of_any_project_gives_findings_never_an_exception(
    sqlite_story: tuple[PrismaRepo, Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
    entries: list[tuple[bytes, str, bytes]],
    rows: list[list[Any]],
) -> None:
    repo, database, config_file = sqlite_story
    folder = repo.migrations_path(repo.epic3)
    added = [e for e in entries if not os.path.lexists(os.fsencode(folder) + b"/" + e[0])]
    _write_entries(folder, added)
    with sqlite3.connect(database) as conn:
        conn.executemany("INSERT INTO _prisma_migrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()
    state = tmp_path_factory.mktemp("state")
    try:
        daemon = Daemon(
            load_config(config_file, os.environ), state_dir=state, notifiers=[Collector()], env=os.environ
        )
        found = daemon.run_once(wait=5.0)
        # A check that failed as a whole would be one project-level discovery finding.
        assert all(f.code != "discovery" or f.worktree is not None for f in found)
    finally:
        for raw, _, _ in added:
            path = os.fsencode(folder) + b"/" + raw
            if os.path.isdir(path):
                for root, _dirs, files in os.walk(path):
                    for name in files:
                        os.chmod(os.path.join(root, name), 0o644)
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
        with sqlite3.connect(database) as conn:
            conn.execute("DELETE FROM _prisma_migrations WHERE rowid > 3")
        conn.close()


# ----------------------------------------------------------------------------------------------- helpers


def _sqlite_ref(path: Path) -> DatabaseRef:
    return DatabaseRef(provider="sqlite", url=f"file:{path}", id=f"file:{path}")


def _diagnose(folder_path: Path | None, folder: Any, history: History) -> list[Any]:
    """Findings of a one-worktree project over `folder` and `history` (the real diagnose code)."""
    from migwatch.model import PrismaSetup, Worktree

    root = (folder_path or Path("/nowhere/prisma/migrations")).parent.parent
    worktree = Worktree(path=root, head="0" * 40, branch="main")
    setup = PrismaSetup(
        worktree=worktree,
        prisma_version=(6, 19, 3),
        package_dir=root,
        schema_path=root / "prisma" / "schema.prisma",
        migrations_dir=folder_path,
        provider=history.database.provider,
        database=history.database,
    )
    snapshot = WorktreeSnapshot(setup=setup, folder=folder)
    project = ProjectSnapshot(
        name="p", repo=root, worktrees=(snapshot,), histories={group_key(history.database): history}
    )
    verdicts = analyse(project)
    return list(findings(project, verdicts, Evidence(), datetime.now(timezone.utc)))
