"""`migwatch status` on PostgreSQL (10 worktrees x 200 migrations), and the same check done the way a user
would without migwatch: the real `prisma migrate status`, once per worktree."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

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
from setup_worktrees import BenchProject, World

PRISMA_SPEEDUP_GOAL = 20.0
PRISMA_UP_TO_DATE = "Database schema is up to date!"


def status_argv(config: Path) -> list[str]:
    """What a user types: `migwatch --config C status --json`."""
    return [str(MIGWATCH), "--config", str(config), "status", "--json"]


def check_status_output(sample: RunSample, project: BenchProject) -> dict[str, Any]:
    """The run must have seen every worktree and migration in sync, or the timing measures something else."""
    if sample.exit_code != 0:
        raise BenchError(
            f"migwatch status exited {sample.exit_code}: "
            f"{last_line(sample.stderr) or last_line(sample.stdout) or 'no output'}"
        )
    document: dict[str, Any] = json.loads(sample.stdout)
    worktrees = [w for p in document["projects"] for w in p["worktrees"]]
    expected = len(project.migrations)
    wrong = [
        w["path"]
        for w in worktrees
        if w["state"] != "ok" or w["local"] != expected or w["applied_here"] != expected
    ]
    if not document["ok"] or len(worktrees) != len(project.worktrees) or wrong:
        raise BenchError(
            f"migwatch status did not report the {len(project.worktrees)} worktrees in sync "
            f"(ok={document['ok']}, worktrees={len(worktrees)}, not ok: {wrong[:3]}, "
            f"findings: {[f['code'] for f in document['findings']][:5]})"
        )
    return document


def time_status(project: BenchProject, runs: int, *, warmup: int = 1) -> list[RunSample]:
    """`runs` timed runs of `migwatch status` (after `warmup` untimed ones), each a fresh process."""
    argv = status_argv(project.status_config)
    env = project.user_env()
    samples = []
    for index in range(warmup + runs):
        sample = timed_run(argv, env=env)
        check_status_output(sample, project)
        if index >= warmup:
            samples.append(sample)
    return samples


def bench_status_pg(world: World, result: BenchResult) -> None:
    """Benchmark 1: wall time (min/median of 5 fresh processes) and peak RSS of `migwatch status`."""
    worktrees, migrations = (10, 200) if not world.quick else (3, 20)
    project = world.project(worktrees, migrations)
    runs = 5 if not world.quick else 2
    samples = time_status(project, runs)
    walls = [s.wall_s for s in samples]
    result.command = shlex.join(status_argv(project.status_config))
    result.add("wall_min", min(walls), "s")
    result.add("wall_median", median(walls), "s")
    result.add("peak_rss", max(s.max_rss_mb for s in samples), "MB")
    result.details.update(
        worktrees=worktrees,
        migrations=migrations,
        history_rows=migrations,
        runs=runs,
        warmup_runs=1,
        walls_s=[round(w, 4) for w in walls],
        rss_mb=[round(s.max_rss_mb, 1) for s in samples],
        database="PostgreSQL (local, 127.0.0.1, scram-sha-256)",
        setup_s={key: round(value, 2) for key, value in project.timings.items()},
    )


def prisma_status_argv(project: BenchProject, worktree: Path) -> list[str]:
    return [
        str(PRISMA_ORACLE),
        "--schema",
        str(project.schema_path(worktree)),
        "--url",
        project.url,
        "--",
        "migrate",
        "status",
    ]


def _redacted(argv: list[str], url: str) -> str:
    # The bench database's password is a throw-away test value, but URLs are never written with one.
    return shlex.join(argv).replace(url, url.replace(":secret@", ":***@"))


def bench_prisma_ratio(world: World, result: BenchResult) -> None:
    """Benchmark 2: `prisma migrate status` once per worktree, sequentially, vs one `migwatch status`."""
    missing = _prisma_unavailable()
    if missing:
        result.status, result.reason = "skipped", missing
        return
    worktrees, migrations = (10, 200) if not world.quick else (3, 20)
    project = world.project(worktrees, migrations)
    log("installing the Prisma oracle (outside the timing)")
    install = timed_run([str(PRISMA_ORACLE_INSTALL)])
    if install.exit_code != 0:
        result.status = "skipped"
        result.reason = (
            f"prisma-oracle install failed: {last_line(install.stderr) or last_line(install.stdout)}"
        )
        return
    # One untimed call, so that Prisma gets the same warm OS cache migwatch gets from its warm-up run.
    warm = timed_run(prisma_status_argv(project, project.worktrees[0]))
    if warm.exit_code != 0:
        raise BenchError(f"prisma migrate status exited {warm.exit_code}: {last_line(warm.stderr)}")

    prisma_samples = []
    for worktree in project.worktrees:
        sample = timed_run(prisma_status_argv(project, worktree))
        output = sample.stdout.decode("utf-8", "replace")
        if sample.exit_code != 0 or PRISMA_UP_TO_DATE not in output:
            raise BenchError(
                f"prisma migrate status in {worktree.name} exited {sample.exit_code} without "
                f"{PRISMA_UP_TO_DATE!r}: {last_line(sample.stderr) or last_line(sample.stdout)}"
            )
        prisma_samples.append(sample)
    prisma_total = sum(s.wall_s for s in prisma_samples)

    runs = 5 if not world.quick else 2
    migwatch_samples = time_status(project, runs)
    migwatch_median = median([s.wall_s for s in migwatch_samples])

    result.command = (
        f"for each of the {worktrees} worktrees: "
        + _redacted(prisma_status_argv(project, project.worktrees[0]), project.url).replace(
            str(project.worktrees[0]), "<worktree>"
        )
        + f"  vs  {shlex.join(status_argv(project.status_config))}"
    )
    result.add("prisma_total", prisma_total, "s")
    result.add("prisma_per_worktree_median", median([s.wall_s for s in prisma_samples]), "s")
    result.add("prisma_peak_rss_per_call", max(s.max_rss_mb for s in prisma_samples), "MB")
    result.add("migwatch_median", migwatch_median, "s")
    result.add("migwatch_peak_rss", max(s.max_rss_mb for s in migwatch_samples), "MB")
    result.add("speedup", prisma_total / migwatch_median, "x", Goal(">=", PRISMA_SPEEDUP_GOAL))
    result.details.update(
        worktrees=worktrees,
        migrations=migrations,
        prisma="6.19.3 CLI (Wasm schema engine, driver adapter) via prisma-oracle",
        prisma_walls_s=[round(s.wall_s, 3) for s in prisma_samples],
        prisma_rss_mb=[round(s.max_rss_mb, 1) for s in prisma_samples],
        migwatch_walls_s=[round(s.wall_s, 4) for s in migwatch_samples],
        agreement=(
            f"prisma printed {PRISMA_UP_TO_DATE!r} (exit 0) in all {worktrees} worktrees; "
            "migwatch reported every worktree ok (exit 0)"
        ),
    )


def _prisma_unavailable() -> str | None:
    for program in ("node", "npm"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install nodejs npm)"
    if not PRISMA_ORACLE.is_file():
        return f"{PRISMA_ORACLE} not found"
    return None
