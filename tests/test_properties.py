"""Property tests (hypothesis): whatever a name, a row, a URL or an .env value holds, what migwatch shows
a person has no raw control character, and every printed command parses back to the argv it meant."""

from __future__ import annotations

import io
import logging
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migwatch.alerts import AlertPolicy, AlertState, update
from migwatch.display import FIELD_LIMIT, visible
from migwatch.logsetup import quote_value
from migwatch.model import Finding, Origin, Severity
from migwatch.notify.logfile import format_alert_line
from migwatch.notify.terminal import format_alert_block
from migwatch.report import DatabaseSummary, ProjectReport, StatusReport, WorktreeSummary, render_text
from tests.support.hostile import raw_controls

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
