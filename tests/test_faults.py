"""Fault suite (issue 15): the real `migwatch run` process against a real PostgreSQL, real git worktrees
and a command notifier that reports each notification to the test. Each scenario injects one fault and
asserts the exact notifications and log lines: the right alert once, recovery by itself, nothing
repeated, nothing lost, and no traceback on stderr or in the log.

The seed story: `Americano` (main), `Americano-epic3` and `Americano-epic5` share one database. The
usual trigger is epic-5 applying a migration that the other two do not have (both are then behind).
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from tests.support.daemonrun import Daemon, Recorder, process_alive, wait_until
from tests.support.gitrepo import SEED_BEHAVIORAL, SEED_EPIC3, PrismaRepo, seed_migrations
from tests.support.notifyserver import NotificationServer
from tests.support.pg import PgDatabase
from tests.support.prisma_rows import apply_like_prisma, create_history_table

BEHIND_MAIN = "new: Americano: behind the database"
BEHIND_EPIC3 = "new: Americano-epic3: behind the database"
RESOLVED_MAIN = "resolved: Americano: resolved — behind the database"
RESOLVED_EPIC3 = "resolved: Americano-epic3: resolved — behind the database"
# SIGTERM to exit: this bound only catches a daemon that waits for something (a poll blocked on a lock
# waited out its 10 s statement timeout); the 2 s goal is measured by the `shutdown` benchmark.
STOP_HANG_S = 6.0
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "--- Logging error ---", "internal error")


class Project:
    """The seed story on a fresh database, a config with the recording command notifier, a state dir."""

    def __init__(self, tmp_path: Path, database: PgDatabase, recorder: Recorder) -> None:
        self.tmp_path = tmp_path
        self.database = database
        self.recorder = recorder
        self.repo = PrismaRepo.seed_story(tmp_path / "projects", "postgresql", database_url=database.url)
        with database.connect() as conn:
            create_history_table(conn, "postgresql")
            for folder in sorted(
                p for p in self.repo.migrations_path(self.repo.main).iterdir() if p.is_dir()
            ):
                apply_like_prisma(conn, folder, provider="postgresql")
        self.state_dir = tmp_path / "state"
        self.log_dir = tmp_path / "log"
        self.log_file = self.log_dir / "migwatch.log"
        self.config = tmp_path / "config.yaml"
        self.env = dict(os.environ, MIGWATCH_STATE_DIR=str(self.state_dir), **recorder.env())
        if os.environ.get("FAULTS_DUMP"):
            self.env["MIGWATCH_DEBUG_THREADS"] = "1"
        self.daemons: list[Daemon] = []
        self.write_config()

    def write_config(
        self, *, remind_after: str = "4h", extra: str = "", log_file: Path | None = None
    ) -> None:
        argv = ", ".join(f'"{part}"' for part in self.recorder.argv())
        self.config.write_text(
            f"projects:\n  - repo: {self.repo.main}\n"
            f"poll_interval: 500ms\ndebounce: 100ms\nremind_after: {remind_after}\n"
            f"notifiers:\n  desktop: {{enabled: false}}\n"
            f"  command: {{enabled: true, argv: [{argv}], timeout: 2s}}\n"
            f"log: {{file: {log_file or self.log_file}, level: info}}\n{extra}",
            encoding="utf-8",
        )

    def start(self, *, unprivileged: bool = False) -> Daemon:
        daemon = Daemon(self.config, self.env, unprivileged=unprivileged)
        self.daemons.append(daemon)
        return daemon

    def start_ready(self, *, unprivileged: bool = False) -> Daemon:
        daemon = self.start(unprivileged=unprivileged)
        daemon.ready()
        return daemon

    def apply_behavioral_from_epic5(self) -> Path:
        """epic-5 creates and applies a migration. The folder is renamed into place right after the
        row is committed, so no check sees the folder without its row (a real `migrate dev` has that
        instant too; here it would make the exact notifications depend on timing)."""
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

    def behind(self, daemon: Daemon) -> None:
        """The usual trigger, and its two alerts."""
        self.apply_behavioral_from_epic5()
        self.recorder.wait_for(BEHIND_MAIN, BEHIND_EPIC3)

    def catch_up(self) -> None:
        """main and epic-3 get epic-5's migration (as a merge would): their behind alerts resolve."""
        for worktree in (self.repo.main, self.repo.epic3):
            self.repo.write_migration(
                worktree, SEED_BEHAVIORAL, seed_migrations("postgresql")[SEED_BEHAVIORAL]
            )

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="backslashreplace")
        except FileNotFoundError:
            return ""

    def assert_no_traceback(self) -> None:
        for daemon in self.daemons:
            for line in daemon.lines:
                assert not any(m in line for m in TRACEBACK_MARKERS), line
        text = self.log_text()
        assert not any(m in text for m in TRACEBACK_MARKERS), text[-2000:]

    def close(self) -> None:
        for daemon in self.daemons:
            if os.environ.get("FAULTS_DUMP"):
                if daemon.proc.poll() is None:
                    daemon.signal(signal.SIGUSR1)
                    time.sleep(1)
                sys.stderr.write(
                    "".join(f"{t:7.3f} {x[:200]}\n" for t, x in zip(daemon.times, daemon.lines, strict=False))
                )
            daemon.close()


