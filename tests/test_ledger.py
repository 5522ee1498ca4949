"""The alert ledger, the outbox and the outage rule with plain values: no alert repeated or lost across a
corrupt, lost or unwritable state file, a failing notifier, a burst, or a part of the project that
cannot be seen."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from migwatch.alerts import Alert, AlertState, group_alerts, update
from migwatch.ledger import COPY_FILE, STATE_FILE, AlertLedger, LedgerError
from migwatch.model import Command, Finding, Fix, Note, Severity
from migwatch.notify.delivery import Lane, Outbox, owe
from migwatch.notify.logfile import LogNotifier
from migwatch.outage import DatabaseState, Unknowns, conclude_scope, status_after
from tests.test_alerts import POLICY, T0, finding

EPIC3 = "/work/Americano-epic3"


def pending(name: str, worktree: str = EPIC3) -> Finding:
    return finding("pending", Severity.WARNING, migration=name, worktree=worktree, details={})


class Recorder:
    """A notifier that records what it was sent, and can be made to fail."""

    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[Alert] = []
        self.failing = False
        self.cond = threading.Condition()

    def send(self, alert: Alert) -> None:
        with self.cond:
            if self.failing:
                raise RuntimeError("notification server is not running")
            self.sent.append(alert)
            self.cond.notify_all()

    def check(self) -> str | None:
        return None

    def close(self) -> None:
        pass

    def wait_for(self, count: int, timeout: float = 5.0) -> list[str]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.sent) >= count, timeout), [a.title for a in self.sent]
            return [f"{a.kind}: {a.title}" for a in self.sent]


def ledger_at(tmp_path: Path, clock: list[float]) -> AlertLedger:
    return AlertLedger(
        [tmp_path / "state" / STATE_FILE, tmp_path / "log" / COPY_FILE], clock=lambda: clock[0]
    )


def everything(_key: object) -> bool:
    return True


# --------------------------------------------------------------------------------------------- persistence


@pytest.mark.parametrize(
    "damage",
    [
        b"",  # truncated to nothing
        b'{"version": 1, "records": [',  # truncated
        b"\x00\xff garbage \x80",  # not UTF-8
        b'["a", "list"]',  # wrong shape
        b'{"version": 99, "records": []}',  # a future version
    ],
)
def test_a_damaged_state_file_neither_repeats_nor_loses_alerts(tmp_path: Path, damage: bytes) -> None:
    clock = [T0]
    first = ledger_at(tmp_path, clock)
    first.load()
    assert first.conclude("americano", [finding()], everything, POLICY) == 1
    (tmp_path / "state" / STATE_FILE).write_bytes(damage)

    clock[0] += 60
    restarted = ledger_at(tmp_path, clock)
    restarted.load()
    assert restarted.conclude("americano", [finding()], everything, POLICY) == 0  # not repeated
    assert restarted.conclude("americano", [], everything, POLICY) == 1  # its "resolved" not lost
    kept = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert kept[0] == STATE_FILE and kept[1].startswith(f"{STATE_FILE}.corrupt-") and len(kept) == 2


def test_an_unwritable_state_folder_does_not_repeat_a_resolved_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [T0]
    ledger = ledger_at(tmp_path, clock)
    ledger.load()
    ledger.conclude("americano", [finding()], everything, POLICY)
    state_dir = tmp_path / "state"
    (state_dir / STATE_FILE).unlink()
    state_dir.rmdir()
    state_dir.write_text("a file where the folder was: nothing can be saved there", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="migwatch.ledger"):
        assert ledger.conclude("americano", [], everything, POLICY) == 1  # resolved, saved in the copy
        ledger.conclude("americano", [], everything, POLICY)
    assert len([r for r in caplog.records if "state save failed" in r.getMessage()]) == 1  # once

    state_dir.unlink()
    restarted = ledger_at(tmp_path, clock)
    restarted.load()
    assert restarted.state == AlertState()
    assert restarted.conclude("americano", [], everything, POLICY) == 0


def test_no_writable_copy_is_a_start_up_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("", encoding="utf-8")
    ledger = AlertLedger([tmp_path / "state" / STATE_FILE])
    with pytest.raises(LedgerError, match=r"^cannot write the alert state \(.*state: File exists\)$"):
        ledger.save(required=True)


def test_state_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ledger = ledger_at(tmp_path, [T0])
        ledger.save(required=True)
    finally:
        os.umask(old)
    for path in (tmp_path / "state" / STATE_FILE, tmp_path / "log" / COPY_FILE):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_name_that_is_not_utf8_round_trips(tmp_path: Path) -> None:
    odd = os.fsdecode(b"20260101000000_caf\xe9")
    ledger = ledger_at(tmp_path, [T0])
    ledger.load()
    ledger.conclude("americano", [pending(odd)], everything, POLICY)
    restarted = ledger_at(tmp_path, [T0])
    restarted.load()
    assert [k[4] for k in restarted.state.records] == [odd]
    assert json.loads((tmp_path / "state" / STATE_FILE).read_text(encoding="ascii"))["version"] == 1


# ------------------------------------------------------------------------------------------------ outbox


def test_a_failed_delivery_is_retried_until_it_succeeds(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.failing = True
    outbox = Outbox([recorder], first_retry=0.05, max_retry=0.1)
    outbox.start()
    try:
        _, alerts = update(AlertState(), [finding()], T0, POLICY)
        outbox.post(alerts)
        assert not recorder.sent
        recorder.failing = False
        assert recorder.wait_for(1) == ["new: Americano-epic3: behind the database"]
    finally:
        outbox.close(1.0)


def test_a_resolved_alert_is_not_delivered_late() -> None:
    owed: dict[tuple[str, str, str | None, str | None, str | None], Alert] = {}
    state, new = update(AlertState(), [finding()], T0, POLICY)
    _, resolved = update(state, [], T0 + 1, POLICY)
    owe(owed, new[0])
    owe(owed, resolved[0])
    assert owed == {}  # never told: say nothing
    owe(owed, new[0])
    owed.clear()  # delivered
    owe(owed, resolved[0])
    assert [a.kind for a in owed.values()] == ["resolved"]


def test_a_burst_is_one_notification_per_worktree_and_code_and_one_log_line_per_finding(
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = [f"2026010100{i:04d}_m{i}" for i in range(41)]
    findings = [pending(n) for n in names] + [pending(names[0], worktree="/work/Americano")]
    _, alerts = update(AlertState(), findings, T0, POLICY)
    grouped = group_alerts(alerts)
    assert [(g.title, g.count) for g, _ in grouped] == [
        ("Americano-epic3: 41 × unapplied migration", 41),
        ("Americano: unapplied migration", 1),
    ]
    assert grouped[0][0].body.splitlines()[0] == (
        "41 migrations in Americano-epic3: 20260101000000_m0, 20260101000001_m1, 20260101000002_m2 … and 38 more"
    )
    recorder = Recorder()
    outbox = Outbox([LogNotifier(), recorder])
    outbox.start()
    try:
        with caplog.at_level(logging.INFO, logger="migwatch.alerts"):
            outbox.post(alerts)
            assert recorder.wait_for(2) == [
                "new: Americano-epic3: 41 × unapplied migration",
                "new: Americano: unapplied migration",
            ]
            assert outbox_idle(outbox)
        assert len([r for r in caplog.records if r.getMessage().startswith("ALERT new code=pending")]) == 42
    finally:
        outbox.close(1.0)


def test_a_group_speaks_with_the_fix_most_of_it_shares() -> None:
    """documenso-old: 26 migrations are on main and one was deleted upstream; the notification's fix
    is the merge, and the odd one is counted, not shown as the group's fix."""
    merge = Fix(steps=(Command(("git", "-C", EPIC3, "merge", "main")),))
    orphan = Fix(steps=(Note("its row is orphaned: delete it"),))
    findings = [finding(migration="20250212125902_rework_sessions", fix=orphan)] + [
        finding(migration=f"2025091807064{i}_m{i}", fix=merge) for i in range(3)
    ]
    _, alerts = update(AlertState(), findings, T0, POLICY)
    ((grouped, members),) = group_alerts(alerts)
    assert len(members) == 4
    assert grouped.body.splitlines()[1:] == [
        f"git -C {EPIC3} merge main",
        "1 of them needs another fix: see `migwatch status`",
    ]
    assert grouped.finding.fix == merge  # what a command notifier gets as the group's finding


