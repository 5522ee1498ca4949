"""Start-up of the CLI as `migwatch guard` meets it: every Prisma command (or, for an agent, every shell
command) pays it, so it is measured next to `node -e 0`, the floor any Node tool such as Prisma pays.

Figures (median of 20 runs after 2 warm-ups, wall time from spawn to reap):
- `migwatch --version`;
- `migwatch guard -- npx prisma generate`: a command guard lets through at once (a stub `npx` that
  exits 0 stands for the real one, so only guard's own cost is measured);
- `migwatch guard --hook claude-code` answering for a shell command that is not Prisma's;
- `migwatch guard -- npx prisma migrate dev` in a worktree in sync with its shared PostgreSQL database:
  the fast path reads the worktree list, every worktree's setup, this worktree's folder and the
  database's history before letting it run;
- `node -e 0`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchlib import MIGWATCH, BenchError, BenchResult, Goal, RunSample, last_line, median, timed_run
from setup_worktrees import World

RUNS, WARMUP = 20, 2
VERSION_GOAL = Goal("<=", 0.080)
ALLOW_GOAL = Goal("<=", 0.150)
STUB_NPX = "#!/bin/sh\nexit 0\n"


def _median_wall(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, stdin: bytes | None = None, quick: bool
) -> tuple[float, RunSample]:
    runs = 3 if quick else RUNS
    samples = []
    for index in range(WARMUP + runs):
        sample = (
            timed_run(argv, env=env, cwd=cwd) if stdin is None else _timed_with_stdin(argv, env, cwd, stdin)
        )
        if sample.exit_code != 0:
            raise BenchError(
                f"{' '.join(argv)} exited {sample.exit_code}: {last_line(sample.stderr) or last_line(sample.stdout)}"
            )
        if index >= WARMUP:
            samples.append(sample)
    return median([s.wall_s for s in samples]), samples[0]


def _timed_with_stdin(argv: Sequence[str], env: Mapping[str, str], cwd: Path, stdin: bytes) -> RunSample:
    """`timed_run` with a payload on stdin (through a file, so the child reads it without a pipe writer)."""
    payload = cwd / ".bench-payload.json"
    payload.write_bytes(stdin)
    shell = ["/bin/sh", "-c", 'exec "$@" < "$0"', str(payload), *argv]
    return timed_run(shell, env=env, cwd=cwd)


def bench_guard_startup(world: World, result: BenchResult) -> None:
    """`migwatch --version` and guard's allow paths next to `node -e 0`."""
    project = world.project(3, 20 if world.quick else 200)
    stub_bin = world.work_dir / "guard-bin"
    stub_bin.mkdir(parents=True, exist_ok=True)
    (stub_bin / "npx").write_text(STUB_NPX, encoding="utf-8")
    (stub_bin / "npx").chmod(0o755)
    env = dict(project.user_env(), MIGWATCH_CONFIG=str(project.status_config))
    env["PATH"] = f"{stub_bin}{os.pathsep}{os.environ['PATH']}"
    package = project.repo.package_path(project.worktrees[1])
    quick = world.quick

    version, _ = _median_wall([str(MIGWATCH), "--version"], env=env, cwd=package, quick=quick)
    result.add("version_median", version, "s", VERSION_GOAL)
    generate, _ = _median_wall(
        [str(MIGWATCH), "guard", "--", "npx", "prisma", "generate"], env=env, cwd=package, quick=quick
    )
    result.add("guard_unguarded_median", generate, "s", ALLOW_GOAL)
    payload = {
        "session_id": "bench",
        "transcript_path": str(package / "t.jsonl"),
        "cwd": str(package),
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "git status && npm test", "description": "bench"},
        "tool_use_id": "toolu_bench",
    }
    hook, _ = _median_wall(
        [str(MIGWATCH), "guard", "--hook", "claude-code"],
        env=env,
        cwd=package,
        stdin=json.dumps(payload).encode(),
        quick=quick,
    )
    result.add("hook_unguarded_median", hook, "s", ALLOW_GOAL)
    dev, sample = _median_wall(
        [str(MIGWATCH), "guard", "--", "npx", "prisma", "migrate", "dev"], env=env, cwd=package, quick=quick
    )
    if sample.stderr:
        raise BenchError(f"guard said something on an in-sync migrate dev: {last_line(sample.stderr)}")
    result.add("guard_dev_in_sync_median", dev, "s", ALLOW_GOAL)
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is not installed: no floor to compare with")
    floor, _ = _median_wall([node, "-e", "0"], env=env, cwd=package, quick=quick)
    result.add("node_e0_median", floor, "s")
    result.details["runs"] = 3 if quick else RUNS
    result.details["project"] = f"{len(project.worktrees)} worktrees x {len(project.migrations)} migrations"
