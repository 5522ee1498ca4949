"""`migwatch run` end to end: the daemon as a subprocess against real git worktrees, a real PostgreSQL
server and a real notification server (dunst); plus the `Daemon` class in-process under a leak check.

Every wait is on an event with a timeout: a line on the daemon's stderr (read by a thread), a
notification in dunst's history, or the in-process daemon's own notifier.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from migwatch.alerts import Alert
from migwatch.config import ConfigError, load_config
from migwatch.daemon import Daemon as InProcessDaemon
from migwatch.process import LockError, StateLock
from migwatch.sdnotify import SystemdNotifier
from tests.support.daemonrun import Daemon
from tests.support.gitrepo import SEED_BEHAVIORAL, PrismaRepo, seed_migrations
from tests.support.notifyserver import Notification, NotificationServer
from tests.support.pg import PgDatabase, PgServer
from tests.support.prisma_rows import apply_like_prisma, create_history_table

EPIC5_BRANCH = "feature/epic-5-behavioral-twin"
INIT = "20251001000000_init"
WAIT = 15.0
# SIGTERM to exit: a bound that only catches a hang; the 2 s goal is the `shutdown` benchmark's.
STOP_HANG_S = 6.0


# ------------------------------------------------------------------------------------------------ helpers


class DaemonProcess(Daemon):
    """`python -m migwatch -v --config CFG run ARGS…` with its stderr (every log line, with -v) read by a
    thread (tests/support/daemonrun.py)."""

    def __init__(self, config: Path, env: dict[str, str], *args: str) -> None:
        super().__init__(config, env, args=args)

    def count(self, pattern: str) -> int:
        return len(self.matching(pattern))


class Story:
    """The seed story on PostgreSQL: Americano (main) + epic3 + epic5 sharing one database."""

    def __init__(self, tmp_path: Path, database: PgDatabase, *, desktop: bool = True) -> None:
        self.tmp_path = tmp_path
        self.database = database
        self.repo = PrismaRepo.seed_story(tmp_path / "projects", "postgresql", database_url=database.url)
        with database.connect() as conn:
            create_history_table(conn, "postgresql")
            for name in sorted(
                p.name for p in self.repo.migrations_path(self.repo.main).iterdir() if p.is_dir()
            ):
                apply_like_prisma(
                    conn, self.repo.migrations_path(self.repo.main) / name, provider="postgresql"
                )
        self.state_dir = tmp_path / "state"
        self.log_file = tmp_path / "log" / "migwatch.log"
        self.config = tmp_path / "config.yaml"
        self.config.write_text(
            f"projects:\n  - repo: {self.repo.main}\n"
            "poll_interval: 500ms\ndebounce: 100ms\n"
            f"notifiers:\n  desktop: {{enabled: {str(desktop).lower()}}}\n"
            f"log: {{file: {self.log_file}, level: info}}\n",
            encoding="utf-8",
        )
        self.env = dict(os.environ, MIGWATCH_STATE_DIR=str(self.state_dir))
        self.processes: list[DaemonProcess] = []

    @property
    def db_name(self) -> str:
        return self.database.name

    def start(self, *args: str) -> DaemonProcess:
        process = DaemonProcess(self.config, self.env, *args)
        self.processes.append(process)
        return process

    def apply_behavioral_from_epic5(self) -> Path:
        """epic-5 writes 20251016231054_add_story_5_1_behavioral_pattern_models and applies it. The folder
        is renamed into place right after the row is committed, so no check sees the folder without its
        row (a real `migrate dev` has that instant; here it would make the notifications timing-bound)."""
        staging = self.tmp_path / "staging" / SEED_BEHAVIORAL
        staging.mkdir(parents=True)
        (staging / "migration.sql").write_text(
            seed_migrations("postgresql")[SEED_BEHAVIORAL], encoding="utf-8"
        )
        with self.database.connect() as conn:
            apply_like_prisma(conn, staging, provider="postgresql")
            folder = self.repo.migrations_path(self.repo.epic5) / SEED_BEHAVIORAL
            staging.rename(folder)
        return folder

    def log_lines(self) -> list[str]:
        return self.log_file.read_text(encoding="utf-8").splitlines()

    def close(self) -> None:
        for process in self.processes:
            process.close()


@pytest.fixture
def story(
    tmp_path: Path, pg_database: PgDatabase, git_env: dict[str, str], notifications: NotificationServer
) -> Iterator[Story]:
    seeded = Story(tmp_path, pg_database)
    yield seeded
    seeded.close()


def summaries(history: list[Notification]) -> list[str]:
    return [n["summary"] for n in history]


def has(summary: str, count: int = 1) -> Any:
    return lambda history: summaries(history).count(summary) >= count


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) \S+")


# --------------------------------------------------------------------------------------------- end to end


def test_behind_and_checksum_alerts_reach_the_desktop_and_survive_a_restart(
    story: Story, notifications: NotificationServer
) -> None:
    repo = story.repo
    daemon = story.start()
    ready = daemon.wait_line(r"migwatch: ready projects=1 worktrees=3 databases=1 ")
    assert notifications.history() == []  # the seed story starts clean

    # a) epic-5 writes and applies a migration: Americano-epic3 and Americano (main) are now behind.
    story.apply_behavioral_from_epic5()
    seen = notifications.wait_for(
        lambda h: (
            {"Americano-epic3: behind the database", "Americano: behind the database"} <= set(summaries(h))
        ),
        timeout=WAIT,
    )
    epic3 = next(n for n in seen if n["summary"] == "Americano-epic3: behind the database")
    assert epic3["urgency"] == "critical"
    body = epic3["body"].splitlines()
    assert body[:2] == [f"Migration: {SEED_BEHAVIORAL}", f"From: {EPIC5_BRANCH} (Americano-epic5)"]
    assert body[2] == (
        f"git -C {repo.epic5} add -- apps/web/prisma/migrations/{SEED_BEHAVIORAL} && "
        f"git -C {repo.epic5} commit -m 'Add migration {SEED_BEHAVIORAL}'"
    )
    assert summaries(seen) == ["Americano: behind the database", "Americano-epic3: behind the database"]
    alert_at = daemon.wait_line(
        rf"ALERT new code=behind_database severity=error worktree={re.escape(str(repo.epic3))} "
        rf"migration={SEED_BEHAVIORAL} from={EPIC5_BRANCH} fix=",
        after=ready,
    )

    # b) an applied migration.sql is edited in epic-3 (critical), then restored (resolved).
    sql = repo.migrations_path(repo.epic3) / INIT / "migration.sql"
    original = sql.read_bytes()
    sql.write_bytes(original + b'ALTER TABLE "User" ADD COLUMN "name" TEXT;\n')
    seen = notifications.wait_for(has("Americano-epic3: applied migration edited"), timeout=WAIT)
    edited = seen[-1]
    assert edited["urgency"] == "critical"
    assert edited["body"].splitlines()[0] == f"Migration: {INIT}"
    sql.write_bytes(original)
    seen = notifications.wait_for(has("Americano-epic3: resolved — applied migration edited"), timeout=WAIT)
    assert seen[-1]["body"] == f"Migration: {INIT}"
    daemon.wait_line(
        rf"ALERT resolved code=checksum_mismatch severity=error worktree={re.escape(str(repo.epic3))} "
        rf"migration={INIT}$",
        after=alert_at,
    )

    # c) a restart sends nothing again: the alert state was persisted.
    code, elapsed = daemon.terminate()
    assert (code, elapsed < STOP_HANG_S) == (0, True)
    before = notifications.history()
    restarted = story.start()
    restarted.wait_line(r"migwatch: ready projects=1 worktrees=3 databases=1 ")
    assert notifications.history() == before
    assert restarted.count(r"ALERT ") == 0
    assert restarted.terminate()[0] == 0

    # The log file has the same story, one key=value line per event.
    lines = story.log_lines()
    assert all(LOG_LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert re.search(
        r" INFO start version=0\.1\.0 pid=\d+ config=\S+config\.yaml state_dir=\S+state projects=1$",
        text,
        re.M,
    )
    assert re.search(
        rf" INFO finding new code=behind_database severity=error project=Americano "
        rf"worktree={re.escape(str(repo.epic3))} database=\"postgresql://migwatch_test@127\.0\.0\.1:\d+/"
        rf"{story.db_name}\?schema=public\" migration={SEED_BEHAVIORAL} message=.* fix=",
        text,
    )
    assert re.search(
        rf" INFO ALERT new code=checksum_mismatch severity=error worktree={re.escape(str(repo.epic3))} "
        rf"migration={INIT} fix=\"git -C {re.escape(str(repo.epic3))} checkout [0-9a-f]{{12}} -- "
        rf"apps/web/prisma/migrations/{INIT}/migration.sql\"$",
        text,
        re.M,
    )
    assert text.count(" ALERT ") == 4  # 2 behind + edited + resolved; nothing after the restart
    assert "secret" not in text  # the test database's password


def test_a_database_outage_is_reported_once_after_three_failed_polls_and_resolves(
    story: Story, notifications: NotificationServer, pg_server: PgServer
) -> None:
    story.apply_behavioral_from_epic5()
    daemon = story.start()
    daemon.wait_line(r"migwatch: ready ")
    notifications.wait_for(has("Americano-epic3: behind the database"), timeout=WAIT)
    db_id = rf"postgresql://migwatch_test@127\.0\.0\.1:{pg_server.port}/{story.db_name}\?schema=public"
    unreachable = f"{story.db_name}: database unreachable"
    try:
        pg_server.stop()
        third = daemon.wait_line(rf"poll failed database={db_id} failures=3 retry_in=2s error=")
        seen = notifications.wait_for(has(unreachable), timeout=WAIT)
        assert seen[-1]["urgency"] == "critical"
        assert seen[-1]["body"] == f"pg_isready -h 127.0.0.1 -p {pg_server.port}"
        alert = daemon.wait_line(r"ALERT new code=database_unreachable severity=error database=")
        assert alert > third
        assert daemon.count(r"ALERT new code=database_unreachable") == 1
        first = daemon.wait_line(rf"poll failed database={db_id} failures=1 retry_in=0\.5s error=")
        second = daemon.wait_line(rf"poll failed database={db_id} failures=2 retry_in=1s error=")
        assert first < second < third < alert
    finally:
        pg_server.ensure_running()
    seen = notifications.wait_for(has(f"{story.db_name}: resolved — database unreachable"), timeout=WAIT)
    daemon.wait_line(rf"poll recovered database={db_id} failures=\d+")
    # The behind alerts stayed open through the outage: no "resolved", and no second alert for them.
    assert summaries(seen) == [
        "Americano: behind the database",
        "Americano-epic3: behind the database",
        unreachable,
        f"{story.db_name}: resolved — database unreachable",
    ]
    assert daemon.terminate()[0] == 0


def test_a_new_worktree_is_checked_without_a_restart(story: Story, notifications: NotificationServer) -> None:
    repo = story.repo
    story.apply_behavioral_from_epic5()
    daemon = story.start()
    ready = daemon.wait_line(r"migwatch: ready projects=1 worktrees=3 ")
    epic7 = repo.add_worktree("Americano-epic7", "feature/epic-7-adaptive-sessions", "main")
    where = re.escape(str(epic7))
    # Its .env is git-ignored, so it cannot be checked yet: that is its first finding.
    daemon.wait_line(
        rf"finding new code=discovery severity=warning project=Americano worktree={where} "
        rf"message=\"Americano-epic7 \(feature/epic-7-adaptive-sessions\) cannot be checked: DATABASE_URL is not set",
        after=ready,
    )
    repo.write_env(epic7, f'DATABASE_URL="{story.database.url}"\n')
    daemon.wait_line(
        rf"finding new code=behind_database severity=error project=Americano worktree={where} ", after=ready
    )
    daemon.wait_line(rf"finding gone code=discovery severity=warning project=Americano worktree={where}$")
    notifications.wait_for(has("Americano-epic7: behind the database"), timeout=WAIT)
    assert daemon.terminate()[0] == 0
    log = "\n".join(story.log_lines())
    assert re.search(
        rf" INFO finding new code=behind_database severity=error project=Americano worktree={where} ", log
    )


def test_a_changed_fix_is_logged_without_a_second_notification(
    story: Story, notifications: NotificationServer
) -> None:
    repo = story.repo
    daemon = story.start()
    ready = daemon.wait_line(r"migwatch: ready projects=1 worktrees=3 ")
    folder = story.apply_behavioral_from_epic5()
    where = re.escape(str(repo.epic3))
    # Uncommitted in epic-5: the fix is to commit it there.
    daemon.wait_line(
        rf"finding new code=behind_database .*worktree={where} .*fix=\"git -C \S*Americano-epic5 add ",
        after=ready,
    )
    notifications.wait_for(has("Americano-epic3: behind the database"), timeout=WAIT)
    repo.git(repo.epic5, "add", "--", str(folder))
    repo.commit(repo.epic5, "add the behavioral pattern models")
    # Committed on its branch: the same problem, now fixed by merging that branch; the log says so.
    daemon.wait_line(
        rf"finding fix-changed code=behind_database .*worktree={where} .*"
        rf"fix=\"git -C {where} merge feature/epic-5-behavioral-twin\"",
        after=ready,
    )
    assert daemon.terminate()[0] == 0
    assert summaries(notifications.history()).count("Americano-epic3: behind the database") == 1


def test_one_daemon_per_state_dir_sighup_reloads_and_sigterm_exits_cleanly(
    story: Story, notifications: NotificationServer
) -> None:
    daemon = story.start()
    daemon.wait_line(r"migwatch: ready ")

    second = subprocess.run(
        [sys.executable, "-m", "migwatch", "--config", str(story.config), "run"],
        env=story.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (second.returncode, second.stdout) == (2, "")
    assert second.stderr == (
        f"migwatch: another migwatch run is already using {story.state_dir} (pid {daemon.proc.pid})\n"
    )

    # An invalid config on SIGHUP: every error is logged, the running config stays.
    good = story.config.read_text(encoding="utf-8")
    story.config.write_text(good.replace("debounce: 100ms", "debounce: soon\nnotifyer: {}"), encoding="utf-8")
    with pytest.raises(ConfigError) as invalid:
        load_config(story.config, story.env)
    expected = invalid.value.lines()
    assert len(expected) == 2
    mark = len(daemon.lines)
    daemon.proc.send_signal(signal.SIGHUP)
    kept = daemon.wait_line(r"reload failed: keeping the running config", after=mark)
    assert daemon.lines[kept - 2 : kept] == [f"migwatch: reload failed: {line}" for line in expected]

    # Still watching with the old config.
    story.apply_behavioral_from_epic5()
    notifications.wait_for(has("Americano-epic3: behind the database"), timeout=WAIT)

    # A valid config on SIGHUP is taken, and every project is checked again.
    story.config.write_text(good.replace("debounce: 100ms", "debounce: 50ms"), encoding="utf-8")
    mark = len(daemon.lines)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_line(rf"migwatch: reload config={re.escape(str(story.config))} projects=1$", after=mark)

    code, elapsed = daemon.terminate()
    assert code == 0
    assert elapsed < STOP_HANG_S
    assert daemon.lines[-1] == "migwatch: stopped"


def test_run_once_delivers_saves_and_exits_like_status(
    story: Story, notifications: NotificationServer
) -> None:
    def once() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "migwatch", "--config", str(story.config), "run", "--once"],
            env=story.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )

    clean = once()
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "", "")
    assert notifications.history() == []

    story.apply_behavioral_from_epic5()
    behind = once()
    assert (behind.returncode, behind.stdout, behind.stderr) == (1, "", "")
    seen = notifications.wait_for(has("Americano-epic3: behind the database"), timeout=WAIT)
    assert summaries(seen) == ["Americano: behind the database", "Americano-epic3: behind the database"]

    again = once()
    assert again.returncode == 1
    assert notifications.history() == seen  # the state was saved: nothing is sent twice
    assert (story.state_dir / "alerts.json").is_file()


def test_a_bad_config_exits_2_with_every_error_on_stderr(tmp_path: Path, git_env: dict[str, str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("projects: []\npoll_interval: fast\n", encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "migwatch", "--config", str(config), "run"],
        env=dict(os.environ, MIGWATCH_STATE_DIR=str(tmp_path / "state")),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.splitlines() == [
        f"{config}: poll_interval: must be a duration like 500ms, 2s, 5m or 4h",
        f"{config}: projects: must list at least one project",
    ]


# ------------------------------------------------------------------------------------------------- systemd


def test_sd_notify_ready_watchdog_and_stopping_on_an_abstract_socket(
    tmp_path: Path, git_env: dict[str, str]
) -> None:
    _, config = sqlite_project(tmp_path)
    name = f"migwatch-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(WAIT)
        env = dict(
            os.environ,
            MIGWATCH_STATE_DIR=str(tmp_path / "state"),
            NOTIFY_SOCKET="@" + name,
            WATCHDOG_USEC="200000",
        )
        daemon = DaemonProcess(config, env)
        try:
            messages: list[str] = []
            while "READY=1" not in "\n".join(messages) or messages.count("WATCHDOG=1") < 2:
                messages.append(server.recv(4096).decode())
            assert "READY=1\nSTATUS=watching 1 project(s)" in messages
            assert daemon.terminate()[0] == 0
            while messages[-1] != "STOPPING=1":
                messages.append(server.recv(4096).decode())
        finally:
            daemon.close()


def test_sd_notifier_on_a_path_socket_and_watchdog_settings(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000"})
        assert notifier.ready("watching 2 project(s)") is True
        assert server.recv(4096) == b"READY=1\nSTATUS=watching 2 project(s)"
        assert notifier.stopping() is True
        assert server.recv(4096) == b"STOPPING=1"
        assert notifier.watchdog_interval() == 15.0
    assert SystemdNotifier({}).ready() is False  # not under systemd: a no-op
    assert SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready() is False
    other_pid = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    assert SystemdNotifier(other_pid).watchdog_interval() is None


# ------------------------------------------------------------------------------------------- in-process


class RecordingNotifier:
    """A notifier that keeps the alerts it was given (what the demo's terminal notifier would print)."""

    name = "recording"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self._cond = threading.Condition()

    def send(self, alert: Alert) -> None:
        with self._cond:
            self.alerts.append(alert)
            self._cond.notify_all()

    def check(self) -> str | None:
        return None

    def close(self) -> None:
        """Nothing to release."""

    def titles(self) -> list[str]:
        with self._cond:
            return [f"{a.kind}: {a.title}" for a in self.alerts]

    def wait_for(self, *titles: str, timeout: float = WAIT) -> list[str]:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: set(titles) <= {f"{a.kind}: {a.title}" for a in self.alerts}, timeout
            )
            assert ok, f"expected {titles}, got {[a.title for a in self.alerts]}"
            return [f"{a.kind}: {a.title}" for a in self.alerts]


