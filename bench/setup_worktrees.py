"""Builds the benchmark world: a real git repo with real worktrees and migration folders, and a real
PostgreSQL database whose `_prisma_migrations` rows are the ones Prisma would have written."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.support.gitrepo import PrismaRepo, isolated_environ
from tests.support.pg import PgServer
from tests.support.prisma_rows import create_history_table, insert_row, prisma_checksum

from benchlib import REPO_ROOT, log

WORK_DIR = REPO_ROOT / "bench" / "work"
PARALLEL_DISK_JOBS = 4
FIRST_MIGRATION_AT = datetime(2024, 1, 1, 9, 0, 0, tzinfo=timezone.utc)


def migration_name(index: int) -> str:
    """`20240101090000_add_model_0001`-style names, one hour apart, so the order is timestamp order."""
    stamp = FIRST_MIGRATION_AT + timedelta(hours=index)
    return f"{stamp:%Y%m%d%H%M%S}_add_model_{index:04d}"


def migration_sql(index: int) -> str:
    """A realistic Prisma-generated migration: a table, a foreign key and an index (≈0.6 kB)."""
    model = f"Model{index:04d}"
    parent = f"Model{index - 1:04d}" if index > 0 else "User"
    return (
        "-- CreateTable\n"
        f'CREATE TABLE "{model}" (\n'
        '    "id" TEXT NOT NULL,\n'
        '    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n'
        '    "updatedAt" TIMESTAMP(3) NOT NULL,\n'
        '    "title" TEXT NOT NULL,\n'
        '    "score" DOUBLE PRECISION NOT NULL DEFAULT 0,\n'
        '    "parentId" TEXT,\n\n'
        f'    CONSTRAINT "{model}_pkey" PRIMARY KEY ("id")\n'
        ");\n\n"
        "-- CreateIndex\n"
        f'CREATE INDEX "{model}_parentId_idx" ON "{model}"("parentId");\n\n'
        "-- AddForeignKey\n"
        f'ALTER TABLE "{model}" ADD CONSTRAINT "{model}_parentId_fkey" FOREIGN KEY ("parentId") '
        f'REFERENCES "{parent}"("id") ON DELETE SET NULL ON UPDATE CASCADE;\n'
    )


@dataclass
class BenchProject:
    """A Prisma monorepo (`apps/web`) with `worktrees` checked out and one shared PostgreSQL database."""

    root: Path
    repo: PrismaRepo
    worktrees: list[Path]
    migrations: list[str]
    database: str
    url: str
    status_config: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def git_env(self) -> dict[str, str]:
        return dict(self.repo.env)

    def schema_path(self, worktree: Path) -> Path:
        return self.repo.schema_path(worktree)

    def sql_path(self, worktree: Path, name: str) -> Path:
        return self.repo.migrations_path(worktree) / name / "migration.sql"

    def user_env(self) -> dict[str, str]:
        """The environment a user's shell would give migwatch: isolated git config and HOME."""
        return isolated_environ(self.root / ".git-home")

    def config_text(self, *, command_argv: list[str] | None = None, extra: str = "") -> str:
        """A config as `migwatch init` would write it for this repo (desktop notifications off), with an
        optional command notifier and `extra` top-level keys."""
        command = f"  command: {{enabled: true, argv: {json.dumps(command_argv)}}}\n" if command_argv else ""
        return (
            "projects:\n"
            "  - name: bench\n"
            f"    repo: {json.dumps(str(self.repo.main))}\n"
            f"    schema: {self.repo.package_dir}/prisma/schema.prisma\n"
            "    base_branch: main\n"
            "notifiers:\n"
            "  desktop: {enabled: false}\n" + command + extra
        )

    def cleanup(self) -> None:
        remove_tree(self.root)


