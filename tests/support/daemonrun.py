"""The real daemon for fault tests: `python -m migwatch run` as a subprocess, with a command notifier
that reports every notification to the test over a unix socket (events, never sleeps).

`Recorder` collects what the command notifier received; `Daemon` reads the process's stderr in a
thread and waits for lines. `unprivileged=True` runs the daemon without the capabilities that let root
ignore file modes (`setpriv` drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so `chmod 000` and
read-only folders affect it as they would a normal user.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

WAIT = 20.0

NOTIFIER_SCRIPT = r"""
import json, os, socket, sys
document = json.loads(sys.stdin.buffer.read())
behaviour = os.environ.get("RECORDER_MODE_FILE")
mode = open(behaviour).read().strip() if behaviour and os.path.exists(behaviour) else "ok"
if mode == "fail":
    sys.stderr.write("recorder: told to fail\n")
    sys.exit(1)
if mode == "hang":
    with open(os.environ["RECORDER_PID_FILE"], "a") as pids:
        pids.write(f"{os.getpid()}\n")
    import time
    time.sleep(3600)
with open(os.environ["RECORDER_SOCKET"] + ".log", "a") as log:
    log.write(json.dumps(document) + "\n")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.sendto(json.dumps(document).encode(), os.environ["RECORDER_SOCKET"])
"""


class Recorder:
    """Receives each notification the command notifier got (its JSON document), in order."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.socket_path = folder / "recorder.sock"
        self.script = folder / "recorder.py"
        self.script.write_text(NOTIFIER_SCRIPT, encoding="utf-8")
        self.mode_file = folder / "mode"
        self.pid_file = folder / "pids"
        self.documents: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.socket_path))
        self._closed = False
        self._thread = threading.Thread(target=self._receive, name="recorder", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while True:
            try:
                data = self._sock.recv(1 << 20)
            except OSError:
                return
            if not data:
                if self._closed:
                    return
                continue
            try:
                document = json.loads(data)
            except ValueError:
                document = {"alert": "undecodable", "title": repr(data[:200])}
            with self._cond:
                self.documents.append(document)
                self._cond.notify_all()

    def set_mode(self, mode: str) -> None:
        """`ok`, `fail` (exit 1) or `hang` (sleeps; writes its pid)."""
        self.mode_file.write_text(mode, encoding="utf-8")

    def env(self) -> dict[str, str]:
        return {
            "RECORDER_SOCKET": str(self.socket_path),
            "RECORDER_MODE_FILE": str(self.mode_file),
            "RECORDER_PID_FILE": str(self.pid_file),
        }

    def argv(self) -> list[str]:
        return [sys.executable, str(self.script)]

    def titles(self) -> list[str]:
        with self._cond:
            return [f"{d['alert']}: {d['title']}" for d in self.documents]

    def wait_for(self, *titles: str, timeout: float = WAIT) -> list[str]:
        """Wait until every title was received (as many times as given); returns all titles so far."""

        def seen() -> bool:
            got = [f"{d['alert']}: {d['title']}" for d in self.documents]
            return all(got.count(t) >= titles.count(t) for t in titles)

        with self._cond:
            if not self._cond.wait_for(seen, timeout):
                logged = Path(f"{self.socket_path}.log")
                written = logged.read_text(encoding="utf-8") if logged.exists() else ""
                raise AssertionError(
                    f"expected {titles}, got {self.titles_unlocked()}; the script wrote:\n{written}"
                )
        return self.titles()

    def titles_unlocked(self) -> list[str]:
        return [f"{d['alert']}: {d['title']}" for d in self.documents]

    def close(self) -> None:
        """Stop the receiving thread before closing the socket: a thread still blocked in recv() on a
        closed descriptor would read from whatever socket gets that number next (the next test's)."""
        self._closed = True
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", str(self.socket_path))
        self._thread.join(5)
        self._sock.close()


class Daemon:
    """One `migwatch -v --config CFG run` process; every stderr line is collected by a thread."""

    def __init__(
        self,
        config: Path,
        env: Mapping[str, str],
        *,
        unprivileged: bool = False,
        args: Sequence[str] = (),
    ) -> None:
        argv = [sys.executable, "-m", "migwatch", "-v", "--config", str(config), "run", *args]
        if unprivileged:
            argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *argv]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=config.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",
        )
        self.lines: list[str] = []
        self.times: list[float] = []  # seconds since start, per line
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="daemon-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self.times.append(time.monotonic() - self.started)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, pattern: str, *, after: int = 0, timeout: float = WAIT) -> int:
        """Index of the first stderr line at or after `after` matching `pattern` (a regex)."""
        regex = re.compile(pattern)
        found: list[int] = []

        def seen() -> bool:
            found[:] = [i for i in range(after, len(self.lines)) if regex.search(self.lines[i])][:1]
            return bool(found) or self.proc.poll() is not None

        with self._cond:
            self._cond.wait_for(seen, timeout)
            if not found:
                found[:] = [i for i in range(after, len(self.lines)) if regex.search(self.lines[i])][:1]
        if not found:
            tail = "\n".join(self.lines[-40:])
            raise AssertionError(f"no line matching {pattern!r} within {timeout} s; last lines:\n{tail}")
        return found[0]

    def wait_count(self, pattern: str, count: int, *, timeout: float = WAIT) -> None:
        """Wait until `count` stderr lines match `pattern`."""
        regex = re.compile(pattern)

        def enough() -> bool:
            return (
                sum(1 for line in self.lines if regex.search(line)) >= count or self.proc.poll() is not None
            )

        with self._cond:
            self._cond.wait_for(enough, timeout)
            got = sum(1 for line in self.lines if regex.search(line))
        if got < count:
            tail = "\n".join(self.lines[-40:])
            raise AssertionError(f"{got} of {count} lines matching {pattern!r} within {timeout} s:\n{tail}")

    def ready(self) -> int:
        return self.wait_line(r"^migwatch: ready ")

    def matching(self, pattern: str) -> list[str]:
        with self._cond:
            return [line for line in self.lines if re.search(pattern, line)]

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds until it exited)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        elapsed = time.monotonic() - started
        self._reader.join(5)
        return code, elapsed

    def wait_exit(self, timeout: float = WAIT) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        for stream in (self.proc.stderr, self.proc.stdout):
            if stream is not None:
                stream.close()


def wait_until(condition: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    """For state that has no event to wait on (a file appearing): check every 20 ms until `timeout`."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        event.wait(0.02)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