@pytest.fixture
def project(tmp_path: Path, pg_database: PgDatabase, git_env: dict[str, str]) -> Iterator[Project]:
    recorder = Recorder(tmp_path / "recorder")
    made = Project(tmp_path, pg_database, recorder)
    yield made
    made.close()
    recorder.close()
    made.assert_no_traceback()


def stop(daemon: Daemon, *, sent: int = 0) -> None:
    """SIGTERM after the daemon says it delivered `sent` notifications through the command notifier
    (the recorder hears of one a little before its process ends)."""
    for _ in range(sent):
        pass
    if sent:
        wait_until(
            lambda: len(daemon.matching(r"NOTIFY sent notifier=command ")) >= sent, what=f"{sent} sent"
        )
    code, elapsed = daemon.terminate()
    assert code == 0, daemon.lines[-20:]
    assert elapsed < STOP_HANG_S


# ------------------------------------------------------------------------------------- the alert ledger


@pytest.mark.parametrize(
    "damage",
    [b"", b'{"version": 1, "records": [{"key": ', b"\xff\xfe garbage", b'{"records": {}}', b'{"version": 2}'],
    ids=["empty", "truncated", "garbage", "wrong-shape", "future-version"],
)
def test_a_damaged_state_file_repeats_and_loses_nothing(project: Project, damage: bytes) -> None:
    daemon = project.start_ready()
    project.behind(daemon)
    stop(daemon, sent=2)
    (project.state_dir / "alerts.json").write_bytes(damage)

    again = project.start_ready()
    project.catch_up()
    assert project.recorder.wait_for(RESOLVED_MAIN, RESOLVED_EPIC3) == [
        BEHIND_MAIN,
        BEHIND_EPIC3,
        RESOLVED_MAIN,
        RESOLVED_EPIC3,
    ]
    assert len(again.matching(r"state unusable path=.*alerts\.json problem=")) == 1
    stop(again, sent=2)


def test_a_state_folder_that_turns_read_only_does_not_repeat_a_resolved_alert(project: Project) -> None:
    daemon = project.start_ready(unprivileged=True)
    project.behind(daemon)
    project.state_dir.chmod(0o500)
    try:
        project.catch_up()
        project.recorder.wait_for(RESOLVED_MAIN, RESOLVED_EPIC3)
        daemon.wait_line(r"state save failed path=.*/state/alerts\.json")
        stop(daemon, sent=4)
        again = project.start_ready(unprivileged=True)
        mark = again.mark()
        again.signal(signal.SIGHUP)  # one more full check, after which nothing may be re-sent
        again.wait_line(r"migwatch: reload config=", after=mark)
        again.wait_line(r"check project=Americano trigger=project", after=mark)
        stop(again)
    finally:
        project.state_dir.chmod(0o700)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3, RESOLVED_MAIN, RESOLVED_EPIC3]
    assert len(daemon.matching(r"state save failed path=.*/state/alerts\.json")) == 1  # once per outage


# ------------------------------------------------------------------------------------ start-up failures


