"""The git evidence: which git facts the findings need (asked only for what `analyse` found), and their answers.

The pipeline runs git for an `EvidenceRequest` and hands back an `Evidence`; the finding modules
only read it. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migwatch.diagnose.semantics import ProjectSnapshot, WorktreeSnapshot, WorktreeVerdict
from migwatch.model import LocalMigration
from migwatch.whereabouts import Whereabouts


@dataclass(frozen=True)
class Restore:
    """Git facts for an edited migration.sql."""

    rev: str | None = None  # a commit whose migration.sql matches the database
    changed_by: str | None = None  # "an uncommitted change in this worktree" / "<sha> <subject> (…)"
    applied_sql: str | None = None  # the text at `rev` (what the database ran)
    current_sql: str | None = None  # the worktree's text now
    # A branch whose tip has the applied text although this branch never changed the file since they
    # forked: the edit is theirs, made after the fork, and merging that branch brings the applied text.
    upstream_branch: str | None = None


@dataclass(frozen=True)
class AppliedSql:
    """The SQL of a migration the database applied that a worktree lacks, and where it was found."""

    sql: str
    origin: str  # "feature/auth" (the branch of the worktree that has it) or the base branch
    branch: str | None
    file: Path | None = None  # the other worktree's migration.sql
    spec: str | None = None  # "<base>:<rel>/<name>/migration.sql" when it was read from the base branch


@dataclass(frozen=True)
class Evidence:
    """Git facts the pipeline gathered for the cases `analyse` found (see `evidence_needed`)."""

    # (worktree, migration) → where a migration the worktree is behind on lives (the git index)
    whereabouts: Mapping[tuple[Path, str], Whereabouts] = field(default_factory=dict)
    # (worktree, migration) → the other branches and worktrees that have an out-of-order migration
    shared: Mapping[tuple[Path, str], tuple[str, ...]] = field(default_factory=dict)
    restores: Mapping[tuple[Path, str], Restore] = field(default_factory=dict)
    tracked_sql: Mapping[tuple[Path, str], bool] = field(default_factory=dict)  # migration.sql at HEAD?
    empty_folders: frozenset[Path] = frozenset()
    base_names: Mapping[str, frozenset[str]] = field(default_factory=dict)  # migrations dir → names on base
    # migration folder → its SQL: every worktree's unmerged migrations, and pending ones that the
    # database's migrations from other branches are compared with
    unmerged_sql: Mapping[Path, str] = field(default_factory=dict)
    base_sql: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (rel, name) → SQL on base
    applied_sql: Mapping[str, AppliedSql] = field(default_factory=dict)  # applied name → its SQL
    # (worktree, migration, other worktree) → "older" when this worktree's copy is the text of their
    # merge base and the other's is a later edit of it (committed on its branch), "newer" the other way
    # round; absent: two different migrations under one name (or git could not tell)
    versions: Mapping[tuple[Path, str, Path], str] = field(default_factory=dict)


@dataclass(frozen=True)
class EvidenceRequest:
    """The git questions the findings need answered (asked only for what was found)."""

    restores: frozenset[tuple[Path, str, str]]  # (worktree, migration, stored checksum)
    tracked_sql: frozenset[tuple[Path, str]]  # (worktree, migration) missing migration.sql
    base_dirs: frozenset[str] = frozenset()  # migrations dirs (repo-relative) to list on the base branch
    pending: frozenset[tuple[Path, str]] = frozenset()  # (worktree, pending migration) to compare with…
    applied: frozenset[str] = frozenset()  # …these applied migrations of other branches (SQL needed)
    collisions: frozenset[tuple[Path, str, Path]] = frozenset()  # copies that differ (see `differing_copies`)


def evidence_needed(project: ProjectSnapshot, verdicts: Sequence[WorktreeVerdict]) -> EvidenceRequest:
    """Which git facts `findings` will use, so the pipeline asks git only for those."""
    restores: set[tuple[Path, str, str]] = set()
    tracked: set[tuple[Path, str]] = set()
    pending: set[tuple[Path, str]] = set()
    applied: set[str] = set()
    for verdict in verdicts:
        if verdict.pending and verdict.behind:
            pending.update((verdict.snapshot.worktree.path, name) for name in verdict.pending)
            applied.update(verdict.behind)
        for name, stored in verdict.edited:
            restores.add((verdict.snapshot.worktree.path, name, stored or ""))
        for name in verdict.missing_sql:
            tracked.add((verdict.snapshot.worktree.path, name))
    base_dirs = frozenset(
        rel for s in project.worktrees if project.base_branch and (rel := migrations_rel(s)) is not None
    )
    collisions = frozenset(
        (here.worktree.path, mine.name, other.worktree.path)
        for here, mine, others in differing_copies(project, verdicts)
        for other, _ in others
    )
    return EvidenceRequest(
        frozenset(restores), frozenset(tracked), base_dirs, frozenset(pending), frozenset(applied), collisions
    )


def _same_file(a: LocalMigration, b: LocalMigration) -> bool:
    """The same SQL up to line endings (Prisma accepts either, see `checksum_variants`)."""
    return bool(set(a.checksums) & set(b.checksums))


Copies = list[tuple[WorktreeSnapshot, LocalMigration]]


def differing_copies(
    project: ProjectSnapshot, verdicts: Sequence[WorktreeVerdict]
) -> list[tuple[WorktreeSnapshot, LocalMigration, Copies]]:
    """Per worktree, each migration whose folder name another worktree holds with different SQL, not yet
    applied in this worktree's database (once it is, the other copy is a `checksum_mismatch`)."""
    having: dict[str, Copies] = {}
    for snapshot in project.worktrees:
        for migration in snapshot.folder.migrations if snapshot.folder else ():
            if migration.checksums:
                having.setdefault(migration.name, []).append((snapshot, migration))
    applied = {
        v.snapshot.worktree.path: {row.migration_name for row in v.history.rows} if v.history else set()
        for v in verdicts
    }
    out = []
    for name, copies in having.items():
        for snapshot, mine in copies:
            others = [(s, m) for s, m in copies if not _same_file(m, mine)]
            if others and name not in applied.get(snapshot.worktree.path, set()):
                out.append((snapshot, mine, others))
    return out


def unmerged_migrations(project: ProjectSnapshot, evidence: Evidence) -> dict[Path, list[str]]:
    """Per worktree, the migrations its folder has that the base branch does not (needs `base_names`)."""
    out: dict[Path, list[str]] = {}
    for snapshot in project.worktrees:
        rel = migrations_rel(snapshot)
        if snapshot.folder is None or rel is None or rel not in evidence.base_names:
            continue
        if snapshot.worktree.branch == project.base_branch:
            continue
        base = evidence.base_names[rel]
        out[snapshot.worktree.path] = [
            m.name for m in snapshot.folder.migrations if m.name not in base and m.has_sql
        ]
    return out


def holders(project: ProjectSnapshot, name: str) -> list[WorktreeSnapshot]:
    """The worktrees whose migrations folder has a migration of this name."""
    return [s for s in project.worktrees if s.folder is not None and name in s.folder.names]


def migrations_rel(snapshot: WorktreeSnapshot) -> str | None:
    """The migrations folder relative to the worktree (`prisma/migrations`); None when outside it."""
    directory = snapshot.setup.migrations_dir
    if directory is None:
        return None
    try:
        return directory.relative_to(snapshot.worktree.path).as_posix()
    except ValueError:
        return None
