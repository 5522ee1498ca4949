"""Every SPEC §6 finding that `status` produces, through the real pipeline (real git, real databases)."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from migwatch.cli import main
from tests.support.gitrepo import PrismaRepo
from tests.support.pg import PgServer
from tests.support.prisma_rows import apply_like_prisma, create_history_table, insert_row

INIT = "20250101000000_init"
SECOND = "20250102000000_add_post"
INIT_SQL = 'CREATE TABLE "User" ("id" INTEGER PRIMARY KEY, "email" TEXT NOT NULL);\n'
SECOND_SQL = 'CREATE TABLE "Post" ("id" INTEGER PRIMARY KEY, "title" TEXT);\n'


class Project:
    """A plain-layout SQLite project with one extra worktree, and its config."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "dev.db"
        self.repo = PrismaRepo.create(tmp_path, name="shop", package_dir="", provider="sqlite")
        self.repo.write_migration(self.repo.main, INIT, INIT_SQL)
        self.repo.commit(self.repo.main, "init")
        self.other = self.repo.add_worktree("shop-other", "feature/other")
        for worktree in (self.repo.main, self.other):
            self.repo.write_env(worktree, f'DATABASE_URL="file:{self.db}"\n')
        self.config = tmp_path / "config.yaml"
        self.config.write_text(f"projects:\n  - repo: {self.repo.main}\n", encoding="utf-8")
        with closing(sqlite3.connect(self.db)) as conn:
            create_history_table(conn, "sqlite")
            conn.commit()

    @property
    def main(self) -> Path:
        return self.repo.main

    def migrations(self, worktree: Path) -> Path:
        return self.repo.migrations_path(worktree)

    def apply(self, worktree: Path, name: str, **kwargs: Any) -> None:
        with closing(sqlite3.connect(self.db)) as conn:
            apply_like_prisma(conn, self.migrations(worktree) / name, provider="sqlite", **kwargs)
            conn.commit()

    def status(self) -> tuple[int, dict[str, Any]]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--config", str(self.config), "status", "--json"], out=out, err=err)
        assert err.getvalue() == ""
        return code, json.loads(out.getvalue())


@pytest.fixture
def project(tmp_path: Path, git_env: dict[str, str]) -> Project:
    return Project(tmp_path)


def _only(doc: dict[str, Any], code: str) -> dict[str, Any]:
    matches = [f for f in doc["findings"] if f["code"] == code]
    assert len(matches) == 1, [(f["code"], f["worktree"], f["migration"]) for f in doc["findings"]]
    return matches[0]


def test_all_applied_is_ok(project: Project) -> None:
    project.apply(project.main, INIT)
    code, doc = project.status()
    assert (code, doc["ok"], doc["findings"]) == (0, True, [])
    assert {w["state"] for w in doc["projects"][0]["worktrees"]} == {"ok"}


def test_checksum_mismatch_uncommitted_edit(project: Project) -> None:
    project.apply(project.main, INIT)
    sql = project.migrations(project.other) / INIT / "migration.sql"
    sql.write_text(INIT_SQL + "-- tweak\n", encoding="utf-8")
    code, doc = project.status()
    finding = _only(doc, "checksum_mismatch")
    assert code == 1
    assert (finding["severity"], finding["worktree"], finding["migration"]) == (
        "error",
        str(project.other),
        INIT,
    )
    assert "changed by an uncommitted change in this worktree" in finding["message"]
    assert "the copy in shop matches the database" in finding["message"]
    head = project.repo.git(project.other, "rev-parse", "HEAD").strip()
    assert (
        finding["fix"][0]
        == f"git -C {project.other} checkout {head[:12]} -- prisma/migrations/{INIT}/migration.sql"
    )
    assert finding["details"]["matches_in"] == [{"worktree": str(project.main), "branch": "main"}]
    assert (
        "only comments and whitespace changed (cosmetic: the SQL that runs is the same)" in finding["message"]
    )
    assert (
        finding["fix"][-1]
        == "why: Prisma checksums the whole file, comments included: restore the applied text"
    )
    # Running the fix restores agreement.
    project.repo.git(project.other, "checkout", head[:12], "--", f"prisma/migrations/{INIT}/migration.sql")
    assert project.status()[0] == 0


def test_checksum_mismatch_committed_edit_points_at_older_commit(project: Project) -> None:
    project.apply(project.main, INIT)
    good = project.repo.git(project.main, "rev-parse", "HEAD").strip()
    (project.migrations(project.main) / INIT / "migration.sql").write_text(
        INIT_SQL + "-- x\n", encoding="utf-8"
    )
    project.repo.commit(project.main, "edit an applied migration")
    _, doc = project.status()
    finding = next(
        f for f in doc["findings"] if f["code"] == "checksum_mismatch" and f["worktree"] == str(project.main)
    )
    assert (
        finding["fix"][0]
        == f"git -C {project.main} checkout {good[:12]} -- prisma/migrations/{INIT}/migration.sql"
    )
    assert "edit an applied migration" in finding["details"]["changed_by"]