def test_a_log_folder_that_is_not_writable_is_exit_2_with_one_line(project: Project) -> None:
    project.log_dir.mkdir(mode=0o500)
    daemon = project.start(unprivileged=True)
    assert daemon.wait_exit() == 2
    assert daemon.lines == [f"migwatch: cannot write the log file {project.log_file}: Permission denied"]


def test_a_read_only_state_folder_is_exit_2_with_one_line(project: Project) -> None:
    project.state_dir.mkdir(mode=0o500)
    daemon = project.start(unprivileged=True)
    assert daemon.wait_exit() == 2
    assert daemon.lines == [f"migwatch: cannot use the state folder {project.state_dir}: Permission denied"]


def test_a_second_run_refuses_with_exit_2(project: Project) -> None:
    first = project.start_ready()
    second = project.start()
    assert second.wait_exit() == 2
    assert second.lines == [
        f"migwatch: another migwatch run is already using {project.state_dir} (pid {first.proc.pid})"
    ]
    project.behind(first)  # the first one is unaffected
    stop(first, sent=2)


def test_sigterm_in_the_first_second_is_a_clean_exit(project: Project) -> None:
    daemon = project.start()
    time.sleep(0.3)  # the fault itself is "a signal early in start-up": there is no event to wait for
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert project.recorder.titles() == []


def test_files_are_private_whatever_the_umask(project: Project) -> None:
    old = os.umask(0o022)
    try:
        daemon = project.start_ready()
        project.behind(daemon)
        stop(daemon, sent=2)
    finally:
        os.umask(old)
    for path in (project.log_file, project.state_dir / "alerts.json", project.state_dir / "daemon.lock"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


# ------------------------------------------------------------------------------------------------- the log


def test_a_deleted_log_folder_is_created_again(project: Project) -> None:
    daemon = project.start_ready()
    for path in sorted(project.log_dir.iterdir()):
        path.unlink()
    project.log_dir.rmdir()
    project.behind(daemon)
    wait_until(lambda: "ALERT new code=behind_database" in project.log_text(), what="the new log file")
    stop(daemon, sent=2)
    assert stat.S_IMODE(project.log_dir.stat().st_mode) == 0o700
    assert "finding new code=behind_database" in project.log_text()


def test_a_full_disk_for_the_log_falls_back_to_stderr_with_one_warning(project: Project) -> None:
    project.write_config(log_file=Path("/dev/full"))
    daemon = project.start_ready()
    project.behind(daemon)
    stop(daemon, sent=2)
    warnings = daemon.matching(r"^migwatch: warning: cannot write the log file /dev/full")
    assert warnings == [
        "migwatch: warning: cannot write the log file /dev/full: No space left on device; "
        "logging to stderr until it works again"
    ]
    assert daemon.matching(r"ALERT new code=behind_database")  # the events still went somewhere
    assert stat.S_IMODE(os.stat("/dev/full").st_mode) == 0o666  # a device is never chmod-ed


def test_a_read_only_log_file_before_a_reload_keeps_the_daemon_running(project: Project) -> None:
    daemon = project.start_ready(unprivileged=True)
    project.log_file.chmod(0o400)
    project.write_config(extra="")
    text = project.config.read_text(encoding="utf-8").replace("level: info", "level: debug")
    project.config.write_text(text, encoding="utf-8")
    mark = daemon.mark()
    daemon.signal(signal.SIGHUP)
    daemon.wait_line(
        rf"reload: cannot write the log file {project.log_file} \(Permission denied\); keeping the current log",
        after=mark,
    )
    project.behind(daemon)
    stop(daemon, sent=2)


# ---------------------------------------------------------------------------------------------- notifiers


def test_a_failed_delivery_is_retried_until_it_gets_through(project: Project) -> None:
    daemon = project.start_ready()
    project.recorder.set_mode("fail")
    project.apply_behavioral_from_epic5()
    daemon.wait_line(
        r"NOTIFY failed notifier=command alert=new .* exited with code 1: recorder: told to fail"
    )
    project.recorder.set_mode("ok")
    project.recorder.wait_for(BEHIND_MAIN, BEHIND_EPIC3)
    daemon.wait_line(r"NOTIFY recovered notifier=command failures=\d+")
    stop(daemon, sent=2)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3]


