"""Notifiers against the real things: real scripts, a real log, a real notification server (dunst)."""

from __future__ import annotations

import io
import json
import logging
import os
import select
import sys
import threading
import time
from pathlib import Path

import pytest

from migwatch.alerts import Alert, AlertPolicy, AlertState, update
from migwatch.model import Command, Finding, Fix, Note, Origin, Severity
from migwatch.notify import (
    NOTIFIERS,
    CommandNotifier,
    DesktopNotifierThread,
    Dispatcher,
    LogNotifier,
    Notifier,
    NotifierError,
    TerminalNotifier,
    build_notifiers,
    notify_test,
)
from migwatch.notify.desktop import NO_SESSION_BUS
from tests.support.notifyserver import NotificationServer

EPIC3 = "/home/kyin/Projects/Americano-epic3"
EPIC5 = "/home/kyin/Projects/Americano-epic5"
DB = "postgresql://kyin@localhost:5432/americano?schema=public"
MIGRATION = "20251016231054_add_story_5_1_behavioral_pattern_models"
FIX = f"git -C {EPIC3} merge feature/epic-5-behavioral-twin"

# Every notifier and dispatcher a test makes must be closed, leaving no thread or process behind.
pytestmark = pytest.mark.leakcheck


def behind_finding() -> Finding:
    return Finding(
        code="behind_database",
        severity=Severity.ERROR,
        project="americano",
        database=DB,
        worktree=EPIC3,
        migration=MIGRATION,
        message="Americano-epic3 (feature/epic-3-knowledge-graph) lacks 1 applied migration",
        fix=Fix(
            steps=(Command(("git", "-C", EPIC3, "merge", "feature/epic-5-behavioral-twin")),),
            reset_warning="Do not run `prisma migrate dev` here: it offers to reset the shared database.",
        ),
        details={"found_in": [{"worktree": EPIC5, "branch": "feature/epic-5-behavioral-twin"}]},
        origin=Origin(EPIC5, "feature/epic-5-behavioral-twin"),
    )


def alerts_for(*findings: Finding) -> list[Alert]:
    _, alerts = update(AlertState(), findings, 1_767_268_800.0, AlertPolicy(0, True, {}))
    return alerts


def new_behind_alert() -> Alert:
    return alerts_for(behind_finding())[0]


def resolved_behind_alert() -> Alert:
    state, _ = update(AlertState(), [behind_finding()], 0.0, AlertPolicy(0, True, {}))
    _, alerts = update(state, [], 1.0, AlertPolicy(0, True, {}))
    return alerts[0]


def migwatch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("migwatch-") and t.is_alive()]


