"""`migwatch demo`: the seed story, self-contained, on a throwaway SQLite file (or a PostgreSQL schema).

Builds a git repository with `main` and two worktrees like the seed's monorepo, applies migrations to
the shared database exactly as Prisma records them, runs the daemon in-process with a terminal
notifier, plays the story step by step, prints the final `status` table, and removes everything.
"""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql

from migwatch import git as gitio
from migwatch.alerts import Alert
from migwatch.config import Config, parse_config
from migwatch.dburl import parse_postgres, redact
from migwatch.notify.terminal import TerminalNotifier
from migwatch.pipeline import CheckOptions, run_status
from migwatch.report import render_text

EPIC3 = ("Americano-epic3", "feature/epic-3-knowledge-graph")
EPIC5 = ("Americano-epic5", "feature/epic-5-behavioral-twin")
PACKAGE = "apps/web"
MIGRATIONS = f"{PACKAGE}/prisma/migrations"
EDITED = "20251015231031_story_2_5_mission_orchestration_fields"
STORY_5_1 = "20251016231054_add_story_5_1_behavioral_pattern_models"
WAIT_SECONDS = 20.0

_MAIN_MIGRATIONS = {
    "20251001000000_init": 'CREATE TABLE "User" ("id" {pk}, "email" TEXT NOT NULL);\n',
    "20251010120000_add_mission": 'CREATE TABLE "Mission" ("id" {pk}, "userId" INTEGER NOT NULL, "title" TEXT NOT NULL);\n',
    EDITED: 'ALTER TABLE "Mission" ADD COLUMN "orchestration" TEXT;\n',
}
_STORY_5_1_SQL = (
    'CREATE TABLE "BehavioralPattern" ("id" {pk}, "userId" INTEGER NOT NULL, "kind" TEXT NOT NULL);\n'
)
_SCHEMA = """generator client {{
  provider = "prisma-client-js"
}}

datasource db {{
  provider = "{provider}"
  url      = env("DATABASE_URL")
}}

model User {{
  id    Int    @id @default(autoincrement())
  email String
}}
"""
_CREATE_SQLITE = (
    'CREATE TABLE "_prisma_migrations" ("id" TEXT PRIMARY KEY NOT NULL, "checksum" TEXT NOT NULL, '
    '"finished_at" DATETIME, "migration_name" TEXT NOT NULL, "logs" TEXT, "rolled_back_at" DATETIME, '
    '"started_at" DATETIME NOT NULL DEFAULT current_timestamp, "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0)'
)
_CREATE_POSTGRES = (
    'CREATE TABLE {}."_prisma_migrations" ("id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, '
    '"finished_at" TIMESTAMPTZ, "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ, '
    '"started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)'
)


class DemoError(Exception):
    """The demo could not run (one line)."""


class _Database:
    """The demo's own database, written the way `prisma migrate deploy` writes it."""

    def __init__(self, workdir: Path, postgres_url: str | None) -> None:
        self.postgres_url = postgres_url
        if postgres_url:
            self.schema = f"migwatch_demo_{secrets.token_hex(4)}"
            base = postgres_url.split("?", 1)[0]
            self.url = f"{base}?schema={self.schema}"
            self.provider = "postgresql"
            self.pk = "SERIAL PRIMARY KEY"
        else:
            self.schema = ""
            self.file = workdir / "dev.db"
            self.url = f"file:{self.file}"
            self.provider = "sqlite"
            self.pk = "INTEGER PRIMARY KEY"

    def _pg(self) -> psycopg.Connection[Any]:
        target = parse_postgres(self.url)
        try:
            return psycopg.connect(
                host=target.host,
                port=target.port,
                dbname=target.dbname,
                user=target.user,
                password=target.password,
                connect_timeout=5,
                autocommit=True,
            )
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DemoError(f"cannot connect to {redact(self.url)}: {redact(first)}") from None

    def create(self) -> None:
        if self.provider == "sqlite":
            with closing(sqlite3.connect(self.file)) as conn:
                conn.execute(_CREATE_SQLITE)
                conn.commit()
            return
        with self._pg() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            conn.execute(sql.SQL(_CREATE_POSTGRES).format(sql.Identifier(self.schema)))

    def apply(self, name: str, script: str) -> None:
        """Run the migration and record it with Prisma's checksum, as `migrate deploy` does."""
        checksum = hashlib.sha256(script.encode("utf-8")).hexdigest()
        now = datetime.now(timezone.utc)
        if self.provider == "sqlite":
            millis = int(now.timestamp() * 1000)
            with closing(sqlite3.connect(self.file)) as conn:
                conn.executescript(script)
                conn.execute(
                    'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, '
                    "applied_steps_count) VALUES (?, ?, ?, ?, ?, 1)",
                    (str(uuid.uuid4()), checksum, millis, name, millis),
                )
                conn.commit()
            return
        with self._pg() as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            conn.execute(script.encode("utf-8"))
            conn.execute(
                'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, '
                "applied_steps_count) VALUES (%s, %s, %s, %s, %s, 1)",
                (str(uuid.uuid4()), checksum, now, name, now),
            )

    def drop(self) -> None:
        if self.provider == "postgresql":
            with self._pg() as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))


