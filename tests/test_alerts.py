"""The alert state machine (pure, injected clock) and its persistence in the state dir."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from migwatch.alerts import (
    Alert,
    AlertPolicy,
    AlertRecord,
    AlertState,
    alert_body,
    alert_title,
    update,
)
from migwatch.model import Command, Finding, Fix, Origin, Severity

DB = "postgresql://kyin@localhost:5432/americano?schema=public"
EPIC3 = "/home/kyin/Projects/Americano-epic3"
EPIC5 = "/home/kyin/Projects/Americano-epic5"
MIGRATION = "20251016231054_add_story_5_1_behavioral_pattern_models"
FIX = "git -C /home/kyin/Projects/Americano-epic3 merge feature/epic-5-behavioral-twin"

BEHIND_FIX = Fix(
    steps=(Command(("git", "-C", EPIC3, "merge", "feature/epic-5-behavioral-twin")),),
    reset_warning="Do not run `prisma migrate dev` here: it offers to reset the shared database.",
)
POLICY = AlertPolicy(remind_after=4 * 3600, notify_resolved=True, alert_codes={})
T0 = 1_767_268_800.0  # 2026-01-01T12:00:00Z


def finding(
    code: str = "behind_database",
    severity: Severity = Severity.ERROR,
    *,
    worktree: str | None = EPIC3,
    migration: str | None = MIGRATION,
    database: str | None = DB,
    fix: Fix = BEHIND_FIX,
    details: Mapping[str, Any] | None = None,
) -> Finding:
    if details is None:
        details = {"found_in": [{"worktree": EPIC5, "branch": "feature/epic-5-behavioral-twin"}]}
    return Finding(
        code=code,
        severity=severity,
        project="americano",
        database=database,
        worktree=worktree,
        migration=migration,
        message=f"{code} in Americano-epic3",
        fix=fix,
        details=details,
        origin=Origin(found_in[0]["worktree"], found_in[0]["branch"])
        if (found_in := details.get("found_in"))
        else None,
    )


def test_new_finding_gives_one_alert_with_exact_title_body_and_urgency() -> None:
    state, alerts = update(AlertState(), [finding()], T0, POLICY)

    assert alerts == [
        Alert(
            kind="new",
            finding=finding(),
            title="Americano-epic3: behind the database",
            body=(f"Migration: {MIGRATION}\nFrom: feature/epic-5-behavioral-twin (Americano-epic5)\n{FIX}"),
            urgency="critical",
        )
    ]
    assert state.records == {
        finding().key: AlertRecord(
            key=finding().key,
            severity="error",
            first_seen=T0,
            last_notified=T0,
            message="behind_database in Americano-epic3",
        )
    }


def test_same_findings_again_send_nothing() -> None:
    state, _ = update(AlertState(), [finding()], T0, POLICY)
    again, alerts = update(state, [finding()], T0 + 60, POLICY)
    assert alerts == []
    assert again == state


def test_reminder_after_remind_after_and_not_before() -> None:
    state, _ = update(AlertState(), [finding()], T0, POLICY)
    state, early = update(state, [finding()], T0 + 4 * 3600 - 1, POLICY)
    assert early == []
    state, due = update(state, [finding()], T0 + 4 * 3600, POLICY)
    assert [(a.kind, a.title) for a in due] == [("reminder", "Americano-epic3: behind the database")]
    record = state.records[finding().key]
    assert (record.first_seen, record.last_notified) == (T0, T0 + 4 * 3600)
    # The reminder restarts the clock.
    _, next_early = update(state, [finding()], T0 + 8 * 3600 - 1, POLICY)
    assert next_early == []


def test_remind_after_zero_never_reminds() -> None:
    never = AlertPolicy(remind_after=0, notify_resolved=True, alert_codes={})
    state, _ = update(AlertState(), [finding()], T0, never)
    _, alerts = update(state, [finding()], T0 + 365 * 86400, never)
    assert alerts == []


def test_finding_gone_gives_one_resolved_alert() -> None:
    state, _ = update(AlertState(), [finding()], T0, POLICY)
    state, alerts = update(state, [], T0 + 10, POLICY)

    assert len(alerts) == 1
    resolved = alerts[0]
    assert resolved.kind == "resolved"
    assert resolved.title == "Americano-epic3: resolved — behind the database"
    assert resolved.body == f"Migration: {MIGRATION}"
    assert resolved.urgency == "normal"
    assert resolved.finding.key == finding().key
    assert resolved.finding.message == "behind_database in Americano-epic3"
    assert state.records == {}
    # Gone stays gone: no second "resolved".
    _, after = update(state, [], T0 + 20, POLICY)
    assert after == []


def test_resolution_without_notify_resolved_is_silent_but_forgets() -> None:
    quiet = AlertPolicy(remind_after=0, notify_resolved=False, alert_codes={})
    state, _ = update(AlertState(), [finding()], T0, quiet)
    state, alerts = update(state, [], T0 + 10, quiet)
    assert alerts == []
    assert state.records == {}
    # It comes back: it is new again.
    _, back = update(state, [finding()], T0 + 20, quiet)
    assert [a.kind for a in back] == ["new"]


def test_scope_limits_resolution_to_the_checked_database() -> None:
    other_db = "postgresql://kyin@localhost:5432/other?schema=public"
    here = finding()
    there = finding(database=other_db, worktree="/home/kyin/Projects/Other-main")
    state, _ = update(AlertState(), [here, there], T0, POLICY)

    # A check of DB alone reports nothing: only DB's key may be resolved.
    state, alerts = update(state, [], T0 + 10, POLICY, scope=lambda key: key[2] == DB)

    assert [(a.kind, a.finding.key) for a in alerts] == [("resolved", here.key)]
    assert list(state.records) == [there.key]


def test_hold_transient_holds_new_and_resolved_for_transient_codes_only() -> None:
    holding = AlertPolicy(remind_after=0, notify_resolved=True, alert_codes={}, hold_transient=True)
    open_behind = finding("behind_database")
    open_stale = finding("stale_client", Severity.WARNING, migration=None)
    state, _ = update(AlertState(), [open_behind, open_stale], T0, POLICY)

    new_pending = finding("pending", Severity.WARNING)
    new_markers = finding("conflict_markers")
    # While `prisma migrate deploy` runs: behind_database and stale_client vanish, pending and
    # conflict_markers appear.
    held_state, alerts = update(state, [new_pending, new_markers], T0 + 1, holding)

    assert [(a.kind, a.finding.code) for a in alerts] == [
        ("new", "conflict_markers"),
        ("resolved", "stale_client"),
    ]
    assert set(held_state.records) == {open_behind.key, new_markers.key}

    # The command ends; the next check sees the same findings: the held ones fire now.
    _, after = update(held_state, [new_pending, new_markers], T0 + 2, POLICY)
    assert [(a.kind, a.finding.code) for a in after] == [("new", "pending"), ("resolved", "behind_database")]


@pytest.mark.parametrize(
    "code", ["behind_database", "pending", "out_of_order", "failed", "checksum_mismatch"]
)
def test_every_transient_code_is_held(code: str) -> None:
    holding = AlertPolicy(remind_after=0, notify_resolved=True, alert_codes={}, hold_transient=True)
    state, alerts = update(AlertState(), [finding(code)], T0, holding)
    assert (alerts, state.records) == ([], {})


def test_info_findings_do_not_alert_and_are_not_recorded() -> None:
    info = finding("behind_base", Severity.INFO, details={"base_branch": "main"})
    state, alerts = update(AlertState(), [info], T0, POLICY)
    assert alerts == []
    assert state.records == {}


def test_alert_codes_override_both_ways() -> None:
    policy = AlertPolicy(
        remind_after=0, notify_resolved=True, alert_codes={"behind_base": True, "stale_client": False}
    )
    info = finding("behind_base", Severity.INFO, details={"base_branch": "main"})
    warning = finding("stale_client", Severity.WARNING, migration=None)
    state, alerts = update(AlertState(), [info, warning], T0, policy)

    assert [(a.title, a.urgency) for a in alerts] == [("Americano-epic3: behind main", "low")]
    assert list(state.records) == [info.key]


def test_switching_a_code_off_forgets_it_without_resolved_alert() -> None:
    state, _ = update(AlertState(), [finding()], T0, POLICY)
    off = AlertPolicy(remind_after=0, notify_resolved=True, alert_codes={"behind_database": False})
    state, alerts = update(state, [finding()], T0 + 1, off)
    assert (alerts, state.records) == ([], {})


def test_duplicate_findings_in_one_check_alert_once() -> None:
    _, alerts = update(AlertState(), [finding(), finding()], T0, POLICY)
    assert len(alerts) == 1


@pytest.mark.parametrize(
    ("code", "severity", "title", "urgency"),
    [
        ("behind_database", Severity.ERROR, "Americano-epic3: behind the database", "critical"),
        ("pending", Severity.WARNING, "Americano-epic3: unapplied migration", "normal"),
        ("checksum_mismatch", Severity.ERROR, "Americano-epic3: applied migration edited", "critical"),
        ("failed", Severity.ERROR, "Americano-epic3: failed migration", "critical"),
        ("out_of_order", Severity.WARNING, "Americano-epic3: migration out of order", "normal"),
        ("schema_conflict", Severity.WARNING, "Americano-epic3: conflicting migrations", "normal"),
        ("stale_client", Severity.WARNING, "Americano-epic3: Prisma Client is stale", "normal"),
        ("conflict_markers", Severity.ERROR, "Americano-epic3: merge conflict markers", "critical"),
        ("missing_sql", Severity.ERROR, "Americano-epic3: migration.sql missing", "critical"),
        ("provider_mismatch", Severity.ERROR, "Americano-epic3: provider mismatch", "critical"),
        ("unsupported_provider", Severity.INFO, "Americano-epic3: unsupported provider", "low"),
        ("behind_base", Severity.INFO, "Americano-epic3: behind main", "low"),
    ],
)
def test_titles_per_code(code: str, severity: Severity, title: str, urgency: str) -> None:
    policy = AlertPolicy(remind_after=0, notify_resolved=True, alert_codes={code: True})
    subject = finding(code, severity, details={"base_branch": "main"})
    _, alerts = update(AlertState(), [subject], T0, policy)
    assert [(a.title, a.urgency) for a in alerts] == [(title, urgency)]


@pytest.mark.parametrize(
    ("code", "database", "title"),
    [
        ("database_unreachable", DB, "americano: database unreachable"),
        (
            "not_managed",
            "file:/home/kyin/Projects/demo/prisma/dev.db",
            "dev.db: database not managed by Prisma",
        ),
        ("migration_running", DB, "americano: Prisma migration running"),
        ("database_unreachable", None, "americano: database unreachable"),
    ],
)
def test_database_level_titles_use_the_database_name(code: str, database: str | None, title: str) -> None:
    subject = finding(code, worktree=None, migration=None, database=database, details={})
    assert alert_title("new", subject) == title


def test_body_without_migration_or_origin_has_the_fix_only() -> None:
    subject = finding(
        "stale_client",
        Severity.WARNING,
        migration=None,
        details={},
        fix=Fix(steps=(Command(("npx", "prisma", "generate"), cwd=Path("/w")),)),
    )
    assert alert_body("new", subject) == "cd /w && npx prisma generate"


def test_body_falls_back_to_the_message_when_there_is_nothing_else() -> None:
    subject = finding("database_unreachable", worktree=None, migration=None, details={}, fix=Fix())
    assert alert_body("new", subject) == "database_unreachable in Americano-epic3"


def test_body_origin_without_branch_names_the_worktree_folder() -> None:
    subject = finding(details={"found_in": [{"worktree": EPIC5, "branch": None}]}, fix=Fix())
    assert alert_body("new", subject) == f"Migration: {MIGRATION}\nFrom: Americano-epic5"


def test_state_json_round_trip_keeps_none_in_keys() -> None:
    db_level = finding("database_unreachable", worktree=None, migration=None, details={})
    state, _ = update(AlertState(), [finding(), db_level], T0, POLICY)

    document = json.loads(json.dumps(state.to_json()))

    assert document["version"] == 1
    assert AlertState.from_json(document) == state
    assert (
        "database_unreachable",
        "americano",
        DB,
        None,
        None,
    ) in AlertState.from_json(document).records


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ([], "alert state is not a JSON object"),
        ({"version": 2, "records": []}, "unsupported alert state version 2"),
        ({"version": 1}, "alert state has no 'records' list"),
        ({"version": 1, "records": [{"key": ["a", "b"]}]}, "records[0].key is not a list of 5 items"),
        (
            {"version": 1, "records": [{"key": ["a", "b", 3, None, None]}]},
            "records[0].key: database, worktree and migration must be strings or null",
        ),
        (
            {"version": 1, "records": [{"key": ["a", "b", None, None, None], "severity": "fatal"}]},
            "records[0].severity is not one of error, warning, info",
        ),
        (
            {
                "version": 1,
                "records": [
                    {"key": ["a", "b", None, None, None], "severity": "error", "first_seen": "yesterday"}
                ],
            },
            "records[0].first_seen is not a number",
        ),
    ],
)
def test_from_json_rejects_bad_shapes(document: Any, error: str) -> None:
    with pytest.raises(ValueError) as raised:
        AlertState.from_json(document)
    assert str(raised.value) == error
