"""A real desktop notification server, headless: Xvfb + a private D-Bus session bus + dunst (TESTING.md)."""

from __future__ import annotations

import json
import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from tests.support import leaks

logger = logging.getLogger(__name__)

NOTIFICATIONS_BUS_NAME = "org.freedesktop.Notifications"
START_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
REQUIRED_PROGRAMS = ("Xvfb", "dbus-daemon", "dbus-send", "dunst", "dunstctl", "stdbuf")

# No <servicedir>: otherwise `dunstctl` would D-Bus-activate a second dunst on this bus.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={socket_dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

# timeout = 0: notifications stay displayed until closed, so a test sees them whatever its pace.
DUNST_CONFIG = """[global]
    monitor = 0
    follow = none
    history_length = 1000
    idle_threshold = 0
    sticky_history = yes
[urgency_low]
    timeout = 0
[urgency_normal]
    timeout = 0
[urgency_critical]
    timeout = 0
"""

Notification = dict[str, str]

_PRINTED_FIELD = re.compile(r"^\t(id|urgency): (.*)$")


class NotificationServerError(RuntimeError):
    """The headless notification server could not be started or queried."""


def _read_line(stream: IO[bytes], deadline: float, what: str) -> str:
    """One line from a pipe, waiting at most until `deadline` (monotonic)."""
    collected = b""
    while not collected.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotificationServerError(f"timed out waiting for {what}")
        readable, _, _ = select.select([stream], [], [], remaining)
        if readable:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                raise NotificationServerError(f"{what}: the process closed its output ({collected!r})")
            collected += chunk
    return collected.decode("utf-8", "replace").strip()


