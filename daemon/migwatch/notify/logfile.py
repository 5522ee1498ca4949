"""The "log" notifier: one `key=value` line per alert on the `migwatch.alerts` logger (always on)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from migwatch.alerts import Alert, printable
from migwatch.notify.base import quote_value, register

ALERT_LOGGER = "migwatch.alerts"


def format_alert_line(alert: Alert) -> str:
    """`ALERT new code=… severity=… worktree=… migration=… from=… fix="…"`: greppable, one line."""
    finding = alert.finding
    fields: list[tuple[str, object]] = [("code", finding.code), ("severity", finding.severity.value)]
    if finding.worktree is not None:
        fields.append(("worktree", finding.worktree))
    elif finding.database is not None:
        fields.append(("database", finding.database))
    else:
        fields.append(("project", finding.project))
    if finding.migration is not None:
        fields.append(("migration", finding.migration))
    origin = _origin_branch(finding.details.get("found_in"))
    if origin:
        fields.append(("from", origin))
    if alert.kind != "resolved" and finding.fix:
        fields.append(("fix", finding.fix[0]))
    return f"ALERT {alert.kind} " + " ".join(
        f"{key}={quote_value(printable(str(value)))}" for key, value in fields
    )


def _origin_branch(found_in: object) -> str | None:
    if not isinstance(found_in, (list, tuple)):
        return None
    for place in found_in:
        if isinstance(place, Mapping):
            origin = place.get("branch") or place.get("worktree")
            if origin:
                return str(origin)
    return None


@register("log")
class LogNotifier:
    """Writes every alert to the log (the rotating log file once logging is configured)."""

    name = "log"
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
