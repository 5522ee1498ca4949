"""Text that cannot forge: display.visible, and every renderer of names, rows and paths that uses it."""

from __future__ import annotations

import io
import logging
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from migwatch import shellquote
from migwatch.alerts import AlertPolicy, AlertState, update
from migwatch.cli import main
from migwatch.config import load_config
from migwatch.display import COMMAND_LIMIT, FIELD_LIMIT, visible
from migwatch.logsetup import add_file_log, quote_value
from migwatch.model import Command, Finding, Fix, Origin, Severity
from migwatch.notify.desktop import DesktopNotifierThread
from migwatch.notify.dispatch import Dispatcher
from migwatch.notify.logfile import LogNotifier, format_alert_line
from migwatch.notify.terminal import format_alert_block
from migwatch.pipeline import CheckOptions, run_status
from migwatch.report import ProjectReport, StatusReport, WorktreeSummary, render_text
from tests.support.gitrepo import PrismaRepo
from tests.support.hostile import TERMINAL_PAYLOADS, raw_controls
from tests.support.notifyserver import NotificationServer
from tests.support.pg import PgDatabase
from tests.support.prisma_rows import apply_like_prisma, create_history_table
from tests.support.sandbox import Sandbox, argv_bytes

# --- the function ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain_name", "plain_name"),
        ("a\x1b]52;c;aGk=\x07b", "a\\x1b]52;c;aGk=\\x07b"),
        ("line\nnext\r\ttab", "line\\nnext\\r\\ttab"),
        ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),
        ("a\u202eb\u2066c\u2069\u200f", "a\\u202eb\\u2066c\\u2069\\u200f"),
        ("sep\u2028par\u2029", "sep\\u2028par\\u2029"),
        ("bytes\udcff\udc80", "bytes\\xff\\x80"),  # surrogateescape: the original bytes
        ("lone\ud800", "lone\\ud800"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("unassigned\U000e0fff", "unassigned\\U000e0fff"),
        ("accents é ß 日本 🐘", "accents é ß 日本 🐘"),
        ("nbsp\u00a0ideographic\u3000", "nbsp\u00a0ideographic\u3000"),
        ("back\\slash", "back\\slash"),
    ],
)
def test_visible_shows_every_control_character(raw: str, shown: str) -> None:
    assert visible(raw) == shown


def test_visible_clips_at_the_stated_length_without_cutting_an_escape() -> None:
    assert visible("x" * FIELD_LIMIT) == "x" * FIELD_LIMIT
    assert visible("x" * (FIELD_LIMIT + 1)) == "x" * (FIELD_LIMIT - 1) + "…"
    assert visible("abcdef", 5) == "abcd…"
    assert visible("abc\x1b", 5) == "abc…"  # \x1b would not fit whole
    assert visible("ab\x1b", 6) == "ab\\x1b"
    assert visible(Path("/tmp/a\nb")) == "/tmp/a\\nb"
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        visible("x", 0)


def test_visible_cost_does_not_grow_with_the_field() -> None:
    ten_megabytes = "\x1b" * 10_000_000
    started = time.perf_counter()
    shown = visible(ten_megabytes)
    assert time.perf_counter() - started < 0.05
    assert len(shown) == FIELD_LIMIT - 3 and shown.endswith("\\x1b…")


# --- the renderers --------------------------------------------------------------------------------------

EPIC3 = "/home/kyin/Projects/Americano-epic3"
DB = "postgresql://kyin@localhost:5432/americano?schema=public"
HUGE_LOGS = "ERROR: relation exists\x1b[2J\n" + "\x1b]52;c;cm0gLXJmIH4=\x07" * 500_000  # ≈10 MB


def _finding(migration: str, *, message: str | None = None, logs: str = "") -> Finding:
    return Finding(
        code="failed",
        severity=Severity.ERROR,
        project="americano",
        database=DB,
        worktree=EPIC3,
        migration=migration,
        message=message or f"{migration} failed in {DB}. Log: {logs}",
        fix=Fix(
            steps=(
                Command(("npx", "prisma", "migrate", "resolve", "--rolled-back", migration), cwd=Path("/x")),
            ),
            why="P3009",
        ),
        details={"found_in": [{"worktree": "/p/Americano-epic5", "branch": f"feature/{migration}"}]},
        origin=Origin("/p/Americano-epic5", f"feature/{migration}"),
    )


def _report(findings: list[Finding], names: list[str]) -> StatusReport:
    worktrees = tuple(
        WorktreeSummary(
            path=Path("/p") / name,
            branch=name,
            head="0" * 40,
            schema="prisma/schema.prisma",
            migrations_dir="prisma/migrations",
            database=DB,
            prisma_version="6.19.3",
            local=1,
            applied_here=1,
            state="ok",
        )
        for name in names
    )
    project = ProjectReport(
        name="americano", repo=Path("/p"), databases=(), worktrees=worktrees, findings=tuple(findings)
    )
    return StatusReport(checked_at=__import__("datetime").datetime(2026, 1, 1), projects=(project,))


