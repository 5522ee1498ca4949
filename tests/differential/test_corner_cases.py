"""Every fixed rule of SPEC §5, one named test each: migwatch's verdict AND the real Prisma engine's.

Each test writes one small history into a real git repository whose `Americano` checkout is a Prisma 6.19
project and whose `Americano-prisma7` worktree is a Prisma 7.10 project, both on one database; migwatch's
real pipeline reads it and `prisma-oracle` diagnoses it for each line (in parallel).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from migwatch.diagnose import WorktreeVerdict
from migwatch.model import Finding, Severity
from tests.differential.conftest import DiffProject, build_project, sqlite_url, write_history
from tests.differential.histories import (
    FolderSpec,
    History,
    RowSpec,
    RowState,
    prisma_checksum,
    text_checksum,
    unpadded,
)
from tests.differential.oracle import (
    PRISMA_LINES,
    OracleResult,
    PrismaLine,
    PrismaView,
    migrate_status,
    migwatch_view,
    oracle_view,
    run_many,
)
from tests.support.pg import PgDatabase

pytestmark = [pytest.mark.differential, pytest.mark.usefixtures("prisma_oracle")]

INIT = "20250101000000_init"
SQL = b'CREATE TABLE IF NOT EXISTS "Example" ("id" INTEGER NOT NULL);\n'
UP_TO_DATE = "Database schema is up to date!"


@dataclass(frozen=True)
class Judged:
    """One Prisma line's worktree: migwatch's verdict, both views, and the oracle's raw answer."""

    verdict: WorktreeVerdict
    migwatch: PrismaView
    prisma: PrismaView
    oracle: OracleResult

    @property
    def local_order(self) -> tuple[str, ...]:
        """The migrations migwatch read from the folder, in its order."""
        folder = self.verdict.snapshot.folder
        return tuple(m.name for m in folder.migrations) if folder else ()

    @property
    def failed_rows(self) -> set[str]:
        history = self.verdict.history
        return {r.migration_name for r in history.rows if r.failed} if history else set()

    def explain(self) -> str:
        return (
            f"migwatch: {self.migwatch.lines()}\nprisma:   {self.prisma.lines()}\n"
            f"reproduce: {self.oracle.call.shell_command()}"
        )


def folder(name: str, sql: bytes | None = SQL, *, symlink: bool = False) -> FolderSpec:
    return FolderSpec(name, sql, symlink=symlink)


def row(name: str, state: RowState = "applied", *, checksum: str | None = None, sql: bytes = SQL) -> RowSpec:
    return RowSpec(name, state, prisma_checksum(sql) if checksum is None else checksum, sql)


def history(folders: list[FolderSpec], rows: list[RowSpec]) -> History:
    return History(seed=-1, folders=tuple(folders), rows=tuple(rows))


def make_project(
    root: Path, env: dict[str, str], provider: str = "sqlite", pg: PgDatabase | None = None
) -> DiffProject:
    url = sqlite_url(root) if provider == "sqlite" else (pg.url if pg else "")
    return build_project(root, provider, url, env=env)


def judge(project: DiffProject, case: History, pg: PgDatabase | None = None) -> dict[PrismaLine, Judged]:
    """Write the history, then read it with migwatch and with Prisma (both lines in parallel)."""
    write_history(project, case, project.repo.main.parent / "scratch", pg.server if pg else None)
    verdicts = project.verdicts()
    results = run_many([project.oracle_call(line) for line in project.worktrees])
    return {
        line: Judged(verdicts[line], migwatch_view(verdicts[line]), oracle_view(result), result)
        for line, result in zip(project.worktrees, results, strict=True)
    }


def assert_agree(judged: dict[PrismaLine, Judged]) -> None:
    for line, side in judged.items():
        assert not side.migwatch.differences(side.prisma), f"[{line}]\n{side.explain()}"