def test_the_first_alert_after_a_quiet_spell_goes_out_at_once_and_a_storm_is_gathered() -> None:
    """Grouping must not delay the alert a user waits for; a second check of a storm still groups."""
    recorder = Recorder()
    lane = Lane(recorder, lambda: None, timeout=5.0, first_retry=1.0, max_retry=1.0, gather=30.0)
    lane.start()
    try:
        _, first = update(AlertState(), [pending("20260101000000_a")], T0, POLICY)
        lane.add(first)
        # Within wait_for's 5 s: not held for the 30 s gather.
        assert recorder.wait_for(1) == ["new: Americano-epic3: unapplied migration"]
        _, storm = update(AlertState(), [pending(f"2026010100000{i}_b{i}") for i in range(3)], T0, POLICY)
        lane.add(storm[:1])
        lane.add(storm[1:])  # the next check of the same storm, within the gather
        time.sleep(0.5)
        assert len(recorder.sent) == 1  # held: a burst is under way
        assert sorted(a.finding.migration or "" for a in lane.snapshot()) == sorted(
            a.finding.migration or "" for a in storm
        )
    finally:
        lane.stop(1.0)


def outbox_idle(outbox: Outbox, timeout: float = 5.0) -> bool:
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if outbox.idle():
            return True
        event.wait(0.01)
    return False


