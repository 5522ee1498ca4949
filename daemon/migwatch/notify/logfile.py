"""The "log" notifier: one `key=value` line per alert on the `migwatch.alerts` logger (always on)."""

from __future__ import annotations

import logging

from migwatch.alerts import Alert
from migwatch.logsetup import key_values
from migwatch.notify.base import register

ALERT_LOGGER = "migwatch.alerts"


def format_alert_line(alert: Alert) -> str:
    """`ALERT new code=… severity=… worktree=… migration=… from=… fix="…"`: greppable, one line."""
    finding = alert.finding
    if finding.worktree is not None:
        where = ("worktree", finding.worktree)
    elif finding.database is not None:
        where = ("database", finding.database)
    else:
        where = ("project", finding.project)
    origin = finding.origin
    fields: list[tuple[str, object]] = [
        ("code", finding.code),
        ("severity", finding.severity.value),
        where,
        ("migration", finding.migration),
        ("from", (origin.branch or origin.worktree) if origin else None),
        ("fix", finding.fix.headline if alert.kind != "resolved" else None),
    ]
    return f"ALERT {alert.kind} {key_values(fields)}"


@register("log")
class LogNotifier:
    """Writes every alert to the log (the rotating log file once logging is configured)."""

    name = "log"
    bounded = True  # send() returns or raises within its own timeout
    groups_alerts = False  # the log keeps one line per finding, also in a burst

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger(ALERT_LOGGER)

    def send(self, alert: Alert) -> None:
        """Log one line for the alert."""
        self._logger.info(format_alert_line(alert))

    def check(self) -> str | None:
        """Always healthy: logging cannot fail in a way the user could fix here."""
        return None

    def close(self) -> None:
        """Nothing to release."""
