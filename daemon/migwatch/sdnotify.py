"""systemd's notify protocol (Type=notify): READY=1, WATCHDOG=1, STOPPING=1 as datagrams to $NOTIFY_SOCKET.

Stdlib only. An address starting with `@` is in the abstract namespace. Outside systemd (no
NOTIFY_SOCKET) every call is a no-op that returns False.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends state lines to the service manager, if there is one."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send `KEY=value` lines as one datagram; False when there is no socket or sending failed."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(target)
                sock.sendall("\n".join(lines).encode("utf-8"))
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1 (and a STATUS= line for `systemctl status`)."""
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: the keep-alive ping."""
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        """STOPPING=1: the service is shutting down."""
        return self.send("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WATCHDOG_USEC), or None when no watchdog is asked for."""
        if self.address is None or not self._watchdog_usec:
            return None
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None  # the watchdog is meant for another process
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 2 / 1_000_000 if usec > 0 else None


class WatchdogPinger:
    """Sends WATCHDOG=1 every `interval` seconds from its own thread until stopped."""

    def __init__(self, notifier: SystemdNotifier, interval: float) -> None:
        self._notifier = notifier
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="migwatch-sd-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        self._notifier.watchdog()
        while not self._stop.wait(self._interval):
            self._notifier.watchdog()