@pytest.mark.parametrize("colour", [False, True])
def test_status_table_cannot_be_forged(colour: bool) -> None:
    names = list(TERMINAL_PAYLOADS.values())
    findings = [_finding(name) for name in names]
    text = render_text(_report(findings, names), colour=colour)

    assert raw_controls(text, allow="\n\x1b" if colour else "\n") == []
    lines = text.splitlines()
    # One header, one row per worktree, one line per finding, one per fix step: nothing more.
    assert sum(1 for line in lines if line.lstrip().startswith("$ ")) == len(findings)
    assert sum(1 for line in lines if line.startswith("  ERROR")) == len(findings) or colour
    assert len(lines) == 1 + 1 + len(names) + 1 + 3 * len(findings) + 1 + 1
    assert "  evil-worktree" not in [line[:15] for line in lines]
    for name in names:
        # The name is one shell word, written so that the line shown is the line run.
        assert f"$ cd /x && npx prisma migrate resolve --rolled-back {shellquote.quote(name)}" in text
    if colour:  # the only escapes are migwatch's own colours
        assert "\x1b]" not in text and "\x1b[2J" not in text


def _behind(migration: str, worktree: str = EPIC3) -> Finding:
    return Finding(
        code="behind_database",
        severity=Severity.ERROR,
        project="americano",
        database=DB,
        worktree=worktree,
        migration=migration,
        message=f"{migration} is applied but missing here",
        fix=Fix(steps=(Command(("git", "-C", worktree, "merge", "main")),), why="main has them"),
    )


def test_findings_sharing_a_worktree_code_and_fix_are_one_block() -> None:
    names = [f"2025010{i}000000_m{i}" for i in range(1, 9)]
    other = "/home/kyin/Projects/Americano-epic5"
    findings = [_behind(name) for name in names] + [_behind(names[0], other), _finding("20250201000000_x")]
    lines = render_text(_report(findings, ["Americano-epic3"])).splitlines()
    blocks = [line for line in lines if line.startswith("  ERROR")]
    assert blocks == [
        f"  ERROR   behind_database: {names[0]} is applied but missing here",
        f"  ERROR   behind_database: {names[0]} is applied but missing here",
        "  ERROR   failed: 20250201000000_x failed in " + DB + ". Log: ",
    ]
    also = lines[lines.index(blocks[0]) + 1]
    assert also == (
        "          the same for 7 more migrations: 20250102000000_m2, 20250103000000_m3, 20250104000000_m4, "
        "20250105000000_m5, 20250106000000_m6 and 2 more"
    )
    assert lines.count(f"          $ git -C {EPIC3} merge main") == 1
    assert lines.count(f"          $ git -C {other} merge main") == 1
    assert lines.count("          why: main has them") == 2  # the same why for the whole group: shown


def test_a_group_whose_whys_name_each_migration_shares_one_why() -> None:
    """documenso-old: 26 migrations behind, each `why` naming its own migration, one merge for all."""
    findings = [
        replace(f, fix=replace(f.fix, why=f"this worktree lacks {f.migration}"))
        for f in (_behind(f"2025010{i}000000_m{i}") for i in range(1, 4))
    ]
    lines = render_text(_report(findings, ["Americano-epic3"])).splitlines()
    assert [line for line in lines if line.startswith("          ")] == [
        "          the same for 2 more migrations: 20250102000000_m2, 20250103000000_m3",
        f"          $ git -C {EPIC3} merge main",
        "          why: this worktree lacks these migrations",
    ]
    findings[1] = replace(findings[1], fix=replace(findings[1].fix, why="something else"))
    lines = render_text(_report(findings, ["Americano-epic3"])).splitlines()
    assert not any(line.lstrip().startswith("why:") for line in lines)  # no why that fits them all


def test_hostile_names_in_a_grouped_block_stay_on_their_line() -> None:
    names = list(TERMINAL_PAYLOADS.values())
    text = render_text(_report([_behind(name) for name in names], ["Americano-epic3"]))
    assert raw_controls(text, allow="\n") == []
    assert len([line for line in text.splitlines() if line.startswith("  ERROR")]) == 1
    assert text.count("the same for") == 1


