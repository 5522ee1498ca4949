"""The domain objects every module passes around: frozen dataclasses, no behaviour beyond small helpers."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


PrismaVersion = tuple[int, int, int]


@dataclass(frozen=True)
class Worktree:
    """One entry of `git worktree list --porcelain -z`."""

    path: Path
    head: str | None
    branch: str | None  # short name ("feature/epic-3"); None when detached or bare
    is_main: bool = False
    bare: bool = False
    prunable: str | None = None  # git's reason when the worktree folder is gone
    locked: bool = False

    @property
    def label(self) -> str:
        """`epic-3 (feature/epic-3)`: how messages name a worktree."""
        return f"{self.path.name} ({self.branch or 'detached ' + (self.head or '?')[:8]})"


@dataclass(frozen=True)
class DatabaseRef:
    """Where a worktree's history table lives. `url` holds the secret; only `id` is ever shown."""

    provider: str  # "postgresql" | "sqlite" | anything else the datasource names
    id: str  # redacted identity: postgresql://user@host:5432/db?schema=public, or file:/abs/path.db
    url: str = field(repr=False, compare=False)  # full connection URL (may contain a password)
    schema: str = "public"  # PostgreSQL schema holding _prisma_migrations


@dataclass(frozen=True)
class LocalMigration:
    """One subdirectory of a migrations folder."""

    name: str
    parent: Path  # the migrations folder holding it (one shared object: no Path per migration)
    checksums: tuple[str, ...]  # sha256 hex of migration.sql as is, LF form, CRLF form; () if no sql
    has_sql: bool = True
    read_error: str | None = None  # migration.sql exists but could not be read
    conflict_lines: tuple[int, ...] = ()  # 1-based lines starting with <<<<<<< / >>>>>>>

    @property
    def path(self) -> Path:
        """The migration's own folder."""
        return self.parent / self.name

    @property
    def checksum(self) -> str | None:
        return self.checksums[0] if self.checksums else None


@dataclass(frozen=True)
class MigrationsFolder:
    """What `migrations.read_folder` found: the migrations in Prisma's order, plus the lock file."""

    path: Path
    exists: bool
    migrations: tuple[LocalMigration, ...] = ()
    lock_provider: str | None = None  # provider = "…" of migration_lock.toml; None if no lock file
    error: str | None = None  # the folder could not be listed

    @property
    def names(self) -> frozenset[str]:
        return frozenset(m.name for m in self.migrations)

    def get(self, name: str) -> LocalMigration | None:
        for migration in self.migrations:
            if migration.name == name:
                return migration
        return None


@dataclass(frozen=True)
class HistoryRow:
    """One row of `_prisma_migrations`, read as is (garbage tolerated)."""

    id: str
    migration_name: str
    checksum: str | None
    started_at: datetime | None
    finished_at: datetime | None
    rolled_back_at: datetime | None
    logs: str | None = None
    applied_steps_count: int = 0

    @property
    def failed(self) -> bool:
        return self.finished_at is None and self.rolled_back_at is None

    @property
    def rolled_back(self) -> bool:
        return self.rolled_back_at is not None


@dataclass(frozen=True)
class History:
    """What `history.read_history` found in one database."""

    database: DatabaseRef
    reachable: bool
    has_table: bool = True
    rows: tuple[HistoryRow, ...] = ()  # ORDER BY started_at
    migration_running: bool = False  # a Prisma migrate command holds the advisory lock
    error: str | None = None  # the driver's message (password-free) when not reachable / unreadable


@dataclass(frozen=True)
class PrismaSetup:
    """How one worktree's Prisma reads its project (SPEC §4)."""

    worktree: Worktree
    prisma_version: PrismaVersion
    package_dir: Path  # where `npx prisma …` is run
    schema_path: Path | None  # schema file or schema folder; None when none was found
    migrations_dir: Path | None
    config_file: Path | None = None  # prisma.config.ts & co.
    provider: str | None = None
    database: DatabaseRef | None = None
    notes: tuple[str, ...] = ()  # info-level remarks ("computed schema path; assumed default")
    problem: str | None = None  # why this worktree cannot be checked (no schema, no URL, …)
    url_from: str | None = None  # which datasource URL migrate uses, and where its value came from
    env_files: tuple[Path, ...] = ()  # env files read for this worktree, in precedence order
    missing_variables: tuple[str, ...] = ()  # variables the URL needs that are not set anywhere tried


@dataclass(frozen=True)
class GitOrigin:
    """Where git has a migration folder that no worktree has: its newest commit and the branches with it."""

    commit: str
    subject: str
    date: str
    branches: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    """One problem (or remark) found by a check; SPEC §6."""

    code: str
    severity: Severity
    project: str
    database: str | None
    worktree: str | None
    migration: str | None
    message: str
    fix: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, str | None, str | None, str | None]:
        """Identity for de-duplication and alert state."""
        return (self.code, self.project, self.database, self.worktree, self.migration)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "project": self.project,
            "database": self.database,
            "worktree": self.worktree,
            "migration": self.migration,
            "message": self.message,
            "fix": list(self.fix),
            "details": dict(self.details),
        }
