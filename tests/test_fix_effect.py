"""Fix-effect tests: each fix template's printed lines, executed verbatim in its situation (real git
worktrees, a real SQLite database, the real Prisma 6.19 CLI), leave migwatch and Prisma clean.

The situations are a history zoo drawn from real projects (named at each test): documenso
(squashed, renamed and deleted migrations, a monorepo whose scripts load the root `.env`), umami
(numbered migration names, migrations edited after they failed), rallly (migrations moved between
folders), and a generated long history with hundreds of branches.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from migwatch.model import Finding
from tests.differential.oracle import OracleError, install
from tests.support import longhistory
from tests.support.fixeffect import (
    FixEffectError,
    Situation,
    apply_fix,
    assert_prisma_clean,
    executable_lines,
    execute,
    fix_environ,
    note_sql,
    prisma_verdicts,
    project_findings,
)
from tests.support.gitrepo import PrismaRepo, isolated_environ
from tests.support.prisma_rows import apply_like_prisma, create_history_table

DIR = "apps/web/prisma/migrations"
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
    """A Prisma 6 project on SQLite (`apps/web`): `main` plus worktrees, every `.env` on one database."""

    def __init__(self, root: Path, name: str = "shop") -> None:
        self.root = root
        self.repo = PrismaRepo.create(root, name=name, provider="sqlite")
        self.main = self.repo.main
        self.database = root / "dev.db"
        self.url = f"file:{self.database}"
        self.worktrees: list[Path] = [self.main]
        self.repo.write_env(self.main, f'DATABASE_URL="{self.url}"\n')
        with self.connect() as conn:
            create_history_table(conn, "sqlite")

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.database)

    def write(self, worktree: Path, name: str, sql: str | None = None) -> None:
        self.repo.write_migration(worktree, name, sql if sql is not None else SQL[name])

    def commit(self, worktree: Path, message: str, *names: str) -> None:
        for name in names:
            self.write(worktree, name)
        self.repo.commit(worktree, message)

    def worktree(self, folder: str, branch: str, start: str = "HEAD") -> Path:
        path = self.repo.add_worktree(folder, branch, start)
        self.repo.write_env(path, f'DATABASE_URL="{self.url}"\n')
        self.worktrees.append(path)
        return path

    def apply(self, worktree: Path, *names: str, state: str = "applied", logs: str | None = None) -> None:
        """Record migrations as Prisma's deploy does (SQL run, row written)."""
        with self.connect() as conn:
            for name in names:
                folder = self.repo.migrations_path(worktree) / name
                apply_like_prisma(conn, folder, provider="sqlite", state=state, logs=logs)  # type: ignore[arg-type]

    def sql(self, statement: str) -> None:
        """What a person runs in a database client."""
        with self.connect() as conn:
            conn.executescript(statement)

    def folder(self, worktree: Path) -> Path:
        return self.repo.migrations_path(worktree)

    def situation(self) -> Situation:
        return Situation(
            repo=self.main,
            environ=fix_environ(self.root, self.repo.env),
            url=self.url,
            schemas={path: self.repo.schema_path(path) for path in self.worktrees},
        )

    def findings(self) -> list[Finding]:
        return project_findings(self.main, self.situation().environ)


@pytest.fixture
def project(tmp_path: Path, prisma_cli: None) -> Iterator[Project]:
    yield Project(tmp_path)


def one(findings: list[Finding], code: str, migration: str | None = None) -> Finding:
    matching = [f for f in findings if f.code == code and (migration is None or f.migration == migration)]
    assert len(matching) == 1, [(f.code, f.migration, f.message) for f in findings]
    return matching[0]


def codes(findings: list[Finding], worktree: Path) -> list[tuple[str, str | None]]:
    return sorted(
        (f.code, f.migration) for f in findings if f.worktree == str(worktree) and f.severity.rank < 2
    )


# --------------------------------------------------------------------------------------- behind_database