def test_a_ten_megabyte_row_gives_a_bounded_notification_and_log_line(tmp_path: Path) -> None:
    finding = _finding(TERMINAL_PAYLOADS["forged_fix_line"], logs=HUGE_LOGS)
    _, alerts = update(AlertState(), [finding], 0.0, AlertPolicy(remind_after=0, notify_resolved=True))
    (alert,) = alerts

    assert len(alert.title) < 200 and len(alert.body) < 3 * FIELD_LIMIT
    assert raw_controls(alert.title) == [] and raw_controls(alert.body) == []
    assert alert.body.splitlines() == [
        f"Migration: {visible(finding.migration)}",
        f"From: {visible('feature/' + str(finding.migration))} (Americano-epic5)",
        visible(finding.fix.headline or ""),
    ]
    block = format_alert_block(alert)
    assert len(block.splitlines()) == 4 and raw_controls(block) == []

    line = format_alert_line(alert)
    assert len(line) < 5 * FIELD_LIMIT and raw_controls(line, allow="") == []

    log_file = tmp_path / "migwatch.log"
    handler = add_file_log(log_file, "info")
    try:
        logging.getLogger("migwatch.alerts").info(line)
        logging.getLogger("migwatch.test").info("finding message=%s", finding.message)
        logging.getLogger("migwatch.test").info("raw %s", HUGE_LOGS)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    written = log_file.read_text(encoding="utf-8").splitlines()
    assert len(written) == 3
    assert all(len(entry) < COMMAND_LIMIT + 100 and raw_controls(entry, allow="") == [] for entry in written)


def test_quote_value_keeps_one_field_per_value() -> None:
    assert quote_value("plain") == "plain"
    assert quote_value("a b") == '"a b"'
    assert quote_value('x" fix="forged') == '"x\\" fix=\\"forged"'
    assert quote_value("m\x1b[2J") == '"m\\x1b[2J"'
    assert quote_value("m\nALERT new code=forged") == '"m\\nALERT new code=forged"'
    assert quote_value("y" * 5000) == '"' + "y" * (FIELD_LIMIT - 1) + '…"'


def test_error_messages_on_stderr_are_one_visible_line(tmp_path: Path) -> None:
    folder = tmp_path / "conf\x1b]52;c;cm0=\x07\n$ rm -rf ~"
    folder.mkdir()
    out, err = io.StringIO(), io.StringIO()

    code = main(["--config", str(folder / "config.yaml"), "check-config"], out=out, err=err)

    assert code == 2 and out.getvalue() == ""
    assert err.getvalue() == (
        f"{tmp_path}/conf\\x1b]52;c;cm0=\\x07\\n$ rm -rf ~/config.yaml: no config file;"
        " run 'migwatch init' in your repository to create one\n"
    )


# --- end to end: real git, real PostgreSQL, the real notification server --------------------------------

HOSTILE_FOLDER = "wt\x1b]52;c;cm0gLXJmIH4=\x07\n          $ npx prisma migrate reset --force"
HOSTILE_BRANCH = "feature/\u202eevil$(pwned)`pwned`"
HOSTILE_PENDING = TERMINAL_PAYLOADS["forged_table_row"]
HOSTILE_FAILED = "20250101000000_failed\x1b[2J\r$ forged\n"