def test_a_resolved_alert_is_not_delivered_late(project: Project) -> None:
    daemon = project.start_ready()
    project.recorder.set_mode("fail")
    project.apply_behavioral_from_epic5()
    daemon.wait_line(r"NOTIFY failed notifier=command")
    project.catch_up()
    daemon.wait_line(r"finding gone code=behind_database .*worktree=\S+Americano-epic3")
    project.recorder.set_mode("ok")
    project.repo.write_env(project.repo.epic3, f'DATABASE_URL="{project.database.url}"\n# touched\n')
    daemon.wait_line(r"check project=Americano trigger=Americano-epic3", after=daemon.mark())
    assert daemon.matching(r"ALERT resolved code=behind_database")  # the log has the whole story
    stop(daemon)
    assert project.recorder.titles() == []


def test_a_hanging_notifier_is_killed_and_no_child_outlives_the_daemon(project: Project) -> None:
    daemon = project.start_ready()
    project.recorder.set_mode("hang")
    project.apply_behavioral_from_epic5()
    daemon.wait_line(r"NOTIFY failed notifier=command alert=new .* did not finish within 2 s and was killed")
    wait_until(lambda: project.recorder.pid_file.exists(), what="the hung notifier's pid")
    stop(daemon)
    pids = [int(p) for p in project.recorder.pid_file.read_text(encoding="utf-8").split()]
    assert pids and not any(process_alive(pid) for pid in pids)


def test_a_burst_is_one_notification_per_worktree_and_code(project: Project) -> None:
    """A 300-file branch switch: 300 migrations arrive in epic-3 with one checkout, and leave again."""
    repo = project.repo
    repo.git(repo.epic3, "checkout", "-q", "-b", "feature/storm")
    names = [f"20260101{i:06d}_storm_{i}" for i in range(300)]
    for name in names:
        repo.write_migration(repo.epic3, name, f"SELECT {len(name)};\n")
    repo.commit(repo.epic3, "300 migrations")
    repo.git(repo.epic3, "checkout", "-q", SEED_EPIC3[1])
    daemon = project.start_ready()
    repo.git(repo.epic3, "checkout", "-q", "feature/storm")
    project.recorder.wait_for("new: Americano-epic3: 300 × unapplied migration")
    repo.git(repo.epic3, "checkout", "-q", SEED_EPIC3[1])
    project.recorder.wait_for("resolved: Americano-epic3: resolved — 300 × unapplied migration")
    stop(daemon, sent=2)
    assert project.recorder.titles() == [
        "new: Americano-epic3: 300 × unapplied migration",
        "resolved: Americano-epic3: resolved — 300 × unapplied migration",
    ]
    first = project.recorder.documents[0]
    assert (first["count"], first["migrations"][:3]) == (300, names[:3])
    assert first["body"].startswith(
        f"300 migrations in Americano-epic3: {', '.join(names[:3])} … and 297 more"
    )
    log = project.log_text()
    assert log.count("ALERT new code=pending") == 300 and log.count("finding new code=pending") == 300


# ------------------------------------------------------------------------------ what cannot be read


UNREADABLE_EPIC3 = "new: Americano-epic3: cannot read migrations"
READABLE_EPIC3 = "resolved: Americano-epic3: resolved — cannot read migrations"


def test_an_unreadable_migrations_folder_is_its_own_alert_and_resolves_nothing(project: Project) -> None:
    daemon = project.start_ready(unprivileged=True)
    project.behind(daemon)
    folder = project.repo.migrations_path(project.repo.epic3)
    folder.chmod(0o000)  # an attribute change: no content changes, the watch must still see it
    try:
        project.recorder.wait_for(UNREADABLE_EPIC3)
        daemon.wait_line(r"finding new code=unreadable_path .*Permission denied")
    finally:
        folder.chmod(0o755)
    project.recorder.wait_for(READABLE_EPIC3)
    project.catch_up()
    project.recorder.wait_for(RESOLVED_MAIN, RESOLVED_EPIC3)
    stop(daemon, sent=6)
    assert project.recorder.titles() == [
        BEHIND_MAIN,
        BEHIND_EPIC3,
        UNREADABLE_EPIC3,
        READABLE_EPIC3,
        RESOLVED_MAIN,
        RESOLVED_EPIC3,
    ]


