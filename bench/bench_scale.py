"""`migwatch status` at scale: 100 worktrees x 1,000 migrations, one PostgreSQL database with 1,000 rows."""

from __future__ import annotations

import shlex
from pathlib import Path

from bench_status import check_status_output, status_argv
from benchlib import BenchResult, Goal, drop_page_cache, log, median, timed_run
from setup_worktrees import World

COLD_GOAL_S = 3.0


def bench_scale(world: World, result: BenchResult) -> None:
    """Benchmark 3: cold full scan (fresh process, page cache dropped when allowed) and peak RSS."""
    worktrees, migrations = (100, 1000) if not world.quick else (10, 100)
    project = world.project(worktrees, migrations)
    argv = status_argv(project.status_config)
    env = project.user_env()
    runs = 3 if not world.quick else 1

    cold = []
    dropped = True
    for _ in range(runs):
        dropped = drop_page_cache() and dropped
        sample = timed_run(argv, env=env)
        check_status_output(sample, project)
        cold.append(sample)
    warm = []
    for _ in range(max(1, runs - 1)):
        sample = timed_run(argv, env=env)
        check_status_output(sample, project)
        warm.append(sample)
    floor = _read_everything_cold(project.root) if dropped else None
    if not dropped:
        log("could not drop the OS page cache (not root, or /proc/sys read-only): 'cold' is warm-OS-cache")

    cold_walls = [s.wall_s for s in cold]
    goal = Goal("<=", COLD_GOAL_S)
    result.command = shlex.join(argv)
    result.add("cold_median", median(cold_walls), "s", goal)
    result.add("cold_max", max(cold_walls), "s")
    result.add("warm_os_cache_median", median([s.wall_s for s in warm]), "s", goal)
    result.add("peak_rss", max(s.max_rss_mb for s in cold + warm), "MB")
    if floor is not None:
        result.add("io_floor_cold", floor, "s")
    result.details.update(
        worktrees=worktrees,
        migrations=migrations,
        files=worktrees * migrations,
        history_rows=migrations,
        runs=runs,
        cold_means=(
            "fresh process (empty checksum cache) after `sync; echo 3 > /proc/sys/vm/drop_caches`"
            if dropped
            else "fresh process (empty checksum cache); the OS page cache could not be dropped (warm)"
        ),
        page_cache_dropped=dropped,
        io_floor_means=(
            f"`{FLOOR_COMMAND}` in the project folder after dropping the page cache: the time any "
            "program needs just to read every migration.sql from this disk"
        ),
        cold_walls_s=[round(w, 3) for w in cold_walls],
        warm_walls_s=[round(s.wall_s, 3) for s in warm],
        rss_mb=[round(s.max_rss_mb, 1) for s in cold + warm],
        setup_s={key: round(value, 2) for key, value in project.timings.items()},
        setup_total_s=round(sum(project.timings.values()), 1),
    )


FLOOR_COMMAND = "find . -name migration.sql -print0 | xargs -0 cat > /dev/null"


def _read_everything_cold(root: Path) -> float:
    """Wall time of reading every migration.sql with find+cat after dropping the page cache."""
    drop_page_cache()
    sample = timed_run(["bash", "-c", FLOOR_COMMAND], cwd=root)
    return sample.wall_s
