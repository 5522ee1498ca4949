"""The domain objects every module passes around: frozen dataclasses, no behaviour beyond small helpers."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from migwatch import shellquote
from migwatch.display import visible


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
    denied: bool = False  # the server answered, but this role may not read the history table
    # With no history table: the first few tables the database (schema) already has — an empty
    # database gets `migrate deploy`, one that already has the schema is baselined (SPEC §6a).
    tables: tuple[str, ...] = ()


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


def sql_literal(text: str) -> str:
    """`'it''s'`: a standard SQL string literal (quotes doubled); ValueError for characters it cannot show.

    A printed statement must touch exactly the row it names, so text that no SQL literal can carry
    faithfully (NUL, bytes that are not UTF-8) or that the output edge would show escaped (control,
    bidi and other invisible characters: the statement a person copies would name another row) is
    refused.
    """
    bad = sorted({c for c in text if visible(c, None) != c})
    if bad:
        raise ValueError(f"refusing to put invisible characters {bad!r} into an SQL literal")
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Command:
    """One shell command line of a fix, as argv: rendered with POSIX quoting, never by formatting."""

    argv: tuple[str, ...]
    cwd: Path | None = None  # rendered as `cd <cwd> && …`
    then: tuple[tuple[str, ...], ...] = ()  # further commands joined with ` && `
    comment: str | None = None  # rendered after the command as `  # comment`

    def render(self) -> str:
        """`cd '/a b' && npx prisma migrate deploy  # comment`: safe to paste for any argv.

        Quoting is shellquote's (`shlex.quote`, or `$'…'` for invisible characters), so the line is
        shown exactly as it runs; the comment is kept on the line (display.visible).
        """
        parts = [shellquote.join(self.argv), *(shellquote.join(argv) for argv in self.then)]
        if self.cwd is not None:
            parts.insert(0, f"cd {shellquote.quote(str(self.cwd))}")
        line = " && ".join(parts)
        return f"{line}  # {visible(self.comment, None)}" if self.comment else line


@dataclass(frozen=True)
class SqlStatement:
    """A statement for the user to run by hand; build it only with `sql_literal` for values."""

    text: str


@dataclass(frozen=True)
class Note:
    """A line of advice that is not a command (shown without `$`); it may end with an SQL statement."""

    text: str
    sql: SqlStatement | None = None

    def render(self) -> str:
        return self.text + (self.sql.text if self.sql else "")


Step = Command | Note


@dataclass(frozen=True)
class Fix:
    """What to do about a finding: steps (commands and notes), the reset warning, and why."""

    steps: tuple[Step, ...] = ()
    reset_warning: str | None = None  # "Do not run `prisma migrate dev` …" where a reset threatens
    why: str | None = None  # rendered as `why: …`, always last

    @property
    def headline(self) -> str | None:
        """The one line an alert or a log line shows: the first command, else the first note."""
        first: Step | None = next((s for s in self.steps if isinstance(s, Command)), None)
        first = first or next(iter(self.steps), None)
        return first.render() if first is not None else None

    def lines(self) -> list[str]:
        """The fix as the text lines of `status --json` (SPEC §7)."""
        out = [step.render() for step in self.steps]
        if self.reset_warning:
            out.append(self.reset_warning)
        if self.why:
            out.append(f"why: {self.why}")
        return out

    def shown(self) -> list[tuple[bool, str]]:
        """(is a command, text) per line: how the human report decides which lines get a `$`."""
        kinds = [isinstance(step, Command) for step in self.steps] + [False, False]
        return list(zip(kinds, self.lines(), strict=False))

    def __bool__(self) -> bool:
        return bool(self.steps or self.reset_warning or self.why)


@dataclass(frozen=True)
class Origin:
    """Where a finding's migration comes from: the worktree (and its branch) that has it."""

    worktree: str
    branch: str | None

    def describe(self) -> str:
        """`feature/x (Americano-epic5)`, or the folder alone when detached."""
        folder = Path(self.worktree).name
        return f"{self.branch} ({folder})" if self.branch and folder else self.branch or folder


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
    fix: Fix = Fix()
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    origin: Origin | None = field(default=None, compare=False)

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
            "fix": self.fix.lines(),
            "details": dict(self.details),
        }