def wait_until_gone(pid: int, timeout: float) -> bool:
    """Wait for process `pid` to exit (a pidfd turns readable then); True when it is gone."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(pidfd)


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------- command notifier


def test_command_gets_the_finding_json_on_stdin(tmp_path: Path) -> None:
    hook = write_script(tmp_path / "hook.sh", 'cat > "$1"\n')
    received = tmp_path / "received.json"
    notifier = CommandNotifier([str(hook), str(received)], timeout=10)

    assert notifier.check() is None
    notifier.send(new_behind_alert())

    assert json.loads(received.read_text(encoding="utf-8")) == {
        "code": "behind_database",
        "severity": "error",
        "project": "americano",
        "database": DB,
        "worktree": EPIC3,
        "migration": MIGRATION,
        "message": "Americano-epic3 (feature/epic-3-knowledge-graph) lacks 1 applied migration",
        "fix": [FIX, "Do not run `prisma migrate dev` here: it offers to reset the shared database."],
        "details": {"found_in": [{"worktree": EPIC5, "branch": "feature/epic-5-behavioral-twin"}]},
        "alert": "new",
        "title": "Americano-epic3: behind the database",
        "body": f"Migration: {MIGRATION}\nFrom: feature/epic-5-behavioral-twin (Americano-epic5)\n{FIX}",
        "urgency": "critical",
    }


def test_hanging_command_is_killed_with_its_children_at_the_timeout(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    hook = write_script(tmp_path / "hang.sh", 'sleep 60 &\necho $! > "$1"\nwait\n')
    notifier = CommandNotifier([str(hook), str(child_pid_file)], timeout=0.5)

    started = time.monotonic()
    with pytest.raises(NotifierError) as raised:
        notifier.send(new_behind_alert())
    elapsed = time.monotonic() - started

    assert str(raised.value) == f"command {hook} did not finish within 0.5 s and was killed"
    assert 0.5 <= elapsed < 3.0
    assert wait_until_gone(int(child_pid_file.read_text()), 5)


def test_failing_command_reports_exit_code_and_last_stderr_line(tmp_path: Path) -> None:
    hook = write_script(
        tmp_path / "fail.sh", 'echo "posting to chat" >&2\necho "hook broke: no token" >&2\nexit 3\n'
    )
    with pytest.raises(NotifierError) as raised:
        CommandNotifier([str(hook)]).send(new_behind_alert())
    assert str(raised.value) == f"command {hook} exited with code 3: hook broke: no token"


def test_missing_command_is_reported_by_check_and_send(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-hook")
    notifier = CommandNotifier([missing])
    assert notifier.check() == f"command not found: {missing}"
    with pytest.raises(NotifierError) as raised:
        notifier.send(new_behind_alert())
    assert str(raised.value) == f"command {missing} could not be started: No such file or directory"
    assert CommandNotifier(["migwatch-no-such-program"]).check() == (
        "command not found on PATH: migwatch-no-such-program"
    )


# ---------------------------------------------------------------- terminal and log notifiers


def test_terminal_output_is_exact_and_plain_on_a_non_tty() -> None:
    stream = io.StringIO()
    notifier = TerminalNotifier(stream)
    notifier.send(new_behind_alert())
    notifier.send(resolved_behind_alert())

    assert stream.getvalue() == (
        "🔔 [ERROR] Americano-epic3: behind the database\n"
        f"    Migration: {MIGRATION}\n"
        "    From: feature/epic-5-behavioral-twin (Americano-epic5)\n"
        f"    {FIX}\n"
        "✅ Americano-epic3: resolved — behind the database\n"
        f"    Migration: {MIGRATION}\n"
    )


class TtyStream(io.StringIO):
    """A text stream that says it is a terminal, as sys.stdout does in a shell."""

    def isatty(self) -> bool:
        return True


def test_terminal_output_is_coloured_on_a_tty() -> None:
    stream = TtyStream()
    TerminalNotifier(stream).send(new_behind_alert())
    assert stream.getvalue().splitlines()[0] == (
        "🔔 \033[1;31m[ERROR]\033[0m Americano-epic3: behind the database"
    )


def test_log_notifier_writes_one_greppable_line(caplog: pytest.LogCaptureFixture) -> None:
    quoted_fix = 'git -C /w/a b merge "feature/x"'
    finding = Finding(
        code="pending",
        severity=Severity.WARNING,
        project="americano",
        database=DB,
        worktree="/w/a b",
        migration="20260101000000_next",
        message="unapplied",
        fix=Fix(steps=(Note(quoted_fix),)),  # a note is the headline when there is no command
    )
    with caplog.at_level(logging.INFO, logger="migwatch.alerts"):
        notifier = LogNotifier()
        notifier.send(new_behind_alert())
        notifier.send(alerts_for(finding)[0])
        notifier.send(resolved_behind_alert())

    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "migwatch.alerts",
            "INFO",
            f"ALERT new code=behind_database severity=error worktree={EPIC3} migration={MIGRATION} "
            f'from=feature/epic-5-behavioral-twin fix="{FIX}"',
        ),
        (
            "migwatch.alerts",
            "INFO",
            'ALERT new code=pending severity=warning worktree="/w/a b" migration=20260101000000_next '
            'fix="git -C /w/a b merge \\"feature/x\\""',
        ),
        (
            "migwatch.alerts",
            "INFO",
            f"ALERT resolved code=behind_database severity=error worktree={EPIC3} migration={MIGRATION}",
        ),
    ]


def test_registry_names_every_notifier() -> None:
    expected = {
        "log": LogNotifier,
        "desktop": DesktopNotifierThread,
        "command": CommandNotifier,
        "terminal": TerminalNotifier,
    }
    assert expected == NOTIFIERS


# ---------------------------------------------------------------- dispatcher isolation


class RecordingNotifier:
    """Keeps what it was sent."""

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.sent: list[Alert] = []
        self.closed = False

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)

    def check(self) -> str | None:
        return None

    def close(self) -> None:
        self.closed = True


class FailingSendNotifier(RecordingNotifier):
    """Looks healthy but fails to send, as desktop-notifier does when the server drops a call."""

    def send(self, alert: Alert) -> None:
        raise RuntimeError("backend exploded\nsecond line")


class RaisingNotifier(FailingSendNotifier):
    """Fails every call, its health check included."""

    def check(self) -> str | None:
        raise RuntimeError("probe exploded")


class HangingNotifier(RecordingNotifier):
    """Blocks in send() until closed (or released), as a notifier stuck on a dead socket does."""

    def __init__(self, name: str = "hanging") -> None:
        super().__init__(name)
        self.release = threading.Event()
        self.entered = threading.Event()

    def send(self, alert: Alert) -> None:
        self.entered.set()
        self.release.wait(60)
        self.sent.append(alert)

    def close(self) -> None:
        self.release.set()
        super().close()


def test_a_raising_and_a_hanging_notifier_do_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    good, raising, hanging = RecordingNotifier(), RaisingNotifier("raising"), HangingNotifier()
    dispatcher = Dispatcher([raising, hanging, good], timeout=0.5)
    first, second = new_behind_alert(), resolved_behind_alert()
    try:
        with caplog.at_level(logging.WARNING, logger="migwatch.notify.dispatch"):
            started = time.monotonic()
            results = dispatcher.deliver([first, second])
            elapsed = time.monotonic() - started

        assert good.sent == [first, second]
        # One timeout for the hung notifier, then it is skipped while still hung.
        assert 0.5 <= elapsed < 1.5
        assert [(r.notifier, r.alert.kind, r.ok, r.error) for r in results] == [
            ("raising", "new", False, "backend exploded second line"),
            ("hanging", "new", False, "did not finish within 0.5 s; abandoned"),
            ("recording", "new", True, None),
            ("raising", "resolved", False, "backend exploded second line"),
            ("hanging", "resolved", False, "still busy with an earlier alert that timed out; skipped"),
            ("recording", "resolved", True, None),
        ]
        title = '"Americano-epic3: behind the database"'
        resolved_title = '"Americano-epic3: resolved — behind the database"'
        assert [r.getMessage() for r in caplog.records] == [
            f'NOTIFY failed notifier=raising alert=new title={title} error="backend exploded second line"',
            f"NOTIFY failed notifier=hanging alert=new title={title} "
            'error="did not finish within 0.5 s; abandoned"',
            f"NOTIFY failed notifier=raising alert=resolved title={resolved_title} "
            'error="backend exploded second line"',
            f"NOTIFY failed notifier=hanging alert=resolved title={resolved_title} "
            'error="still busy with an earlier alert that timed out; skipped"',
        ]

        # Once the hung call returns, the notifier is used again.
        assert hanging.entered.is_set()
        hanging.release.set()
        for thread in migwatch_threads():
            if thread.name == "migwatch-notify-hanging":
                thread.join(5)
        assert hanging.sent == [first]
        later = dispatcher.deliver([first])
        assert [(r.notifier, r.ok) for r in later] == [
            ("raising", False),
            ("hanging", True),
            ("recording", True),
        ]
    finally:
        dispatcher.close()
    assert good.closed and raising.closed and hanging.closed


def test_close_ends_a_hung_call_and_leaves_no_thread() -> None:
    hanging = HangingNotifier()
    dispatcher = Dispatcher([hanging], timeout=0.2)
    assert [r.ok for r in dispatcher.deliver([new_behind_alert()])] == [False]
    assert [t.name for t in migwatch_threads()] == ["migwatch-notify-hanging"]
    dispatcher.close()
    assert hanging.closed
    assert migwatch_threads() == []


def test_check_all_reports_each_notifier() -> None:
    broken = CommandNotifier(["/nonexistent/hook"])
    dispatcher = Dispatcher([LogNotifier(), RaisingNotifier("raising"), broken], timeout=2)
    try:
        assert dispatcher.check_all() == [
            ("log", None),
            ("raising", "health check failed: probe exploded"),
            ("command", "command not found: /nonexistent/hook"),
        ]
    finally:
        dispatcher.close()


def test_notify_test_sends_one_test_alert_through_every_notifier(tmp_path: Path) -> None:
    received = tmp_path / "received.json"
    hook = write_script(tmp_path / "hook.sh", 'cat > "$1"\n')
    stream = io.StringIO()
    notifiers = build_notifiers(
        desktop=False, command_argv=(str(hook), str(received)), command_timeout=5, terminal_stream=stream
    )
    failing = FailingSendNotifier("raising")
    dispatcher = Dispatcher([*notifiers, failing, CommandNotifier(["/nonexistent/hook"])], timeout=5)
    try:
        report = notify_test(dispatcher)
    finally:
        dispatcher.close()

    assert report == [
        ("log", True, "sent"),
        ("command", True, "sent"),
        ("terminal", True, "sent"),
        ("raising", False, "backend exploded second line"),
        ("command", False, "command not found: /nonexistent/hook"),
    ]
    assert json.loads(received.read_text(encoding="utf-8"))["title"] == "migwatch: test notification"
    assert stream.getvalue() == (
        "🔔 [INFO] migwatch: test notification\n"
        "    If you can read this, migwatch alerts will reach you here.\n"
    )


def test_build_notifiers_always_includes_the_log() -> None:
    notifiers = build_notifiers(desktop=False, command_argv=None, command_timeout=10)
    assert [n.name for n in notifiers] == ["log"]
    assert all(isinstance(n, Notifier) for n in notifiers)


# ---------------------------------------------------------------- desktop notifier


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="D-Bus notifications are Linux")


@linux_only
def test_desktop_without_session_bus_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    notifier = DesktopNotifierThread(timeout=2)
    try:
        assert (
            notifier.check()
            == NO_SESSION_BUS
            == "no desktop session bus (DBUS_SESSION_BUS_ADDRESS is not set)"
        )
        with pytest.raises(NotifierError) as raised:
            notifier.send(new_behind_alert())
        assert str(raised.value) == NO_SESSION_BUS
    finally:
        notifier.close()


@linux_only
def test_desktop_with_a_bus_but_no_server_gives_a_one_line_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus-here")
    notifier = DesktopNotifierThread(timeout=2)
    try:
        assert (
            notifier.check() == "desktop notification server unreachable: [Errno 2] No such file or directory"
        )
        with pytest.raises(NotifierError) as raised:
            notifier.send(new_behind_alert())
        assert str(raised.value) == (
            "desktop notification server unreachable: [Errno 2] No such file or directory"
        )
    finally:
        notifier.close()


@linux_only
def test_desktop_alert_reaches_a_real_notification_server(notifications: NotificationServer) -> None:
    notifier = DesktopNotifierThread()
    dispatcher = Dispatcher([LogNotifier(), notifier], timeout=10)
    alert = new_behind_alert()
    try:
        assert dispatcher.check_all() == [("log", None), ("desktop", None)]
        results = dispatcher.deliver([alert])
        assert [(r.notifier, r.ok, r.error) for r in results] == [
            ("log", True, None),
            ("desktop", True, None),
        ]

        history = notifications.wait_for(lambda seen: len(seen) == 1, 10)
    finally:
        dispatcher.close()

    assert history == [
        {
            "summary": "Americano-epic3: behind the database",
            "body": f"Migration: {MIGRATION}\nFrom: feature/epic-5-behavioral-twin (Americano-epic5)\n{FIX}",
            "urgency": "critical",
            "appname": "migwatch",
        }
    ]


@linux_only
def test_notify_test_reaches_a_real_notification_server(notifications: NotificationServer) -> None:
    dispatcher = Dispatcher(build_notifiers(desktop=True, command_argv=None, command_timeout=10), timeout=10)
    try:
        assert notify_test(dispatcher) == [("log", True, "sent"), ("desktop", True, "sent")]
    finally:
        dispatcher.close()

    assert notifications.wait_for(lambda seen: len(seen) == 1, 10) == [
        {
            "summary": "migwatch: test notification",
            "body": "If you can read this, migwatch alerts will reach you here.",
            "urgency": "normal",
            "appname": "migwatch",
        }
    ]
