"""Fix-effect tests: every fix template's printed lines, executed verbatim in its situation (real git
worktrees, a real SQLite database, the real Prisma 6.19 CLI), leave migwatch and Prisma clean."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from migwatch.model import Finding
from tests.differential.oracle import OracleError, install
from tests.support.fixeffect import (
    Situation,
    apply_fix,
    assert_prisma_clean,
    executable_lines,
    fix_environ,
    project_findings,
)
from tests.support.gitrepo import PrismaRepo
from tests.support.prisma_rows import apply_like_prisma, create_history_table

INIT = "20250101000000_init"
BILLING = "20250201000000_add_billing"
INVOICE = "20250301000000_add_invoice"
SQL = {
    INIT: 'CREATE TABLE "User" ("id" INTEGER NOT NULL PRIMARY KEY);\n',
    BILLING: 'CREATE TABLE "Billing" ("id" INTEGER NOT NULL PRIMARY KEY);\n',
    INVOICE: 'CREATE TABLE "Invoice" ("id" INTEGER NOT NULL PRIMARY KEY);\n',
}


@pytest.fixture(scope="module")
def prisma_cli() -> None:
    """The oracle's Prisma packages (fails, never skips, without node/npm)."""
    try:
        install()
    except OracleError as error:
        pytest.fail(str(error), pytrace=False)


class Project:
    """A Prisma 6 project on SQLite: `main` plus worktrees, every worktree's `.env` on one database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = PrismaRepo.create(root, name="shop", provider="sqlite")
        self.database = root / "dev.db"
        self.url = f"file:{self.database}"
        self.worktrees: dict[str, Path] = {"main": self.repo.main}
        self.repo.write_env(self.repo.main, f'DATABASE_URL="{self.url}"\n')
        with self.connect() as conn:
            create_history_table(conn, "sqlite")

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.database)

    def add(self, worktree: Path, *names: str, sql: dict[str, str] | None = None) -> None:
        for name in names:
            self.repo.write_migration(worktree, name, (sql or SQL)[name])

    def worktree(self, folder: str, branch: str, start: str = "HEAD") -> Path:
        path = self.repo.add_worktree(folder, branch, start)
        self.repo.write_env(path, f'DATABASE_URL="{self.url}"\n')
        self.worktrees[branch] = path
        return path

    def apply(self, worktree: Path, *names: str, state: str = "applied") -> None:
        """Record migrations as Prisma's deploy does (SQL run, row written)."""
        with self.connect() as conn:
            for name in names:
                apply_like_prisma(
                    conn, self.repo.migrations_path(worktree) / name, provider="sqlite", state=state
                )  # type: ignore[arg-type]

    def situation(self) -> Situation:
        environ = fix_environ(self.root, self.repo.env)
        return Situation(
            repo=self.repo.main,
            environ=environ,
            url=self.url,
            schemas={path: self.repo.schema_path(path) for path in self.worktrees.values()},
        )

    def findings(self) -> list[Finding]:
        return project_findings(self.repo.main, self.situation().environ)


@pytest.fixture
def project(tmp_path: Path, prisma_cli: None) -> Iterator[Project]:
    yield Project(tmp_path)


def _one(findings: list[Finding], code: str, migration: str | None = None) -> Finding:
    matching = [f for f in findings if f.code == code and (migration is None or f.migration == migration)]
    assert len(matching) == 1, [(f.code, f.migration, f.message) for f in findings]
    return matching[0]


def test_pending_deploy_runs_for_real(project: Project) -> None:
    project.add(project.repo.main, INIT)
    project.repo.commit(project.repo.main, "init")
    before = project.findings()
    pending = _one(before, "pending", INIT)
    assert executable_lines(pending.fix)[0].endswith("npx prisma migrate deploy")
    apply_fix(project.situation(), pending, before)
    assert_prisma_clean(project.situation(), [project.repo.main])


def test_behind_a_committed_branch_merges_that_branch(project: Project) -> None:
    main = project.repo.main
    project.add(main, INIT)
    project.repo.commit(main, "init")
    billing = project.worktree("shop-billing", "feature/billing")
    project.add(billing, BILLING)
    project.repo.commit(billing, "billing")
    project.apply(billing, INIT, BILLING)
    before = project.findings()
    behind = _one(before, "behind_database", BILLING)
    apply_fix(project.situation(), behind, before)
    assert_prisma_clean(project.situation(), [main, billing])