def sqlite_project(tmp_path: Path) -> tuple[PrismaRepo, Path]:
    """The seed story on one SQLite file (absolute URL), main's migrations applied; returns (repo, config)."""
    database = tmp_path / "dev.db"
    repo = PrismaRepo.seed_story(tmp_path / "projects", "sqlite", database_url=f"file:{database}")
    with sqlite3.connect(database) as conn:
        create_history_table(conn, "sqlite")
        for folder in sorted(p for p in repo.migrations_path(repo.main).iterdir() if p.is_dir()):
            apply_like_prisma(conn, folder, provider="sqlite")
    conn.close()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"projects:\n  - repo: {repo.main}\npoll_interval: 300ms\ndebounce: 50ms\n"
        f"notifiers:\n  desktop: {{enabled: false}}\nlog: {{file: {tmp_path / 'migwatch.log'}}}\n",
        encoding="utf-8",
    )
    return repo, config


@pytest.mark.leakcheck
def test_the_daemon_class_in_process_alerts_reloads_and_stops_without_leaks(
    tmp_path: Path, git_env: dict[str, str]
) -> None:
    repo, config_file = sqlite_project(tmp_path)
    recorder = RecordingNotifier()
    ready = threading.Event()
    daemon = InProcessDaemon(
        load_config(config_file, os.environ),
        state_dir=tmp_path / "state",
        notifiers=[recorder],
        env=os.environ,
        on_ready=ready.set,
    )
    daemon.start()
    try:
        assert ready.wait(WAIT)
        assert daemon.wait_idle(WAIT)
        assert recorder.titles() == []

        folder = repo.write_migration(repo.epic5, SEED_BEHAVIORAL, seed_migrations("sqlite")[SEED_BEHAVIORAL])
        with sqlite3.connect(tmp_path / "dev.db") as conn:
            apply_like_prisma(conn, folder, provider="sqlite")
        conn.close()
        daemon.poll_now()
        recorder.wait_for("new: Americano-epic3: behind the database", "new: Americano: behind the database")

        # The state is held per state dir, not per process: a second owner is refused.
        with pytest.raises(
            LockError, match=re.escape(f"another migwatch run is already using {tmp_path / 'state'}")
        ):
            first = StateLock.acquire(tmp_path / "state")
            try:
                StateLock.acquire(tmp_path / "state")
            finally:
                first.release()

        # Reload with epic-3 ignored: its alert is resolved, main's stays.
        text = config_file.read_text(encoding="utf-8").replace(
            f"  - repo: {repo.main}\n", f"  - repo: {repo.main}\n    ignore_worktrees: ['*-epic3']\n"
        )
        config_file.write_text(text, encoding="utf-8")
        daemon.reload(load_config(config_file, os.environ))
        recorder.wait_for("resolved: Americano-epic3: resolved — behind the database")
        assert daemon.wait_idle(WAIT)
        assert recorder.titles() == [
            "new: Americano: behind the database",
            "new: Americano-epic3: behind the database",
            "resolved: Americano-epic3: resolved — behind the database",
        ]
    finally:
        started = time.monotonic()
        daemon.stop()
        assert time.monotonic() - started < STOP_HANG_S


