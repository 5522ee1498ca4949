"""Delivery that does not give up (SPEC §8): one lane per notifier, retried with backoff until delivered,
or until the finding is resolved (a resolved alert is never delivered late).

Each notifier has its own lane (a thread and what it still owes, by finding key), so a hung or failing
notifier never delays the others. A lane sends a burst grouped (one notification per worktree, code
and kind) unless its notifier wants one line per finding (the log). What is still owed is part of the
alert ledger: it is saved with the alert state and survives a restart.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from migwatch.alerts import Alert, FindingKey, group_alerts, printable
from migwatch.model import Finding, Fix, Note, Severity
from migwatch.notify.base import Notifier, one_line, quote_value
from migwatch.notify.dispatch import DEFAULT_NOTIFY_TIMEOUT, _Call

logger = logging.getLogger(__name__)

FIRST_RETRY = 1.0  # seconds; doubled after each failure in a row
# While a burst is under way (the last notification went out less than this long ago), a lane waits this
# long before sending, so that consecutive checks of a storm group too. The first alert after a quiet
# spell goes out at once: grouping must not delay the one alert a user is waiting for.
GATHER = 0.3
MAX_RETRY = 30.0

# What a notifier still owes: finding key → the alert to deliver for it.
Owed = dict[FindingKey, Alert]


def owe(owed: Owed, alert: Alert) -> None:
    """Record `alert` as owed, by the rules that keep the ledger exact.

    A "resolved" for a finding whose first alert was never delivered cancels it: nothing is said (never
    a late alert, never a lone "resolved"). A reminder does not replace an undelivered first alert.
    """
    key = alert.finding.key
    pending = owed.get(key)
    if alert.kind == "resolved":
        if pending is not None and pending.kind == "new":
            del owed[key]
            return
        owed[key] = alert
    elif alert.kind == "reminder" and pending is not None and pending.kind == "new":
        owed[key] = replace(pending, finding=alert.finding)
    else:
        owed[key] = alert


class Lane:
    """One notifier's queue and thread."""

    def __init__(
        self,
        notifier: Notifier,
        on_change: Callable[[], None],
        *,
        timeout: float,
        first_retry: float,
        max_retry: float,
        gather: float = GATHER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.name = notifier.name
        self.grouped = bool(getattr(notifier, "groups_alerts", True))
        self.owed: Owed = {}
        self.failures = 0
        self._on_change = on_change
        self._timeout = timeout
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._clock = clock
        self._next_try = 0.0
        self._gather = gather
        self._last_sent = -math.inf
        self._hung: _Call[object] | None = None
        self.quiet = threading.Event()  # no send in flight (closing waits a little for one)
        self.quiet.set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"migwatch-deliver-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, alerts: Sequence[Alert]) -> None:
        with self._cond:
            now = self._clock()
            if alerts and not self.owed and self.grouped and now - self._last_sent < self._gather:
                self._next_try = max(self._next_try, now + self._gather)
            for alert in alerts:
                owe(self.owed, alert)
            self._cond.notify_all()

    def snapshot(self) -> list[Alert]:
        with self._cond:
            return list(self.owed.values())

    def idle(self) -> bool:
        with self._cond:
            return not self.owed

    def stop(self, timeout: float) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._due():
                    wait = None if not self.owed else max(0.05, self._next_try - self._clock())
                    self._cond.wait(wait)
                if self._stopping:
                    return
                batch = list(self.owed.items())
            try:
                self._deliver(batch)
            except Exception as exc:  # a bug here must not end delivery for good
                logger.error("delivery failed notifier=%s error=%s", self.name, quote_value(one_line(exc)))
                logger.debug("delivery failed", exc_info=True)
                self._failed()

    def _due(self) -> bool:
        return bool(self.owed) and self._clock() >= self._next_try

    def _deliver(self, batch: list[tuple[FindingKey, Alert]]) -> None:
        alerts = [alert for _, alert in batch]
        units = group_alerts(alerts) if self.grouped else [(alert, [alert]) for alert in alerts]
        delivered = 0
        try:
            for notification, members in units:
                if self._stopping:  # what is left stays owed: saved, and sent after a restart
                    return
                error = self._send_one(notification)
                if error is not None:
                    self._failed()
                    return
                with self._cond:
                    for member in members:
                        if self.owed.get(member.finding.key) is member:  # not replaced meanwhile
                            del self.owed[member.finding.key]
                delivered += 1
                if self.failures:
                    logger.info("NOTIFY recovered notifier=%s failures=%d", self.name, self.failures)
                    self.failures = 0
        finally:
            if delivered:
                self._on_change()  # once per batch: the ledger is saved with what is still owed

    def _send_one(self, notification: Alert) -> str | None:
        """Send one notification; None when delivered, else the one-line error (logged)."""
        self.quiet.clear()
        self._last_sent = self._clock()  # from the start of a send: alerts arriving meanwhile are a burst
        try:
            error = self._send(notification)
        finally:
            self.quiet.set()
        if error is None:
            logger.debug(
                "NOTIFY sent notifier=%s alert=%s title=%s",
                self.name,
                notification.kind,
                quote_value(notification.title),
            )
            return None
        logger.warning(
            "NOTIFY failed notifier=%s alert=%s title=%s error=%s retry_in=%gs",
            self.name,
            notification.kind,
            quote_value(notification.title),
            quote_value(error),
            self._backoff(self.failures + 1),
        )
        return error

    def _send(self, alert: Alert) -> str | None:
        if getattr(self.notifier, "bounded", False):
            # It enforces its own timeout (a killed command, a bus call with a deadline): no extra thread
            # per notification, which over weeks would only churn the allocator.
            try:
                self.notifier.send(alert)
            except Exception as exc:
                return one_line(exc)
            return None
        if self._hung is not None and not self._hung.done.is_set():
            return "still busy with an earlier alert that timed out"
        self._hung = None
        call: _Call[object] = _Call(self.name, lambda: self.notifier.send(alert))
        if not call.done.wait(self._timeout):
            self._hung = call
            return f"did not finish within {self._timeout:g} s"
        return None if call.error is None else one_line(call.error)

    def _backoff(self, failures: int) -> float:
        return float(min(self._max_retry, self._first_retry * 2 ** min(failures - 1, 30)))

    def _failed(self) -> None:
        with self._cond:
            self.failures += 1
            self._next_try = self._clock() + self._backoff(self.failures)


class Outbox:
    """Every notifier's lane; `post` hands a check's alerts to all of them."""

    def __init__(
        self,
        notifiers: Sequence[Notifier],
        *,
        on_change: Callable[[], None] = lambda: None,
        timeout: float = DEFAULT_NOTIFY_TIMEOUT,
        first_retry: float = FIRST_RETRY,
        max_retry: float = MAX_RETRY,
    ) -> None:
        self.notifiers = tuple(notifiers)
        self.lanes = [
            Lane(n, on_change, timeout=timeout, first_retry=first_retry, max_retry=max_retry)
            for n in notifiers
        ]
        self._started = False

    def start(self) -> None:
        for lane in self.lanes:
            lane.start()
        self._started = True

    def post(self, alerts: Sequence[Alert]) -> None:
        """Owe `alerts` on every lane (delivered in the lanes' threads)."""
        if alerts:
            for lane in self.lanes:
                lane.add(alerts)

    def restore(self, owed: Mapping[str, Sequence[Alert]]) -> None:
        """What a previous run still owed, by notifier name (notifiers no longer configured are dropped)."""
        for lane in self.lanes:
            lane.add(owed.get(lane.name, ()))

    def owed(self) -> dict[str, list[Alert]]:
        """What each notifier still owes (for the ledger)."""
        return {lane.name: alerts for lane in self.lanes if (alerts := lane.snapshot())}

    def idle(self) -> bool:
        """Nothing owed anywhere (for tests and the soak benchmark)."""
        return all(lane.idle() for lane in self.lanes)

    def close(self, timeout: float) -> None:
        """Stop the lanes and close every notifier (their child processes end), within about `timeout`."""
        deadline = time.monotonic() + timeout
        for lane in self.lanes:
            lane.stop(0)
        # A send in flight gets most of the budget to finish: killing a command that already delivered
        # would make the alert owed, and sent again after the restart.
        grace = min(deadline - timeout / 3, time.monotonic() + 0.5)
        for lane in self.lanes:
            lane.quiet.wait(max(0.0, grace - time.monotonic()))
        calls = [(n, _Call(n.name, n.close)) for n in self.notifiers]
        for notifier, call in calls:
            if not call.done.wait(max(0.0, deadline - time.monotonic())):
                logger.warning("notifier %s did not close within %g s", notifier.name, timeout)
            elif call.error is not None:
                logger.warning("notifier %s failed to close: %s", notifier.name, one_line(call.error))
        for lane in self.lanes:
            lane.stop(max(0.0, deadline - time.monotonic()))


# -------------------------------------------------------------------------------------- persistence


def alert_to_json(alert: Alert) -> dict[str, Any]:
    """An owed alert as saved in the ledger (enough to send it again after a restart)."""
    finding = alert.finding
    return {
        "kind": alert.kind,
        "key": list(finding.key),
        "severity": finding.severity.value,
        "message": finding.message,
        "fix": finding.fix.headline,
        "title": alert.title,
        "body": alert.body,
        "urgency": alert.urgency,
    }


def alert_from_json(document: Any) -> Alert:
    """The inverse of `alert_to_json`; ValueError names what is wrong."""
    if not isinstance(document, dict):
        raise ValueError("an owed alert is not an object")
    key = document.get("key")
    kind = document.get("kind")
    if not isinstance(key, list) or len(key) != 5 or not all(p is None or isinstance(p, str) for p in key):
        raise ValueError("an owed alert's key is not a list of 5 strings or nulls")
    if (
        kind not in ("new", "reminder", "resolved")
        or not isinstance(key[0], str)
        or not isinstance(key[1], str)
    ):
        raise ValueError("an owed alert has no valid kind, code or project")
    texts = [document.get(name) for name in ("message", "title", "body")]
    if not all(isinstance(text, str) for text in texts):
        raise ValueError("an owed alert's message, title or body is not a string")
    urgency = document.get("urgency")
    if urgency not in ("low", "normal", "critical"):
        raise ValueError("an owed alert's urgency is not low, normal or critical")
    fix = document.get("fix")
    finding = Finding(
        code=key[0],
        severity=Severity(document.get("severity", "error")),
        project=key[1],
        database=key[2],
        worktree=key[3],
        migration=key[4],
        message=str(texts[0]),
        fix=Fix(steps=(Note(fix),)) if isinstance(fix, str) else Fix(),
    )
    return Alert(
        kind=kind,
        finding=finding,
        title=printable(str(texts[1])),
        body=printable(str(texts[2])),
        urgency=urgency,
    )
