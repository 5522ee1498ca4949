"""Soak (issue 15): the daemon under 10,000 file events in bursts and 1,000 database changes over 10
minutes, against 20 worktrees. Every alert-making change is accounted for: each expected notification
must arrive exactly once (no loss, no duplicate); RSS must not grow by more than 5 MB after warm-up.

Most changes leave the findings as they are (a file beside the migrations, a history row's `logs`):
they cost checks and reads, not notifications. Every fourth round a row for a migration no worktree
has is inserted (each worktree: one `behind_database`), two rounds later it is deleted (each worktree:
one "resolved").
"""

from __future__ import annotations

import random
import shlex
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from tests.support.prisma_rows import insert_row

from bench_daemon import Record, daemon_unavailable, running_daemon
from benchlib import BenchError, BenchResult, Goal, log
from setup_worktrees import World

FULL = {"worktrees": 20, "migrations": 30, "seconds": 600.0, "file_events": 10_000, "db_changes": 1_000}
QUICK = {"worktrees": 4, "migrations": 10, "seconds": 40.0, "file_events": 800, "db_changes": 80}
ROUNDS_FULL, ROUNDS_QUICK = 100, 16
RSS_GROWTH_GOAL_MB = 5.0
SETTLE_S = 30.0  # after the last change: every alert delivered


def bench_soak(world: World, result: BenchResult) -> None:
    """Benchmark: soak (RSS growth, lost/duplicate notifications, CPU per event)."""
    missing = daemon_unavailable()
    if missing:
        result.status, result.reason = "skipped", missing
        return
    size = QUICK if world.quick else FULL
    rounds = ROUNDS_QUICK if world.quick else ROUNDS_FULL
    project = world.project(int(size["worktrees"]), int(size["migrations"]))
    rng = random.Random(20261129)
    files_per_round = int(size["file_events"]) // rounds
    db_per_round = int(size["db_changes"]) // rounds
    round_s = float(size["seconds"]) / rounds
    expected: list[tuple[str, str, str]] = []  # (alert kind, migration, worktree)
    counts = {"file_events": 0, "db_changes": 0}
    samples: list[tuple[float, float]] = []  # (seconds since the soak began, RSS MB)
    with (
        world.server.admin_connect(project.database) as conn,
        running_daemon(project, world.work_dir / "daemon-soak") as daemon,
    ):
        result.command = f"{shlex.join(daemon.argv)}  (MIGWATCH_STATE_DIR={daemon.env['MIGWATCH_STATE_DIR']})"
        scratch = [project.repo.migrations_path(w) / "NOTES.md" for w in project.worktrees]
        first = project.migrations[0]
        begun = time.monotonic()
        cpu_begun = daemon.cpu_seconds()
        pending_name: str | None = None
        for number in range(rounds):
            round_end = begun + (number + 1) * round_s
            changed_before = counts["db_changes"]
            if number % 4 == 0:
                pending_name = f"2999{number:06d}000000_soak_db_only"
                insert_row(
                    conn,
                    "postgresql",
                    checksum="0" * 64,
                    migration_name=pending_name,
                    finished_at=datetime.now(timezone.utc),
                    applied_steps_count=1,
                )
                expected += [("new", pending_name, str(w)) for w in project.worktrees]
                counts["db_changes"] += 1
            elif number % 4 == 2 and pending_name is not None:
                conn.execute('DELETE FROM "_prisma_migrations" WHERE migration_name = %s', (pending_name,))
                expected += [("resolved", pending_name, str(w)) for w in project.worktrees]
                counts["db_changes"] += 1
                pending_name = None
            _burst(scratch, files_per_round, rng, number)
            counts["file_events"] += files_per_round
            for change in range(db_per_round - (counts["db_changes"] - changed_before)):
                conn.execute(
                    'UPDATE "_prisma_migrations" SET logs = %s WHERE migration_name = %s',
                    (f"soak {number}.{change}", first),
                )
                counts["db_changes"] += 1
                time.sleep(max(0.0, min(round_s / db_per_round, round_end - time.monotonic())))
            daemon.ensure_alive()
            samples.append((time.monotonic() - begun, daemon.memory_mb()["VmRSS"]))
            time.sleep(max(0.0, round_end - time.monotonic()))
        if pending_name is not None:
            conn.execute('DELETE FROM "_prisma_migrations" WHERE migration_name = %s', (pending_name,))
            expected += [("resolved", pending_name, str(w)) for w in project.worktrees]
            counts["db_changes"] += 1
        cpu_used = daemon.cpu_seconds() - cpu_begun
        soak_s = time.monotonic() - begun
        daemon.wait_quiet(3.0, SETTLE_S)
        daemon.notifications.refresh()
        received = [_key(r) for r in daemon.notifications.records if r.get("code") == "behind_database"]
        memory = daemon.memory_mb()
    _report(result, expected, received, samples, memory, counts, cpu_used, soak_s, project)