class NotificationServer:
    """dunst on a private session bus and a virtual X display; read back what it showed."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.env: dict[str, str] = {}
        self.print_log = base_dir / "dunst-print.log"
        self._processes: list[subprocess.Popen[bytes]] = []
        self._log_files: list[IO[bytes]] = []
        self._bus_stdout: IO[bytes] | None = None
        self._dunst: subprocess.Popen[bytes] | None = None
        self._cleared_through = 0

    @classmethod
    def start(cls) -> NotificationServer:
        """Start Xvfb, dbus-daemon and dunst; return when dunst owns org.freedesktop.Notifications."""
        missing = [program for program in REQUIRED_PROGRAMS if shutil.which(program) is None]
        if missing:
            raise NotificationServerError(
                f"missing programs for the notification server: {', '.join(missing)}: "
                "run `bash tools/system-deps.sh` as root to install xvfb, dbus and dunst"
            )
        # Short path: unix socket paths are limited to 108 bytes.
        server = cls(Path(tempfile.mkdtemp(prefix="migwatch-notify-")))
        try:
            server._start_processes()
        except BaseException:
            server.shutdown()
            raise
        return server

    def _spawn(self, argv: list[str], name: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        log = (self.base_dir / f"{name}.log").open("ab")
        self._log_files.append(log)
        options: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": log}
        options.update(kwargs)
        # A session of its own: a Ctrl-C in the terminal reaches pytest, which then shuts these down.
        process = subprocess.Popen(argv, start_new_session=True, **options)
        self._processes.append(process)
        leaks.ignore_process(process.pid)
        return process

    def _start_processes(self) -> None:
        started = time.monotonic()
        deadline = started + START_TIMEOUT
        read_end, write_end = os.pipe()
        with os.fdopen(read_end, "rb") as display_pipe:
            try:
                self._spawn(
                    ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp"], "xvfb", pass_fds=(write_end,)
                )
            finally:
                os.close(write_end)  # else the read below would never see Xvfb's end of file
            display = _read_line(display_pipe, deadline, "Xvfb's display number")
        self.env["DISPLAY"] = f":{display}"

        bus_config = self.base_dir / "session-bus.conf"
        bus_config.write_text(BUS_CONFIG.format(socket_dir=self.base_dir), encoding="utf-8")
        bus = self._spawn(
            ["dbus-daemon", "--print-address", "--nofork", f"--config-file={bus_config}"],
            "dbus-daemon",
            stdout=subprocess.PIPE,
        )
        assert bus.stdout is not None
        self._bus_stdout = bus.stdout
        self.env["DBUS_SESSION_BUS_ADDRESS"] = _read_line(bus.stdout, deadline, "dbus-daemon's address")

        self.start_dunst(deadline)
        logger.debug("notification server up in %.2f s: %s", time.monotonic() - started, self.env)

    def start_dunst(self, deadline: float | None = None) -> None:
        """Start dunst on the bus; return when it owns org.freedesktop.Notifications."""
        deadline = deadline if deadline is not None else time.monotonic() + START_TIMEOUT
        dunst_config = self.base_dir / "dunstrc"
        dunst_config.write_text(DUNST_CONFIG, encoding="utf-8")
        # -print writes every notification with its urgency, which `dunstctl history` of dunst 1.9 lacks;
        # stdbuf makes that output line-buffered so it is on disk when the Notify call returns.
        # A (re)started dunst numbers its notifications from 1 again and has an empty history: forget
        # what the previous one printed and which of its ids were cleared, or every new notification
        # would be taken for an old one.
        print_log = self.print_log.open("wb")
        self._log_files.append(print_log)
        self._cleared_through = 0
        self._dunst = dunst = self._spawn(
            ["stdbuf", "-oL", "dunst", "-config", str(dunst_config), "-print"],
            "dunst",
            stdout=print_log,
            env=self.environ(),
        )
        while not self._bus_name_has_owner():
            if dunst.poll() is not None:
                raise NotificationServerError(
                    f"dunst exited with {dunst.returncode}: {self._log_tail('dunst')}"
                )
            if time.monotonic() > deadline:
                raise NotificationServerError(
                    f"dunst did not take {NOTIFICATIONS_BUS_NAME} within {START_TIMEOUT} s"
                )
            time.sleep(POLL_INTERVAL / 2)

    def stop_dunst(self) -> None:
        """Stop dunst (the bus stays): a desktop with no notification server, until `start_dunst`."""
        dunst = self._dunst
        if dunst is not None and dunst.poll() is None:
            dunst.terminate()
            dunst.wait(timeout=5)
        while self._bus_name_has_owner():
            time.sleep(POLL_INTERVAL / 2)

    def _log_tail(self, name: str) -> str:
        path = self.base_dir / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return " | ".join(lines[-5:]) or "(no output)"

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) with this server's DISPLAY and DBUS_SESSION_BUS_ADDRESS."""
        return {**(base if base is not None else os.environ), **self.env}

    def _run(self, *argv: str) -> str:
        completed = subprocess.run(
            list(argv),
            env=self.environ(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if completed.returncode != 0:
            raise NotificationServerError(
                f"{' '.join(argv)} failed (exit {completed.returncode}): {completed.stderr.strip()}"
            )
        return completed.stdout

    def _bus_name_has_owner(self) -> bool:
        reply = self._run(
            "dbus-send",
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            f"string:{NOTIFICATIONS_BUS_NAME}",
        )
        return "boolean true" in reply

    # -- what a person would see ---------------------------------------------------------------------------

    def displayed_count(self) -> int:
        """`dunstctl count displayed`: notifications on screen now."""
        return int(self._run("dunstctl", "count", "displayed").strip())

    def _printed_urgencies(self) -> dict[int, str]:
        urgencies: dict[int, str] = {}
        urgency = "unknown"
        for line in self.print_log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line == "{":
                urgency = "unknown"
            match = _PRINTED_FIELD.match(line)
            if match and match.group(1) == "urgency":
                urgency = match.group(2).strip().lower()
            elif match:
                urgencies[int(match.group(2))] = urgency
        return urgencies

    def history(self) -> list[Notification]:
        """Every notification since the last `clear()`, oldest first: summary, body, urgency, appname.

        Closes the displayed ones first (`dunstctl history` lists closed notifications only).
        """
        self._run("dunstctl", "close-all")
        document = json.loads(self._run("dunstctl", "history"))
        entries: list[dict[str, Any]] = document["data"][0] if document["data"] else []
        urgencies: dict[int, str] | None = None
        notifications: list[tuple[int, Notification]] = []
        for entry in entries:
            fields = {key: value["data"] for key, value in entry.items()}
            notification_id = int(fields["id"])
            if notification_id <= self._cleared_through:
                continue
            urgency = fields.get("urgency")
            if urgency is None:  # dunst < 1.10 does not put the urgency in its history
                urgencies = urgencies if urgencies is not None else self._printed_urgencies()
                urgency = urgencies.get(notification_id, "unknown")
            notifications.append(
                (
                    notification_id,
                    {
                        "summary": str(fields.get("summary", "")),
                        "body": str(fields.get("body", "")),
                        "urgency": str(urgency).lower(),
                        "appname": str(fields.get("appname", "")),
                    },
                )
            )
        return [notification for _, notification in sorted(notifications, key=lambda pair: pair[0])]

    def clear(self) -> None:
        """Close everything and forget the history seen so far (dunst 1.9 has no `history-clear`)."""
        self._run("dunstctl", "close-all")
        document = json.loads(self._run("dunstctl", "history"))
        entries: list[dict[str, Any]] = document["data"][0] if document["data"] else []
        ids = [int(entry["id"]["data"]) for entry in entries]
        self._cleared_through = max([self._cleared_through, *ids])

    def wait_for(
        self, predicate: Callable[[list[Notification]], bool], timeout: float = 5.0
    ) -> list[Notification]:
        """Poll `history()` every 50 ms until `predicate(history)` holds; returns that history.

        Raises AssertionError with the last history seen when `timeout` passes.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.history()
            if predicate(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching notifications within {timeout} s; history: {seen}")
            time.sleep(POLL_INTERVAL)

    def wait_for_displayed(self, count: int, timeout: float = 5.0) -> None:
        """Poll `dunstctl count displayed` until it equals `count` (without closing anything)."""
        deadline = time.monotonic() + timeout
        while True:
            displayed = self.displayed_count()
            if displayed == count:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{displayed} notifications displayed after {timeout} s, expected {count}"
                )
            time.sleep(POLL_INTERVAL)

    # -- shutdown ------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop dunst, the bus and Xvfb (newest first) and delete the temp dir; safe to call twice."""
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            leaks.unignore_process(process.pid)
        self._processes.clear()
        if self._bus_stdout is not None:
            self._bus_stdout.close()
            self._bus_stdout = None
        for log in self._log_files:
            log.close()
        self._log_files.clear()
        shutil.rmtree(self.base_dir, ignore_errors=True)
