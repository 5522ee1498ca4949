"""The desktop notifier: one asyncio loop in one daemon thread owning desktop-notifier's async API.

desktop-notifier's own `DesktopNotifierSync` hangs when used from several threads, and its `send()`
never raises (it logs "Notification failed"), so this class owns the loop, probes the server with
`get_capabilities()` and reports a notification that was not dispatched as an error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from desktop_notifier import DesktopNotifier, Notification, Urgency

from migwatch.alerts import Alert
from migwatch.notify.base import NotifierError, one_line, register

logger = logging.getLogger(__name__)

DEFAULT_DESKTOP_TIMEOUT = 5.0
NO_SESSION_BUS = "no desktop session bus (DBUS_SESSION_BUS_ADDRESS is not set)"

_URGENCIES = {"critical": Urgency.Critical, "normal": Urgency.Normal, "low": Urgency.Low}

_T = TypeVar("_T")


@register("desktop")
class DesktopNotifierThread:
    """Desktop notifications (D-Bus on Linux, Notification Center on macOS) from any thread."""

    name = "desktop"
    bounded = True  # send() returns or raises within its own timeout

    def __init__(self, app_name: str = "migwatch", timeout: float = DEFAULT_DESKTOP_TIMEOUT) -> None:
        self.timeout = timeout
        # Taken from the environment at construction. desktop-notifier has no way to be given an address:
        # dbus-fast reads this same variable when it first connects (first check() or send()).
        self.bus_address = os.environ.get("DBUS_SESSION_BUS_ADDRESS") or None
        self._needs_session_bus = sys.platform.startswith("linux")
        self._closed = False
        self._close_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._notifier = DesktopNotifier(app_name=app_name)
        self._thread = threading.Thread(target=self._run_loop, name="migwatch-desktop", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, _T], what: str) -> _T:
        if self._closed:
            coroutine.close()
            raise NotifierError("desktop notifier is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise NotifierError(
                f"desktop notification server did not answer {what} within {self.timeout:g} s"
            ) from None

    def send(self, alert: Alert) -> None:
        """Show the alert; raise NotifierError when the notification server did not take it."""
        if self._needs_session_bus and not self.bus_address:
            raise NotifierError(NO_SESSION_BUS)
        dispatched = threading.Event()
        notification = Notification(
            title=alert.title,
            message=alert.body,
            urgency=_URGENCIES[alert.urgency],
            on_dispatched=dispatched.set,
        )
        try:
            self._run(self._send(notification), "a notification")
        except NotifierError:
            raise
        except Exception as exc:
            self._release_bus(only_unusable=True)
            raise NotifierError(f"desktop notification server unreachable: {one_line(exc)}") from None
        if not dispatched.is_set():
            raise NotifierError("desktop notification server rejected the notification (details in the log)")

    async def _send(self, notification: Notification) -> None:
        # The capability probe raises with the real reason (no server, bus gone) where send() only logs.
        await self._notifier.get_capabilities()
        await self._notifier.send_notification(notification)

    def check(self) -> str | None:
        """None when a notification server answers on the session bus, else what is wrong."""
        if self._needs_session_bus and not self.bus_address:
            return NO_SESSION_BUS
        try:
            self._run(self._notifier.get_capabilities(), "a capability query")
        except NotifierError as exc:
            return str(exc)
        except Exception as exc:
            self._release_bus(only_unusable=True)
            return f"desktop notification server unreachable: {one_line(exc)}"
        return None

    def _release_bus(self, *, only_unusable: bool) -> None:
        # desktop-notifier keeps its D-Bus connection on its backend and has no API to close it. A failed
        # first contact leaves a connected bus without an interface, and each retry would open another one.
        backend: Any = getattr(self._notifier, "_backend", None)
        bus = getattr(backend, "bus", None)
        if bus is None or (only_unusable and getattr(backend, "interface", None) is not None):
            return

        async def disconnect() -> None:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.wait_for_disconnect(), 1.0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(disconnect(), self._loop).result(self.timeout)
            backend.bus = None

    def close(self) -> None:
        """Stop the loop and join its thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._release_bus(only_unusable=False)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout)
        if self._thread.is_alive():
            logger.warning("desktop notifier thread did not stop within %g s", self.timeout)