def test_pending_deploy_runs_for_real(project: Project) -> None:
    project.commit(project.main, "init", INIT)
    before = project.findings()
    pending = one(before, "pending", INIT)
    assert executable_lines(pending.fix) == [f"cd {project.main / 'apps/web'} && npx prisma migrate deploy"]
    apply_fix(project.situation(), pending, before)
    assert_prisma_clean(project.situation(), [project.main])


def test_behind_a_branch_merges_the_branch_whose_tip_has_it(project: Project) -> None:
    """rallly/documenso: feature branches that added a migration and were applied before merging."""
    main = project.main
    project.commit(main, "init", INIT)
    billing = project.worktree("shop-billing", "feature/billing")
    project.commit(billing, "billing", BILLING)
    project.apply(billing, INIT, BILLING)
    project.repo.remove_worktree(billing)  # the branch stays; its worktree is gone
    project.worktrees.remove(billing)
    before = project.findings()
    behind = one(before, "behind_database", BILLING)
    assert executable_lines(behind.fix) == [f"git -C {main} merge feature/billing"]
    assert behind.message.endswith("; feature/billing has it")
    apply_fix(project.situation(), behind, before)
    assert_prisma_clean(project.situation(), [main])


def test_behind_an_uncommitted_migration_commits_it_first(project: Project) -> None:
    main = project.main
    project.commit(main, "init", INIT)
    billing = project.worktree("shop-billing", "feature/billing")
    project.write(billing, BILLING)
    project.apply(billing, INIT, BILLING)
    before = project.findings()
    behind = one(before, "behind_database", BILLING)
    assert executable_lines(behind.fix) == [
        f"git -C {billing} add -- {DIR}/{BILLING} && git -C {billing} commit -m 'Add migration {BILLING}'",
        f"git -C {main} merge feature/billing",
    ]
    apply_fix(project.situation(), behind, before)
    assert_prisma_clean(project.situation(), [main, billing])


def test_behind_a_folder_deleted_from_the_working_tree_restores_it(project: Project) -> None:
    main = project.main
    project.commit(main, "init", INIT, BILLING)
    project.apply(main, INIT, BILLING)
    shutil.rmtree(project.folder(main) / BILLING)
    before = project.findings()
    behind = one(before, "behind_database", BILLING)
    assert executable_lines(behind.fix) == [f"git -C {main} checkout HEAD -- {DIR}/{BILLING}"]
    apply_fix(project.situation(), behind, before)
    assert_prisma_clean(project.situation(), [main])


def test_behind_a_migration_deleted_upstream_says_which_commit(project: Project) -> None:
    """documenso 79e26a9a46 'fix: remove session migration': main deleted an applied migration."""
    main = project.main
    project.commit(main, "init", INIT, BILLING)
    feature = project.worktree("shop-feature", "feature/x")
    project.apply(feature, INIT, BILLING)
    shutil.rmtree(project.folder(main) / BILLING)
    project.repo.commit(main, "fix: remove billing migration")
    project.repo.merge(feature, "main")
    before = project.findings()
    behind = one([f for f in before if f.worktree == str(feature)], "behind_database", BILLING)
    assert executable_lines(behind.fix) == []
    assert "(" in behind.message and "'fix: remove billing migration')" in behind.message
    statements = note_sql(behind.fix)
    assert statements == [f"DELETE FROM _prisma_migrations WHERE migration_name = '{BILLING}';"]
    project.sql('DROP TABLE "Billing";')  # "undo its changes in the database by hand"
    project.sql(statements[0])
    after = project.findings()
    assert codes(after, feature) == [] and codes(after, main) == []
    assert_prisma_clean(project.situation(), [main, feature])


