"""Property tests (hypothesis): whatever a name, a row, a URL or an .env value holds, what migwatch shows
a person has no raw control character, and every printed command parses back to the argv it meant."""

from __future__ import annotations

import io
import logging
import os
import shlex
import subprocess
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migwatch import diagnose
from migwatch.alerts import AlertPolicy, AlertState, update
from migwatch.cli import main
from migwatch.display import FIELD_LIMIT, visible
from migwatch.logsetup import quote_value
from migwatch.model import Command, Finding, Origin, Severity
from migwatch.notify.logfile import format_alert_line
from migwatch.notify.terminal import format_alert_block
from migwatch.report import DatabaseSummary, ProjectReport, StatusReport, WorktreeSummary, render_text
from tests.support import findingcases
from tests.support.gitrepo import PrismaRepo
from tests.support.hostile import raw_controls
from tests.support.renaming import Renamer
from tests.test_hostile_fixes import BRANCHES, MIGRATIONS, NOW

# Text as repositories and databases hold it: any code point, controls and bidi characters often, and
# the lone surrogates that surrogateescape makes of bytes that are not UTF-8.
_NASTY = st.sampled_from(
    [
        *"\x00\x07\x08\t\n\r\x1b\x7f\x85\x9b\u200e\u202a\u202e\u2066\u2069\u2028\u2029\ufeff",
        "\udc80",
        "\udcff",
        "\ud800",
        "\U000e0001",
        "\U000e0fff",
        "$(",
        "`",
        ";",
        "|",
        "&",
        "'",
        '"',
        "\\",
    ]
)
hostile_text = st.lists(st.one_of(st.characters(codec=None), _NASTY), max_size=60).map("".join)
EXAMPLES = 300


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(hostile_text, st.integers(min_value=1, max_value=200))
def test_visible_never_lets_a_control_character_through(text: str, limit: int) -> None:
    shown = visible(text, limit)
    assert raw_controls(shown, allow="") == []
    assert len(shown) <= limit
    if len(text) <= limit and not any(unicodedata.category(c)[0] in "CZ" and c != " " for c in text):
        assert shown == text  # ordinary text is shown as it is


@settings(max_examples=EXAMPLES, deadline=None)
@given(hostile_text)
def test_a_log_value_is_one_field(text: str) -> None:
    value = quote_value(text)
    assert raw_controls(value, allow="") == []
    if value.startswith('"'):
        inner = value[1:-1]
        assert '"' not in inner.replace('\\"', "")  # every quote inside is escaped
    else:
        assert " " not in value and '"' not in value and "=" not in value


def _finding(name: str, folder: str, branch: str, logs: str) -> Finding:
    return Finding(
        code="failed",
        severity=Severity.ERROR,
        project="americano",
        database="postgresql://me@localhost:5432/db?schema=public",
        worktree=f"/p/{folder}",
        migration=name,
        message=f"{name} failed. Log: {logs}",
        details={"found_in": [{"worktree": f"/p/{folder}", "branch": branch}]},
        origin=Origin(f"/p/{folder}", branch),
    )


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile_text, folder=hostile_text, branch=hostile_text, logs=hostile_text, url=hostile_text)
def test_notifications_log_lines_and_the_table_show_no_control_character(
    name: str, folder: str, branch: str, logs: str, url: str
) -> None:
    folder = folder.replace("/", "_") or "wt"
    finding = _finding(name, folder, branch, logs)
    _, (alert,) = update(AlertState(), [finding], 0.0, AlertPolicy(remind_after=0, notify_resolved=True))
    assert raw_controls(alert.title, allow="") == []
    assert raw_controls(alert.body) == [] and len(alert.body.splitlines()) <= 3
    assert raw_controls(format_alert_block(alert)) == []
    assert raw_controls(format_alert_line(alert), allow="") == []

    worktree = WorktreeSummary(
        path=Path("/p") / folder,
        branch=branch,
        head=None,
        schema=None,
        migrations_dir=None,
        database=url,
        prisma_version="6.19.3",
        local=1,
        applied_here=1,
        state="ok",
    )
    database = DatabaseSummary(
        id=url, provider="postgresql", reachable=True, managed=True, applied=1, failed=1, latest=name
    )
    project = ProjectReport(
        name="americano",
        repo=Path("/p"),
        databases=(database,),
        worktrees=(worktree,),
        findings=(finding,),
    )
    text = render_text(
        StatusReport(checked_at=datetime(2026, 1, 1, tzinfo=timezone.utc), projects=(project,))
    )
    assert raw_controls(text) == []
    # Header, database, table header, one row, blank, the finding, blank, summary: nothing forged.
    assert len(text.splitlines()) == 8
    assert len(text) < 12 * FIELD_LIMIT