def test_crlf_copy_still_matches(project: Project) -> None:
    project.apply(project.main, INIT)
    sql = project.migrations(project.other) / INIT / "migration.sql"
    sql.write_bytes(INIT_SQL.replace("\n", "\r\n").encode())
    code, doc = project.status()
    assert (code, doc["findings"]) == (0, [])


def test_failed_migration(project: Project) -> None:
    project.apply(project.main, INIT)
    project.repo.write_migration(project.main, SECOND, SECOND_SQL)
    project.apply(project.main, SECOND, state="failed", logs='syntax error at or near "TABL"\nline 2')
    code, doc = project.status()
    finding = _only(doc, "failed")
    assert code == 1
    assert finding["migration"] == SECOND
    assert finding["worktree"] == str(project.main)
    assert 'Log: syntax error at or near "TABL" | line 2' in finding["message"]
    assert finding["fix"][0] == (
        f"cd {project.main} && npx prisma migrate resolve --rolled-back={SECOND}  # after undoing its partial changes"
    )
    assert "--applied" in finding["fix"][1]
    assert "P3009" in finding["fix"][-1]
    assert doc["projects"][0]["databases"][0]["failed"] == 1


def test_missing_sql_untracked_empty_folder(project: Project) -> None:
    project.apply(project.main, INIT)
    folder = project.migrations(project.main) / "20250103000000_empty"
    folder.mkdir()
    code, doc = project.status()
    finding = _only(doc, "missing_sql")
    assert code == 1
    assert "has no migration.sql; `prisma migrate deploy` fails on it" in finding["message"]
    assert finding["fix"][0] == f"rmdir {folder}"
    assert not any(f["code"] == "pending" for f in doc["findings"])


def test_missing_sql_tracked_and_applied(project: Project) -> None:
    project.apply(project.main, INIT)
    (project.migrations(project.other) / INIT / "migration.sql").unlink()
    _, doc = project.status()
    finding = _only(doc, "missing_sql")
    assert finding["worktree"] == str(project.other)
    assert "it is applied, so `prisma migrate status` fails with P3015" in finding["message"]
    assert (
        finding["fix"][0] == f"git -C {project.other} checkout HEAD -- prisma/migrations/{INIT}/migration.sql"
    )


def test_provider_mismatch(project: Project) -> None:
    project.apply(project.main, INIT)
    (project.migrations(project.other) / "migration_lock.toml").write_text('provider = "postgresql"\n')
    code, doc = project.status()
    finding = _only(doc, "provider_mismatch")
    assert code == 1
    assert 'says provider = "postgresql" but the schema\'s datasource is "sqlite"' in finding["message"]
    assert "P3019" in finding["message"]


def test_conflict_markers(project: Project) -> None:
    project.apply(project.main, INIT)
    schema = project.repo.schema_path(project.other)
    schema.write_text(schema.read_text() + "<<<<<<< HEAD\nmodel A { id Int @id }\n=======\n>>>>>>> other\n")
    sql = project.migrations(project.other) / "20250104000000_x" / "migration.sql"
    sql.parent.mkdir()
    sql.write_text("SELECT 1;\n<<<<<<< ours\n>>>>>>> theirs\n")
    _, doc = project.status()
    markers = sorted(
        (f["details"]["file"], tuple(f["details"]["lines"]))
        for f in doc["findings"]
        if f["code"] == "conflict_markers"
    )
    schema_lines = schema.read_text().splitlines()
    start = schema_lines.index("<<<<<<< HEAD") + 1
    assert markers == sorted([(str(schema), (start, start + 3)), (str(sql), (2, 3))])


def test_not_managed(tmp_path: Path, git_env: dict[str, str]) -> None:
    project = Project(tmp_path)
    project.db.unlink()
    sqlite3.connect(project.db).close()
    code, doc = project.status()
    finding = _only(doc, "not_managed")
    assert finding["severity"] == "info"
    assert finding["fix"][0] == f"cd {project.main} && npx prisma migrate deploy"
    assert code == 0
    assert project.db.stat().st_size == 0  # read-only: nothing was created in it


def test_missing_sqlite_file_is_not_created(tmp_path: Path, git_env: dict[str, str]) -> None:
    project = Project(tmp_path)
    project.db.unlink()
    _, doc = project.status()
    assert _only(doc, "not_managed")["message"].endswith(
        "does not exist yet) and no tables: Prisma has not migrated it yet"
    )
    assert not project.db.exists()


