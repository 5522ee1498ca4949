"""The I/O half of the schema-conflict checks: the migration SQL they compare, from files and git.

Worktrees' own migrations are read from their folders; the base branch's from git, every blob in
one `git cat-file --batch` call (never a process per file); applied migrations a worktree lacks from
the worktree that has them, else from the base branch. `diagnose.conflicts` does the comparing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from migwatch import diagnose
from migwatch import git as gitio

log = logging.getLogger(__name__)


@dataclass
class ConflictSql:
    """What `gather_conflict_sql` read, in the shape of `diagnose.Evidence`'s fields."""

    base_names: dict[str, frozenset[str]] = field(default_factory=dict)
    worktree_sql: dict[Path, str] = field(default_factory=dict)
    base_sql: dict[tuple[str, str], str] = field(default_factory=dict)
    applied_sql: dict[str, diagnose.AppliedSql] = field(default_factory=dict)


def _read_sql(folder: Path) -> str | None:
    try:
        return (folder / "migration.sql").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def gather_conflict_sql(
    project: diagnose.ProjectSnapshot, request: diagnose.EvidenceRequest, env: Mapping[str, str]
) -> ConflictSql:
    """What the schema-conflict checks compare: migration names and SQL on the base branch (all of it in
    one `git cat-file --batch`), worktrees' unmerged and pending SQL, and the SQL of applied migrations
    that a worktree with pending ones lacks (from the worktree that has it, else from the base branch)."""
    out = ConflictSql()
    base = project.base_branch
    for rel in request.base_dirs:
        names = gitio.names_at(project.repo, base, rel, env=env) if base else None
        if names is not None:
            out.base_names[rel] = names
    by_path = {s.worktree.path: s for s in project.worktrees}
    wanted: set[tuple[str, str]] = set()
    unmerged = diagnose.unmerged_migrations(project, diagnose.Evidence(base_names=out.base_names))
    for path, names_list in unmerged.items():
        snapshot = by_path[path]
        folder_dir, folder_rel = snapshot.setup.migrations_dir, diagnose.migrations_rel(snapshot)
        if folder_dir is None or snapshot.folder is None or folder_rel is None:
            continue
        for name in names_list:
            if (text := _read_sql(folder_dir / name)) is not None:
                out.worktree_sql[folder_dir / name] = text
        if names_list:
            lacking = out.base_names.get(folder_rel, frozenset()) - snapshot.folder.names
            wanted.update((folder_rel, name) for name in lacking)
    for path, name in request.pending:
        folder_dir = by_path[path].setup.migrations_dir
        if folder_dir is not None and (text := _read_sql(folder_dir / name)) is not None:
            out.worktree_sql[folder_dir / name] = text
    on_base = _applied_from_worktrees(project, request, out)
    wanted.update((rel, name) for name in on_base for rel, names in out.base_names.items() if name in names)
    if base and wanted:
        specs = {f"{base}:{rel}/{name}/migration.sql": (rel, name) for rel, name in wanted}
        try:
            blobs = gitio.blobs_at(project.repo, list(specs), env=env)
        except gitio.GitError as exc:
            log.debug("cannot read migrations on %s: %s", base, exc)
            blobs = {}
        for spec, blob in blobs.items():
            if blob is None:
                continue
            rel, name = specs[spec]
            text = blob.decode("utf-8", "replace")
            out.base_sql[(rel, name)] = text
            if name in on_base:
                out.applied_sql[name] = diagnose.AppliedSql(text, base, base, spec=spec)
    return out


def _applied_from_worktrees(
    project: diagnose.ProjectSnapshot, request: diagnose.EvidenceRequest, out: ConflictSql
) -> set[str]:
    """Fill `applied_sql` from the worktrees that have those migrations; the names none has."""
    missing: set[str] = set()
    for name in request.applied:
        for snapshot in project.worktrees:
            folder_dir = snapshot.setup.migrations_dir
            if folder_dir is None or snapshot.folder is None or name not in snapshot.folder.names:
                continue
            text = _read_sql(folder_dir / name)
            if text is not None:
                branch = snapshot.worktree.branch
                origin = branch or snapshot.worktree.path.name
                out.applied_sql[name] = diagnose.AppliedSql(
                    text, origin, branch, file=folder_dir / name / "migration.sql"
                )
                break
        else:
            missing.add(name)
    return missing
