"""Reading the history through a real PgBouncer in transaction and session mode (issue 11, poolers)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from migwatch.cli import main
from migwatch.dburl import database_ref
from migwatch.history import read_history
from migwatch.model import DatabaseRef
from migwatch.pghistory import (
    connect_postgres,
    fingerprint_postgres,
    migration_running,
    read_only,
    read_postgres,
)
from tests.support.gitrepo import SEED_EPIC3, SEED_EPIC5, PrismaRepo
from tests.support.pg import PgDatabase, PgServer
from tests.support.pgbouncer import PgBouncer
from tests.support.prisma_rows import apply_like_prisma, create_history_table


@pytest.fixture(scope="module", params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[PgBouncer]:
    pooler = PgBouncer(pg_server, request.param)
    yield pooler
    pooler.stop()


def ref(url: str) -> DatabaseRef:
    return database_ref("postgresql", url, relative_to=Path("/"))


def seeded(pg_database: PgDatabase, repo: PrismaRepo) -> None:
    with closing(pg_database.connect()) as conn:
        create_history_table(conn, "postgresql")
        for folder in sorted(p for p in repo.migrations_path(repo.main).iterdir() if p.is_dir()):
            apply_like_prisma(conn, folder, provider="postgresql")


def test_pgbouncer_refuses_startup_options_so_migwatch_sends_none(
    bouncer: PgBouncer, pg_database: PgDatabase
) -> None:
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(
            bouncer.url(pg_database.name).split("?")[0], options="-c default_transaction_read_only=on"
        ).close()
    history = read_history(ref(bouncer.url(pg_database.name)))
    assert (history.reachable, history.has_table, history.error) == (True, False, None)


def test_history_through_pgbouncer_equals_direct_and_stays_read_only(
    bouncer: PgBouncer, pg_database: PgDatabase, tmp_path: Path, git_env: dict[str, str]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path)
    seeded(pg_database, repo)
    direct = read_history(ref(pg_database.url))
    pooled = read_history(ref(bouncer.url(pg_database.name)))
    assert pooled.error is None
    assert [r.migration_name for r in pooled.rows] == [r.migration_name for r in direct.rows]
    assert pooled.rows == direct.rows and len(pooled.rows) == 3
    with closing(connect_postgres(ref(bouncer.url(pg_database.name)))) as conn, read_only(conn) as cur:
        assert cur.execute("SHOW transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            cur.execute("DELETE FROM _prisma_migrations")
    assert len(read_history(ref(pg_database.url)).rows) == 3


def test_long_lived_connection_polls_through_pgbouncer(
    bouncer: PgBouncer, pg_database: PgDatabase, tmp_path: Path, git_env: dict[str, str]
) -> None:
    # The daemon keeps one connection and runs the same statements every poll: more often than
    # psycopg's prepare threshold (5), which would prepare them on a server connection that
    # transaction pooling then hands to someone else.
    repo = PrismaRepo.seed_story(tmp_path)
    seeded(pg_database, repo)
    pooled = ref(bouncer.url(pg_database.name))
    with closing(connect_postgres(pooled)) as conn:
        first = fingerprint_postgres(conn, pooled)
        for _ in range(6):
            assert fingerprint_postgres(conn, pooled) == first
            assert migration_running(conn) is False
            assert len(read_postgres(conn, pooled).rows) == 3
        # Another client holds the server connection used so far: the next polls run on another one.
        with closing(psycopg.connect(pooled.url.split("?")[0], autocommit=False)) as other:
            other.execute("SELECT 1")
            for _ in range(6):
                assert fingerprint_postgres(conn, pooled) == first
                assert len(read_postgres(conn, pooled).rows) == 3
        with closing(pg_database.connect()) as admin:
            admin.execute("UPDATE _prisma_migrations SET logs = 'changed'")
        assert fingerprint_postgres(conn, pooled) != first


def test_status_through_pgbouncer_checks_every_worktree(
    bouncer: PgBouncer, pg_database: PgDatabase, tmp_path: Path, git_env: dict[str, str]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, database_url=bouncer.url(pg_database.name))
    seeded(pg_database, repo)
    config = tmp_path / "config.yaml"
    config.write_text(f"projects:\n  - repo: {repo.main}\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), "status", "--json"], out=out, err=err)
    assert (code, err.getvalue()) == (0, "")
    document = json.loads(out.getvalue())
    [database] = document["projects"][0]["databases"]
    assert (database["reachable"], database["applied"]) == (True, 3)
    assert (
        database["id"]
        == f"postgresql://migwatch_test@127.0.0.1:{bouncer.port}/{pg_database.name}?schema=public"
    )
    states = {Path(w["path"]).name: w["state"] for w in document["projects"][0]["worktrees"]}
    assert states == {"Americano": "ok", SEED_EPIC3[0]: "ok", SEED_EPIC5[0]: "ok"}
    assert document["findings"] == []