def build_project(
    root: Path, server: PgServer, *, worktrees: int, migrations: int, label: str
) -> BenchProject:
    """`worktrees` checkouts (main + linked ones) of a repo with `migrations` committed migrations,
    every one applied in a fresh database; all worktrees in sync (the everyday state)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    repo = PrismaRepo.create(root, name="app")
    names = [migration_name(i) for i in range(migrations)]
    for index, name in enumerate(names):
        repo.write_migration(repo.main, name, migration_sql(index))
    repo.commit(repo.main, f"Add {migrations} migrations")
    timings["repo_s"] = time.perf_counter() - started

    started = time.perf_counter()
    paths = [repo.main, *_add_worktrees(repo, worktrees - 1)]
    timings["worktree_add_s"] = time.perf_counter() - started

    started = time.perf_counter()
    database = server.create_database()
    url = server.url(database)
    for path in paths:
        repo.write_env(path, f'DATABASE_URL="{url}"\n')
    with server.admin_connect(database) as conn:
        create_history_table(conn, "postgresql")
        # One transaction: rows as `migrate deploy` leaves them, one per migration, in applied order.
        conn.autocommit = False
        for index, name in enumerate(names):
            checksum = prisma_checksum(migration_sql(index).encode("utf-8"))
            begun = FIRST_MIGRATION_AT + timedelta(hours=index, minutes=5)
            insert_row(
                conn,
                "postgresql",
                checksum=checksum,
                migration_name=name,
                started_at=begun,
                finished_at=begun + timedelta(milliseconds=40),
                applied_steps_count=1,
                logs=None,
            )
        conn.commit()
    timings["database_s"] = time.perf_counter() - started

    project = BenchProject(
        root=root,
        repo=repo,
        worktrees=paths,
        migrations=names,
        database=database,
        url=url,
        status_config=root / "status.yaml",
        timings=timings,
    )
    project.status_config.write_text(project.config_text(), encoding="utf-8")
    log(
        f"{label}: {worktrees} worktrees x {migrations} migrations built in "
        + ", ".join(f"{key.removesuffix('_s')} {value:.1f} s" for key, value in timings.items())
    )
    return project


def _add_worktrees(repo: PrismaRepo, count: int) -> list[Path]:
    """`git worktree add` `count` times, then git writes their files a few worktrees at once.

    Concurrent `worktree add`s race (each reads the others' half-written admin folders), so the adds
    run one by one with `--no-checkout`, and the disk-bound part, `git reset --hard` in each worktree
    (its own index and files only), runs in parallel.
    """
    paths = []
    for index in range(1, count + 1):
        path = repo.main.parent / f"app-wt{index:03d}"
        repo.git(
            repo.main, "worktree", "add", "-q", "--no-checkout", "-b", f"feature/wt-{index:03d}", str(path)
        )
        paths.append(path)
    with ThreadPoolExecutor(max_workers=PARALLEL_DISK_JOBS) as pool:
        list(pool.map(lambda path: repo.git(path, "reset", "-q", "--hard", "HEAD"), paths))
    return paths


def remove_tree(root: Path) -> None:
    """`rm -rf` of a big tree, one `rm` per top-level entry at once (this disk is slow per unlink, and
    several unlink streams share its journal commits: ~15x faster than one rmtree here)."""
    if not root.exists():
        return
    children = [str(child) for child in root.iterdir()]
    with ThreadPoolExecutor(max_workers=PARALLEL_DISK_JOBS * 4) as pool:
        list(pool.map(lambda child: subprocess.run(["rm", "-rf", "--", child], check=False), children))
    shutil.rmtree(root, ignore_errors=True)


class World:
    """What the benchmarks of one `bench/run.py` invocation share: one PostgreSQL cluster and the
    projects built on it, each built once on first use and removed by `close()`."""

    def __init__(self, work_dir: Path, *, quick: bool) -> None:
        self.work_dir = work_dir
        self.quick = quick
        self._server: PgServer | None = None
        self._projects: dict[tuple[int, int], BenchProject] = {}

    @property
    def server(self) -> PgServer:
        if self._server is None:
            started = time.perf_counter()
            self._server = PgServer.start_new()
            log(
                f"PostgreSQL cluster started in {time.perf_counter() - started:.1f} s (port {self._server.port})"
            )
        return self._server

    def project(self, worktrees: int, migrations: int) -> BenchProject:
        """The project of that size, built on first use."""
        key = (worktrees, migrations)
        if key not in self._projects:
            label = f"{worktrees}x{migrations}"
            self._projects[key] = build_project(
                self.work_dir / label, self.server, worktrees=worktrees, migrations=migrations, label=label
            )
        return self._projects[key]

    def close(self) -> None:
        for project in self._projects.values():
            project.cleanup()
        self._projects.clear()
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        remove_tree(self.work_dir)
