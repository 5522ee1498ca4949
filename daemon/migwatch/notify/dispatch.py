"""Delivers alerts through every notifier, each call in its own worker thread with a timeout.

A notifier that raises or hangs is logged (one line) and never holds up the others for longer than the
timeout. A hung call is abandoned; that notifier is skipped until the call returns, so hung calls cannot
pile up. Workers are daemon threads: an abandoned call never blocks the process from exiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TextIO, TypeVar

from migwatch.alerts import Alert
from migwatch.model import Finding, Severity
from migwatch.notify.base import Notifier, one_line, quote_value
from migwatch.notify.command import DEFAULT_COMMAND_TIMEOUT, CommandNotifier
from migwatch.notify.desktop import DesktopNotifierThread
from migwatch.notify.logfile import LogNotifier
from migwatch.notify.terminal import TerminalNotifier

logger = logging.getLogger(__name__)

DEFAULT_NOTIFY_TIMEOUT = 10.0
TEST_TITLE = "migwatch: test notification"

_T = TypeVar("_T")


@dataclass(frozen=True)
class DeliveryResult:
    """How one alert went through one notifier."""

    notifier: str
    alert: Alert
    ok: bool
    error: str | None = None  # one line, when not ok


class _Call(Generic[_T]):
    """One notifier call running in its own daemon thread."""

    def __init__(self, notifier_name: str, function: Callable[[], _T]) -> None:
        self.done = threading.Event()
        self.result: _T | None = None
        self.error: BaseException | None = None
        self._function = function
        self.thread = threading.Thread(target=self._run, name=f"migwatch-notify-{notifier_name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._function()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


class Dispatcher:
    """Sends alerts through a fixed list of notifiers, isolating each from the others."""

    def __init__(self, notifiers: Sequence[Notifier], timeout: float = DEFAULT_NOTIFY_TIMEOUT) -> None:
        self.notifiers: tuple[Notifier, ...] = tuple(notifiers)
        self.timeout = timeout
        self._busy: dict[int, _Call[object]] = {}  # id(notifier) → its abandoned (hung) call
        self._lock = threading.Lock()
        self._closed = False

    def deliver(self, alerts: Sequence[Alert]) -> list[DeliveryResult]:
        """Send every alert through every notifier; one result per (alert, notifier) pair."""
        results: list[DeliveryResult] = []
        for alert in alerts:
            calls: list[tuple[Notifier, _Call[object] | None]] = []
            for notifier in self.notifiers:
                if self._still_busy(notifier):
                    calls.append((notifier, None))
                    continue
                calls.append((notifier, _Call(notifier.name, _bind_send(notifier, alert))))
            deadline = time.monotonic() + self.timeout
            for notifier, call in calls:
                results.append(self._outcome(notifier, alert, call, deadline))
        return results

    def _outcome(
        self, notifier: Notifier, alert: Alert, call: _Call[object] | None, deadline: float
    ) -> DeliveryResult:
        if call is None:
            error = "still busy with an earlier alert that timed out; skipped"
        elif not call.done.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                self._busy[id(notifier)] = call
            error = f"did not finish within {self.timeout:g} s; abandoned"
        elif call.error is not None:
            error = one_line(call.error)
        else:
            return DeliveryResult(notifier=notifier.name, alert=alert, ok=True)
        logger.warning(
            "NOTIFY failed notifier=%s alert=%s title=%s error=%s",
            notifier.name,
            alert.kind,
            quote_value(alert.title),
            quote_value(error),
        )
        return DeliveryResult(notifier=notifier.name, alert=alert, ok=False, error=error)

    def _still_busy(self, notifier: Notifier) -> bool:
        with self._lock:
            call = self._busy.get(id(notifier))
            if call is None:
                return False
            if call.done.is_set():
                del self._busy[id(notifier)]
                return False
            return True

    def check_all(self) -> list[tuple[str, str | None]]:
        """Each notifier's health: (name, None) when healthy, else (name, one-line problem)."""
        calls = [(notifier, _Call(notifier.name, notifier.check)) for notifier in self.notifiers]
        deadline = time.monotonic() + self.timeout
        health: list[tuple[str, str | None]] = []
        for notifier, call in calls:
            if not call.done.wait(max(0.0, deadline - time.monotonic())):
                health.append((notifier.name, f"health check did not finish within {self.timeout:g} s"))
            elif call.error is not None:
                health.append((notifier.name, f"health check failed: {one_line(call.error)}"))
            else:
                problem = call.result
                health.append((notifier.name, problem if isinstance(problem, str) else None))
        return health

    def close(self, timeout: float | None = None) -> None:
        """Close every notifier (each isolated like a send), waiting at most `timeout` (default: the
        dispatcher's) in all, also for abandoned calls; a daemon stopping on SIGTERM passes less."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        limit = self.timeout if timeout is None else timeout
        calls = [(notifier, _Call(notifier.name, _bind_close(notifier))) for notifier in self.notifiers]
        deadline = time.monotonic() + limit
        for notifier, call in calls:
            if not call.done.wait(max(0.0, deadline - time.monotonic())):
                logger.warning("notifier %s did not close within %g s", notifier.name, limit)
            elif call.error is not None:
                logger.warning("notifier %s failed to close: %s", notifier.name, one_line(call.error))
        with self._lock:
            abandoned = [(n.name, self._busy.pop(id(n))) for n in self.notifiers if id(n) in self._busy]
        for name, call in abandoned:
            # Closing the notifier usually ends its hung call; a call that still hangs is a daemon thread.
            if not call.done.wait(max(0.0, deadline - time.monotonic())):
                logger.warning("notifier %s is still hung in an earlier call; leaving it behind", name)


def _bind_close(notifier: Notifier) -> Callable[[], object]:
    def close() -> object:
        notifier.close()
        return None

    return close


def _bind_send(notifier: Notifier, alert: Alert) -> Callable[[], object]:
    def send() -> object:
        notifier.send(alert)
        return None

    return send


def notify_test_alert() -> Alert:
    """The alert `migwatch notify-test` sends."""
    finding = Finding(
        code="notify_test",
        severity=Severity.INFO,
        project="migwatch",
        database=None,
        worktree=None,
        migration=None,
        message="migwatch can reach you through this notifier.",
    )
    return Alert(
        kind="new",
        finding=finding,
        title=TEST_TITLE,
        body="If you can read this, migwatch alerts will reach you here.",
        urgency="normal",
    )


def notify_test(dispatcher: Dispatcher) -> list[tuple[str, bool, str]]:
    """Check each notifier, send the test alert through the healthy ones: (name, ok, detail) each."""
    problems = [problem for _, problem in dispatcher.check_all()]
    healthy = [n for n, problem in zip(dispatcher.notifiers, problems, strict=True) if problem is None]
    # The sub-dispatcher only borrows the notifiers: it is not closed, the caller's dispatcher owns them.
    sent = iter(Dispatcher(healthy, timeout=dispatcher.timeout).deliver([notify_test_alert()]))
    report: list[tuple[str, bool, str]] = []
    for notifier, problem in zip(dispatcher.notifiers, problems, strict=True):
        if problem is not None:
            report.append((notifier.name, False, problem))
            continue
        result = next(sent)
        report.append((notifier.name, result.ok, "sent" if result.ok else result.error or "failed"))
    return report


def build_notifiers(
    desktop: bool,
    command_argv: tuple[str, ...] | None,
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    terminal_stream: TextIO | None = None,
) -> list[Notifier]:
    """The configured notifiers; the log notifier is always first."""
    notifiers: list[Notifier] = [LogNotifier()]
    if desktop:
        notifiers.append(DesktopNotifierThread())
    if command_argv:
        notifiers.append(CommandNotifier(command_argv, timeout=command_timeout))
    if terminal_stream is not None:
        notifiers.append(TerminalNotifier(terminal_stream))
    return notifiers
