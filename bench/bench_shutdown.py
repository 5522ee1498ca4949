"""Shutdown (issue 15): how long `migwatch run` takes to exit cleanly after SIGTERM, in the three moments
that used to be slow: in its first second (signal handlers not yet installed), at rest, and while its poll
of the history table waits on a lock another session holds (the statement timeout is 10 s).

The goal (≤ 2 s, exit code 0) lives here; the fault suite asserts the clean exit with a bound that only
catches a hang."""

from __future__ import annotations

import time

from bench_daemon import Daemon, daemon_unavailable
from benchlib import BenchError, BenchResult, Goal, log
from setup_worktrees import World

STOP_GOAL_S = 2.0
LOCK_WAIT_TIMEOUT_S = 30.0


def _stopped(daemon: Daemon, moment: str) -> float:
    elapsed = daemon.stop()
    code = daemon.process.returncode if daemon.process else None
    if code != 0:
        raise BenchError(f"SIGTERM {moment}: migwatch run exited with code {code}, not 0")
    log(f"SIGTERM {moment}: exit 0 after {elapsed:.2f} s")
    return elapsed


def bench_shutdown(world: World, result: BenchResult) -> None:
    """Benchmark: seconds from SIGTERM to a clean exit (first second, at rest, poll blocked on a lock)."""
    missing = daemon_unavailable()
    if missing:
        result.status, result.reason = "skipped", missing
        return
    project = world.project(3, 20)
    times: dict[str, float] = {}

    early = Daemon(project, world.work_dir / "shutdown-early")
    early.start()
    time.sleep(0.3)
    times["first_second"] = _stopped(early, "0.3 s after start")

    rest = Daemon(project, world.work_dir / "shutdown-rest")
    rest.start()
    rest.wait_ready()
    time.sleep(3.0)
    times["at_rest"] = _stopped(rest, "at rest")

    blocked = Daemon(project, world.work_dir / "shutdown-locked")
    blocked.start()
    blocked.wait_ready()
    with (
        world.server.admin_connect(project.database) as locker,
        world.server.admin_connect(project.database) as watcher,
    ):
        locker.autocommit = False
        locker.execute("LOCK TABLE _prisma_migrations IN ACCESS EXCLUSIVE MODE")
        deadline = time.monotonic() + LOCK_WAIT_TIMEOUT_S
        while not watcher.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'migwatch' AND wait_event_type = 'Lock'"
        ).fetchone():
            if time.monotonic() > deadline:
                blocked.stop()
                raise BenchError("the daemon's poll never waited on the lock")
            time.sleep(0.05)
        times["query_blocked"] = _stopped(blocked, "while its poll waits on a lock")
        locker.rollback()

    for moment, seconds in times.items():
        result.add(f"stop_{moment}", seconds, "s", Goal("<=", STOP_GOAL_S))
    result.command = (
        "SIGTERM to `migwatch --config C run` (0.3 s after start; at rest; poll waiting on a lock)"
    )
    result.details.update(
        worktrees=len(project.worktrees),
        measured="time.monotonic() from os.kill(SIGTERM) to waitpid returning exit code 0",
    )
