"""Every fix template, rendered with hostile names, EXECUTED: shell lines in a sandbox of recording stubs,
SQL in a rolled-back transaction on real PostgreSQL (and SQLite).

The templates are enumerated, not listed: every case of `tests/support/findingcases.py` (which reaches
every branch of `diagnose.findings`) is rendered once per payload of `tests/support/hostile.py`, with
the payload appended to every migration name, worktree folder and branch. `test_every_template_is_
exercised` fails when a finding code of the catalogue or a command builder of `diagnose/fixes.py` is
not reached by those cases, and when a diagnose module builds a `Command` or an `SqlStatement` itself.
"""

from __future__ import annotations

import ast
import inspect
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import pytest

from migwatch import diagnose
from migwatch.catalogue import KINDS
from migwatch.diagnose import fixes
from migwatch.display import COMMAND_LIMIT, visible
from migwatch.migindex import MigrationChange, RefTip
from migwatch.model import (
    Command,
    Finding,
    HistoryRow,
    LocalMigration,
    Note,
    SqlStatement,
    Worktree,
)
from migwatch.report import ProjectReport, StatusReport, render_text, same_fix_groups
from migwatch.whereabouts import Whereabouts
from tests.support import findingcases
from tests.support.gitrepo import run_git
from tests.support.hostile import LEADING_PAYLOADS, SHELL_PAYLOADS, raw_controls
from tests.support.pg import PgDatabase
from tests.support.renaming import CASE_ROOT, Renamer, collect
from tests.support.sandbox import Sandbox, argv_bytes

NOW = findingcases.NOW
# Programs bash runs itself: a stub on PATH never sees their argv.
BUILTINS = frozenset({"cd", "echo", "printf", "test", "[", "pwd", "true", "false", ":"})
# Figures for the report, filled as the tests run.
FIGURES: Counter[str] = Counter()


def _all_names() -> tuple[set[str], set[str]]:
    """Every migration name and every branch name the cases use."""
    kinds = (
        LocalMigration,
        HistoryRow,
        Worktree,
        Whereabouts,
        RefTip,
        MigrationChange,
        diagnose.ProjectSnapshot,
    )
    objects: list[Any] = []
    collect(findingcases.CASES, lambda v: isinstance(v, kinds), objects)
    migrations: set[str] = set()
    branches: set[str] = set()
    for item in objects:
        if isinstance(item, LocalMigration):
            migrations.add(item.name)
        elif isinstance(item, HistoryRow):
            migrations.add(item.migration_name)
        elif isinstance(item, MigrationChange):
            migrations.update(name for name in (item.name, item.renamed_to) if name)
        elif isinstance(item, Whereabouts):
            migrations.update(item.successors)
            branches.update(ref for ref in (item.merge_ref, item.successor_ref) if ref)
        elif isinstance(item, RefTip) and item.kind in ("branch", "remote"):
            branches.add(item.name)
        elif isinstance(item, Worktree) and item.branch:
            branches.add(item.branch)
        elif isinstance(item, diagnose.ProjectSnapshot) and item.base_branch:
            branches.add(item.base_branch)
    return migrations, branches


MIGRATIONS, BRANCHES = _all_names()


@dataclass(frozen=True)
class Rendered:
    case: str
    findings: tuple[Finding, ...]
    rows: tuple[tuple[str, str, bool, bool], ...]  # every history row of the renamed case (see Row)


def rendered_cases(payload: str, root: Path, *, leading: bool = False) -> Iterator[Rendered]:
    """Every case's findings with `payload` appended to (or put before) every name, paths under `root`."""
    renamer = Renamer(MIGRATIONS, BRANCHES, payload, root, leading=leading)
    for name, (snapshot, evidence) in findingcases.CASES.items():
        hostile_snapshot, hostile_evidence = renamer(snapshot), renamer(evidence)
        verdicts = diagnose.analyse(hostile_snapshot)
        found = diagnose.findings(hostile_snapshot, verdicts, hostile_evidence, NOW)
        yield Rendered(name, tuple(found), _history_rows(hostile_snapshot))


