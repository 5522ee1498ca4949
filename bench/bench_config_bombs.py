"""Hostile config files (alias and merge-key bombs, deep nesting, /dev/zero, a FIFO, a directory, an
oversized file, huge numbers, out-of-range durations) against the real CLI: every one must give exit 2
with one line, within 2 s, for `check-config`, `status` and `run` (issue 16). The tests check the exit
code and the line, and only that no command hangs; the time goal lives here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.test_config_bounds import HOSTILE_CONFIGS

from benchlib import MIGWATCH, BenchError, BenchResult, Goal, timed_run
from setup_worktrees import World

GOAL = Goal("<=", 2.0)
COMMANDS = (["check-config"], ["status"], ["run"])


def bench_config_bombs(world: World, result: BenchResult) -> None:
    worst: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="migwatch-bombs-") as tmp:
        base = Path(tmp)
        env = dict(os.environ, MIGWATCH_STATE_DIR=str(base / "state"), HOME=str(base))
        for name in sorted(HOSTILE_CONFIGS):
            make, _ = HOSTILE_CONFIGS[name]
            folder = base / name
            folder.mkdir()
            path = make(folder / "config.yaml")
            for command in COMMANDS:
                sample = timed_run([str(MIGWATCH), "--config", str(path), *command], env=env)
                lines = sample.stderr.decode("utf-8", "replace").splitlines()
                if sample.exit_code != 2 or len(lines) != 1:
                    raise BenchError(f"{name} {command[0]}: exit {sample.exit_code}, stderr {lines[:3]}")
                worst[name] = max(worst.get(name, 0.0), sample.wall_s)
    result.add("slowest_config_error", max(worst.values()), "s", GOAL)
    result.details["configs"] = len(worst)
    result.details["slowest"] = max(worst, key=lambda k: worst[k])
    result.details["per_config_max_s"] = {name: round(value, 3) for name, value in sorted(worst.items())}