def test_behind_from_abandoned_experiment(project: Project) -> None:
    project.apply(project.main, INIT)
    with closing(sqlite3.connect(project.db)) as conn:
        insert_row(conn, "sqlite", migration_name="20250105000000_experiment", checksum="0" * 64)
        conn.commit()
    _, doc = project.status()
    behind = [f for f in doc["findings"] if f["code"] == "behind_database"]
    assert {f["worktree"] for f in behind} == {str(project.main), str(project.other)}
    assert all("no worktree, branch, tag or commit has it" in f["message"] for f in behind)
    assert all(f["fix"][0].startswith("ask who applied it") for f in behind)
    assert not any("resolve --applied" in line for f in behind for line in f["fix"][:-1])


def test_behind_from_deleted_branch_commit(project: Project) -> None:
    project.apply(project.main, INIT)
    project.repo.write_migration(project.other, SECOND, SECOND_SQL)
    project.repo.commit(project.other, "second")
    project.apply(project.other, SECOND)
    project.repo.git(project.main, "branch", "keep-second", "feature/other")
    project.repo.remove_worktree(project.other)
    project.repo.git(project.main, "branch", "-D", "feature/other")
    _, doc = project.status()
    behind = _only(doc, "behind_database")
    assert behind["fix"][0] == f"git -C {project.main} merge keep-second"
    assert "keep-second" in behind["message"]


def test_prunable_worktree(project: Project) -> None:
    import shutil

    project.apply(project.main, INIT)
    shutil.rmtree(project.other)
    code, doc = project.status()
    finding = _only(doc, "worktree_prunable")
    assert (code, finding["severity"]) == (0, "info")
    assert finding["fix"][0] == f"git -C {project.main} worktree prune"


def test_unsupported_provider(project: Project) -> None:
    schema = project.repo.schema_path(project.other)
    schema.write_text(schema.read_text().replace('provider = "sqlite"', 'provider = "mysql"'))
    project.repo.write_env(project.other, 'DATABASE_URL="mysql://u:pw@localhost/db"\n')
    project.apply(project.main, INIT)
    _, doc = project.status()
    finding = _only(doc, "unsupported_provider")
    assert finding["severity"] == "info"
    assert "pw" not in json.dumps(doc)


def test_url_not_set(project: Project) -> None:
    (project.repo.package_path(project.other) / ".env").unlink()
    project.apply(project.main, INIT)
    _, doc = project.status()
    finding = _only(doc, "discovery")
    assert finding["severity"] == "warning"
    assert "DATABASE_URL is not set" in finding["message"]


