"""Attribution on a long history: a generated repository of 4,000+ commits and 260+ branches whose main
worktree is 50 migrations behind its database (they live on one branch whose worktree is gone).

Figures: `migwatch status` (fresh processes, warm OS cache) against one real `prisma migrate status` of
the same worktree in the same run, and the daemon's re-check of the project with the git index cached
(in-process, as the daemon's worker runs it)."""

from __future__ import annotations

import json
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from tests.support.gitrepo import isolated_environ
from tests.support.longhistory import MIGRATIONS, PACKAGE, LongHistory, generate

from benchlib import (
    MIGWATCH,
    PRISMA_ORACLE,
    PRISMA_ORACLE_INSTALL,
    BenchError,
    BenchResult,
    Goal,
    RunSample,
    last_line,
    log,
    median,
    timed_run,
)
from migwatch import pipeline
from migwatch.config import ProjectConfig
from migwatch.gitindex import GitIndexCache
from migwatch.migrations import ChecksumCache
from setup_worktrees import World

STATUS_GOAL_S = 0.5
RATIO_GOAL = 0.2
RECHECK_GOAL_MS = 50.0


def _check(sample: RunSample, history: LongHistory) -> None:
    """The run must attribute all 50 missing migrations to the branch that has them."""
    if sample.exit_code != 1:
        raise BenchError(
            f"migwatch status exited {sample.exit_code}: {last_line(sample.stderr) or 'no output'}"
        )
    document: dict[str, Any] = json.loads(sample.stdout)
    behind = [f for f in document["findings"] if f["code"] == "behind_database"]
    names = sorted(f["migration"] for f in behind)
    expected_merge = f"git -C {shlex.quote(str(history.repo))} merge {history.branch}"
    wrong = [f["migration"] for f in behind if not f["fix"] or f["fix"][0] != expected_merge]
    if names != sorted(history.branch_only) or wrong:
        raise BenchError(
            f"migwatch status did not attribute the {len(history.branch_only)} migrations to {history.branch} "
            f"(found {len(names)}, wrong fix for {wrong[:3]}: {behind[0]['fix'][:1] if behind else None})"
        )


def _recheck_ms(history: LongHistory, env: dict[str, str], runs: int) -> list[float]:
    """The daemon's re-check (worktree list, folder scan, analysis, git evidence) with warm caches."""
    project = ProjectConfig(name="long", repo=history.repo, base_branch="main")
    cache = GitIndexCache()
    options = pipeline.CheckOptions(env=env, cache=ChecksumCache())
    times = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        histories = None
        for index in range(runs + 1):
            started = time.perf_counter()
            snapshot = pipeline.snapshot_project(project, options, pool, histories)
            _, found = pipeline.diagnose_project(snapshot, env, datetime.now(timezone.utc), index_cache=cache)
            elapsed = (time.perf_counter() - started) * 1000
            histories = dict(snapshot.histories)  # the daemon's poller holds the rows between checks
            if len([f for f in found if f.code == "behind_database"]) != len(history.branch_only):
                raise BenchError("the in-process re-check did not find the 50 migrations behind")
            if index:
                times.append(elapsed)
    if cache.builds != 1:
        raise BenchError(f"the git index was built {cache.builds} times for {runs + 1} checks")
    return times


def bench_attribution(world: World, result: BenchResult) -> None:
    commits, branches = (4000, 260) if not world.quick else (400, 30)
    root = world.work_dir / "attribution"
    env = isolated_environ(root / "home")
    started = time.perf_counter()
    history = generate(root, env, commits=commits, branches=branches)
    log(
        f"generated {history.commits} commits, {history.branches} refs in {time.perf_counter() - started:.1f} s"
    )
    config = root / "status.yaml"
    config.write_text(
        f"projects:\n  - name: long\n    repo: {history.repo}\n    base_branch: main\n", encoding="utf-8"
    )
    argv = [str(MIGWATCH), "--config", str(config), "status", "--json"]
    runs = 5 if not world.quick else 2
    samples = []
    for index in range(runs + 1):
        sample = timed_run(argv, env=env)
        _check(sample, history)
        if index:
            samples.append(sample)
    status_median = median([s.wall_s for s in samples])
    schema = history.repo / PACKAGE / "prisma" / "schema.prisma"
    prisma_argv = [
        str(PRISMA_ORACLE),
        "--schema",
        str(schema),
        "--url",
        f"file:{history.database}",
        "--",
        "migrate",
        "status",
    ]
    if timed_run([str(PRISMA_ORACLE_INSTALL)]).exit_code != 0:
        raise BenchError("prisma-oracle install failed")
    timed_run(prisma_argv)  # warm-up, as migwatch got one
    prisma = timed_run(prisma_argv)
    if b"have not yet been applied" in prisma.stdout or prisma.exit_code not in (0, 1):
        raise BenchError(f"prisma migrate status exited {prisma.exit_code}: {last_line(prisma.stderr)}")
    rechecks = _recheck_ms(history, env, 20 if not world.quick else 3)
    result.command = shlex.join(argv) + "  vs  " + shlex.join(prisma_argv)
    result.add("status_median", status_median, "s", Goal("<=", STATUS_GOAL_S))
    result.add("prisma_migrate_status", prisma.wall_s, "s")
    result.add("status_vs_prisma", status_median / prisma.wall_s, "x", Goal("<=", RATIO_GOAL))
    result.add("recheck_median", median(rechecks), "ms", Goal("<=", RECHECK_GOAL_MS))
    result.add("status_peak_rss", max(s.max_rss_mb for s in samples), "MB")
    result.details.update(
        commits=history.commits,
        refs=history.branches,
        behind=len(history.branch_only),
        migrations_dir=MIGRATIONS,
        status_walls_s=[round(s.wall_s, 4) for s in samples],
        recheck_ms=[round(t, 2) for t in rechecks],
        prisma_exit_code=prisma.exit_code,
        prisma_stdout_tail=last_line(prisma.stdout),
    )