@pytest.mark.leakcheck
def test_alerts_wait_while_prisma_holds_its_advisory_lock(
    tmp_path: Path, pg_database: PgDatabase, git_env: dict[str, str]
) -> None:
    seeded = Story(tmp_path, pg_database, desktop=False)
    recorder = RecordingNotifier()
    daemon = InProcessDaemon(
        load_config(seeded.config, os.environ),
        state_dir=seeded.state_dir,
        notifiers=[recorder],
        env=os.environ,
    )
    daemon.start()
    try:
        assert daemon.ready.wait(WAIT)
        with psycopg.connect(pg_database.url.split("?")[0], autocommit=True) as prisma:
            prisma.execute("SELECT pg_advisory_lock(72707369)")  # what `prisma migrate deploy` takes
            daemon.poll_now()
            assert daemon.wait_idle(WAIT)
            seeded.apply_behavioral_from_epic5()
            daemon.poll_now()
            assert daemon.wait_idle(WAIT)
            assert recorder.titles() == []  # held back: the migrate command is still running
            prisma.execute("SELECT pg_advisory_unlock(72707369)")
            daemon.poll_now()
            recorder.wait_for(
                "new: Americano-epic3: behind the database", "new: Americano: behind the database"
            )
    finally:
        daemon.stop()