class _Recorder:
    """A terminal notifier that also hands every alert to the story, which waits for the ones it expects."""

    name = "terminal"

    def __init__(self, stream: TextIO) -> None:
        self._terminal = TerminalNotifier(stream)
        self.alerts: queue.Queue[Alert] = queue.Queue()

    def send(self, alert: Alert) -> None:
        self._terminal.send(alert)
        self.alerts.put(alert)

    def check(self) -> str | None:
        return self._terminal.check()

    def close(self) -> None:
        self._terminal.close()

    def wait_for(self, predicate: Callable[[Alert], bool], timeout: float = WAIT_SECONDS) -> Alert:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DemoError("the expected alert did not arrive in time; see the log above")
            try:
                alert = self.alerts.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(alert):
                return alert


@dataclass
class _Repo:
    root: Path
    env: Mapping[str, str]

    @property
    def main(self) -> Path:
        return self.root / "Americano"

    def wt(self, folder: str) -> Path:
        return self.root / folder

    def git(self, worktree: Path, *args: str) -> str:
        return gitio.run_git(worktree, *args, env=self.env)

    def write_migration(self, worktree: Path, name: str, script: str) -> None:
        folder = worktree / MIGRATIONS / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "migration.sql").write_text(script, encoding="utf-8")


def _demo_env(workdir: Path) -> dict[str, str]:
    """The demo's git runs with its own identity and no user config; DATABASE_URL comes from the .env files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "DATABASE_URL"}
    gitconfig = workdir / "gitconfig"
    gitconfig.write_text("[commit]\n\tgpgsign = false\n[init]\n\tdefaultBranch = main\n", encoding="utf-8")
    env.update(
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="migwatch demo",
        GIT_AUTHOR_EMAIL="demo@migwatch.invalid",
        GIT_COMMITTER_NAME="migwatch demo",
        GIT_COMMITTER_EMAIL="demo@migwatch.invalid",
    )
    return env


def _build_repo(workdir: Path, db: _Database, env: Mapping[str, str]) -> _Repo:
    repo = _Repo(workdir, env)
    package = repo.main / PACKAGE
    (package / "prisma" / "migrations").mkdir(parents=True)
    (repo.main / "package.json").write_text(
        '{"name": "americano", "private": true, "workspaces": ["apps/web"]}\n', encoding="utf-8"
    )
    (package / "package.json").write_text(
        '{"name": "web", "private": true, "devDependencies": {"prisma": "6.19.3"}}\n', encoding="utf-8"
    )
    (package / "prisma" / "schema.prisma").write_text(_SCHEMA.format(provider=db.provider), encoding="utf-8")
    (package / "prisma" / "migrations" / "migration_lock.toml").write_text(
        f'provider = "{db.provider}"\n', encoding="utf-8"
    )
    (repo.main / ".gitignore").write_text(".env\nnode_modules/\n", encoding="utf-8")
    for name, script in _MAIN_MIGRATIONS.items():
        repo.write_migration(repo.main, name, script.format(pk=db.pk))
    repo.git(repo.main, "init", "-q", "-b", "main")
    repo.git(repo.main, "add", "-A")
    repo.git(repo.main, "commit", "-q", "-m", "Prisma project with three migrations")
    for folder, branch in (EPIC3, EPIC5):
        repo.git(repo.main, "worktree", "add", "-q", "-b", branch, str(repo.wt(folder)))
    for worktree in (repo.main, repo.wt(EPIC3[0]), repo.wt(EPIC5[0])):
        (worktree / PACKAGE / ".env").write_text(f'DATABASE_URL="{db.url}"\n', encoding="utf-8")
    return repo


def _config(repo: _Repo) -> Config:
    text = (
        f"projects:\n  - name: americano\n    repo: {repo.main}\n    base_branch: main\n"
        "poll_interval: 500ms\ndebounce: 250ms\nremind_after: 0\nnotify_resolved: true\n"
        "notifiers:\n  desktop: {enabled: false}\nlog: {level: warning}\n"
    )
    return parse_config(text, source=None, env=repo.env)


def run_demo(*, out: TextIO, postgres_url: str | None = None) -> int:
    """Play the story; returns 0 when every expected alert arrived."""
    from migwatch.daemon import Daemon

    workdir = Path(tempfile.mkdtemp(prefix="migwatch-demo-"))
    db = _Database(workdir, postgres_url)
    say = _Narrator(out)
    daemon: Daemon | None = None
    try:
        env = _demo_env(workdir)
        repo = _set_the_scene(workdir, db, env, say)
        recorder = _Recorder(out)
        daemon = Daemon(_config(repo), state_dir=workdir / "state", notifiers=[recorder], env=env)
        daemon.start()
        if not daemon.wait_idle(WAIT_SECONDS):
            raise DemoError("the first check did not finish in time")
        say.step("The daemon is watching: every worktree agrees with the database, so nothing is alerted.")
        _play_story(repo, db, recorder, daemon.wait_idle, say)

        say.step("Final `migwatch status`:")
        report = run_status(_config(repo), CheckOptions(env=env))
        out.write(render_text(report, colour=_tty(out)))
        say.step(
            "This was a temporary copy; everything is removed now. Try it on your repository: migwatch init"
        )
        return 0
    except (DemoError, gitio.GitError, OSError, sqlite3.Error) as exc:
        out.write(f"demo failed: {exc}\n")
        return 1
    finally:
        if daemon is not None:
            daemon.stop()
        with suppress(DemoError):
            db.drop()
        shutil.rmtree(workdir, ignore_errors=True)


def _set_the_scene(workdir: Path, db: _Database, env: Mapping[str, str], say: _Narrator) -> _Repo:
    """The database, the repository with its worktrees, main's migrations applied, and the header."""
    db.create()
    repo = _build_repo(workdir, db, env)
    for name, script in _MAIN_MIGRATIONS.items():
        db.apply(name, script.format(pk=db.pk))
    say.header(
        "migwatch demo: one Prisma monorepo, three git worktrees, one shared database",
        f"repository  {repo.main}  (main)",
        f"worktrees   {EPIC3[0]} ({EPIC3[1]}), {EPIC5[0]} ({EPIC5[1]})",
        f"database    {redact(db.url)}: 3 migrations applied, recorded as Prisma records them",
    )
    return repo


