"""The Prisma-semantics core (SPEC §5): how each worktree's own Prisma version sees its database.

What the differential tests pin against the real Prisma engine (tests/differential/) lives here and
only here: which history rows count, what is behind, pending, edited or out of order, and the state
a worktree is in. Pure: plain values in, plain values out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from migwatch.checksum import checksum_matches
from migwatch.dburl import group_key
from migwatch.model import History, HistoryRow, MigrationsFolder, PrismaSetup, Worktree
from migwatch.ordering import collation_key
from migwatch.runner import PrismaRunner

SUPPORTED_PROVIDERS = frozenset({"postgresql", "sqlite"})


@dataclass(frozen=True)
class WorktreeSnapshot:
    """One worktree as read: how Prisma sees it, its migrations folder, conflict markers in its schema."""

    setup: PrismaSetup
    folder: MigrationsFolder | None = None
    schema_markers: tuple[tuple[Path, tuple[int, ...]], ...] = ()
    schema_text: str = ""  # all schema files, concatenated
    client_schema: tuple[Path, str] | None = None  # the generated Prisma Client's copy of the schema
    runner: PrismaRunner | None = None  # how this project runs Prisma (its package.json scripts)

    @property
    def worktree(self) -> Worktree:
        return self.setup.worktree


@dataclass(frozen=True)
class ProjectSnapshot:
    """Everything read for one project; `histories` is keyed by `dburl.group_key`."""

    name: str
    repo: Path
    worktrees: tuple[WorktreeSnapshot, ...]
    histories: Mapping[str, History]
    skipped: tuple[Worktree, ...] = ()  # prunable worktrees
    base_branch: str | None = None


@dataclass(frozen=True)
class WorktreeVerdict:
    """How one worktree stands against its database, by its own Prisma version's rules."""

    snapshot: WorktreeSnapshot
    group: str | None
    history: History | None
    behind: tuple[str, ...] = ()  # in the database (counted rows), not in the folder
    pending: tuple[str, ...] = ()  # in the folder with migration.sql, not in the database
    edited: tuple[tuple[str, str | None], ...] = ()  # (name, stored checksum) of the first counted row
    missing_sql: tuple[str, ...] = ()
    unreadable: tuple[tuple[str, str], ...] = ()
    out_of_order: tuple[str, ...] = ()
    applied_here: int = 0
    newest_applied: str | None = None

    @property
    def checked(self) -> bool:
        return self.history is not None and self.history.reachable and self.history.has_table


def counts_rolled_back(setup: PrismaSetup) -> bool:
    """Prisma up to 7.8 counts rolled-back rows as present; 7.9 and later ignore them."""
    return setup.prisma_version < (7, 9, 0)


def counted_rows(rows: Sequence[HistoryRow], setup: PrismaSetup) -> list[HistoryRow]:
    """The rows this worktree's Prisma takes into account, in started_at order."""
    keep_rolled_back = counts_rolled_back(setup)
    return [row for row in rows if keep_rolled_back or not row.rolled_back]


def group_of(snapshot: WorktreeSnapshot) -> str | None:
    """The database group key of a worktree (None when it cannot be checked)."""
    setup = snapshot.setup
    if setup.problem or setup.database is None or setup.provider not in SUPPORTED_PROVIDERS:
        return None
    return group_key(setup.database)


def analyse_worktree(snapshot: WorktreeSnapshot, history: History | None) -> WorktreeVerdict:
    """Compare one worktree's folder with its database's history (SPEC §5)."""
    group = group_of(snapshot)
    folder = snapshot.folder
    if history is None or not history.reachable or not history.has_table or folder is None or folder.error:
        return WorktreeVerdict(snapshot=snapshot, group=group, history=history)
    rows = counted_rows(history.rows, snapshot.setup)
    present: dict[str, HistoryRow] = {}
    for row in rows:
        present.setdefault(row.migration_name, row)  # the first counted row per name is the one checked
    local = {m.name: m for m in folder.migrations}
    behind = tuple(name for name in present if name not in local)
    pending: list[str] = []
    missing: list[str] = []
    unreadable: list[tuple[str, str]] = []
    edited: list[tuple[str, str | None]] = []
    for migration in folder.migrations:
        if migration.read_error:
            unreadable.append((migration.name, migration.read_error))
            continue
        if not migration.has_sql:
            missing.append(migration.name)
            continue
        first_row = present.get(migration.name)
        if first_row is None:
            pending.append(migration.name)
        elif not checksum_matches(first_row.checksum, migration.checksums):
            edited.append((migration.name, first_row.checksum))
    applied_names = [row.migration_name for row in rows if not row.failed]
    newest = max(applied_names, key=collation_key) if applied_names else None
    out_of_order = (
        tuple(name for name in pending if collation_key(name) < collation_key(newest)) if newest else ()
    )
    return WorktreeVerdict(
        snapshot=snapshot,
        group=group,
        history=history,
        behind=behind,
        pending=tuple(pending),
        edited=tuple(edited),
        missing_sql=tuple(missing),
        unreadable=tuple(unreadable),
        out_of_order=out_of_order,
        applied_here=sum(1 for name in local if name in present),
        newest_applied=newest,
    )


def analyse(project: ProjectSnapshot) -> list[WorktreeVerdict]:
    """Verdicts for every worktree of a project, in worktree order."""
    verdicts = []
    for snapshot in project.worktrees:
        group = group_of(snapshot)
        verdicts.append(analyse_worktree(snapshot, project.histories.get(group) if group else None))
    return verdicts


def worktree_state(verdict: WorktreeVerdict) -> str:
    """ok, pending, behind, diverged, broken or unknown (SPEC §7)."""
    snapshot = verdict.snapshot
    if not verdict.checked:
        return "unknown"
    folder = snapshot.folder
    markers = snapshot.schema_markers or (folder and any(m.conflict_lines for m in folder.migrations))
    if verdict.edited or verdict.missing_sql or verdict.unreadable or lock_mismatch(snapshot) or markers:
        return "broken"
    if verdict.behind and verdict.pending:
        return "diverged"
    if verdict.behind:
        return "behind"
    if verdict.pending:
        return "pending"
    return "ok"


def lock_mismatch(snapshot: WorktreeSnapshot) -> bool:
    """Whether migration_lock.toml names another provider than the datasource (P3019)."""
    folder, provider = snapshot.folder, snapshot.setup.provider
    return bool(
        folder and folder.lock_provider is not None and provider and _norm(folder.lock_provider) != provider
    )


def _norm(provider: str) -> str:
    return "postgresql" if provider == "postgres" else provider
