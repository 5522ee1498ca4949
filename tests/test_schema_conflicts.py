"""schema_conflict through the real pipeline: real git worktrees, a real SQLite database, real SQL.

Each case also shows the conflict is real: the SQL applied as Prisma would apply it fails.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.test_findings_e2e import INIT, INIT_SQL, Project, _with_base

MAIN_MIGRATION = "20250105000000_add_password"
BRANCH_MIGRATION = "20250106000000_auth"
ADD_PASSWORD = '-- AlterTable\nALTER TABLE "User" ADD COLUMN "password" TEXT;\n'


@pytest.fixture
def project(tmp_path: Path, git_env: dict[str, str]) -> Project:
    return Project(tmp_path)


def _conflicts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f["code"] == "schema_conflict"]


def _fails_after(*scripts: str) -> str | None:
    """The error of running the scripts in order on a fresh SQLite database, or None."""
    with closing(sqlite3.connect(":memory:")) as conn:
        try:
            for script in scripts:
                conn.executescript(script)
        except sqlite3.Error as exc:
            return str(exc)
    return None


def test_pending_migration_that_repeats_an_applied_one(project: Project) -> None:
    project.apply(project.main, INIT)
    project.repo.write_migration(project.main, MAIN_MIGRATION, ADD_PASSWORD)
    project.apply(project.main, MAIN_MIGRATION)
    project.repo.write_migration(project.other, BRANCH_MIGRATION, ADD_PASSWORD)
    _, doc = project.status()
    [finding] = _conflicts(doc)
    assert (finding["worktree"], finding["migration"], finding["details"]["against"]) == (
        str(project.other),
        BRANCH_MIGRATION,
        "database",
    )
    assert finding["message"] == (
        f"shop-other (feature/other): {BRANCH_MIGRATION} is not applied yet; its deploy will fail: "
        f"User.password already exists, added by {MAIN_MIGRATION} (applied from main)"
    )
    applied = project.migrations(project.main) / MAIN_MIGRATION / "migration.sql"
    assert finding["fix"] == [
        f"cat {applied}",
        f"why: change {BRANCH_MIGRATION} so it builds on {MAIN_MIGRATION} before deploying it",
    ]
    assert (
        subprocess.run(finding["fix"][0], shell=True, capture_output=True, text=True, check=True).stdout
        == ADD_PASSWORD
    )
    # What `migrate deploy` would run next:
    with (
        closing(sqlite3.connect(project.db)) as conn,
        pytest.raises(sqlite3.OperationalError, match="duplicate column name: password"),
    ):
        conn.executescript(ADD_PASSWORD)


def test_unmerged_migration_against_what_the_base_branch_got_meanwhile(project: Project) -> None:
    _with_base(project)
    project.apply(project.main, INIT)
    project.repo.write_migration(project.main, MAIN_MIGRATION, ADD_PASSWORD)
    project.repo.commit(project.main, "password on main")
    project.repo.write_migration(project.other, BRANCH_MIGRATION, ADD_PASSWORD)
    _, doc = project.status()
    [finding] = _conflicts(doc)
    assert (finding["worktree"], finding["details"]["against"], finding["details"]["objects"]) == (
        str(project.other),
        "base",
        ["User.password"],
    )
    assert finding["message"] == (
        f"shop-other (feature/other): {BRANCH_MIGRATION} and {MAIN_MIGRATION} on main both add "
        "User.password; coordinate before either is merged"
    )
    show = f"git -C {project.other} show main:prisma/migrations/{MAIN_MIGRATION}/migration.sql"
    assert finding["fix"][0] == show
    assert subprocess.run(show, shell=True, capture_output=True, text=True, check=True).stdout == ADD_PASSWORD
    # After the merge, `migrate deploy` applies main's migration, then this branch's, which fails.
    assert _fails_after(INIT_SQL, ADD_PASSWORD, ADD_PASSWORD) == "duplicate column name: password"


def test_different_columns_on_the_base_branch_and_a_branch_are_no_conflict(project: Project) -> None:
    _with_base(project)
    project.apply(project.main, INIT)
    project.repo.write_migration(project.main, MAIN_MIGRATION, ADD_PASSWORD)
    project.repo.commit(project.main, "password on main")
    other_column = '-- AlterTable\nALTER TABLE "User" ADD COLUMN "name" TEXT;\n'
    project.repo.write_migration(project.other, BRANCH_MIGRATION, other_column)
    _, doc = project.status()
    assert _conflicts(doc) == []
    assert _fails_after(INIT_SQL, ADD_PASSWORD, other_column) is None
    assert _fails_after(INIT_SQL, other_column, ADD_PASSWORD) is None


def test_unparsable_migration_gives_no_conflict_and_no_crash(project: Project) -> None:
    _with_base(project)
    project.apply(project.main, INIT)
    project.repo.write_migration(project.main, MAIN_MIGRATION, ADD_PASSWORD)
    project.repo.commit(project.main, "password on main")
    project.repo.write_migration(project.other, BRANCH_MIGRATION, 'CREATE TABLE "x" (\n')
    _, doc = project.status()
    assert _conflicts(doc) == []
    assert {f["code"] for f in doc["findings"]} == {"behind_base", "pending"}


def test_two_different_migrations_with_one_name(project: Project) -> None:
    project.apply(project.main, INIT)
    other_sql = '-- AlterTable\nALTER TABLE "User" ADD COLUMN "name" TEXT;\n'
    project.repo.write_migration(project.main, BRANCH_MIGRATION, ADD_PASSWORD)
    project.repo.write_migration(project.other, BRANCH_MIGRATION, other_sql)
    _, doc = project.status()
    found = sorted((f["worktree"], f["migration"]) for f in doc["findings"] if f["code"] == "name_collision")
    assert found == [(str(project.main), BRANCH_MIGRATION), (str(project.other), BRANCH_MIGRATION)]
    finding = next(
        f for f in doc["findings"] if f["code"] == "name_collision" and f["worktree"] == str(project.other)
    )
    assert finding["message"] == (
        f"shop-other (feature/other): {BRANCH_MIGRATION} differs from the {BRANCH_MIGRATION} in shop (main) "
        "(same folder name, different SQL); merged, one replaces the other or git stops with a conflict, and "
        "Prisma sees one migration"
    )
    mine = project.migrations(project.other) / BRANCH_MIGRATION / "migration.sql"
    theirs = project.migrations(project.main) / BRANCH_MIGRATION / "migration.sql"
    assert finding["fix"][0] == f"diff -u {mine} {theirs}"
    shown = subprocess.run(finding["fix"][0], shell=True, capture_output=True, text=True, check=False)
    assert (shown.returncode, shown.stdout.splitlines()[-2:]) == (
        1,
        ['-ALTER TABLE "User" ADD COLUMN "name" TEXT;', '+ALTER TABLE "User" ADD COLUMN "password" TEXT;'],
    )
    # Real: merging the two branches stops with an add/add conflict on that file.
    project.repo.commit(project.main, "password")
    project.repo.commit(project.other, "name")
    merge = subprocess.run(
        ["git", "-C", str(project.other), "merge", "main"], capture_output=True, text=True, check=False
    )
    assert merge.returncode == 1 and "CONFLICT (add/add)" in merge.stdout
    project.repo.git(project.other, "merge", "--abort")


def test_same_migration_in_two_worktrees_is_no_collision(project: Project) -> None:
    project.apply(project.main, INIT)
    project.repo.write_migration(project.main, BRANCH_MIGRATION, ADD_PASSWORD)
    project.repo.write_migration(project.other, BRANCH_MIGRATION, ADD_PASSWORD.replace("\n", "\r\n"))
    _, doc = project.status()
    assert [f for f in doc["findings"] if f["code"] in ("name_collision", "schema_conflict")] == []


def test_applied_migration_only_git_still_has_is_read_from_the_base_branch(project: Project) -> None:
    _with_base(project)
    project.apply(project.main, INIT)
    project.repo.write_migration(project.main, MAIN_MIGRATION, ADD_PASSWORD)
    project.repo.commit(project.main, "password on main")
    project.apply(project.main, MAIN_MIGRATION)
    shutil.rmtree(project.migrations(project.main) / MAIN_MIGRATION)  # no worktree has the folder now
    project.repo.write_migration(project.other, BRANCH_MIGRATION, ADD_PASSWORD)
    _, doc = project.status()
    [finding] = [f for f in _conflicts(doc) if f["worktree"] == str(project.other)]
    assert finding["message"] == (
        f"shop-other (feature/other): {BRANCH_MIGRATION} is not applied yet; its deploy will fail: "
        f"User.password already exists, added by {MAIN_MIGRATION} (applied from main)"
    )
    show = f"git -C {project.other} show main:prisma/migrations/{MAIN_MIGRATION}/migration.sql"
    assert finding["fix"][0] == show
    assert subprocess.run(show, shell=True, capture_output=True, text=True, check=True).stdout == ADD_PASSWORD