@pytest.mark.parametrize(
    ("make_url", "expected"),
    [
        (lambda s, db: s.url(db, password="wrong"), "password authentication failed"),
        (lambda s, db: s.url("no_such_database"), 'database "no_such_database" does not exist'),
        (
            lambda s, db: f"postgresql://u:topsecret@nonexistent.invalid:5432/{db}",
            "cannot connect to postgresql://u@",
        ),
    ],
    ids=["wrong-password", "missing-database", "unknown-host"],
)
def test_database_unreachable(
    tmp_path: Path, git_env: dict[str, str], pg_server: PgServer, make_url: Any, expected: str
) -> None:
    database = pg_server.create_database()
    url = make_url(pg_server, database)
    repo = PrismaRepo.seed_story(tmp_path, "postgresql", database_url=url)
    config = tmp_path / "config.yaml"
    config.write_text(f"projects:\n  - repo: {repo.main}\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), "status", "--json"], out=out, err=err)
    doc = json.loads(out.getvalue())
    finding = _only(doc, "database_unreachable")
    assert code == 1
    assert expected in finding["message"]
    assert "secret" not in out.getvalue() and "wrong" not in finding["message"]
    assert doc["projects"][0]["databases"][0]["reachable"] is False
    assert {w["state"] for w in doc["projects"][0]["worktrees"]} == {"unknown"}


def _with_base(project: Project) -> None:
    project.config.write_text(
        f"projects:\n  - repo: {project.main}\n    base_branch: main\n", encoding="utf-8"
    )


def test_behind_base(project: Project) -> None:
    _with_base(project)
    project.apply(project.main, INIT)
    project.repo.write_migration(project.main, SECOND, SECOND_SQL)
    project.repo.commit(project.main, "second on main")
    project.apply(project.main, SECOND)
    _, doc = project.status()
    finding = _only(doc, "behind_base")
    assert (finding["severity"], finding["worktree"]) == ("info", str(project.other))
    assert (
        finding["message"] == f"shop-other (feature/other): main has 1 migration this branch lacks: {SECOND}"
    )
    assert finding["fix"][0] == f"git -C {project.other} merge main"


def test_schema_conflict_same_column(project: Project) -> None:
    _with_base(project)
    project.apply(project.main, INIT)
    third = project.repo.add_worktree("shop-third", "feature/third")
    project.repo.write_env(third, f'DATABASE_URL="file:{project.db}"\n')
    project.repo.write_migration(
        project.other, "20250110000000_rename_email", 'ALTER TABLE "User" RENAME COLUMN "email" TO "mail";\n'
    )
    project.repo.write_migration(
        third,
        "20250111000000_email_unique",
        '-- AlterTable\nALTER TABLE "User" ADD COLUMN "age" INTEGER;\n\n'
        '-- CreateIndex\nCREATE UNIQUE INDEX "User_email_key" ON "User"("email");\n',
    )
    _, doc = project.status()
    conflicts = sorted(
        (f["worktree"], f["migration"]) for f in doc["findings"] if f["code"] == "schema_conflict"
    )
    assert conflicts == [
        (str(project.other), "20250110000000_rename_email"),
        (str(third), "20250111000000_email_unique"),
    ]
    finding = next(
        f for f in doc["findings"] if f["code"] == "schema_conflict" and f["worktree"] == str(third)
    )
    assert finding["message"] == (
        "shop-third (feature/third): 20250111000000_email_unique creates index User_email_key, which uses "
        "User.email and 20250110000000_rename_email in shop-other (feature/other) renames User.email to mail; "
        "coordinate before either is merged"
    )
    assert finding["details"]["objects"] == ["User.email"]
    assert finding["details"]["other_branch"] == "feature/other"
    other_sql = project.migrations(project.other) / "20250110000000_rename_email" / "migration.sql"
    assert finding["fix"][0] == f"cat {other_sql}"


def test_no_schema_conflict_for_other_columns(project: Project) -> None:
    _with_base(project)
    project.apply(project.main, INIT)
    third = project.repo.add_worktree("shop-third", "feature/third")
    project.repo.write_migration(
        project.other, "20250110000000_a", 'ALTER TABLE "User" ADD COLUMN "a" TEXT;\n'
    )
    project.repo.write_migration(third, "20250111000000_b", 'ALTER TABLE "User" ADD COLUMN "b" TEXT;\n')
    _, doc = project.status()
    assert not [f for f in doc["findings"] if f["code"] == "schema_conflict"]


def test_stale_client(project: Project) -> None:
    project.apply(project.main, INIT)
    schema = project.repo.schema_path(project.other)
    client = project.other / "node_modules" / ".prisma" / "client" / "schema.prisma"
    client.parent.mkdir(parents=True)
    # Prisma's copy is reformatted: other spacing and comments still count as the same schema.
    text = schema.read_text()
    client.write_text("// generated\n" + text.replace("  ", "    "))
    assert project.status()[0] == 0
    schema.write_text(text + "\nmodel Post {\n  id Int @id\n}\n")
    code, doc = project.status()
    finding = _only(doc, "stale_client")
    assert (code, finding["worktree"], finding["details"]["differs_in"]) == (1, str(project.other), ["Post"])
    assert finding["fix"][0] == f"cd {project.other} && npx prisma generate"


def test_stale_client_new_generator(project: Project) -> None:
    project.apply(project.main, INIT)
    schema = project.repo.schema_path(project.main)
    text = schema.read_text().replace(
        'provider = "prisma-client-js"', 'provider = "prisma-client"\n  output = "../generated"'
    )
    schema.write_text(text)
    class_ts = project.main / "generated" / "internal" / "class.ts"
    class_ts.parent.mkdir(parents=True)
    old = text + "\nmodel Old {\n  id Int @id\n}\n"
    class_ts.write_text('const config = {\n  "inlineSchema": ' + json.dumps(old) + ',\n  "x": 1\n}\n')
    _, doc = project.status()
    assert _only(doc, "stale_client")["details"]["differs_in"] == ["Old"]


def test_a_repo_git_cannot_list_is_one_discovery_warning(tmp_path: Path, git_env: dict[str, str]) -> None:
    """The whole project cannot be checked: a warning (as every `discovery` problem), never an error."""
    folder = tmp_path / "not a repo"
    folder.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"projects:\n  - name: gone\n    repo: {json.dumps(str(folder))}\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()

    code = main(["--config", str(config), "status", "--json"], out=out, err=err)

    (finding,) = json.loads(out.getvalue())["findings"]
    assert (code, err.getvalue()) == (1, "")
    assert (finding["code"], finding["severity"], finding["fix"]) == (
        "discovery",
        "warning",
        [f"git -C '{folder}' worktree list", "why: migwatch finds the worktrees with git"],
    )
    assert finding["message"] == (
        f"project gone: git worktree list failed in {folder}: "
        "fatal: not a git repository (or any of the parent directories): .git"
    )
