"""`migwatch status` wall time reading the history directly vs through a real PgBouncer (issue 11).

The seed story (three worktrees sharing one PostgreSQL database) is checked with `migwatch status`
as a user runs it (a new process each time): 15 runs per connection path, interleaved, median and
minimum printed.

Run: `.venv/bin/python bench/pgbouncer_status.py` (needs pgbouncer: tools/system-deps.sh).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from tests.support.gitrepo import PrismaRepo
from tests.support.pg import PgDatabase, PgServer
from tests.support.pgbouncer import PgBouncer
from tests.support.prisma_rows import apply_like_prisma, create_history_table

RUNS = 15


def timed_status(config: Path, env: dict[str, str]) -> float:
    """One `migwatch status` run, in seconds."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "migwatch", "--config", str(config), "status"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode not in (0, 1):
        raise RuntimeError(completed.stderr)
    return time.perf_counter() - started


def project(root: Path, url: str, database: PgDatabase, *, seed: bool) -> tuple[Path, dict[str, str]]:
    repo = PrismaRepo.seed_story(root, database_url=url)
    if not seed:
        return _config(root, repo)
    with closing(database.connect()) as conn:
        create_history_table(conn, "postgresql")
        for folder in sorted(p for p in repo.migrations_path(repo.main).iterdir() if p.is_dir()):
            apply_like_prisma(conn, folder, provider="postgresql")
    return _config(root, repo)


def _config(root: Path, repo: PrismaRepo) -> tuple[Path, dict[str, str]]:
    config = root / "config.yaml"
    config.write_text(f"projects:\n  - repo: {repo.main}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(repo.env)
    return config, env


def run() -> None:
    server = PgServer.start_new()
    try:
        for mode in ("transaction", "session"):
            bouncer = PgBouncer(server, mode)
            try:
                database = PgDatabase(server, server.create_database())
                direct_config, env = project(Path(tempfile.mkdtemp()), database.url, database, seed=True)
                pooled_config, _ = project(
                    Path(tempfile.mkdtemp()), bouncer.url(database.name), database, seed=False
                )
                # Interleaved, so that the load of a shared machine falls on both alike.
                direct, pooled = [], []
                for _ in range(RUNS):
                    direct.append(timed_status(direct_config, env))
                    pooled.append(timed_status(pooled_config, env))
                print(
                    f"pgbouncer {mode} mode: status median {statistics.median(pooled) * 1000:.0f} ms "
                    f"(min {min(pooled) * 1000:.0f}) vs direct {statistics.median(direct) * 1000:.0f} ms "
                    f"(min {min(direct) * 1000:.0f}), {RUNS} runs each, 3 worktrees"
                )
            finally:
                bouncer.stop()
    finally:
        server.cleanup()


if __name__ == "__main__":
    run()