def test_an_unreadable_migration_sql_is_seen_through_its_mode_alone(project: Project) -> None:
    daemon = project.start_ready(unprivileged=True)
    sql_file = project.repo.migrations_path(project.repo.epic3) / "20251001000000_init" / "migration.sql"
    sql_file.chmod(0o000)
    try:
        project.recorder.wait_for(UNREADABLE_EPIC3)
    finally:
        sql_file.chmod(0o644)
    project.recorder.wait_for(READABLE_EPIC3)
    stop(daemon, sent=2)
    assert project.recorder.titles() == [UNREADABLE_EPIC3, READABLE_EPIC3]
    assert project.recorder.documents[0]["migration"] == "20251001000000_init"


def test_a_folder_name_that_is_not_utf8_is_one_finding_not_a_failed_check(project: Project) -> None:
    daemon = project.start_ready()
    odd = os.fsencode(project.repo.migrations_path(project.repo.epic3)) + b"/20251020000000_caf\xe9"
    staging = project.tmp_path / "odd"
    staging.mkdir()
    (staging / "migration.sql").write_text("SELECT 1;\n", encoding="utf-8")
    os.rename(os.fsencode(staging), odd)
    project.recorder.wait_for("new: Americano-epic3: unapplied migration")
    stop(daemon, sent=1)
    document = project.recorder.documents[0]
    assert document["migration"] == os.fsdecode(b"20251020000000_caf\xe9")  # lossless, as a JSON escape
    assert "Migration: 20251020000000_caf\\xe9" in document["body"]
    assert len(daemon.matching(r'finding new code=pending .*migration="20251020000000_caf\\\\xe9"')) == 1
    again = project.start_ready()  # the state holding that name was saved: nothing is sent again
    os.rename(odd, os.fsencode(staging))
    project.recorder.wait_for("resolved: Americano-epic3: resolved — unapplied migration")
    stop(again, sent=1)
    assert len(project.recorder.titles()) == 2


# ---------------------------------------------------------------------------------- the database


def test_timestamps_python_cannot_hold_are_read_as_text_not_as_an_outage(project: Project) -> None:
    with project.database.connect() as conn:
        conn.execute(
            "UPDATE _prisma_migrations SET started_at = '10000-01-01 00:00:00+00', finished_at = 'infinity' "
            "WHERE migration_name = '20251001000000_init'"
        )
        conn.execute(
            "UPDATE _prisma_migrations SET started_at = '0044-03-15 00:00:00+00 BC' "
            "WHERE migration_name <> '20251001000000_init'"
        )
    daemon = project.start_ready()
    project.behind(daemon)  # the history is read: the daemon sees the next change as usual
    stop(daemon, sent=2)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3]
    assert not daemon.matching(r"poll failed|database_unreachable")


def test_a_role_without_select_says_it_lacks_the_privilege(project: Project) -> None:
    server = project.database.server
    with project.database.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS migwatch_noselect")
        conn.execute("CREATE ROLE migwatch_noselect LOGIN PASSWORD 'noselect'")
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO migwatch_noselect").format(
                sql.Identifier(project.database.name)
            )
        )
    url = server.url(project.database.name, user="migwatch_noselect", password="noselect")
    for worktree in (project.repo.main, project.repo.epic3, project.repo.epic5):
        project.repo.write_env(worktree, f'DATABASE_URL="{url}"\n')
    daemon = project.start_ready()
    title = f"new: {project.database.name}: no permission to read the migration history"
    project.recorder.wait_for(title)
    stop(daemon, sent=1)
    assert project.recorder.titles() == [title]
    message = project.recorder.documents[0]["message"]
    assert "lacks the SELECT privilege on public._prisma_migrations" in message
    assert "noselect@" not in message and ":noselect" not in message
    assert project.recorder.documents[0]["code"] == "history_denied"
    assert not daemon.matching(r"poll failed")  # not an outage: the server answers


