"""Branch and worktree findings: behind_base (the base branch is ahead), worktree_prunable, and a
project whose worktrees git cannot list (discovery)."""

from __future__ import annotations

from pathlib import Path

from migwatch.catalogue import kind_of
from migwatch.diagnose.context import Ctx, database_id, finding
from migwatch.diagnose.evidence import migrations_rel
from migwatch.diagnose.fixes import git
from migwatch.diagnose.semantics import WorktreeVerdict
from migwatch.model import Finding, Fix
from migwatch.ordering import collation_key


def prunable_findings(ctx: Ctx) -> list[Finding]:
    """worktree_prunable: one per worktree git lists but whose folder is gone."""
    return [
        finding(
            ctx,
            "worktree_prunable",
            database=None,
            worktree=worktree.path,
            migration=None,
            message=f"worktree {worktree.label} is gone from disk ({worktree.prunable}); skipped",
            fix=Fix(
                steps=(git(ctx.project.repo, "worktree", "prune"),),
                why="git still lists the deleted worktree",
            ),
        )
        for worktree in ctx.project.skipped
    ]


def behind_base_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """behind_base: the base branch has migrations this worktree's branch lacks."""
    snapshot = verdict.snapshot
    base = ctx.project.base_branch
    rel = migrations_rel(snapshot)
    if not base or snapshot.folder is None or rel is None or snapshot.worktree.branch == base:
        return []
    on_base = ctx.evidence.base_names.get(rel)
    if not on_base:
        return []
    missing = sorted(on_base - snapshot.folder.names, key=collation_key)
    if not missing:
        return []
    path = snapshot.worktree.path
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return [
        finding(
            ctx,
            "behind_base",
            database=database_id(snapshot),
            worktree=path,
            migration=None,
            message=f"{snapshot.worktree.label}: {base} has {len(missing)} migration{'s' if len(missing) > 1 else ''} "
            f"this branch lacks: {shown}",
            fix=Fix(
                steps=(git(path, "merge", base),),
                why=f"merge (or rebase onto) {base} early, so migrations stay in one order",
            ),
            base_branch=base,
            missing=missing,
        )
    ]


def unlisted_project(project: str, repo: Path, error: str) -> Finding:
    """discovery: git cannot list the project's worktrees, so nothing of it can be checked."""
    return Finding(
        code="discovery",
        severity=kind_of("discovery").severity,
        project=project,
        database=None,
        worktree=None,
        migration=None,
        message=f"project {project}: {error}",
        fix=Fix(steps=(git(repo, "worktree", "list"),), why="migwatch finds the worktrees with git"),
    )