def _history_rows(snapshot: diagnose.ProjectSnapshot) -> tuple[tuple[str, str, bool, bool], ...]:
    """Every history row in table order; a case's repeated id (ids there are names) made unique by
    position, as a database's uuids are."""
    rows = []
    seen: Counter[str] = Counter()
    for history in snapshot.histories.values():
        for row in history.rows:
            seen[row.id] += 1
            row_id = row.id if seen[row.id] == 1 else f"{row.id}#{seen[row.id]}"
            rows.append(
                (row_id, row.migration_name, row.finished_at is not None, row.rolled_back_at is not None)
            )
    return tuple(rows)


def commands_of(finding: Finding) -> list[Command]:
    return [step for step in finding.fix.steps if isinstance(step, Command)]


def statements_of(finding: Finding) -> list[SqlStatement]:
    return [step.sql for step in finding.fix.steps if isinstance(step, Note) and step.sql is not None]


def _expected_calls(command: Command) -> tuple[tuple[bytes, ...], ...]:
    return tuple(argv_bytes(argv) for argv in (command.argv, *command.then) if argv[0] not in BUILTINS)


def _make_folder(path: Path) -> None:
    os.makedirs(os.fsencode(path), exist_ok=True)


# --- shell lines ----------------------------------------------------------------------------------------


PLACES = [(name, False) for name in sorted(SHELL_PAYLOADS)] + [(name, True) for name in LEADING_PAYLOADS]


@pytest.mark.parametrize(("payload_name", "leading"), PLACES)
def test_printed_commands_run_no_payload_and_pass_each_name_whole(
    tmp_path: Path, payload_name: str, leading: bool
) -> None:
    payload = SHELL_PAYLOADS[payload_name]
    sandbox = Sandbox(tmp_path / "sandbox")
    root = tmp_path / "projects"
    problems: list[str] = []
    for case in rendered_cases(payload, root, leading=leading):
        for finding in case.findings:
            for command in commands_of(finding):
                problems += _run_one(sandbox, case.case, finding, command, payload)
    assert problems == []


def _run_one(sandbox: Sandbox, case: str, finding: Finding, command: Command, payload: str) -> list[str]:
    where = f"{case}/{finding.code}: {command.render()!r}"
    line = command.render()
    shown = visible(line, COMMAND_LIMIT)
    if shown != line:  # what a person copies is what was shown: it must be the command itself
        return [f"{where}: shown as {shown!r}, which is not the command"]
    if command.cwd is not None:
        _make_folder(command.cwd)
    for argv in (command.argv, *command.then):
        if argv[0] not in BUILTINS:
            sandbox.provide(argv[0])
    run = sandbox.run(shown)
    FIGURES["shell lines executed"] += 1
    FIGURES["markers"] += run.marker
    problems = []
    if run.marker or run.stray_files:
        problems.append(f"{where}: a payload ran (marker={run.marker}, files={run.stray_files})")
    if run.returncode != 0 or run.stderr:
        problems.append(f"{where}: exit {run.returncode}, stderr {run.stderr!r}")
    expected = _expected_calls(command)
    if run.calls != expected:
        problems.append(f"{where}: programs got {run.calls!r}, not {expected!r}")
    problems += _options_from_names(where, run.calls, os.fsencode(payload))
    whole = os.fsencode(payload)
    if payload and any(whole in argument for argv in expected for argument in argv):
        # The name reached the program inside one argument, never split across several.
        got = sum(argument.count(whole) for argv in run.calls for argument in argv)
        want = sum(argument.count(whole) for argv in expected for argument in argv)
        if got != want:
            problems.append(f"{where}: the name arrived {got} times whole, not {want}")
    return problems


def _options_from_names(where: str, calls: tuple[tuple[bytes, ...], ...], payload: bytes) -> list[str]:
    """A name that reaches a program as an option, or as the value a flag parser refuses.

    Prisma's parser (the `arg` package) refuses `--rolled-back -x` ("option requires argument") and
    reads `--rolled-back=-x` whole; git, ls, mv and cp read a leading `-` as an option unless a `--`
    came first.
    """
    problems = []
    for call in calls:
        after_dashes = False
        for index, argument in enumerate(call[1:], start=1):
            if argument == b"--":
                after_dashes = True
                continue
            if not payload or payload not in argument or not argument.startswith(b"-") or after_dashes:
                continue
            flag, equals, _ = argument.partition(b"=")
            if equals and payload not in flag:
                continue  # --rolled-back=<name>: a value, whatever it holds
            previous = call[index - 1]
            if previous in (b"-C", b"-m") or (previous.startswith(b"-") and b"=" not in previous):
                if call[0] in (b"npx", b"prisma", b"pnpm", b"yarn", b"npm"):
                    problems.append(f"{where}: {call[0]!r} refuses {argument!r} as the value of {previous!r}")
                continue  # git -C <dir>, commit -m <msg>: getopt takes the next argument as the value
            problems.append(f"{where}: {argument!r} reaches {call[0]!r} as an option")
    return problems