def test_a_dropped_history_table_is_its_own_alert_not_everything_resolved(project: Project) -> None:
    daemon = project.start_ready()
    project.behind(daemon)
    with project.database.connect() as conn:
        conn.execute("ALTER TABLE _prisma_migrations RENAME TO _prisma_migrations_saved")
    vanished = f"new: {project.database.name}: migration history vanished"
    project.recorder.wait_for(vanished)
    with project.database.connect() as conn:
        conn.execute("ALTER TABLE _prisma_migrations_saved RENAME TO _prisma_migrations")
    back = f"resolved: {project.database.name}: resolved — migration history vanished"
    project.recorder.wait_for(back)
    stop(daemon, sent=4)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3, vanished, back]


def test_a_stopped_and_restarted_server_is_one_alert_and_its_recovery(project: Project) -> None:
    daemon = project.start_ready()
    project.behind(daemon)
    server = project.database.server
    down = f"new: {project.database.name}: database unreachable"
    up = f"resolved: {project.database.name}: resolved — database unreachable"
    server.stop()
    try:
        project.recorder.wait_for(down)
    finally:
        server.start()
    project.recorder.wait_for(up, timeout=40)
    stop(daemon, sent=4)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3, down, up]


def test_a_killed_connection_is_a_blip_not_an_alert(project: Project) -> None:
    daemon = project.start_ready()
    with project.database.connect() as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'migwatch'"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    daemon.wait_line(r"poll recovered database=\S+ failures=1")
    project.behind(daemon)
    stop(daemon, sent=2)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3]


def test_a_dropped_and_recreated_database_recovers_by_itself(project: Project) -> None:
    daemon = project.start_ready()
    project.behind(daemon)
    server, name = project.database.server, project.database.name
    server.drop_database(name)
    down = f"new: {name}: database unreachable"
    project.recorder.wait_for(down)
    with server.admin_connect() as conn:  # back whole at once: created aside, then renamed
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"{name}_new")))
    with server.admin_connect(f"{name}_new") as conn:
        create_history_table(conn, "postgresql")
        for folder in sorted(
            p for p in project.repo.migrations_path(project.repo.epic5).iterdir() if p.is_dir()
        ):
            apply_like_prisma(conn, folder, provider="postgresql")
    with server.admin_connect() as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(f"{name}_new"), sql.Identifier(name)
            )
        )
    up = f"resolved: {name}: resolved — database unreachable"
    project.recorder.wait_for(up, timeout=40)
    stop(daemon, sent=4)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3, down, up]


def test_sigterm_while_a_query_waits_on_a_lock_does_not_wait_for_it(project: Project) -> None:
    daemon = project.start_ready()
    with project.database.connect() as locker:
        locker.autocommit = False
        locker.execute("LOCK TABLE _prisma_migrations IN ACCESS EXCLUSIVE MODE")
        with project.database.connect() as watcher:
            wait_until(
                lambda: bool(
                    watcher.execute(
                        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'migwatch' "
                        "AND wait_event_type = 'Lock'"
                    ).fetchone()
                ),
                what="the daemon's poll to wait on the lock",
            )
        stop(daemon)
        locker.rollback()


# ------------------------------------------------------------------------------------ worktrees and git


def test_a_removed_worktree_resolves_its_alerts_once(project: Project) -> None:
    daemon = project.start_ready()
    project.behind(daemon)
    staging = project.tmp_path / "gone"
    project.repo.epic3.rename(staging)  # `rm -rf` as one event: git now lists it as prunable
    project.recorder.wait_for(RESOLVED_EPIC3)
    stop(daemon, sent=3)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3, RESOLVED_EPIC3]


def test_a_deleted_migrations_folder_restored_by_git_checkout(project: Project) -> None:
    repo = project.repo
    daemon = project.start_ready()
    folder = repo.migrations_path(repo.epic3)
    folder.rename(project.tmp_path / "migrations-aside")
    missing = "new: Americano-epic3: 3 × behind the database"
    project.recorder.wait_for(missing)
    repo.git(repo.epic3, "checkout", "--", ".")
    restored = "resolved: Americano-epic3: resolved — 3 × behind the database"
    project.recorder.wait_for(restored)
    stop(daemon, sent=2)
    assert project.recorder.titles() == [missing, restored]