def test_what_is_owed_survives_a_restart(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.failing = True
    ledger = ledger_at(tmp_path, [T0])
    ledger.load()
    ledger.outbox = Outbox([recorder], on_change=ledger.save, first_retry=10, max_retry=10)
    ledger.outbox.start()
    ledger.conclude("americano", [finding()], everything, POLICY)
    ledger.outbox.close(1.0)
    ledger.save()

    restarted = ledger_at(tmp_path, [T0 + 5])
    owed = restarted.load()
    again = Recorder()
    restarted.outbox = Outbox([again], on_change=restarted.save)
    restarted.outbox.restore({"recorder": owed["recorder"]})
    restarted.outbox.start()
    try:
        assert again.wait_for(1) == ["new: Americano-epic3: behind the database"]
        assert restarted.conclude("americano", [finding()], everything, POLICY) == 0
    finally:
        restarted.outbox.close(1.0)


# ------------------------------------------------------------------------------------------------ outage


@pytest.mark.parametrize(
    ("failures", "status"), [(0, "ok"), (1, "uncertain"), (2, "uncertain"), (3, "down"), (9, "down")]
)
def test_a_database_is_reported_down_after_three_failed_polls(failures: int, status: str) -> None:
    assert status_after(failures) == status


DB = "postgresql://localhost:5432/americano?schema=public"


def unreachable() -> Finding:
    return finding("database_unreachable", worktree=None, migration=None)


@pytest.mark.parametrize(
    ("state", "kept_codes", "resolvable"),
    [
        (DatabaseState("ok"), ["pending", "database_unreachable"], ["pending", "behind_database"]),
        (DatabaseState("uncertain", ever_read=True), ["pending", "database_unreachable"], ["pending"]),
        (DatabaseState("uncertain", ever_read=False), ["pending"], []),
        (DatabaseState("down"), ["pending", "database_unreachable"], ["database_unreachable"]),
        (DatabaseState("ok", vanished=True), ["pending", "database_unreachable"], ["history_vanished"]),
    ],
)
def test_not_knowing_is_not_resolved(
    state: DatabaseState, kept_codes: list[str], resolvable: list[str]
) -> None:
    found = [pending("20260101000000_a"), unreachable()]
    kept, scope = conclude_scope(found, Unknowns(databases={found[0].database or "": state}))
    assert [f.code for f in kept] == kept_codes
    keys = [
        ("pending", "americano", found[0].database, EPIC3, "20260101000000_a"),
        ("behind_database", "americano", found[0].database, EPIC3, "x"),
        ("database_unreachable", "americano", found[0].database, None, None),
        ("history_vanished", "americano", found[0].database, None, None),
    ]
    if state.status == "uncertain" and state.ever_read:
        resolvable = ["pending", "behind_database", "database_unreachable", "history_vanished"]
    if state.status == "ok" and not state.vanished:
        resolvable = [k[0] for k in keys]
    assert [k[0] for k in keys if scope(k)] == resolvable


def test_an_unreadable_folder_resolves_nothing_but_its_own_finding() -> None:
    behind = ("behind_database", "americano", DB, EPIC3, "20260101000000_a")
    own = ("unreadable_path", "americano", DB, EPIC3, None)
    other = ("behind_database", "americano", DB, "/work/Americano", "20260101000000_a")
    _, scope = conclude_scope([], Unknowns(worktrees=frozenset({EPIC3})))
    assert (scope(behind), scope(own), scope(other)) == (False, True, True)
    _, scope = conclude_scope([], Unknowns(migrations=frozenset({(EPIC3, "20260101000000_a")})))
    assert (scope(behind), scope(other)) == (False, True)


def test_a_role_that_may_not_read_the_history_freezes_what_depends_on_it() -> None:
    pending_key = ("pending", "americano", DB, EPIC3, "20260101000000_a")
    denied_key = ("history_denied", "americano", DB, None, None)
    _, scope = conclude_scope([], Unknowns(databases={DB: DatabaseState("ok", denied=True)}))
    assert (scope(pending_key), scope(denied_key)) == (False, True)