# --- what a person sees -----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload_name", sorted(SHELL_PAYLOADS))
def test_status_text_has_one_dollar_line_per_command(tmp_path: Path, payload_name: str) -> None:
    payload = SHELL_PAYLOADS[payload_name]
    for case in rendered_cases(payload, tmp_path):
        report = StatusReport(
            checked_at=NOW,
            projects=(
                ProjectReport(
                    name="Americano",
                    repo=tmp_path,
                    databases=(),
                    worktrees=(),
                    findings=case.findings,
                ),
            ),
        )
        text = render_text(report)
        assert raw_controls(text) == [], case.case
        dollar_lines = [line for line in text.splitlines() if line.lstrip().startswith("$ ")]
        # Findings of one worktree with the same code and fix are one block (report.same_fix_groups).
        shown = same_fix_groups(case.findings)
        assert len(dollar_lines) == sum(len(commands_of(group[0])) for group in shown), case.case


# --- SQL --------------------------------------------------------------------------------------------------

# Prisma's layout, but `id` as text: the cases' row ids are their names, longer than a uuid.
POSTGRES_TABLE = """CREATE TABLE _prisma_migrations (
    id text PRIMARY KEY, checksum varchar(64) NOT NULL, finished_at timestamptz,
    migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz,
    started_at timestamptz NOT NULL DEFAULT now(), applied_steps_count integer NOT NULL DEFAULT 0)"""
SQLITE_TABLE = """CREATE TABLE "_prisma_migrations" ("id" TEXT PRIMARY KEY NOT NULL, "checksum" TEXT NOT NULL,
    "finished_at" DATETIME, "migration_name" TEXT NOT NULL, "logs" TEXT, "rolled_back_at" DATETIME,
    "started_at" DATETIME NOT NULL DEFAULT current_timestamp, "applied_steps_count" INTEGER NOT NULL DEFAULT 0)"""


def _neighbours(name: str) -> list[str]:
    """Rows a sloppy statement would also hit: prefixes, extensions, LIKE patterns, case variants."""
    return sorted(
        {
            name[:-1],
            name + "x",
            "x" + name,
            name.upper(),
            "%",
            "_",
            "' OR '1'='1",
            name.replace("'", "''"),
            name.replace("'", ""),
            "20251001000000_init",
        }
        - {name}
    )


# A history row as the SQL tests store it: (id, migration_name, finished, rolled back).
Row = tuple[str, str, bool, bool]
_STAMP = "2025-10-05T12:00:00+00:00"


@dataclass(frozen=True)
class SqlCase:
    payload: str
    statement: str
    rows: tuple[Row, ...]  # the case's rows, and neighbours of the intended ones
    intended: frozenset[str]  # the ids of the rows the statement is meant to delete


