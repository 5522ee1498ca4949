"""A long generated history (git fast-import): thousands of commits, hundreds of branches, and a Prisma
project whose main worktree is behind its SQLite database by migrations that live on one branch only
(its worktree is gone). Shared by the attribution benchmark and the long-history zoo test."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

PACKAGE = "apps/web"
MIGRATIONS = f"{PACKAGE}/prisma/migrations"
START = datetime(2024, 1, 1, 9, 0, 0, tzinfo=timezone.utc)
SCHEMA = 'datasource db {\n  provider = "sqlite"\n  url      = env("DATABASE_URL")\n}\n'
LOCK = 'provider = "sqlite"\n'
AUTHOR = "Bench Author <bench@migwatch.invalid>"


def migration_name(index: int) -> str:
    return f"{START + timedelta(hours=index):%Y%m%d%H%M%S}_add_model_{index:04d}"


def migration_sql(index: int) -> str:
    return f'-- CreateTable\nCREATE TABLE "Model{index:04d}" ("id" TEXT NOT NULL PRIMARY KEY, "title" TEXT NOT NULL);\n'


@dataclass(frozen=True)
class LongHistory:
    """What was generated: the checkout, its database, and the migrations it lacks."""

    repo: Path
    database: Path
    main_migrations: tuple[str, ...]
    branch_only: tuple[str, ...]  # on `feature/big` only, applied to the database
    branch: str
    commits: int
    branches: int


def _blob(text: str) -> bytes:
    data = text.encode()
    return b"data %d\n%s\n" % (len(data), data)


def _commit(
    ref: str, mark: int, when: datetime, message: str, parent: int | None, files: Mapping[str, str]
) -> bytes:
    stamp = int(when.timestamp())
    out = [
        f"commit {ref}\nmark :{mark}\nauthor {AUTHOR} {stamp} +0000\ncommitter {AUTHOR} {stamp} +0000\n".encode()
    ]
    out.append(_blob(message))
    if parent is not None:
        out.append(f"from :{parent}\n".encode())
    for path, content in files.items():
        data = content.encode()
        out.append(f"M 100644 inline {path}\n".encode() + b"data %d\n%s\n" % (len(data), data))
    return b"".join(out)


def _stream(commits: int, branches: int, main_migrations: int, branch_only: int) -> Iterator[bytes]:
    """main: `commits` commits (a migration every commits/main_migrations); `branches` short branches
    off main; `feature/big`: main's tip plus `branch_only` migration commits."""
    every = max(1, commits // main_migrations)
    package_json = json.dumps({"name": "web", "private": True, "devDependencies": {"prisma": "6.19.3"}})
    files: dict[str, str] = {
        f"{PACKAGE}/package.json": package_json + "\n",
        f"{PACKAGE}/prisma/schema.prisma": SCHEMA,
        f"{MIGRATIONS}/migration_lock.toml": LOCK,
        ".gitignore": "node_modules/\n.env\n",
    }
    migration = 0
    fork_points: list[int] = []
    for n in range(1, commits + 1):
        when = START + timedelta(minutes=10 * n)
        if n > 1:
            files = {f"src/module_{n % 300:03d}.ts": f"export const revision = {n};\n"}
        if n % every == 0 and migration < main_migrations:
            files[f"{MIGRATIONS}/{migration_name(migration)}/migration.sql"] = migration_sql(migration)
            migration += 1
        yield _commit("refs/heads/main", n, when, f"Change {n}", n - 1 if n > 1 else None, files)
        if n % max(1, commits // branches) == 0:
            fork_points.append(n)
    mark = commits
    for number, fork in enumerate(fork_points[:branches]):
        mark += 1
        when = START + timedelta(minutes=10 * fork + 5)
        change = {f"src/agent_{number:04d}.ts": f"export const task = {number};\n"}
        yield _commit(f"refs/heads/agent/task-{number:04d}", mark, when, f"Task {number}", fork, change)
    parent = commits
    for index in range(main_migrations, main_migrations + branch_only):
        mark += 1
        when = START + timedelta(minutes=10 * commits + index)
        sql = {f"{MIGRATIONS}/{migration_name(index)}/migration.sql": migration_sql(index)}
        yield _commit("refs/heads/feature/big", mark, when, f"Add model {index}", parent, sql)
        parent = mark


def generate(
    root: Path,
    env: Mapping[str, str],
    *,
    commits: int = 4000,
    branches: int = 260,
    main_migrations: int = 150,
    branch_only: int = 50,
) -> LongHistory:
    """Build the repository at `root/repo` (checked out on main) and its database `root/dev.db`."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    run = dict(env)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], env=run, check=True)
    stream = b"".join(_stream(commits, branches, main_migrations, branch_only))
    subprocess.run(["git", "fast-import", "--quiet"], input=stream, cwd=repo, env=run, check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=repo, env=run, check=True)
    database = root / "dev.db"
    (repo / PACKAGE / ".env").write_text(f'DATABASE_URL="file:{database}"\n', encoding="utf-8")
    names = [migration_name(i) for i in range(main_migrations + branch_only)]
    _write_history(database, [(name, migration_sql(i)) for i, name in enumerate(names)])
    return LongHistory(
        repo=repo,
        database=database,
        main_migrations=tuple(names[:main_migrations]),
        branch_only=tuple(names[main_migrations:]),
        branch="feature/big",
        commits=commits + branches + branch_only,
        branches=branches + 2,
    )


def _write_history(database: Path, applied: list[tuple[str, str]]) -> None:
    """Rows exactly as Prisma's SQLite connector writes them, and the tables they create."""
    conn = sqlite3.connect(database)
    try:
        conn.execute(
            'CREATE TABLE "_prisma_migrations" ("id" TEXT PRIMARY KEY NOT NULL, "checksum" TEXT NOT NULL, '
            '"finished_at" DATETIME, "migration_name" TEXT NOT NULL, "logs" TEXT, "rolled_back_at" DATETIME, '
            '"started_at" DATETIME NOT NULL DEFAULT current_timestamp, "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0)'
        )
        for index, (name, sql) in enumerate(applied):
            conn.executescript(sql)
            started = int((START + timedelta(hours=index)).timestamp() * 1000)
            conn.execute(
                "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, logs, rolled_back_at, "
                "started_at, applied_steps_count) VALUES (?, ?, ?, ?, NULL, NULL, ?, 1)",
                (str(uuid.uuid4()), hashlib.sha256(sql.encode()).hexdigest(), started + 5, name, started),
            )
        conn.commit()
    finally:
        conn.close()
