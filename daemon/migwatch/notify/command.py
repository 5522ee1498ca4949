"""The command notifier: runs the user's program with the finding as JSON on stdin."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from migwatch.alerts import Alert
from migwatch.notify.base import NotifierError, register
from migwatch.scrub import scrub

DEFAULT_COMMAND_TIMEOUT = 10.0


def alert_document(alert: Alert) -> dict[str, Any]:
    """What the command reads on stdin: `Finding.to_json()` plus alert kind, title, body and urgency."""
    document = alert.finding.to_json()
    document.update({"alert": alert.kind, "title": alert.title, "body": alert.body, "urgency": alert.urgency})
    if alert.count > 1:  # a grouped alert: how many findings, and their migrations
        document.update({"count": alert.count, "migrations": list(alert.migrations)})
    return document


@register("command")
class CommandNotifier:
    """Runs `argv` once per alert; a timeout kills it (and its children), a non-zero exit is an error."""

    name = "command"
    bounded = True  # send() returns or raises within its own timeout

    def __init__(self, argv: Sequence[str], timeout: float = DEFAULT_COMMAND_TIMEOUT) -> None:
        if not argv:
            raise ValueError("the command notifier needs a non-empty argv")
        self.argv = tuple(argv)
        self.timeout = timeout
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._closed = False

    def send(self, alert: Alert) -> None:
        """Run the command with the alert's JSON on stdin; raise NotifierError when it does not succeed."""
        # A name that is not valid UTF-8 (surrogate escapes) becomes a JSON `\udcff` escape, never an error.
        text = scrub(json.dumps(alert_document(alert), ensure_ascii=False, default=str))
        payload = text.encode("utf-8", "backslashreplace")
        program = self.argv[0]
        with self._lock:
            if self._closed:
                raise NotifierError(f"command {program} was not run: the daemon is stopping")
        try:
            # Own session, so a timeout can kill the whole process group (a shell script's children too).
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise NotifierError(f"command {program} could not be started: {exc.strerror or exc}") from None
        with self._lock:
            self._running.add(process)
        try:
            _, stderr = self._communicate(process, payload)
        finally:
            with self._lock:
                self._running.discard(process)
        if process.returncode != 0:
            detail = _last_line(stderr)
            if process.returncode < 0:
                status = f"was killed by signal {-process.returncode}"
            else:
                status = f"exited with code {process.returncode}"
            raise NotifierError(f"command {program} {status}" + (f": {detail}" if detail else ""))

    def _communicate(
        self, process: subprocess.Popen[bytes], payload: bytes
    ) -> tuple[bytes | None, bytes | None]:
        program = self.argv[0]
        try:
            out, stderr = process.communicate(payload, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            _reap(process)
            raise NotifierError(
                f"command {program} did not finish within {self.timeout:g} s and was killed"
            ) from None
        except BaseException:
            _kill_group(process)
            _reap(process)
            raise
        return out, stderr

    def check(self) -> str | None:
        """None when the program exists and is executable."""
        program = self.argv[0]
        if os.sep in program or (os.altsep and os.altsep in program):
            if not os.path.isfile(program):
                return f"command not found: {program}"
            if not os.access(program, os.X_OK):
                return f"command is not executable: {program}"
            return None
        return None if shutil.which(program) else f"command not found on PATH: {program}"

    def close(self) -> None:
        """Kill and reap every command still running (a hung one too): no child outlives the daemon."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        for process in running:
            _kill_group(process)
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _reap(process: subprocess.Popen[bytes]) -> None:
    # A grandchild that left the process group may still hold stderr open: do not wait on it for long.
    try:
        process.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        if process.stderr is not None:
            process.stderr.close()
        process.wait()


def _last_line(stderr: bytes | None) -> str:
    if not stderr:
        return ""
    for line in reversed(stderr.decode("utf-8", "replace").splitlines()):
        if line.strip():
            return line.strip()
    return ""
