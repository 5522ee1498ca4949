"""The pipeline's git evidence about where migrations live: one history index per refs state (cached),
then a few targeted questions (which removal this HEAD or the base branch contains, the SQL of removed
migrations and their possible successors). Asked only for migrations a worktree is behind on or has
out of order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from migwatch import diagnose
from migwatch.diagnose.evidence import migrations_rel
from migwatch.gitindex import GitIndexCache, read_blobs, removal_reached
from migwatch.migindex import MigrationIndex
from migwatch.whereabouts import Holder, Whereabouts, locate


def _index(project: diagnose.ProjectSnapshot, env: Mapping[str, str], cache: GitIndexCache) -> MigrationIndex:
    dirs = sorted({rel for s in project.worktrees if (rel := migrations_rel(s)) is not None})
    return cache.index(project.repo, dirs, [s.worktree for s in project.worktrees], env)


def _removed_sql(
    project: diagnose.ProjectSnapshot, index: MigrationIndex, names: Sequence[str], env: Mapping[str, str]
) -> dict[str, str]:
    """migration.sql texts of removed migrations and of what their removing commits added."""
    removing = {change.commit.sha for name in names for change in index.history_of(name) if change.added_with}
    shas = {
        blob
        for commit in removing
        for change in index.removed_by(commit)
        for blob in (change.old_blob, *(b for _, b in change.added_with))
        if blob
    }
    return read_blobs(project.repo, sorted(shas), env) if shas and index.problem is None else {}


def _holders(project: diagnose.ProjectSnapshot, path: Path, name: str) -> list[Holder]:
    return [
        Holder(s.worktree, rel)
        for s in project.worktrees
        if s.worktree.path != path
        and s.folder is not None
        and name in s.folder.names
        and (rel := migrations_rel(s)) is not None
    ]


def whereabouts_of(
    project: diagnose.ProjectSnapshot,
    verdicts: Sequence[diagnose.WorktreeVerdict],
    env: Mapping[str, str],
    cache: GitIndexCache,
) -> dict[tuple[Path, str], Whereabouts]:
    """Where each migration a worktree is behind on lives."""
    wanted = [(verdict.snapshot, name) for verdict in verdicts for name in verdict.behind]
    if not wanted:
        return {}
    index = _index(project, env, cache)
    base = next((t.commit for t in index.tips if t.kind == "branch" and t.name == project.base_branch), None)
    blobs = _removed_sql(project, index, sorted({name for _, name in wanted}), env)
    memo: dict[tuple[str, str], bool] = {}
    out: dict[tuple[Path, str], Whereabouts] = {}
    for snapshot, name in wanted:
        worktree = snapshot.worktree
        rel = migrations_rel(snapshot)
        if rel is None:
            out[(worktree.path, name)] = Whereabouts(
                "unknown", note="its migrations folder is outside the worktree"
            )
            continue
        heads = [h for h in (worktree.head, base) if h]
        removal = (
            removal_reached(project.repo, index.history_of(name), heads, env, memo)
            if index.problem is None
            else None
        )
        out[(worktree.path, name)] = locate(
            index,
            name,
            worktree,
            rel,
            holders=_holders(project, worktree.path, name),
            base_branch=project.base_branch,
            removed_upstream=removal,
            blobs=blobs,
        )
    return out


def shared_elsewhere(
    project: diagnose.ProjectSnapshot,
    verdicts: Sequence[diagnose.WorktreeVerdict],
    env: Mapping[str, str],
    cache: GitIndexCache,
) -> dict[tuple[Path, str], tuple[str, ...]]:
    """For each out-of-order migration: the other worktrees and the branches, tags and remotes (not this
    worktree's own branch) that have it — renaming it there would break them."""
    wanted = [(verdict.snapshot, name) for verdict in verdicts for name in verdict.out_of_order]
    if not wanted:
        return {}
    index = _index(project, env, cache)
    out: dict[tuple[Path, str], tuple[str, ...]] = {}
    for snapshot, name in wanted:
        worktree = snapshot.worktree
        rel = migrations_rel(snapshot)
        others = [h.worktree.path.name for h in _holders(project, worktree.path, name)]
        if rel is None or index.problem is not None:
            out[(worktree.path, name)] = (*others, "an unknown number of branches (git history not read)")
            continue
        refs = [
            tip.name
            for tip in index.tips_with(rel, name)
            if tip.kind != "worktree" and not (tip.kind == "branch" and tip.name == worktree.branch)
        ]
        out[(worktree.path, name)] = tuple(dict.fromkeys([*others, *refs]))
    return out
