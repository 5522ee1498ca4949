"""The watcher against real folders, real git worktrees and the real watchdog observer (inotify).

Each test waits for the checks it expects with a timeout; "exactly one check" is asserted after the
worker is idle again, i.e. after the debounce window in which any further event would have landed.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import ObservedWatch
from watchdog.observers.inotify import InotifyObserver

from migwatch import git as gitio
from migwatch.watcher import CheckWorker, Debouncer, Watcher
from migwatch.watchtargets import repository_targets, worktree_targets
from tests.support.gitrepo import PrismaRepo

pytestmark = pytest.mark.leakcheck

DEBOUNCE = 0.15
POLL = 0.2
WAIT = 5.0


class Harness:
    """A Watcher feeding a real CheckWorker; each batch re-resolves the watches, as the daemon does."""

    def __init__(self, observer_factory: Any = None) -> None:
        self.batches: list[list[str]] = []
        self._cond = threading.Condition()
        self.worker: CheckWorker[str] = CheckWorker(Debouncer(DEBOUNCE), self._run)
        if observer_factory is None:
            self.watcher: Watcher[str] = Watcher(self.worker.push, poll_interval=POLL)
        else:
            self.watcher = Watcher(self.worker.push, poll_interval=POLL, observer_factory=observer_factory)

    def _run(self, keys: list[str]) -> None:
        self.watcher.refresh()
        with self._cond:
            self.batches.append(sorted(keys))
            self._cond.notify_all()

    def watch_worktree(self, key: str, root: Path, git_dir: Path | None = None) -> None:
        prisma = root / "prisma"
        targets = worktree_targets(
            key,
            worktree=root,
            package_dir=root,
            schema_path=prisma / "schema.prisma",
            migrations_dir=prisma / "migrations",
            git_dir=git_dir,
        )
        self.watcher.update(
            key, [(t, root if root in t.path.parents or t.path == root else t.path) for t in targets]
        )

    def wait_batches(self, count: int, timeout: float = WAIT) -> list[list[str]]:
        """Wait until `count` batches ran and the worker is idle; returns every batch so far."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.batches) >= count, timeout), (
                f"expected {count} check(s), got {self.batches}"
            )
        assert self.worker.wait_idle(timeout)
        with self._cond:
            return list(self.batches)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    h.watcher.start()
    h.worker.start()
    yield h
    h.watcher.stop()
    assert h.worker.stop(5)


def make_worktree(root: Path) -> Path:
    """A Prisma layout without git: prisma/schema.prisma and one migration."""
    migration = root / "prisma" / "migrations" / "20251001000000_init"
    migration.mkdir(parents=True)
    (migration / "migration.sql").write_text('CREATE TABLE "User" ("id" INTEGER);\n', encoding="utf-8")
    (root / "prisma" / "schema.prisma").write_text('datasource db {\n  provider = "sqlite"\n}\n')
    (root / ".env").write_text('DATABASE_URL="file:./dev.db"\n')
    return root


def test_a_write_queues_one_check_for_its_worktree_only(harness: Harness, tmp_path: Path) -> None:
    epic3 = make_worktree(tmp_path / "Americano-epic3")
    epic5 = make_worktree(tmp_path / "Americano-epic5")
    harness.watch_worktree("epic3", epic3)
    harness.watch_worktree("epic5", epic5)

    folder = epic5 / "prisma" / "migrations" / "20251016231054_add_story_5_1_behavioral_pattern_models"
    folder.mkdir()
    (folder / "migration.sql").write_text('CREATE TABLE "BehavioralPattern" ("id" INTEGER);\n')

    assert harness.wait_batches(1) == [["epic5"]]


def test_reading_files_queues_nothing(harness: Harness, tmp_path: Path) -> None:
    epic3 = make_worktree(tmp_path / "Americano-epic3")
    epic5 = make_worktree(tmp_path / "Americano-epic5")
    harness.watch_worktree("epic3", epic3)
    harness.watch_worktree("epic5", epic5)

    # What a check does: list and read everything. Then a real change elsewhere, to have an event to wait on.
    for path in sorted(epic3.rglob("*")):
        if path.is_file():
            path.read_bytes()
    (epic5 / ".env").write_text('DATABASE_URL="file:./other.db"\n')

    assert harness.wait_batches(1) == [["epic5"]]