@settings(max_examples=EXAMPLES, deadline=None)
@given(hostile_text)
def test_log_records_stay_one_line(text: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    from migwatch.logsetup import _VisibleFormatter

    handler.setFormatter(_VisibleFormatter("%(message)s"))
    logger = logging.getLogger("migwatch.properties")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("value=%s other=%s", text, quote_value(text))
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert written.count("\n") == 1 and raw_controls(written) == []


# --- printed commands -----------------------------------------------------------------------------------

# Names as a file system or a database can hold them: no `/`, no NUL, no surrogate that is not an escaped byte.
names_text = hostile_text.filter(
    lambda text: (
        "/" not in text
        and "\x00" not in text
        and not any("\ud800" <= c <= "\udfff" and not "\udc80" <= c <= "\udcff" for c in text)
    )
)


def _parsed(line: str) -> list[list[str]]:
    """The argv of each `&&`-joined command of a printed line, as POSIX shlex reads it."""
    words = shlex.split(line, comments=True, posix=True)
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    return commands


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=names_text, leading=st.booleans())
def test_every_printed_command_parses_back_to_its_argv(payload: str, leading: bool) -> None:
    renamer = Renamer(MIGRATIONS, BRANCHES, payload, Path("/w"), leading=leading)
    lines: list[tuple[str, list[list[str]]]] = []
    for snapshot, evidence in findingcases.CASES.values():
        hostile, hostile_evidence = renamer(snapshot), renamer(evidence)
        for finding in diagnose.findings(hostile, diagnose.analyse(hostile), hostile_evidence, NOW):
            for step in finding.fix.steps:
                if not isinstance(step, Command):
                    continue
                line = step.render()
                assert visible(line, None) == line  # shown as it runs
                intended = [list(argv) for argv in (step.argv, *step.then)]
                if step.cwd is not None:
                    intended.insert(0, ["cd", str(step.cwd)])
                lines.append((line, intended))
                if "$'" not in line:  # ANSI-C quoting (invisible characters): bash reads it, shlex does not
                    assert _parsed(line) == intended
    assert _bash_parsed([line for line, _ in lines]) == [
        [[os.fsencode(word) for word in argv] for argv in intended] for _, intended in lines
    ]


# bash with no PATH: every command, `cd` included, only records its argv as `<argc>\0<arg>\0…`, and each
# line ends with the record `-1`; a payload that ran would be one more command.
_RECORDING_BASH = r"""rec() { printf '%s\0' "$#" "$@"; }
command_not_found_handle() { rec "$@"; }
cd() { rec cd "$@"; }
"""


def _bash_parsed(lines: list[str]) -> list[list[list[bytes]]]:
    script = _RECORDING_BASH + "".join(f"{line}\nprintf '%s\\0' -1\n" for line in lines)
    done = subprocess.run(
        [b"/bin/bash", b"--noprofile", b"--norc", b"-c", os.fsencode(script)],
        env={"PATH": "/nonexistent", "LANG": "C.UTF-8"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.stderr == b""
    tokens = iter(done.stdout.split(b"\0")[:-1])
    parsed: list[list[list[bytes]]] = [[]]
    for token in tokens:
        count = int(token)
        if count < 0:
            parsed.append([])
        else:
            parsed[-1].append([next(tokens) for _ in range(count)])
    return parsed[:-1]


# --- .env values and URLs, through discovery and `status` --------------------------------------------------

# What a file can hold: any bytes (the ones that are not UTF-8 as surrogate escapes).
file_text = hostile_text.filter(
    lambda text: not any("\ud800" <= c <= "\udfff" and not "\udc80" <= c <= "\udcff" for c in text)
)
env_values = st.one_of(
    file_text,
    file_text.map(lambda text: f"postgresql://me:{text}@127.0.0.1:1/db?schema=public"),
    file_text.map(lambda text: f"postgresql://127.0.0.1:1/{text}"),
    file_text.map(lambda text: f"file:./{text}.db"),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(value=env_values)
def test_an_env_value_shows_no_control_character_in_status_or_init(
    value: str, tmp_path_factory: pytest.TempPathFactory, git_env: dict[str, str]
) -> None:
    root = tmp_path_factory.mktemp("envprop")
    repo = PrismaRepo.create(root)
    (repo.package_path(repo.main) / ".env").write_bytes(
        b"DATABASE_URL=" + value.encode("utf-8", "surrogateescape") + b"\n"
    )
    config = root / "config.yaml"
    config.write_text(f"projects:\n  - repo: {repo.main}\n", encoding="utf-8")
    for argv in (["status"], ["init", "--print", str(repo.main)]):
        out, err = io.StringIO(), io.StringIO()
        code = main(["--config", str(config), *argv], out=out, err=err)
        assert code in (0, 1, 2), (argv, err.getvalue())
        assert raw_controls(out.getvalue()) == [] and raw_controls(err.getvalue()) == [], argv
