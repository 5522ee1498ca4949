"""The daemon (`migwatch run`) as a user runs it: file change → notification, database change →
notification, and its cost when nothing happens. Alerts are timed with the `command` notifier: a tiny
script that appends its start time (CLOCK_MONOTONIC, shared by all processes) and the finding's code."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.support.prisma_rows import insert_row

from benchlib import MIGWATCH, BenchError, BenchResult, Goal, log, median, percentile
from setup_worktrees import BenchProject, World

POLL_INTERVAL_S = 2.0
DEBOUNCE_S = 0.25
FILE_P50_GOAL_S = 0.5
FILE_P95_GOAL_S = 1.0
DB_SLACK_S = 0.5
IDLE_CPU_GOAL_PERCENT = 0.5
IDLE_RSS_GOAL_MB = 60.0
NOTIFICATION_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# The daemon's log line once the first full check is done and every watch is in place.
READY_LINE = re.compile(r" INFO ready ")

# Started for every alert: the timestamp is taken first, so it is when the notifier fired.
NOTIFIER_SCRIPT = """import json, sys, time
stamp = time.monotonic()
alert = json.load(sys.stdin)
record = {key: alert.get(key) for key in ("code", "alert", "migration", "worktree")}
record["t"] = stamp
with open(sys.argv[1], "a", encoding="utf-8") as out:
    out.write(json.dumps(record) + "\\n")