def test_behind_a_renamed_migration_records_the_new_name(project: Project) -> None:
    """documenso 9a2f3747db 'fix: reorder migrations': a timestamp rename after it was applied."""
    main = project.main
    project.commit(main, "init", INIT, BILLING)
    project.apply(main, INIT, BILLING)
    renamed = "20250401000000_add_billing"
    project.repo.git(main, "mv", f"{DIR}/{BILLING}", f"{DIR}/{renamed}")
    project.repo.commit(main, "fix: reorder migrations")
    before = project.findings()
    behind = one(before, "behind_database", BILLING)
    pending = one(before, "pending", renamed)
    lines = [f"cd {main / 'apps/web'} && npx prisma migrate resolve --applied={renamed}"]
    assert executable_lines(behind.fix) == lines and executable_lines(pending.fix) == lines
    assert note_sql(behind.fix) == [f"DELETE FROM _prisma_migrations WHERE migration_name = '{BILLING}';"]
    execute(lines, project.situation().environ, project.root)
    project.sql(note_sql(behind.fix)[0])
    assert codes(project.findings(), main) == []
    assert_prisma_clean(project.situation(), [main])


def test_behind_squashed_migrations_in_a_worktree_that_lacks_the_squash(project: Project) -> None:
    """documenso 972c20f906 'chore: tidy migrations': 14 applied migrations squashed into one; a worktree
    branched before they were added has to take main's squash."""
    main = project.main
    project.commit(main, "init", INIT)
    project.apply(main, INIT)
    old = project.worktree("shop-old", "feature/old")
    project.commit(main, "templates", BILLING, INVOICE)
    project.apply(main, BILLING, INVOICE)
    squashed = "20250401000000_add_billing_and_invoices"
    shutil.rmtree(project.folder(main) / BILLING)
    shutil.rmtree(project.folder(main) / INVOICE)
    project.write(main, squashed, "-- squashed\n" + SQL[BILLING] + SQL[INVOICE])
    project.repo.commit(main, "chore: tidy migrations")
    before = project.findings()
    behind = one([f for f in before if f.worktree == str(old)], "behind_database", BILLING)
    lines = [
        f"git -C {old} merge main",
        f"cd {old / 'apps/web'} && npx prisma migrate resolve --applied={squashed}",
    ]
    assert executable_lines(behind.fix) == lines
    delete = f"DELETE FROM _prisma_migrations WHERE migration_name IN ('{BILLING}', '{INVOICE}');"
    assert note_sql(behind.fix) == [delete]
    execute(lines, project.situation().environ, project.root)
    project.sql(delete)
    after = project.findings()
    assert codes(after, old) == [] and codes(after, main) == []
    assert_prisma_clean(project.situation(), [main, old])


def test_behind_work_that_is_gone(project: Project) -> None:
    main = project.main
    project.commit(main, "init", INIT)
    scratch = project.worktree("shop-spike", "spike")
    project.write(scratch, BILLING)
    project.apply(scratch, INIT, BILLING)
    project.repo.remove_worktree(scratch)
    project.worktrees.remove(scratch)
    project.repo.git(main, "branch", "-D", "spike")
    before = project.findings()
    behind = one(before, "behind_database", BILLING)
    assert executable_lines(behind.fix) == []
    assert "from work that is gone" in behind.message
    statements = note_sql(behind.fix)
    project.sql('DROP TABLE "Billing";')
    project.sql(statements[0])
    assert codes(project.findings(), main) == []
    assert_prisma_clean(project.situation(), [main])


def test_long_history_with_hundreds_of_branches(tmp_path: Path, prisma_cli: None) -> None:
    """A generated history like the zoo's big ones (documenso: 12,796 commits, 2,932 refs; rallly:
    17,125 commits, 2,763 refs): 1,500 commits, 300 branches, 5 migrations only on one branch."""
    env = isolated_environ(tmp_path / "home")
    history = longhistory.generate(
        tmp_path, env, commits=1500, branches=300, main_migrations=40, branch_only=5
    )
    situation = Situation(
        repo=history.repo,
        environ=fix_environ(tmp_path, env),
        url=f"file:{history.database}",
        schemas={history.repo: history.repo / longhistory.PACKAGE / "prisma" / "schema.prisma"},
    )
    before = project_findings(history.repo, situation.environ)
    behind = [f for f in before if f.code == "behind_database"]
    assert sorted(f.migration or "" for f in behind) == list(history.branch_only)
    assert {tuple(executable_lines(f.fix)) for f in behind} == {(f"git -C {history.repo} merge feature/big",)}
    apply_fix(situation, behind[0], before)
    assert not [f for f in project_findings(history.repo, situation.environ) if f.code == "behind_database"]
    assert_prisma_clean(situation, [history.repo])


