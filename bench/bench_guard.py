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
from dataclasses import dataclass
from pathlib import Path

from benchlib import MIGWATCH, BenchError, BenchResult, Goal, RunSample, last_line, median, timed_run
from setup_worktrees import World

RUNS, WARMUP = 20, 2
VERSION_GOAL = Goal("<=", 0.080)
ALLOW_GOAL = Goal("<=", 0.150)
STUB_NPX = "#!/bin/sh\nexit 0\n"


@dataclass(frozen=True)
class _Case:
    name: str
    argv: list[str]
    stdin: bytes | None = None


def _interleaved_medians(
    cases: Sequence[_Case], *, env: Mapping[str, str], cwd: Path, quick: bool
) -> dict[str, float]:
    """Median wall time per case, the cases taking turns in each round so that load from other
    processes weighs on all of them alike (the ratios to `node -e 0` stay meaningful on a busy machine)."""
    runs = 3 if quick else RUNS
    walls: dict[str, list[float]] = {case.name: [] for case in cases}
    for index in range(WARMUP + runs):
        for case in cases:
            if case.stdin is None:
                sample = timed_run(case.argv, env=env, cwd=cwd)
            else:
                sample = _timed_with_stdin(case.argv, env, cwd, case.stdin)
            if sample.exit_code != 0 or (case.name == "guard_dev_in_sync" and sample.stderr):
                raise BenchError(
                    f"{' '.join(case.argv)} exited {sample.exit_code}: "
                    f"{last_line(sample.stderr) or last_line(sample.stdout) or 'no output'}"
                )
            if index >= WARMUP:
                walls[case.name].append(sample.wall_s)
    return {name: median(values) for name, values in walls.items()}


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
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is not installed: no floor to compare with")
    cases = [
        _Case("version", [str(MIGWATCH), "--version"]),
        _Case("guard_unguarded", [str(MIGWATCH), "guard", "--", "npx", "prisma", "generate"]),
        _Case(
            "hook_unguarded", [str(MIGWATCH), "guard", "--hook", "claude-code"], json.dumps(payload).encode()
        ),
        _Case("guard_dev_in_sync", [str(MIGWATCH), "guard", "--", "npx", "prisma", "migrate", "dev"]),
        _Case("node_e0", [node, "-e", "0"]),
    ]
    medians = _interleaved_medians(cases, env=env, cwd=package, quick=world.quick)
    floor = medians["node_e0"]
    goals = {"version": VERSION_GOAL, "node_e0": None}
    for case in cases:
        result.add(f"{case.name}_median", medians[case.name], "s", goals.get(case.name, ALLOW_GOAL))
    for case in cases[:-1]:
        result.add(f"{case.name}_vs_node", medians[case.name] / floor, "x")
    result.details["runs"] = 3 if world.quick else RUNS
    result.details["project"] = f"{len(project.worktrees)} worktrees x {len(project.migrations)} migrations"