def _storable(text: str) -> str:
    """A name with bytes that are not UTF-8 cannot be stored in a database: stored with U+FFFD (such a
    name is never in a statement; the statement names the row by id)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _values(rows: Iterable[Row]) -> list[tuple[str, str, str, str | None, str | None]]:
    return [
        (row_id, "0" * 64, name, _STAMP if finished else None, _STAMP if rolled_back else None)
        for row_id, name, finished, rolled_back in rows
    ]


_INSERT = (
    "INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at, rolled_back_at)"
    " VALUES ({0}, {0}, {0}, {0}, {0})"
)


def _deleted_by(statement: str, rows: Iterable[Row]) -> set[str]:
    """The ids of the rows `statement` deletes from a table holding `rows` (SQLite in memory)."""
    rows = list(rows)
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute(SQLITE_TABLE)
        conn.executemany(_INSERT.format("?"), _values(rows))
        conn.execute(statement)
        left = {row_id for (row_id,) in conn.execute("SELECT id FROM _prisma_migrations")}
    return {row[0] for row in rows} - left


def _paired(plain: Rendered, hostile: Rendered, renamer: Renamer) -> list[tuple[str, str]]:
    """(statement with plain names, the same statement with hostile names), finding by finding (found
    by its renamed key: names change the order); a statement left out for a name that cannot be printed
    (sql_literal refuses it) has no pair."""

    def key(finding: Finding, rename: bool) -> tuple[str, ...]:
        parts = (finding.code, finding.worktree or "", finding.migration or "", finding.database or "")
        return tuple(renamer.text(part) for part in parts) if rename else parts

    hostile_by_key = {key(finding, False): finding for finding in hostile.findings}
    assert len(hostile_by_key) == len(plain.findings), hostile.case
    pairs = []
    for reference in plain.findings:
        meant, printed = statements_of(reference), statements_of(hostile_by_key[key(reference, True)])
        assert len(printed) in (0, len(meant)), (hostile.case, printed)
        pairs += [(m.text, p.text) for m, p in zip(meant, printed, strict=False)]
    return pairs


def _near(row: Row) -> list[Row]:
    """Rows a sloppy statement would also hit: similar names, similar ids (the same name in another state
    is the case's own business: `edited-rolled-back-first` holds both)."""
    row_id, name, finished, rolled_back = row
    near = [(f"n{k}-{row_id}", other, finished, rolled_back) for k, other in enumerate(_neighbours(name))]
    near += [(other, f"o{k}-{name}", finished, rolled_back) for k, other in enumerate(_neighbours(row_id))]
    return near


def _sql_cases() -> list[SqlCase]:
    """Every statement every case prints, with the rows it is meant for: the rows the same statement
    deletes when the names are plain (payload ""), renamed."""
    plain = {case.case: case for case in rendered_cases("", Path(CASE_ROOT))}  # the cases as written
    out = []
    for payload_name, payload in sorted(SHELL_PAYLOADS.items()):
        renamer = Renamer(MIGRATIONS, BRANCHES, payload, Path("/nonexistent"))
        for case in rendered_cases(payload, Path("/nonexistent")):
            reference = plain[case.case]
            for meant, statement in _paired(reference, case, renamer):
                intended_ids = {renamer.text(row_id) for row_id in _deleted_by(meant, reference.rows)}
                assert intended_ids, (case.case, meant)
                intended = [row for row in case.rows if row[0] in intended_ids]
                by_id: dict[str, Row] = {}
                for row_id, name, finished, rolled_back in [
                    *case.rows,
                    *(n for r in intended for n in _near(r)),
                ]:
                    # The case's own rows first; ids stay unique.
                    by_id.setdefault(
                        _storable(row_id), (_storable(row_id), _storable(name), finished, rolled_back)
                    )
                stored = frozenset(_storable(row_id) for row_id in intended_ids)
                out.append(SqlCase(payload_name, statement, tuple(by_id.values()), stored))
    return out


def test_printed_sql_touches_only_the_intended_row(pg_database: PgDatabase) -> None:
    cases = _sql_cases()
    assert cases, "no template prints SQL: this test would prove nothing"
    touched_beyond = 0
    with closing(pg_database.connect()) as conn:
        conn.autocommit = False
        for case in cases:
            assert visible(case.statement, COMMAND_LIMIT) == case.statement, case
            with conn.cursor() as cursor:
                cursor.execute(POSTGRES_TABLE)
                cursor.executemany(_INSERT.format("%s"), _values(case.rows))
                cursor.execute(case.statement.encode("utf-8"))
                cursor.execute("SELECT id FROM _prisma_migrations")
                left = {row_id for (row_id,) in cursor.fetchall()}
            conn.rollback()
            deleted = {row[0] for row in case.rows} - left
            FIGURES["sql statements executed"] += 1
            touched_beyond += len(deleted - case.intended)
            assert deleted == case.intended, case
    FIGURES["sql rows touched beyond the intended"] += touched_beyond


def test_printed_sql_touches_only_the_intended_row_on_sqlite() -> None:
    for case in _sql_cases():
        assert _deleted_by(case.statement, case.rows) == case.intended, case


# --- every template is exercised -------------------------------------------------------------------------


def _builders() -> dict[CodeType, str]:
    """The functions of diagnose/fixes.py that build what a fix prints (commands, SQL)."""
    found = {}
    for name, function in inspect.getmembers(fixes, inspect.isfunction):
        if function.__module__ != fixes.__name__:
            continue
        returns = str(inspect.signature(function).return_annotation)
        if any(kind in returns for kind in ("Command", "SqlStatement", "Note", "Fix", "Step")):
            found[function.__code__] = name
    return found


def _diagnose_codes() -> set[str]:
    """The catalogue's codes that diagnose makes (named as a string in one of its modules); the others
    (history_vanished, discovery, …) are made by the daemon from notes only."""
    known = {kind.code for kind in KINDS}
    named: set[str] = set()
    for module in Path(fixes.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in known:
                named.add(node.value)
    return named


def test_every_template_is_exercised() -> None:
    builders = _builders()
    called: set[CodeType] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code in builders:
            called.add(frame.f_code)

    codes: set[str] = set()
    commands = 0
    sys.setprofile(profile)
    try:
        for case in rendered_cases("", Path("/nonexistent")):
            codes.update(f.code for f in case.findings)
            commands += sum(len(commands_of(f)) for f in case.findings)
    finally:
        sys.setprofile(None)

    assert builders, "diagnose/fixes.py has no builders: the enumeration is broken"
    unexercised = sorted(builders[code] for code in set(builders) - called)
    assert unexercised == [], "add a case to tests/support/findingcases.py that reaches these builders"
    missing = sorted(_diagnose_codes() - codes)
    assert missing == [], "add a case to tests/support/findingcases.py for these finding codes"
    FIGURES["templates (cases)"] = len(findingcases.CASES)
    FIGURES["commands per payload"] = commands


def test_commands_are_built_only_by_the_fixes_module() -> None:
    """A `Command(...)` or `SqlStatement(...)` written in a finding module would escape the test above."""
    package = Path(fixes.__file__).parent
    offenders = []
    for module in sorted(package.glob("*.py")):
        if module.name == "fixes.py":
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"Command", "SqlStatement"}:
                offenders.append(f"{module.name}:{node.lineno}")
    assert offenders == []


def test_git_takes_paths_in_fixes_literally(tmp_path: Path, git_env: dict[str, str]) -> None:
    """A folder named `m*` next to `m1`: the printed `git add`/`git checkout` touch `m*` only (real git)."""
    repo = tmp_path / "repo"
    folders = ["m*", "m1", ":(glob)m?"]
    run_git(tmp_path, "init", "-q", "-b", "main", str(repo))
    for folder in folders:
        (repo / "migrations" / folder).mkdir(parents=True)
        (repo / "migrations" / folder / "migration.sql").write_text("SELECT 1;\n", encoding="utf-8")
    run_git(repo, "commit", "-q", "--allow-empty", "-m", "start")
    sandbox_free = dict(git_env)

    for folder in ("m*", ":(glob)m?"):
        line = fixes.commit_folder(repo, f"migrations/{folder}", f"Add migration {folder}").render()
        subprocess.run(["bash", "-c", line], env=sandbox_free, check=True, capture_output=True)
        assert run_git(repo, "show", "--name-only", "--format=", "HEAD").splitlines() == [
            f"migrations/{folder}/migration.sql"
        ]
    for folder in folders:
        (repo / "migrations" / folder / "migration.sql").write_text("edited\n", encoding="utf-8")
    line = fixes.git(repo, "checkout", "HEAD", "--", "migrations/m*/migration.sql").render()
    subprocess.run(["bash", "-c", line], env=sandbox_free, check=True, capture_output=True)
    assert sorted(run_git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()) == [
        " M migrations/:(glob)m?/migration.sql",
        "?? migrations/m1/migration.sql",
    ]
    assert (repo / "migrations" / "m*" / "migration.sql").read_text(encoding="utf-8") == "SELECT 1;\n"
    # `git mv` takes paths, not pathspecs: the builder leaves them as they are.
    run_git(repo, "checkout", "-q", "--", ".")
    line = fixes.git(repo, "mv", "--", "migrations/m*", "migrations/m9").render()
    subprocess.run(["bash", "-c", line], env=sandbox_free, check=True, capture_output=True)
    assert sorted(p.name for p in (repo / "migrations").iterdir()) == [":(glob)m?", "m1", "m9"]