def _play_story(
    repo: _Repo, db: _Database, recorder: _Recorder, wait_idle: Callable[[float], bool], say: _Narrator
) -> None:
    """The three scenes, each waiting for the alert it causes: behind, an edit and its undo, the merge."""
    epic3, epic5 = repo.wt(EPIC3[0]), repo.wt(EPIC5[0])
    say.step(
        f"In {EPIC5[0]}, `prisma migrate dev` creates and applies {STORY_5_1}.",
        f"{EPIC3[0]} does not have that folder: it is now behind the shared database.",
    )
    repo.write_migration(epic5, STORY_5_1, _STORY_5_1_SQL.format(pk=db.pk))
    repo.git(epic5, "add", "-A")
    repo.git(epic5, "commit", "-q", "-m", "Story 5.1: behavioral pattern models")
    db.apply(STORY_5_1, _STORY_5_1_SQL.format(pk=db.pk))
    recorder.wait_for(lambda a: a.finding.code == "behind_database" and _in(a, epic3))
    wait_idle(WAIT_SECONDS)

    say.step(f"Someone edits the applied migration {EDITED} in {EPIC3[0]}.")
    edited = epic3 / MIGRATIONS / EDITED / "migration.sql"
    edited.write_text(
        edited.read_text(encoding="utf-8") + 'CREATE INDEX "Mission_title_idx" ON "Mission"("title");\n'
    )
    recorder.wait_for(lambda a: a.finding.code == "checksum_mismatch" and a.kind == "new")
    wait_idle(WAIT_SECONDS)

    say.step("They follow the alert's fix and restore the file from git.")
    repo.git(epic3, "checkout", "HEAD", "--", f"{MIGRATIONS}/{EDITED}/migration.sql")
    recorder.wait_for(lambda a: a.finding.code == "checksum_mismatch" and a.kind == "resolved")
    wait_idle(WAIT_SECONDS)

    say.step(
        f"{EPIC3[0]} and the main checkout run the fix their alerts gave: git merge {EPIC5[1]}.",
    )
    for worktree in (epic3, repo.main):
        repo.git(worktree, "merge", "-q", "--no-edit", EPIC5[1])
    waiting = {str(epic3), str(repo.main)}
    while waiting:
        alert = recorder.wait_for(lambda a: a.kind == "resolved" and a.finding.worktree in waiting)
        waiting.discard(alert.finding.worktree or "")
    wait_idle(WAIT_SECONDS)


def _in(alert: Alert, worktree: Path) -> bool:
    return alert.finding.worktree == str(worktree)


def _tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Narrator:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._step = 0

    def header(self, title: str, *lines: str) -> None:
        self._out.write(f"{title}\n" + "".join(f"  {line}\n" for line in lines) + "\n")
        self._out.flush()

    def step(self, first: str, *more: str) -> None:
        self._step += 1
        self._out.write(f"\n{self._step}. {first}\n" + "".join(f"   {line}\n" for line in more) + "\n")
        self._out.flush()