def test_a_storm_of_200_events_collapses_into_one_check(harness: Harness, tmp_path: Path) -> None:
    epic3 = make_worktree(tmp_path / "Americano-epic3")
    harness.watch_worktree("epic3", epic3)
    migrations = epic3 / "prisma" / "migrations"
    for index in range(100):  # 100 folders + 100 files: 200 creations, and their modifications
        folder = migrations / f"20251101{index:06d}_m{index}"
        folder.mkdir()
        (folder / "migration.sql").write_text(f"-- {index}\n")

    assert harness.wait_batches(1) == [["epic3"]]


def test_editor_atomic_saves_trigger_a_check(harness: Harness, tmp_path: Path) -> None:
    epic3 = make_worktree(tmp_path / "Americano-epic3")
    harness.watch_worktree("epic3", epic3)

    # vim/VS Code style: write a temp file beside the target, then rename it over the target.
    schema = epic3 / "prisma" / "schema.prisma"
    temp = schema.with_name("schema.prisma.tmp~")
    temp.write_text('datasource db {\n  provider = "postgresql"\n}\n')
    os.replace(temp, schema)
    assert harness.wait_batches(1) == [["epic3"]]

    # A temp file from outside the watched folders, moved onto migration.sql (a FileMovedEvent in).
    sql = epic3 / "prisma" / "migrations" / "20251001000000_init" / "migration.sql"
    outside = tmp_path / "migration.sql.swp"
    outside.write_text('CREATE TABLE "User" ("id" BIGINT);\n')
    os.replace(outside, sql)
    assert harness.wait_batches(2) == [["epic3"], ["epic3"]]


def test_a_deleted_and_recreated_migrations_folder_is_watched_again(harness: Harness, tmp_path: Path) -> None:
    epic3 = make_worktree(tmp_path / "Americano-epic3")
    harness.watch_worktree("epic3", epic3)
    migrations = epic3 / "prisma" / "migrations"
    assert harness.watcher.watched_paths()[migrations] is True

    shutil.rmtree(migrations)
    assert harness.wait_batches(1) == [["epic3"]]
    assert migrations not in harness.watcher.watched_paths()  # its parent watches for it instead

    migrations.mkdir()
    assert harness.wait_batches(2) == [["epic3"], ["epic3"]]
    assert harness.watcher.watched_paths()[migrations] is True

    folder = migrations / "20251101000000_again"
    folder.mkdir()
    (folder / "migration.sql").write_text("-- again\n")
    assert harness.wait_batches(3) == [["epic3"], ["epic3"], ["epic3"]]


def test_git_checkout_in_a_real_worktree_is_one_check(harness: Harness, tmp_path: Path, git_env: Any) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite")
    epic3 = repo.epic3
    repo.git(epic3, "checkout", "-q", "-b", "feature/epic-3-spike")
    for index in range(20):
        repo.write_migration(epic3, f"20251020{index:06d}_spike_{index}", f"-- spike {index}\n")
    repo.commit(epic3, "Spike migrations")
    repo.git(epic3, "checkout", "-q", "feature/epic-3-knowledge-graph")

    package = repo.package_path(epic3)
    targets = worktree_targets(
        "epic3",
        worktree=epic3,
        package_dir=package,
        schema_path=repo.schema_path(epic3),
        migrations_dir=repo.migrations_path(epic3),
        git_dir=gitio.git_dir(epic3),
    )
    harness.watcher.update("epic3", [(t, epic3 if epic3 in t.path.parents else t.path) for t in targets])
    main_targets = worktree_targets(
        "main",
        worktree=repo.main,
        package_dir=repo.package_path(repo.main),
        schema_path=repo.schema_path(repo.main),
        migrations_dir=repo.migrations_path(repo.main),
        git_dir=gitio.git_dir(repo.main),
    )
    harness.watcher.update(
        "main", [(t, repo.main if repo.main in t.path.parents else t.path) for t in main_targets]
    )

    repo.git(epic3, "checkout", "-q", "feature/epic-3-spike")  # 20 folders appear, HEAD moves
    assert harness.wait_batches(1) == [["epic3"]]

    repo.git(epic3, "checkout", "-q", "feature/epic-3-knowledge-graph")  # and disappear again
    assert harness.wait_batches(2) == [["epic3"], ["epic3"]]

    repo.git(epic3, "checkout", "-q", "-b", "feature/epic-3-renamed")  # only HEAD changes
    assert harness.wait_batches(3) == [["epic3"], ["epic3"], ["epic3"]]