def _hostile_story(tmp_path: Path, database: PgDatabase) -> tuple[PrismaRepo, Path]:
    repo = PrismaRepo.seed_story(tmp_path, "postgresql", database_url=database.url)
    with closing(database.connect()) as conn:
        create_history_table(conn, "postgresql")
        for folder in sorted(p for p in repo.migrations_path(repo.main).iterdir() if p.is_dir()):
            apply_like_prisma(conn, folder, provider="postgresql")
        failed = repo.write_migration(repo.epic5, HOSTILE_FAILED, "CREATE TABLE x (id int);\n")
        apply_like_prisma(conn, failed, provider="postgresql", state="failed", logs=HUGE_LOGS)
    repo.write_migration(repo.epic3, HOSTILE_PENDING, "SELECT 1;\n")
    hostile = repo.add_worktree(HOSTILE_FOLDER, HOSTILE_BRANCH)
    repo.write_env(hostile, f'DATABASE_URL="{database.url}"\n')
    config = tmp_path / "config.yaml"
    config.write_text(f"projects:\n  - repo: {repo.main}\n", encoding="utf-8")
    return repo, config


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="D-Bus notifications are Linux")
def test_hostile_names_in_status_log_and_desktop_notifications(
    tmp_path: Path, git_env: dict[str, str], pg_database: PgDatabase, notifications: NotificationServer
) -> None:
    repo, config_path = _hostile_story(tmp_path, pg_database)
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config_path), "status"], out=out, err=err)
    text = out.getvalue()

    assert (code, err.getvalue()) == (1, "")
    assert raw_controls(text) == []
    report = run_status(load_config(config_path), CheckOptions(env=git_env))
    findings = report.findings
    assert {f.migration for f in findings} >= {HOSTILE_PENDING, HOSTILE_FAILED}
    commands = [step for f in findings for step in f.fix.steps if isinstance(step, Command)]
    lines = text.splitlines()
    assert sum(1 for line in lines if line.lstrip().startswith("$ ")) == len(commands)
    header = next(index for index, line in enumerate(lines) if line.startswith("  WORKTREE"))
    rows = lines[header + 1 : lines.index("", header)]
    folders = [visible(p.name) for p in (repo.main, repo.epic3, repo.epic5, tmp_path / HOSTILE_FOLDER)]
    assert len(rows) == 4 and all(
        row.startswith(f"  {folder}  ") for row, folder in zip(rows, folders, strict=True)
    )
    assert visible(HOSTILE_FOLDER) in text and visible(HOSTILE_BRANCH) in text
    # Every `$ ` line exactly as a person would copy it from the terminal, pasted into bash: each program
    # gets the argv the fix meant, and no payload runs.
    # Rendered from the same report as `commands`: an out_of_order rename target is named from the clock,
    # so a second check a second later may print another name.
    sandbox = Sandbox(tmp_path / "sandbox")
    same_check = render_text(report).splitlines()
    pasted = [line.lstrip()[2:] for line in same_check if line.lstrip().startswith("$ ")]
    for line, command in zip(pasted, commands, strict=True):
        for argv in (command.argv, *command.then):
            sandbox.provide(argv[0])
        run = sandbox.run(line)
        expected = tuple(argv_bytes(argv) for argv in (command.argv, *command.then))
        assert (run.calls, run.marker, run.stray_files, run.returncode) == (expected, False, (), 0), line
    assert len(text) < 40 * COMMAND_LIMIT  # the 10 MB row's logs are clipped

    _, alerts = update(AlertState(), findings, 0.0, AlertPolicy(remind_after=0, notify_resolved=True))
    log_file = tmp_path / "log" / "migwatch.log"
    handler = add_file_log(log_file, "info")
    notifier = DesktopNotifierThread()
    dispatcher = Dispatcher([LogNotifier(), notifier], timeout=10)
    try:
        results = dispatcher.deliver(alerts)
        assert all(result.ok for result in results)
        shown = notifications.wait_for(lambda seen: len(seen) == len(alerts), 20)
    finally:
        dispatcher.close()
        logging.getLogger().removeHandler(handler)
        handler.close()

    for notification in shown:
        assert raw_controls(notification["summary"], allow="") == []
        assert raw_controls(notification["body"]) == []
        assert len(notification["body"]) < 3 * FIELD_LIMIT
    assert any(visible(HOSTILE_FAILED) in n["body"] for n in shown)
    logged = [line for line in log_file.read_text(encoding="utf-8").splitlines() if " ALERT " in line]
    assert len(logged) == len(alerts)
    assert all(raw_controls(line, allow="") == [] and len(line) < 6 * FIELD_LIMIT for line in logged)


def test_init_summary_and_printed_config_show_hostile_folders_visibly(
    tmp_path: Path, git_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = PrismaRepo.create(tmp_path, name="Repo\u202egnp.exe\x1b]0;title\x07")
    worktree = repo.add_worktree("wt\r\n  $ forged", "feature/\u2066x")
    repo.write_env(worktree, 'DATABASE_URL="postgresql://me@localhost:5432/db?schema=public\x1b[2J"\n')
    config = tmp_path / "conf $(pwned)\n`pwned`" / "config.yaml"
    out = io.StringIO()
    capsys.readouterr()

    code = main(["--config", str(config), "init", "--print", str(repo.main)], out=out)

    summary = capsys.readouterr().err
    assert code == 0
    assert raw_controls(summary) == [] and raw_controls(out.getvalue()) == []
    assert visible(repo.main.name) in summary and visible(worktree.name) in summary
    assert not any(line.lstrip().startswith("$ forged") for line in summary.splitlines())
    # The next steps it prints run migwatch with exactly these arguments, and nothing else.
    sandbox = Sandbox(tmp_path / "sandbox")
    steps = {
        why.strip(): command.strip()
        for why, _, command in (line.partition(":") for line in summary.splitlines())
        if command
    }
    expected = {
        "write this config": ["migwatch", "--config", str(config), "init", str(repo.main)],
        "check every worktree now": ["migwatch", "--config", str(config), "status"],
    }
    for step, argv in expected.items():
        run = sandbox.run(steps[step])
        assert (run.calls, run.marker, run.stray_files) == ((argv_bytes(argv),), False, ()), step
    # The printed config is escaped YAML that reads back to the real path.
    config.parent.mkdir()
    config.write_text(out.getvalue(), encoding="utf-8")
    assert load_config(config, git_env).projects[0].repo == repo.main