@pytest.fixture
def project(tmp_path: Path, git_env: dict[str, str]) -> DiffProject:
    """A SQLite project with a Prisma 6.19 worktree and a Prisma 7.10 worktree."""
    return make_project(tmp_path, git_env)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_project(
    request: pytest.FixtureRequest, tmp_path: Path, git_env: dict[str, str]
) -> tuple[DiffProject, PgDatabase | None]:
    """The same project on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return make_project(tmp_path, git_env), None
    pg: PgDatabase = request.getfixturevalue("pg_database")
    return make_project(tmp_path, git_env, "postgresql", pg), pg


# ------------------------------------------------------------------------------------------ the folder


def test_hidden_folder_is_a_migration(project: DiffProject) -> None:
    hidden = ".20250102000000_hidden"
    judged = judge(project, history([folder(INIT), folder(hidden)], [row(INIT)]))
    for side in judged.values():
        assert side.local_order == (hidden, INIT)
        assert side.verdict.pending == (hidden,)
        assert side.prisma.directories == (hidden, INIT)
        assert side.prisma.unapplied == (hidden,)
    assert_agree(judged)


def test_symlinked_folder_is_not_a_migration(project: DiffProject) -> None:
    linked = "20250102000000_linked"
    judged = judge(project, history([folder(INIT), folder(linked, symlink=True)], [row(INIT), row(linked)]))
    for side in judged.values():
        assert side.verdict.behind == (linked,)
        assert side.verdict.pending == ()
        assert side.prisma.directories == (INIT,)
        assert side.prisma.unpersisted == {linked}
    assert_agree(judged)


def test_plain_files_and_the_lock_file_are_not_migrations(project: DiffProject) -> None:
    case = History(
        seed=-1, folders=(folder(INIT),), rows=(row(INIT),), stray_files=("README.md", "notes.sql")
    )
    judged = judge(project, case)
    for side in judged.values():
        assert side.prisma.directories == (INIT,)
        assert side.verdict.pending == side.verdict.behind == ()
    assert_agree(judged)


LOCALE_ORDER = (
    "20250101000000__x",
    "20250101000000_a",
    "20250101000000_ä",
    "20250101000000_add",
    "20250101000000_Add",
    "20250101000000_add_",
    "20250101000000_add-x",
    "20250101000000_add.x",
    "20250101000000_B",
    "20250101000000_x_",
    "20250101000000_x1",
    "20250102000000_a",
)


def test_local_order_is_javascript_locale_compare(project: DiffProject) -> None:
    # Written in reverse code-point order, so an accidental sort by bytes would show.
    names = sorted(LOCALE_ORDER, reverse=True)
    judged = judge(project, history([folder(name) for name in names], [row("20250102000000_a")]))
    for side in judged.values():
        assert side.local_order == LOCALE_ORDER
        assert side.prisma.directories == LOCALE_ORDER
        assert side.verdict.pending == side.prisma.unapplied == LOCALE_ORDER[:-1]
    assert_agree(judged)


# ------------------------------------------------------------------------------------------ checksums


def _lines(ending: str) -> bytes:
    return ending.join(["-- lines", 'CREATE TABLE IF NOT EXISTS "E" (', '  "id" INTEGER', ");", ""]).encode()


def test_crlf_lf_and_mixed_line_endings(project: DiffProject) -> None:
    lf, crlf = _lines("\n"), _lines("\r\n")
    mixed = b'-- lines\nCREATE TABLE IF NOT EXISTS "E" (\r\n  "id" INTEGER\n);\r\n'
    cases = {
        "20250101000001_crlf_file_lf_row": (crlf, text_checksum(lf.decode())),
        "20250101000002_lf_file_crlf_row": (lf, text_checksum(crlf.decode())),
        "20250101000003_mixed_file_lf_row": (mixed, text_checksum(mixed.decode().replace("\r\n", "\n"))),
        "20250101000004_mixed_file_crlf_row": (
            mixed,
            text_checksum(mixed.decode().replace("\r\n", "\n").replace("\n", "\r\n")),
        ),
        "20250101000005_crlf_file_crlf_row": (crlf, prisma_checksum(crlf)),
    }
    judged = judge(
        project,
        history(
            [folder(name, content) for name, (content, _) in cases.items()],
            [row(name, checksum=stored, sql=content) for name, (content, stored) in cases.items()],
        ),
    )
    for side in judged.values():
        # A mixed file matches its LF form only: LF→CRLF of a mixed text doubles its existing CRs.
        assert [name for name, _ in side.verdict.edited] == ["20250101000004_mixed_file_crlf_row"]
        assert side.prisma.edited == {"20250101000004_mixed_file_crlf_row"}
    assert_agree(judged)


def test_bom_is_kept_in_the_checksum(project: DiffProject) -> None:
    with_bom = b"\xef\xbb\xbf" + SQL
    judged = judge(
        project,
        history(
            [
                folder("20250101000001_bom_row_with_bom", with_bom),
                folder("20250101000002_bom_row_without", with_bom),
            ],
            [
                row("20250101000001_bom_row_with_bom", sql=with_bom),
                row("20250101000002_bom_row_without", checksum=prisma_checksum(SQL), sql=with_bom),
            ],
        ),
    )
    for side in judged.values():
        assert [name for name, _ in side.verdict.edited] == ["20250101000002_bom_row_without"]
        assert side.prisma.edited == {"20250101000002_bom_row_without"}
    assert_agree(judged)


def test_invalid_utf8_is_replaced_before_hashing(project: DiffProject) -> None:
    invalid = b"-- caf\xe9 \xff\n" + SQL
    judged = judge(
        project,
        history(
            [folder("20250101000001_replaced", invalid), folder("20250101000002_raw_bytes", invalid)],
            [
                row("20250101000001_replaced", sql=invalid),  # sha256 of the text with U+FFFD
                row("20250101000002_raw_bytes", checksum=hashlib.sha256(invalid).hexdigest(), sql=invalid),
            ],
        ),
    )
    for side in judged.values():
        assert [name for name, _ in side.verdict.edited] == ["20250101000002_raw_bytes"]
        assert side.prisma.edited == {"20250101000002_raw_bytes"}
    assert_agree(judged)


def _short_unpadded() -> tuple[bytes, str]:
    """A migration whose checksum has a byte below 0x10, so the old format is shorter than 64."""
    for n in range(1000):
        content = SQL + f"-- {n}\n".encode()
        old = unpadded(prisma_checksum(content))
        if len(old) < 64:
            return content, old
    raise AssertionError("no short unpadded checksum in 1000 tries")


def test_old_unpadded_checksum_matches(project: DiffProject) -> None:
    content, old = _short_unpadded()
    other = unpadded(prisma_checksum(content + b"-- changed\n"))
    judged = judge(
        project,
        history(
            [
                folder("20250101000001_old_format", content),
                folder("20250101000002_old_format_edited", content),
            ],
            [
                row("20250101000001_old_format", checksum=old, sql=content),
                row("20250101000002_old_format_edited", checksum=other, sql=content),
            ],
        ),
    )
    for side in judged.values():
        assert [name for name, _ in side.verdict.edited] == ["20250101000002_old_format_edited"]
        assert side.prisma.edited == {"20250101000002_old_format_edited"}
    assert_agree(judged)


def test_upper_case_stored_checksum_does_not_match(project: DiffProject) -> None:
    judged = judge(project, history([folder(INIT)], [row(INIT, checksum=prisma_checksum(SQL).upper())]))
    for side in judged.values():
        assert side.verdict.edited == ((INIT, prisma_checksum(SQL).upper()),)
        assert side.prisma.edited == {INIT}
    assert_agree(judged)


# ------------------------------------------------------------------------------------------ rows


def test_rolled_back_only_row_is_pending_from_prisma_7_9(
    any_project: tuple[DiffProject, PgDatabase | None],
) -> None:
    project, pg = any_project
    judged = judge(project, history([folder(INIT)], [row(INIT, "rolled_back")]), pg)
    assert judged["6.19"].verdict.pending == () and judged["6.19"].prisma.unapplied == ()
    assert judged["7.10"].verdict.pending == (INIT,) and judged["7.10"].prisma.unapplied == (INIT,)
    assert_agree(judged)


def test_rolled_back_row_without_folder_is_behind_only_before_7_9(
    any_project: tuple[DiffProject, PgDatabase | None],
) -> None:
    project, pg = any_project
    gone = "20250102000000_abandoned"
    judged = judge(project, history([folder(INIT)], [row(INIT), row(gone, "rolled_back")]), pg)
    assert judged["6.19"].verdict.behind == (gone,) and judged["6.19"].prisma.unpersisted == {gone}
    assert judged["7.10"].verdict.behind == () and judged["7.10"].prisma.unpersisted == frozenset()
    assert_agree(judged)


def test_only_the_first_counted_row_is_checked_for_edits(project: DiffProject) -> None:
    later_wrong, first_wrong = "20250101000001_later_row_wrong", "20250101000002_first_row_wrong"
    wrong = text_checksum("-- another text\n")
    judged = judge(
        project,
        history(
            [folder(later_wrong), folder(first_wrong)],
            [
                row(later_wrong),
                row(first_wrong, checksum=wrong),
                row(later_wrong, checksum=wrong),
                row(first_wrong),
            ],
        ),
    )
    for side in judged.values():
        assert side.verdict.edited == ((first_wrong, wrong),)
        assert side.prisma.edited == {first_wrong}
    assert_agree(judged)


def test_rolled_back_attempt_with_another_text_is_an_edit_only_before_7_9(project: DiffProject) -> None:
    # The failed attempt ran an earlier text; after `resolve --rolled-back` the fixed file was deployed.
    first_attempt = SQL + b"-- first attempt\n"
    judged = judge(
        project,
        history([folder(INIT)], [row(INIT, "rolled_back", sql=first_attempt), row(INIT)]),
    )
    assert judged["6.19"].verdict.edited == ((INIT, prisma_checksum(first_attempt)),)
    assert judged["6.19"].prisma.edited == {INIT}
    assert judged["7.10"].verdict.edited == () and judged["7.10"].prisma.edited == frozenset()
    assert_agree(judged)


def test_failed_rows(any_project: tuple[DiffProject, PgDatabase | None]) -> None:
    project, pg = any_project
    here, elsewhere = "20250102000000_failed_here", "20250103000000_failed_elsewhere"
    judged = judge(
        project,
        history([folder(INIT), folder(here)], [row(INIT), row(here, "failed"), row(elsewhere, "failed")]),
        pg,
    )
    for side in judged.values():
        assert side.failed_rows == {here, elsewhere} == side.prisma.failed
        assert side.verdict.pending == () and side.prisma.unapplied == ()
        # A failed row of a migration this worktree lacks: Prisma lists it as unpersisted too.
        assert side.verdict.behind == (elsewhere,) and side.prisma.unpersisted == {elsewhere}
    assert_agree(judged)


def test_order_of_application_does_not_matter(tmp_path: Path, git_env: dict[str, str]) -> None:
    names = ["20250101000000_init", "20250102000000_b", "20250103000000_c", "20250104000000_gone"]
    rows = [row(names[0]), row(names[1], checksum=text_checksum("x")), row(names[2], "failed"), row(names[3])]
    folders = [folder(name) for name in names[:3]]
    in_order = judge(make_project(tmp_path / "in-order", git_env), history(folders, rows))
    reversed_ = judge(make_project(tmp_path / "reversed", git_env), history(folders, rows[::-1]))
    for line in PRISMA_LINES:
        assert in_order[line].migwatch == reversed_[line].migwatch
        assert in_order[line].prisma == reversed_[line].prisma
        assert in_order[line].prisma.edited == {names[1]} and in_order[line].prisma.unpersisted == {names[3]}
    assert_agree(in_order)
    assert_agree(reversed_)


# ------------------------------------------------------------------------------------------ broken folders


def test_folder_without_sql_with_a_row_stops_prisma_p3015(project: DiffProject) -> None:
    judged = judge(project, history([folder(INIT, None)], [row(INIT)]))
    for side in judged.values():
        assert side.verdict.missing_sql == (INIT,) and side.verdict.pending == ()
        assert side.prisma.error == "P3015", side.oracle.error_text
    findings = _by_code(project.findings(), "missing_sql")
    assert {(f.worktree, f.migration) for f in findings} == {
        (str(p), INIT) for p in project.worktrees.values()
    }
    assert all("it is applied, so `prisma migrate status` fails with P3015" in f.message for f in findings)
    assert_agree(judged)


def test_folder_without_sql_and_without_a_row_is_unapplied_for_prisma(project: DiffProject) -> None:
    empty = "20250102000000_empty"
    judged = judge(project, history([folder(INIT), folder(empty, None)], [row(INIT)]))
    for side in judged.values():
        assert side.verdict.missing_sql == (empty,) and side.verdict.pending == ()
        assert side.prisma.unapplied == (empty,)
    assert all(
        "`prisma migrate deploy` fails on it" in f.message
        for f in _by_code(project.findings(), "missing_sql")
    )
    assert_agree(judged)


def test_lock_file_provider_mismatch_stops_prisma_p3019(project: DiffProject) -> None:
    for line in project.worktrees:
        (project.migrations(line) / "migration_lock.toml").write_text(
            'provider = "postgresql"\n', encoding="utf-8"
        )
    judged = judge(project, history([folder(INIT)], [row(INIT)]))
    for side in judged.values():
        assert side.prisma.error == "P3019", side.oracle.error_text
    findings = _by_code(project.findings(), "provider_mismatch")
    assert {f.worktree for f in findings} == {str(p) for p in project.worktrees.values()}
    assert {f.severity for f in findings} == {Severity.ERROR}


def test_missing_lock_file_is_fine(project: DiffProject) -> None:
    for line in project.worktrees:
        (project.migrations(line) / "migration_lock.toml").unlink()
    judged = judge(project, history([folder(INIT)], [row(INIT)]))
    for side in judged.values():
        assert side.prisma.error is None and side.prisma.unapplied == ()
    assert _by_code(project.findings(), "provider_mismatch") == []
    assert_agree(judged)


# ------------------------------------------------------------------------------------------ migrate status


def _by_code(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


def test_migrate_status_is_up_to_date_with_a_database_only_migration(
    tmp_path: Path, git_env: dict[str, str]
) -> None:
    project = build_project(tmp_path, "sqlite", sqlite_url(tmp_path), lines=["6.19"], env=git_env)
    other = "20250102000000_from_another_worktree"
    judged = judge(project, history([folder(INIT)], [row(INIT), row(other)]))
    assert judged["6.19"].prisma.unpersisted == {other}  # the engine knows…
    status = migrate_status(project.schema("6.19"), project.url)
    assert status.returncode == 0, status.stderr
    assert UP_TO_DATE in status.stdout.splitlines()  # …the CLI does not tell
    behind = _by_code(project.findings(), "behind_database")
    assert [(f.migration, f.severity) for f in behind] == [(other, Severity.ERROR)]


def test_migrate_status_is_up_to_date_with_an_edited_migration(
    tmp_path: Path, git_env: dict[str, str]
) -> None:
    project = build_project(tmp_path, "sqlite", sqlite_url(tmp_path), lines=["6.19"], env=git_env)
    judged = judge(project, history([folder(INIT, SQL + b"-- edited after it was applied\n")], [row(INIT)]))
    assert judged["6.19"].prisma.edited == {INIT}
    status = migrate_status(project.schema("6.19"), project.url)
    assert status.returncode == 0, status.stderr
    assert UP_TO_DATE in status.stdout.splitlines()
    edited = _by_code(project.findings(), "checksum_mismatch")
    assert [(f.migration, f.severity) for f in edited] == [(INIT, Severity.ERROR)]
