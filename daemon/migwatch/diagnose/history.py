"""History findings: where a worktree's folder and its database's `_prisma_migrations` disagree.

behind_database, pending, out_of_order, checksum_mismatch (the migration-history comparison of
`semantics.analyse`, turned into messages and fixes). Not to be confused with `migwatch.history`,
which reads the table.
"""

from __future__ import annotations

from migwatch.diagnose.context import Ctx, database_id, finding, names, where
from migwatch.diagnose.evidence import holders, migrations_rel
from migwatch.diagnose.fixes import deploy, reset_warning
from migwatch.diagnose.origins import placement, replaced_fix, replaced_together, successor_of
from migwatch.diagnose.semantics import WorktreeVerdict
from migwatch.model import Finding, Fix, HistoryRow, Note, Step


def _applied_row(verdict: WorktreeVerdict, name: str) -> HistoryRow | None:
    if verdict.history is None:
        return None
    return next((r for r in verdict.history.rows if r.migration_name == name), None)


def _row_state(row: HistoryRow | None) -> str:
    if row is not None and row.failed:
        return " (its row is failed)"
    if row is not None and row.rolled_back:
        return (
            " (its row is rolled back — its changes were undone — but this worktree's Prisma still counts it)"
        )
    return ""


def behind_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """behind_database: one per migration the database has and this worktree's folder lacks."""
    return [_behind(ctx, verdict, name) for name in verdict.behind]


def _behind(ctx: Ctx, verdict: WorktreeVerdict, name: str) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = database_id(snapshot)
    others = [s for s in holders(ctx.project, name) if s.worktree.path != path]
    row = _applied_row(verdict, name)
    applied_at = row.started_at.isoformat(timespec="seconds") if row and row.started_at else None
    rel = migrations_rel(snapshot) or "prisma/migrations"
    state = _row_state(row)
    placed = placement(ctx, verdict, name, row, applied_at)
    return finding(
        ctx,
        "behind_database",
        database=db,
        worktree=path,
        migration=name,
        message=f"{snapshot.worktree.label} is behind the database: {name} is "
        f"{'applied' if not state else 'recorded'} in {db}{state} "
        f"but missing from {rel}; {placed.text}",
        fix=Fix(
            steps=placed.steps, reset_warning=reset_warning(ctx, snapshot, verdict.group), why=placed.why
        ),
        origin=others[0] if others else None,
        found_in=[where(s) for s in others],
        applied_at=applied_at,
        whereabouts=placed.details,
        deletes_rows=placed.details.get("deletes_rows"),
    )


def pending_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """pending: one per migration of the folder the database has not applied."""
    return [_pending(ctx, verdict, name) for name in verdict.pending]


def _pending(ctx: Ctx, verdict: WorktreeVerdict, name: str) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = database_id(snapshot)
    others = [
        s
        for s in ctx.members(verdict.group or "")
        if s.worktree.path != path and (s.folder is None or name not in s.folder.names)
    ]
    replaced = successor_of(ctx, verdict, name)
    if replaced is not None:
        return finding(
            ctx,
            "pending",
            database=db,
            worktree=path,
            migration=name,
            message=f"{snapshot.worktree.label}: {name} is not applied to {db}, but its SQL already ran there "
            f"under the name{'s' if len(replaced_together(ctx, verdict, replaced)) > 1 else ''} "
            f"{', '.join(replaced_together(ctx, verdict, replaced))}",
            fix=Fix(
                steps=replaced_fix(ctx, verdict, replaced),
                why="`prisma migrate deploy` would run its SQL a second time and fail",
            ),
            replaces=replaced_together(ctx, verdict, replaced),
            deletes_rows=replaced_together(ctx, verdict, replaced),
        )
    steps: tuple[Step, ...] = (deploy(snapshot),)
    if verdict.behind:
        steps += (
            Note(
                f"# before that, bring in the migrations {path.name} is behind on (its behind_database alerts)"
            ),
        )
    why = f"applies it to {db}"
    if others:
        why += (
            f"; then {names(others)} will be behind the database until they get "
            f"{name} (merge {snapshot.worktree.branch or 'this branch'})"
        )
    return finding(
        ctx,
        "pending",
        database=db,
        worktree=path,
        migration=name,
        message=f"{snapshot.worktree.label}: {name} is not applied to {db}",
        fix=Fix(steps=steps, why=why),
        would_be_behind=[where(s) for s in others],
    )