def test_sigterm_delivered_to_any_thread_stops_the_daemon(tmp_path: Path, git_env: dict[str, str]) -> None:
    """The kernel may hand a process-directed SIGTERM to any thread (systemd's `kill` does not choose).
    Sent here to each non-main thread in turn with tgkill: the main thread must still notice and stop
    cleanly (an untimed queue wait in the main thread never woke, and `run` hung until SIGKILL)."""
    import ctypes

    repo = PrismaRepo.create(tmp_path / "projects")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"projects:\n  - repo: {repo.main}\nnotifiers: {{desktop: {{enabled: false}}}}\n", encoding="utf-8"
    )
    libc = ctypes.CDLL(None, use_errno=True)
    sys_tgkill = 234 if os.uname().machine == "x86_64" else 131  # aarch64: 131
    threads_tried = 0
    for _ in range(3):
        daemon = Daemon(config, dict(git_env, MIGWATCH_STATE_DIR=str(tmp_path / "state")))
        try:
            daemon.wait_line(r"migwatch: ready ")
            pid = daemon.proc.pid
            others = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
            assert others, "the daemon runs its watchers and checks on threads"
            target = others[threads_tried % len(others)]
            threads_tried += 1
            assert libc.syscall(sys_tgkill, pid, target, signal.SIGTERM) == 0
            assert daemon.proc.wait(timeout=10) == 0
            daemon.wait_line(r"migwatch: stopped")
        finally:
            daemon.close()