def _burst(paths: list[Path], count: int, rng: random.Random, number: int) -> None:
    """`count` writes in quick succession, spread over the worktrees (an editor or a build at work)."""
    for index in range(count):
        path = paths[rng.randrange(len(paths))]
        path.write_text(f"round {number} write {index}\n", encoding="utf-8")


def _key(record: Record) -> tuple[str, str, str]:
    return (str(record.get("alert")), str(record.get("migration")), str(record.get("worktree")))


def _report(
    result: BenchResult,
    expected: list[tuple[str, str, str]],
    received: list[tuple[str, str, str]],
    samples: list[tuple[float, float]],
    memory: dict[str, float],
    counts: dict[str, int],
    cpu_used: float,
    soak_s: float,
    project: object,
) -> None:
    got = Counter(received)
    lost = [k for k in expected if got[k] == 0]
    duplicated = [k for k, n in got.items() if n > 1]
    unexpected = [k for k in got if k not in set(expected)]
    if not samples:
        raise BenchError("the soak took no memory samples")
    warm = samples[max(0, len(samples) // 10)][1]  # after the first tenth: caches and pools have filled
    growth = samples[-1][1] - warm
    events = counts["file_events"] + counts["db_changes"]
    result.add("rss_growth", growth, "MB", Goal("<=", RSS_GROWTH_GOAL_MB))
    result.add("lost_notifications", float(len(lost)), "", Goal("<=", 0.0))
    result.add("duplicate_notifications", float(len(duplicated) + len(unexpected)), "", Goal("<=", 0.0))
    result.add("cpu_per_event", 1000.0 * cpu_used / max(1, events), "ms")
    result.details.update(
        worktrees=len(getattr(project, "worktrees", [])),
        soak_s=round(soak_s, 1),
        file_events=counts["file_events"],
        db_changes=counts["db_changes"],
        expected_notifications=len(expected),
        received_notifications=len(received),
        lost=[list(k) for k in lost[:10]],
        duplicated=[list(k) for k in duplicated[:10]],
        rss_after_warmup_mb=round(warm, 1),
        rss_end_mb=round(samples[-1][1], 1),
        rss_peak_mb=round(memory.get("VmHWM", 0.0), 1),
        rss_samples_mb=[round(mb, 1) for _, mb in samples[:: max(1, len(samples) // 20)]],
        cpu_seconds=round(cpu_used, 2),
        measured=(
            "file events: writes of a NOTES.md beside the migrations of a random worktree, in bursts; database "
            "changes: UPDATEs of a history row's logs plus, every 4th round, a row no worktree has (inserted, "
            "deleted two rounds later); RSS from /proc/<pid>/status after the first tenth and at the end; CPU: "
            "utime+stime of the daemon and its reaped children over the soak, per event"
        ),
    )
    log(
        f"soak: {events} events in {soak_s:.0f} s, {len(received)}/{len(expected)} notifications, lost "
        f"{len(lost)}, duplicated {len(duplicated) + len(unexpected)}, RSS growth {growth:+.1f} MB"
    )