"""

Record = dict[str, Any]

# What one database round trip per poll interval costs by itself on this machine: a process that does
# nothing but `SELECT 1` on its own connection every POLL_INTERVAL_S (on a virtual machine, waking another
# process after idling can be charged tens of milliseconds of CPU, whatever the client does).
REFERENCE_POLLER = (
    "import sys, time, psycopg\n"
    "conn = psycopg.connect(sys.argv[1], autocommit=True)\n"
    "while True:\n"
    "    conn.execute('SELECT 1').fetchone()\n"
    "    time.sleep(float(sys.argv[2]))\n"
)


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """utime + stime of a running process (and of its reaped children), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14–17.
    ticks = sum(int(value) for value in fields[11 : 15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def daemon_unavailable() -> str | None:
    """Why `migwatch run` cannot be benchmarked, or None."""
    if importlib.util.find_spec("migwatch.daemon") is None:
        return "migwatch run not available (no migwatch.daemon module yet)"
    return None


class NotificationLog:
    """The lines the notifier script appended, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[Record] = []
        self._offset = 0

    def refresh(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode("utf-8").splitlines():
            self.records.append(json.loads(line))


class Daemon:
    """`migwatch --config C run` in its own state dir and HOME, stopped with SIGTERM."""

    def __init__(self, project: BenchProject, directory: Path, *, extra_config: str = "") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        script = directory / "notifier.py"
        script.write_text(NOTIFIER_SCRIPT, encoding="utf-8")
        self.notifications = NotificationLog(directory / "notifications.jsonl")
        # -I -S: the notifier's own start-up is part of every measured latency, so keep it small.
        notifier = [sys.executable, "-I", "-S", str(script), str(self.notifications.path)]
        self.log_file = directory / "migwatch.log"
        self.config = directory / "config.yaml"
        self.config.write_text(
            project.config_text(
                command_argv=notifier,
                extra=(
                    f"poll_interval: {POLL_INTERVAL_S:g}s\n"
                    f"debounce: {int(DEBOUNCE_S * 1000)}ms\n"
                    "notify_resolved: true\n"
                    f"log: {{file: {json.dumps(str(self.log_file))}, level: info}}\n" + extra_config
                ),
            ),
            encoding="utf-8",
        )
        home = directory / "home"
        env = project.user_env()
        for variable in (
            "DBUS_SESSION_BUS_ADDRESS",
            "DISPLAY",
            "WAYLAND_DISPLAY",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
        ):
            env.pop(variable, None)
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_STATE_HOME=str(home / ".local" / "state"),
            XDG_CACHE_HOME=str(home / ".cache"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            MIGWATCH_STATE_DIR=str(directory / "state"),
        )
        self.env = env
        self.argv = [str(MIGWATCH), "--config", str(self.config), "run"]
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.ready_s = 0.0

    def start(self) -> None:
        with (
            (self.directory / "stdout.txt").open("wb") as out,
            (self.directory / "stderr.txt").open("wb") as err,
        ):
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError("the daemon was not started")
        return self.process.pid

    def ensure_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BenchError(f"migwatch run exited with code {self.process.returncode}: {self._last_words()}")

    def _last_words(self) -> str:
        for name in ("stderr.txt", "stdout.txt"):
            text = (self.directory / name).read_text(encoding="utf-8", errors="replace").strip()
            if text:
                return text.splitlines()[-1]
        if self.log_file.is_file():
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            if lines:
                return lines[-1]
        return "no output"

    def stop(self) -> float:
        """SIGTERM, then SIGKILL after 5 s; returns how long the clean exit took."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        begun = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            log(f"migwatch run did not exit within {STOP_TIMEOUT_S:g} s of SIGTERM and was killed")
        return time.monotonic() - begun

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Until the daemon logs `ready` (its first full check is done and its watches are in place);
        returns the seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_file.is_file() and READY_LINE.search(
                self.log_file.read_text(encoding="utf-8", errors="replace")
            ):
                return time.monotonic() - self.started
            self.ensure_alive()
            time.sleep(0.01)
        raise BenchError(f"migwatch run did not log 'ready' within {timeout:g} s of start ({self.log_file})")

    def wait_for(self, matches: Callable[[Record], bool], timeout: float, *, since: int = 0) -> Record | None:
        """The first notification (from index `since`) that `matches`, or None after `timeout` s."""
        deadline = time.monotonic() + timeout
        checked = since
        while True:
            self.notifications.refresh()
            for record in self.notifications.records[checked:]:
                if matches(record):
                    return record
            checked = max(checked, len(self.notifications.records))
            self.ensure_alive()
            if time.monotonic() >= deadline:
                return None
            # Polling the notifier's file only decides when we look; the latency is its own timestamp.
            time.sleep(0.005)

    def wait_quiet(self, quiet: float, timeout: float) -> None:
        """Until no notification arrived for `quiet` s (the notifier runs alerts one after another)."""
        deadline = time.monotonic() + timeout
        seen, last_change = len(self.notifications.records), time.monotonic()
        while time.monotonic() < deadline:
            self.notifications.refresh()
            if len(self.notifications.records) != seen:
                seen, last_change = len(self.notifications.records), time.monotonic()
            elif time.monotonic() - last_change >= quiet:
                return
            self.ensure_alive()
            time.sleep(0.01)

    def cpu_seconds(self) -> float:
        """utime + stime of the daemon and its reaped children (git, notifier), from /proc/<pid>/stat."""
        return cpu_seconds(self.pid)

    def memory_mb(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (peak) of the daemon, in MB."""
        values: dict[str, float] = {}
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    number = float(rest.split()[0])
                    values[key] = number if key == "Threads" else number / 1024.0
        return values


@contextlib.contextmanager
def running_daemon(project: BenchProject, directory: Path) -> Iterator[Daemon]:
    daemon = Daemon(project, directory)
    daemon.start()
    try:
        daemon.ready_s = daemon.wait_ready()
        yield daemon
    finally:
        stopped_in = daemon.stop()
        log(f"migwatch run stopped {stopped_in:.2f} s after SIGTERM")


def _project(world: World) -> BenchProject:
    return world.project(10, 200) if not world.quick else world.project(3, 20)


def _command(daemon: Daemon) -> str:
    return shlex.join(daemon.argv) + f"  (MIGWATCH_STATE_DIR={daemon.env['MIGWATCH_STATE_DIR']})"


def _write(path: Path, content: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(content)


@dataclass(frozen=True)
class _Edit:
    path: Path
    migration: str
    original: bytes

    def edited(self, number: int) -> bytes:
        return self.original + f"\n-- edited by the benchmark ({number})\n".encode()

    def is_alert(self, kind: str) -> Callable[[Record], bool]:
        return lambda r: (
            r["code"] == "checksum_mismatch" and r["alert"] == kind and r["migration"] == self.migration
        )


def bench_file_change(world: World, result: BenchResult) -> None:
    """Benchmark 4a: edit an applied migration.sql / restore it, time until the alert's notifier runs."""
    missing = daemon_unavailable()
    if missing:
        result.status, result.reason = "skipped", missing
        return
    project = _project(world)
    changes = 60 if not world.quick else 6
    worktree = project.worktrees[-1]
    migration = project.migrations[len(project.migrations) // 2]
    edit = _Edit(
        project.sql_path(worktree, migration), migration, project.sql_path(worktree, migration).read_bytes()
    )
    latencies: dict[str, list[float]] = {"new": [], "resolved": []}
    try:
        with running_daemon(project, world.work_dir / "daemon-file") as daemon:
            result.command = _command(daemon)
            _warm_up(daemon, edit)
            result.details["daemon_ready_s"] = round(daemon.ready_s, 3)
            log(f"daemon ready {daemon.ready_s:.2f} s after start; measuring {changes} changes")
            for number in range(changes):
                kind = "new" if number % 2 == 0 else "resolved"
                content = edit.edited(number) if kind == "new" else edit.original
                since = len(daemon.notifications.records)
                written_at = time.monotonic()
                _write(edit.path, content)
                record = daemon.wait_for(edit.is_alert(kind), NOTIFICATION_TIMEOUT_S, since=since)
                if record is None:
                    raise BenchError(
                        f"no checksum_mismatch {kind} alert within {NOTIFICATION_TIMEOUT_S:g} s of change "
                        f"#{number} to {edit.path}"
                    )
                latencies[kind].append(record["t"] - written_at)
                # Each write starts from a settled daemon, as a person's edits would.
                daemon.wait_quiet(0.3, 5.0)
    finally:
        _write(edit.path, edit.original)
    every = latencies["new"] + latencies["resolved"]
    result.add("p50", median(every), "s", Goal("<=", FILE_P50_GOAL_S))
    result.add("p95", percentile(every, 0.95), "s", Goal("<=", FILE_P95_GOAL_S))
    result.add("max", max(every), "s")
    result.details.update(
        changes=len(every),
        debounce_s=DEBOUNCE_S,
        worktrees=len(project.worktrees),
        migrations=len(project.migrations),
        edited=str(edit.path.relative_to(project.root)),
        p50_new_s=round(median(latencies["new"]), 4),
        p50_resolved_s=round(median(latencies["resolved"]), 4),
        latencies_s=[round(v, 4) for v in every],
        measured="from just before the write of migration.sql to the start of the command notifier",
    )


def _warm_up(daemon: Daemon, edit: _Edit) -> None:
    """One untimed edit/restore cycle, so the first timed change does not pay for first-use costs."""
    _write(edit.path, edit.edited(-1))
    if daemon.wait_for(edit.is_alert("new"), 30.0) is None:
        raise BenchError(f"migwatch run sent no checksum_mismatch alert within 30 s of editing {edit.path}")
    daemon.wait_quiet(0.5, 10.0)
    since = len(daemon.notifications.records)
    _write(edit.path, edit.original)
    if daemon.wait_for(edit.is_alert("resolved"), 30.0, since=since) is None:
        raise BenchError(f"migwatch run sent no resolved alert within 30 s of restoring {edit.path}")
    daemon.wait_quiet(0.5, 10.0)


def bench_db_change(world: World, result: BenchResult) -> None:
    """Benchmark 4b: a row for a migration no folder has (→ behind_database) until the first alert."""
    missing = daemon_unavailable()
    if missing:
        result.status, result.reason = "skipped", missing
        return
    project = _project(world)
    samples = 10 if not world.quick else 3
    rng = random.Random(20260101)
    latencies: list[float] = []
    resolved: list[float] = []
    alerts_per_change: list[int] = []
    with world.server.admin_connect(project.database) as conn:
        inserted: list[str] = []

        def apply(name: str) -> None:
            inserted.append(name)
            insert_row(
                conn,
                "postgresql",
                checksum="0" * 64,
                migration_name=name,
                finished_at=datetime.now(timezone.utc),
                applied_steps_count=1,
            )

        def unapply(name: str) -> None:
            conn.execute('DELETE FROM "_prisma_migrations" WHERE migration_name = %s', (name,))

        def alert(kind: str, name: str) -> Callable[[Record], bool]:
            return lambda r: r["code"] == "behind_database" and r["alert"] == kind and r["migration"] == name

        try:
            with running_daemon(project, world.work_dir / "daemon-db") as daemon:
                result.command = _command(daemon)
                name = "29990101000000_bench_db_only_warmup"
                apply(name)
                if daemon.wait_for(alert("new", name), 90.0) is None:
                    raise BenchError("migwatch run sent no behind_database alert within 90 s of start")
                daemon.wait_quiet(0.5, 10.0)
                since = len(daemon.notifications.records)
                unapply(name)
                if daemon.wait_for(alert("resolved", name), 30.0, since=since) is None:
                    raise BenchError("migwatch run sent no resolved alert after the DB-only row was deleted")
                daemon.wait_quiet(0.5, 10.0)
                result.details["daemon_ready_s"] = round(daemon.ready_s, 3)
                log(f"daemon ready {daemon.ready_s:.2f} s after start; measuring {samples} database changes")
                for number in range(samples):
                    # A random phase against the poll timer, as a real `migrate deploy` elsewhere would have.
                    time.sleep(rng.uniform(0.0, POLL_INTERVAL_S))
                    name = f"2999010101{number:04d}_bench_db_only_{number}"
                    since = len(daemon.notifications.records)
                    changed_at = time.monotonic()
                    apply(name)
                    record = daemon.wait_for(
                        alert("new", name), POLL_INTERVAL_S + NOTIFICATION_TIMEOUT_S, since=since
                    )
                    if record is None:
                        raise BenchError(
                            f"no behind_database alert for {name} within {POLL_INTERVAL_S + NOTIFICATION_TIMEOUT_S:g} s"
                        )
                    latencies.append(record["t"] - changed_at)
                    daemon.wait_quiet(0.5, 10.0)
                    alerts_per_change.append(
                        sum(1 for r in daemon.notifications.records[since:] if alert("new", name)(r))
                    )
                    time.sleep(rng.uniform(0.0, POLL_INTERVAL_S))
                    since = len(daemon.notifications.records)
                    changed_at = time.monotonic()
                    unapply(name)
                    record = daemon.wait_for(
                        alert("resolved", name), POLL_INTERVAL_S + NOTIFICATION_TIMEOUT_S, since=since
                    )
                    if record is None:
                        raise BenchError(
                            f"no resolved alert for {name} within {POLL_INTERVAL_S + NOTIFICATION_TIMEOUT_S:g} s"
                        )
                    resolved.append(record["t"] - changed_at)
                    daemon.wait_quiet(0.5, 10.0)
        finally:
            for name in inserted:
                unapply(name)
    goal = Goal("<=", POLL_INTERVAL_S + DB_SLACK_S)
    result.add("p50", median(latencies), "s")
    result.add("p95", percentile(latencies, 0.95), "s")
    result.add("max", max(latencies), "s", goal)
    result.add("resolved_p50", median(resolved), "s")
    result.add("resolved_max", max(resolved), "s", goal)
    result.details.update(
        samples=len(latencies),
        poll_interval_s=POLL_INTERVAL_S,
        worktrees=len(project.worktrees),
        alerts_per_change=sorted(set(alerts_per_change)),
        latencies_s=[round(v, 4) for v in latencies],
        resolved_latencies_s=[round(v, 4) for v in resolved],
        measured=(
            "from just before the INSERT (autocommit) of a row for a migration no worktree has, to the start "
            "of the command notifier for the first behind_database alert; then the same for its DELETE"
        ),
    )


def bench_idle(world: World, result: BenchResult) -> None:
    """Benchmark 4c: CPU (% of one core) and RSS of a daemon watching 10 worktrees that nothing changes."""
    missing = daemon_unavailable()
    if missing:
        result.status, result.reason = "skipped", missing
        return
    project = _project(world)
    settle, window = (5.0, 60.0) if not world.quick else (2.0, 10.0)
    with running_daemon(project, world.work_dir / "daemon-idle") as daemon:
        result.command = _command(daemon)
        # After `ready`, let start-up work (thread pools, first polls) die down; nothing changes afterwards.
        result.details["daemon_ready_s"] = round(daemon.ready_s, 3)
        time.sleep(settle)
        daemon.ensure_alive()
        reference = subprocess.Popen(
            [sys.executable, "-c", REFERENCE_POLLER, project.url.split("?", 1)[0], str(POLL_INTERVAL_S)],
            stdout=subprocess.DEVNULL,
        )
        cpu_before, begun = daemon.cpu_seconds(), time.monotonic()
        reference_before = cpu_seconds(reference.pid, children=False)
        time.sleep(window)
        daemon.ensure_alive()
        cpu_after, ended = daemon.cpu_seconds(), time.monotonic()
        reference_cpu = cpu_seconds(reference.pid, children=False) - reference_before
        reference.kill()
        reference.wait()
        memory = daemon.memory_mb()
        daemon.notifications.refresh()
        alerts = len(daemon.notifications.records)
    cpu_percent = 100.0 * (cpu_after - cpu_before) / (ended - begun)
    reference_percent = 100.0 * reference_cpu / (ended - begun)
    result.add("cpu", cpu_percent, "%", Goal("<=", IDLE_CPU_GOAL_PERCENT))
    result.add("rss", memory["VmRSS"], "MB", Goal("<=", IDLE_RSS_GOAL_MB))
    result.add("rss_peak", memory["VmHWM"], "MB")
    result.add("reference_select_1_poller", reference_percent, "%")
    result.details.update(
        reference=(
            f"a Python process doing nothing but `SELECT 1` on its own connection every {POLL_INTERVAL_S:g} s, "
            "measured over the same window: what the polling round trip alone costs on this machine"
        ),
        worktrees=len(project.worktrees),
        migrations=len(project.migrations),
        poll_interval_s=POLL_INTERVAL_S,
        settle_s=settle,
        window_s=round(ended - begun, 1),
        cpu_seconds=round(cpu_after - cpu_before, 3),
        threads=int(memory.get("Threads", 0)),
        alerts_sent=alerts,
        measured=(
            "utime+stime (+ reaped children) of the daemon from /proc/<pid>/stat over the window, as % of "
            "one core; VmRSS at the end; PostgreSQL's own cost for the polls is not included"
        ),
    )