def test_git_worktree_add_and_remove_are_seen_in_the_common_dir(
    harness: Harness, tmp_path: Path, git_env: Any
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite")
    common = gitio.common_dir(repo.main)
    harness.watcher.update("project", [(t, common) for t in repository_targets("project", common)])

    added = repo.add_worktree("Americano-epic7", "feature/epic-7")
    assert harness.wait_batches(1) == [["project"]]
    repo.remove_worktree(added)
    assert harness.wait_batches(2) == [["project"], ["project"]]


def test_commits_and_packed_refs_are_seen_in_the_common_dir(
    harness: Harness, tmp_path: Path, git_env: Any
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite")
    common = gitio.common_dir(repo.main)
    harness.watcher.update("project", [(t, common) for t in repository_targets("project", common)])

    repo.commit(repo.epic5, "a commit moves the branch, not HEAD", allow_empty=True)
    assert harness.wait_batches(1) == [["project"]]
    repo.git(repo.main, "pack-refs", "--all")  # the loose refs go, packed-refs is rewritten
    assert harness.wait_batches(2) == [["project"], ["project"]]
    repo.git(repo.main, "update-ref", "refs/remotes/origin/main", "HEAD")  # as a fetch writes it
    assert harness.wait_batches(3) == [["project"], ["project"], ["project"]]


class InotifyLimitObserver(InotifyObserver):
    """The real inotify observer, except that watches under `full` fail as when the kernel limit is hit."""

    full: Path

    def schedule(
        self,
        event_handler: FileSystemEventHandler,
        path: str | Path,
        *,
        recursive: bool = False,
        event_filter: list[type[FileSystemEvent]] | None = None,
        follow_symlink: bool = False,
    ) -> ObservedWatch:
        if Path(path) == self.full or self.full in Path(path).parents:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return super().schedule(
            event_handler, path, recursive=recursive, event_filter=event_filter, follow_symlink=follow_symlink
        )


def test_when_inotify_is_full_the_worktree_is_polled_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    epic3 = make_worktree(tmp_path / "Americano-epic3")
    epic5 = make_worktree(tmp_path / "Americano-epic5")
    InotifyLimitObserver.full = epic3
    h = Harness(observer_factory=InotifyLimitObserver)
    h.watcher.start()
    h.worker.start()
    try:
        with caplog.at_level(logging.WARNING, logger="migwatch.watcher"):
            h.watch_worktree("epic3", epic3)
            h.watch_worktree("epic5", epic5)
        warnings = [r.getMessage() for r in caplog.records]
        assert warnings == [
            f'watch failed path={epic3 / "prisma" / "migrations"} error="inotify watch limit reached"; '
            f"polling every {POLL:g}s instead"
        ]
        assert h.watcher.polling_paths() == {epic3 / "prisma" / "migrations", epic3 / "prisma", epic3}
        assert h.watcher.watched_paths().keys() == h.watcher.polling_paths() | {
            epic5 / "prisma" / "migrations",
            epic5 / "prisma",
            epic5,
        }

        sql = epic3 / "prisma" / "migrations" / "20251001000000_init" / "migration.sql"
        sql.write_text('CREATE TABLE "User" ("id" BIGINT, "email" TEXT);\n')
        assert h.wait_batches(1) == [["epic3"]]
        (epic5 / ".env").write_text('DATABASE_URL="file:./other.db"\n')
        assert h.wait_batches(2) == [["epic3"], ["epic5"]]
    finally:
        h.watcher.stop()
        assert h.worker.stop(5)


def test_env_files_that_discovery_read_are_watched(harness: Harness, tmp_path: Path) -> None:
    # A monorepo package whose scripts load the repository root's .env.local (`dotenv -e ../../.env.local --`).
    import json

    from migwatch.discovery import discover_worktree
    from migwatch.model import Worktree
    from migwatch.watchtargets import setup_targets

    root = tmp_path / "repo"
    package = root / "packages" / "db"
    make_worktree(package)
    (package / ".env").unlink()
    (package / "prisma" / "schema.prisma").write_text(
        'datasource db {\n  provider = "sqlite"\n  url      = env("DATABASE_URL")\n}\n'
    )
    (package / "package.json").write_text(
        json.dumps(
            {
                "devDependencies": {"prisma": "6.19.3"},
                "scripts": {"migrate": "dotenv -e ../../.env.local -- prisma migrate deploy"},
            }
        )
    )
    (root / ".env.local").write_text('DATABASE_URL="file:./dev.db"\n')
    setup = discover_worktree(
        Worktree(path=root, head=None, branch="main"), configured_schema=None, database_url=None, env={}
    )
    assert setup.database is not None and root / ".env.local" in setup.env_files
    harness.watcher.update("repo", setup_targets("repo", setup, {}))

    (root / ".env.local").write_text('DATABASE_URL="file:./other.db"\n')

    assert harness.wait_batches(1) == [["repo"]]
