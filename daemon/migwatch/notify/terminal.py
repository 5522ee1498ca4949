"""The terminal notifier: a readable block per alert on a text stream (the demo's output)."""

from __future__ import annotations

import threading
from typing import TextIO

from migwatch.alerts import Alert
from migwatch.notify.base import register

_RESET = "\033[0m"
_COLOURS = {"error": "\033[1;31m", "warning": "\033[1;33m", "info": "\033[1;34m", "resolved": "\033[1;32m"}


def format_alert_block(alert: Alert, *, colour: bool = False) -> str:
    """`🔔 [ERROR] <title>` (or `✅ <title>` when resolved), then the body lines indented by 4 spaces."""
    severity = alert.finding.severity.value
    if alert.kind == "resolved":
        head = _paint("✅", "resolved", colour) + f" {alert.title}"
    else:
        label = _paint(f"[{severity.upper()}]", severity, colour)
        suffix = " (reminder)" if alert.kind == "reminder" else ""
        head = f"🔔 {label} {alert.title}{suffix}"
    lines = [head] + [f"    {line}" for line in alert.body.splitlines() if line.strip()]
    return "\n".join(lines) + "\n"


def _paint(text: str, style: str, colour: bool) -> str:
    return f"{_COLOURS[style]}{text}{_RESET}" if colour else text


@register("terminal")
class TerminalNotifier:
    """Writes alerts to a text stream; colour only when the stream is a terminal."""

    name = "terminal"

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()  # the dispatcher may call from several worker threads

    def send(self, alert: Alert) -> None:
        """Write the alert's block and flush."""
        colour = _is_tty(self._stream)
        with self._lock:
            self._stream.write(format_alert_block(alert, colour=colour))
            self._stream.flush()

    def check(self) -> str | None:
        """Healthy while the stream is open."""
        return "terminal stream is closed" if self._stream.closed else None

    def close(self) -> None:
        """The stream belongs to the caller: nothing to release."""


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