def test_git_worktree_add_and_remove_are_seen_without_a_restart(project: Project) -> None:
    repo = project.repo
    project.env["DATABASE_URL"] = project.database.url  # a new worktree has no .env (git-ignored)
    daemon = project.start_ready()
    project.behind(daemon)
    epic7 = repo.add_worktree("Americano-epic7", "feature/epic-7", "main")
    added = "new: Americano-epic7: behind the database"
    project.recorder.wait_for(added)
    repo.remove_worktree(epic7)
    removed = "resolved: Americano-epic7: resolved — behind the database"
    project.recorder.wait_for(removed)
    stop(daemon, sent=4)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3, added, removed]


# -------------------------------------------------------------------------------------------- signals


def test_sighup_with_an_invalid_then_a_valid_config(project: Project) -> None:
    daemon = project.start_ready()
    good = project.config.read_text(encoding="utf-8")
    project.config.write_text(good.replace("debounce: 100ms", "debounce: soon"), encoding="utf-8")
    mark = daemon.mark()
    daemon.signal(signal.SIGHUP)
    daemon.wait_line(r"reload failed: keeping the running config", after=mark)
    assert daemon.matching(r"^migwatch: reload failed: .*debounce")
    project.behind(daemon)  # still watching, with the old config
    project.config.write_text(good.replace("debounce: 100ms", "debounce: 50ms"), encoding="utf-8")
    mark = daemon.mark()
    daemon.signal(signal.SIGHUP)
    daemon.wait_line(rf"migwatch: reload config={project.config} projects=1$", after=mark)
    daemon.wait_line(r"check project=Americano trigger=project", after=mark)
    project.catch_up()
    project.recorder.wait_for(RESOLVED_MAIN, RESOLVED_EPIC3)
    stop(daemon, sent=4)
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3, RESOLVED_MAIN, RESOLVED_EPIC3]


def test_sigstop_then_sigcont_is_no_burst(project: Project) -> None:
    """Stopped for 10 s (a laptop asleep): 20 polls and the periodic checks were missed. After SIGCONT
    they are coalesced — a poll or two, no burst of checks, no reminder that was not due."""
    project.write_config(remind_after="1m")
    daemon = project.start_ready()
    project.behind(daemon)
    daemon.wait_count(r"NOTIFY sent notifier=command ", 2)  # no notifier runs across the stop
    daemon.signal(signal.SIGSTOP)
    time.sleep(10)  # the fault is the time the process spends stopped
    mark = daemon.mark()
    daemon.signal(signal.SIGCONT)
    project.catch_up()  # the first change after waking is seen at once
    project.recorder.wait_for(RESOLVED_MAIN, RESOLVED_EPIC3)
    stop(daemon, sent=4)
    after = daemon.lines[mark:]
    assert sum(1 for line in after if " check project=" in line) <= 4
    assert project.recorder.titles() == [BEHIND_MAIN, BEHIND_EPIC3, RESOLVED_MAIN, RESOLVED_EPIC3]


def test_alerts_raised_while_the_desktop_has_no_notification_server_are_shown_once_it_is_back(
    project: Project, notifications: NotificationServer
) -> None:
    text = project.config.read_text(encoding="utf-8")
    project.config.write_text(text.replace("desktop: {enabled: false}", "desktop: {enabled: true}"), "utf-8")
    project.env.update(notifications.env)
    daemon = project.start_ready()
    notifications.stop_dunst()
    try:
        project.behind(daemon)  # the command notifier delivers; the desktop cannot
        daemon.wait_line(r"NOTIFY failed notifier=desktop alert=new ")
    finally:
        notifications.start_dunst()
    shown = notifications.wait_for(lambda h: len(h) >= 2, timeout=40)
    daemon.wait_count(r"NOTIFY sent notifier=desktop ", 2)
    stop(daemon, sent=2)
    assert sorted(n["summary"] for n in shown) == [
        "Americano-epic3: behind the database",
        "Americano: behind the database",
    ]
    assert len(notifications.history()) == 2  # each once: nothing re-sent after it got through