# ----------------------------------------------------------------------------- project's own commands


def test_monorepo_env_wrapper_uses_the_projects_script(
    tmp_path: Path, prisma_cli: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """documenso: the URL lives in the root `.env`, loaded by `npm run with:env -- npm run
    prisma:migrate-deploy -w @documenso/prisma`; `npx prisma migrate deploy` in the package fails (P1012)."""
    project = Project(tmp_path, name="documenso")
    main = project.main
    package = main / "apps/web"
    (package / ".env").unlink()
    (main / ".env").write_text(f'NEXT_PRIVATE_DATABASE_URL="{project.url}"\n', encoding="utf-8")
    schema = project.repo.schema_path(main)
    schema.write_text(schema.read_text(encoding="utf-8").replace("DATABASE_URL", "NEXT_PRIVATE_DATABASE_URL"))
    root_manifest = json.loads((main / "package.json").read_text(encoding="utf-8"))
    root_manifest["scripts"] = {
        "prisma:migrate-deploy": "npm run with:env -- npm run prisma:migrate-deploy -w @documenso/prisma",
        "with:env": "dotenv -e .env -e .env.local --",
    }
    (main / "package.json").write_text(json.dumps(root_manifest, indent=2) + "\n", encoding="utf-8")
    manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
    manifest["name"] = "@documenso/prisma"
    manifest["scripts"] = {"prisma:migrate-deploy": "prisma migrate deploy"}
    (package / "package.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    project.commit(main, "init", INIT)
    situation = project.situation()
    with pytest.raises(FixEffectError, match="P1012"):
        execute([f"cd {package} && npx prisma migrate deploy"], situation.environ, tmp_path)
    before = project.findings()
    pending = one(before, "pending", INIT)
    assert executable_lines(pending.fix) == [f"cd {main} && npm run prisma:migrate-deploy"]
    apply_fix(situation, pending, before)
    # The oracle passes the URL itself, but Prisma validates the schema's env() first.
    monkeypatch.setenv("NEXT_PRIVATE_DATABASE_URL", project.url)
    assert_prisma_clean(situation, [main])


# --------------------------------------------------------------------------- failed, edited, collision


def test_a_failed_migration_edited_to_fix_it_is_the_failed_findings_business(project: Project) -> None:
    """umami d116cf2b1f 'fix boards migration drift': a migration edited after it failed."""
    main = project.main
    project.commit(main, "init", INIT)
    project.apply(main, INIT)
    broken = (
        'CREATE TABLE "Billing" ("id" INTEGER NOT NULL PRIMARY KEY);\nCREATE TABLE "User" ("id" INTEGER);\n'
    )
    project.write(main, BILLING, broken)
    project.repo.commit(main, "billing")
    project.apply(main, BILLING, state="failed", logs='table "User" already exists')
    project.sql(
        'CREATE TABLE "Billing" ("id" INTEGER NOT NULL PRIMARY KEY);'
    )  # SQLite ran the first statement
    project.write(main, BILLING)  # the fix of the migration itself
    before = project.findings()
    assert [f.code for f in before if f.migration == BILLING and f.code == "checksum_mismatch"] == []
    failed = one(before, "failed", BILLING)
    statements = note_sql(failed.fix)
    assert statements == [
        f"DELETE FROM _prisma_migrations WHERE migration_name = '{BILLING}' AND finished_at IS NULL "
        "AND rolled_back_at IS NULL;"
    ]
    assert executable_lines(failed.fix) == [f"cd {main / 'apps/web'} && npx prisma migrate deploy"]
    project.sql('DROP TABLE "Billing";')  # "after undoing its partial changes"
    project.sql(statements[0])
    apply_fix(project.situation(), failed, before)
    assert_prisma_clean(project.situation(), [main])


def test_a_cosmetic_edit_is_said_to_be_cosmetic(project: Project) -> None:
    main = project.main
    project.commit(main, "init", INIT)
    project.apply(main, INIT)
    project.write(main, INIT, "-- the users\n" + SQL[INIT].replace(" (", "  (") + "\n")
    before = project.findings()
    edited = one(before, "checksum_mismatch", INIT)
    assert "only comments and whitespace changed" in edited.message
    assert executable_lines(edited.fix) == [
        f"git -C {main} checkout {edited.details['restore_rev'][:12]} -- {DIR}/{INIT}/migration.sql"
    ]
    apply_fix(project.situation(), edited, before)
    assert_prisma_clean(project.situation(), [main])


def test_two_branches_with_the_same_migration_name_are_a_collision(project: Project) -> None:
    """Two agents each ran `migrate dev --name add_billing` in the same second."""
    main = project.main
    project.commit(main, "init", INIT)
    project.apply(main, INIT)
    first = project.worktree("shop-a", "feature/a")
    second = project.worktree("shop-b", "feature/b")
    project.commit(first, "billing a", BILLING)
    project.write(second, BILLING, 'CREATE TABLE "Payment" ("id" INTEGER NOT NULL PRIMARY KEY);\n')
    project.repo.commit(second, "billing b")
    project.apply(first, BILLING)
    before = project.findings()
    collision = one([f for f in before if f.worktree == str(second)], "checksum_mismatch", BILLING)
    assert "name collision" in collision.message
    lines = executable_lines(collision.fix)
    assert not any(line.startswith("cp ") for line in lines)
    renamed = collision.details["suggested_name"]
    apply_fix(project.situation(), collision, before, expected_new={("pending", str(second), renamed)})
    assert_prisma_clean(project.situation(), [first])
    verdict = prisma_verdicts(project.situation(), [second])[second]
    assert verdict is not None and verdict["history"] == {
        "diagnostic": "databaseIsBehind",
        "unappliedMigrationNames": [renamed],
    }  # what Prisma says after the fix: only this branch's own migration, under its new name, to deploy


# ---------------------------------------------------------------------------------------- out of order


def test_out_of_order_renames_a_local_only_migration_with_the_next_number(project: Project) -> None:
    """umami: numbered names (`18_add_performance`, `19_add_session_replay`, `20_add_heatmap`)."""
    main = project.main
    names = {"01_init": SQL[INIT], "03_add_invoice": SQL[INVOICE]}
    for name, sql in names.items():
        project.write(main, name, sql)
    project.repo.commit(main, "numbered")
    project.apply(main, *names)
    project.write(main, "02_add_billing", SQL[BILLING])
    before = project.findings()
    late = one(before, "out_of_order", "02_add_billing")
    folder = project.folder(main)
    assert executable_lines(late.fix) == [f"mv {folder / '02_add_billing'} {folder / '04_add_billing'}"]
    execute(executable_lines(late.fix), project.situation().environ, project.root)
    after = project.findings()
    assert codes(after, main) == [("pending", "04_add_billing")]


def test_out_of_order_on_another_branch_is_deployed_as_prisma_would(project: Project) -> None:
    main = project.main
    project.commit(main, "init", INIT, INVOICE)
    project.apply(main, INIT, INVOICE)
    billing = project.worktree("shop-billing", "feature/billing", "HEAD~0")
    project.commit(billing, "billing", BILLING)
    project.repo.merge(main, "feature/billing")
    before = project.findings()
    late = one([f for f in before if f.worktree == str(main)], "out_of_order", BILLING)
    assert not any(line.startswith("mv ") for line in executable_lines(late.fix))
    apply_fix(project.situation(), late, before)
    assert_prisma_clean(project.situation(), [main, billing])


# ----------------------------------------------------------------------------------------- not managed


def test_not_managed_empty_database_is_deployed(project: Project) -> None:
    main = project.main
    project.commit(main, "init", INIT, BILLING)
    project.sql('DROP TABLE "_prisma_migrations";')
    before = project.findings()
    unmanaged = one(before, "not_managed")
    assert executable_lines(unmanaged.fix) == [f"cd {main / 'apps/web'} && npx prisma migrate deploy"]
    apply_fix(project.situation(), unmanaged, before)
    assert_prisma_clean(project.situation(), [main])


def test_not_managed_with_the_schema_already_there_baselines_every_migration(project: Project) -> None:
    """Executing the baseline needs a history table the oracle's Wasm engine cannot create on SQLite
    (its README): the printed line is asserted here, the same `resolve --applied` runs for real above."""
    main = project.main
    project.commit(main, "init", INIT, BILLING)
    project.sql('DROP TABLE "_prisma_migrations";' + SQL[INIT] + SQL[BILLING])
    before = project.findings()
    unmanaged = one(before, "not_managed")
    assert executable_lines(unmanaged.fix) == [
        f"cd {main / 'apps/web'} && npx prisma migrate resolve --applied={INIT} && "
        f"npx prisma migrate resolve --applied={BILLING}"
    ]
    assert unmanaged.message.endswith("but already has tables (Billing, User…)")


def test_an_applied_migration_edited_upstream_after_the_fork_merges_that_branch(project: Project) -> None:
    """umami: master edited 16_boards after feature branches forked, and master's text was applied.
    The branch's copy is the older text of the same migration — not a name collision: merging master
    brings the applied text (a rename would conflict with master's edit)."""
    main = project.main
    project.commit(main, "init", INIT)
    old = project.worktree("shop-old", "feature/old")
    edited = SQL[INIT].replace(
        '("id" INTEGER NOT NULL PRIMARY KEY)', '("id" INTEGER NOT NULL PRIMARY KEY, "n" TEXT)'
    )
    project.write(main, INIT, edited)
    project.repo.commit(main, "Board setup: edit init")
    project.apply(main, INIT)
    before = project.findings()
    mismatch = one([f for f in before if f.worktree == str(old)], "checksum_mismatch", INIT)
    assert "name collision" not in mismatch.message
    assert "main edited it after this branch forked" in mismatch.message
    assert executable_lines(mismatch.fix) == [f"git -C {old} merge main"]
    apply_fix(project.situation(), mismatch, before)
    assert_prisma_clean(project.situation(), [main, old])


def test_a_pending_migration_edited_upstream_after_the_fork_is_not_a_collision(project: Project) -> None:
    """umami: master edited a migration nobody had applied yet, after a feature branch forked. The two
    copies are one migration in two versions: merging master brings the new text, nothing to rename."""
    main = project.main
    project.commit(main, "init", INIT, BILLING)
    project.apply(main, INIT)
    old = project.worktree("shop-old", "feature/old")
    edited = SQL[BILLING].replace("PRIMARY KEY)", 'PRIMARY KEY, "plan" TEXT)')
    project.write(main, BILLING, edited)
    project.repo.commit(main, "billing: add plan")
    before = project.findings()
    assert [f for f in before if f.worktree == str(main) and f.code == "name_collision"] == []
    stale = one([f for f in before if f.worktree == str(old)], "name_collision", BILLING)
    assert "main edited it after this branch forked" in stale.message
    assert executable_lines(stale.fix) == [f"git -C {old} merge main"]
    apply_fix(project.situation(), stale, before)
    after = project.findings()
    assert [f.code for f in after if f.migration == BILLING and f.code != "pending"] == []
    # Prisma agrees: in both worktrees the one edited migration is simply still to be deployed.
    for verdict in prisma_verdicts(project.situation(), [main, old]).values():
        assert verdict is not None and verdict["history"] == {
            "diagnostic": "databaseIsBehind",
            "unappliedMigrationNames": [BILLING],
        }
