"""checksum_mismatch (SPEC §6a): an applied migration.sql that no longer matches its row.

- the first counted row is failed → the file is being fixed: the `failed` finding says what to do;
- the first counted row is a rolled-back attempt (Prisma ≤ 7.8 still compares its checksum) → drop
  the rolled-back rows;
- only comments or whitespace changed → said to be cosmetic, restore the applied text;
- a branch edited it after this branch forked and its text is applied → merge that branch;
- another worktree's different migration of the same name is the applied one → a name collision:
  rename this branch's migration and take theirs, never copy one over the other;
- else restore the applied text from git (or from a worktree whose copy matches).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migwatch.checksum import checksum_matches
from migwatch.diagnose.context import Ctx, database_id, finding, names, where
from migwatch.diagnose.evidence import Restore, migrations_rel
from migwatch.diagnose.fixes import chain, delete_history_rows, deploy, git, operand, reset_warning, shell
from migwatch.diagnose.renames import next_name
from migwatch.diagnose.semantics import WorktreeSnapshot, WorktreeVerdict, counted_rows
from migwatch.model import Finding, Fix, HistoryRow, Note, Step
from migwatch.whereabouts import normalised_sql

UNCOMMITTED = "an uncommitted change"


def first_counted(verdict: WorktreeVerdict, name: str) -> HistoryRow | None:
    """The row of `name` whose checksum this worktree's Prisma compares (its first counted one)."""
    rows = counted_rows(verdict.history.rows, verdict.snapshot.setup) if verdict.history else []
    return next((r for r in rows if r.migration_name == name), None)


def edited_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """checksum_mismatch: one per applied migration whose migration.sql changed (not failed ones)."""
    out = []
    for name, stored in verdict.edited:
        first = first_counted(verdict, name)
        if first is not None and first.failed:
            continue  # editing a failed migration is how it gets fixed: the failed finding covers it
        out.append(_edited(ctx, verdict, name, stored, first))
    return out


def _matching(ctx: Ctx, verdict: WorktreeVerdict, name: str, stored: str | None) -> list[WorktreeSnapshot]:
    path = verdict.snapshot.worktree.path
    return [
        s
        for s in ctx.members(verdict.group or "")
        if s.worktree.path != path
        and s.folder is not None
        and (m := s.folder.get(name)) is not None
        and checksum_matches(stored, m.checksums)
    ]


def _rolled_back_first(
    verdict: WorktreeVerdict, name: str, first: HistoryRow
) -> tuple[tuple[Step, ...], str, str]:
    rows = verdict.history.rows if verdict.history else ()
    applied = any(r.migration_name == name and r.finished_at is not None and not r.rolled_back for r in rows)
    delete = delete_history_rows([name], " AND rolled_back_at IS NOT NULL")
    text = "delete the rolled-back rows of this migration (its changes were undone): "
    steps: tuple[Step, ...] = (Note(text, delete) if delete else Note(text + "pick them by id"),)
    if not applied:
        steps += (deploy(verdict.snapshot),)
    started = first.started_at.isoformat(timespec="seconds") if first.started_at else "an unknown time"
    return (
        steps,
        f"; its first row is a rolled-back attempt (started {started}) whose checksum this Prisma version still "
        "compares",
        "Prisma up to 7.8 compares the checksum of the first row, rolled back or not",
    )


def _collision(
    verdict: WorktreeVerdict, name: str, restore: Restore, theirs: WorktreeSnapshot, renamed: str
) -> tuple[Step, ...]:
    """Rename this branch's migration (committed: with git), then take the other branch's."""
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    rel = migrations_rel(snapshot)
    committed = bool(restore.changed_by) and not (restore.changed_by or "").startswith(UNCOMMITTED)
    steps: list[Step] = []
    if committed and rel is not None:
        move = git(path, "mv", "--", f"{rel}/{name}", f"{rel}/{renamed}")
        message = f"Rename migration {name} to {renamed} (its name is taken)"
        steps.append(chain(move, git(path, "commit", "-m", message)))
    else:
        base = snapshot.setup.migrations_dir or path
        steps.append(shell("mv", operand(str(base / name)), operand(str(base / renamed))))
    if theirs.worktree.branch:
        steps.append(git(path, "merge", theirs.worktree.branch))
    else:
        steps.append(
            Note(f"then bring {name} from {theirs.worktree.path.name} (a detached HEAD) into this worktree")
        )
    return tuple(steps)


@dataclass(frozen=True)
class _Advice:
    """What checksum_mismatch says and prints for one of the cases above."""

    steps: tuple[Step, ...]
    copies: str  # the message's tail: which copies match, or what makes this case different
    why: str
    show_changed_by: bool = True  # "(changed by …)" in the message
    suggested_name: str | None = None
    collides_with: dict[str, str | None] | None = None


def _edited(
    ctx: Ctx, verdict: WorktreeVerdict, name: str, stored: str | None, first: HistoryRow | None
) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = database_id(snapshot)
    matching = _matching(ctx, verdict, name, stored)
    restore = ctx.evidence.restores.get((path, name), Restore())
    advice = _advice(ctx, verdict, name, first, restore, matching)
    changed = f" (changed by {restore.changed_by})" if restore.changed_by and advice.show_changed_by else ""
    no_checksum = " (its row has no checksum)" if not stored else ""
    return finding(
        ctx,
        "checksum_mismatch",
        database=db,
        worktree=path,
        migration=name,
        message=(
            f"{snapshot.worktree.label}: applied migration {name} was edited{changed}: its migration.sql no longer "
            f"matches the checksum recorded in {db}{no_checksum}{advice.copies}"
        ),
        fix=Fix(
            steps=advice.steps, reset_warning=reset_warning(ctx, snapshot, verdict.group), why=advice.why
        ),
        matches_in=[where(s) for s in matching],
        restore_rev=restore.rev,
        changed_by=restore.changed_by,
        suggested_name=advice.suggested_name,
        collides_with=advice.collides_with,
    )


def _advice(
    ctx: Ctx,
    verdict: WorktreeVerdict,
    name: str,
    first: HistoryRow | None,
    restore: Restore,
    matching: list[WorktreeSnapshot],
) -> _Advice:
    """Which case of the module docstring this edit is, and its steps, message tail and why."""
    path = verdict.snapshot.worktree.path
    copies = (
        f"; the copy in {names(matching)} matches the database"
        if matching
        else "; no worktree's copy matches"
    )
    if first is not None and first.rolled_back:
        steps, note, why = _rolled_back_first(verdict, name, first)
        return _Advice(steps, copies + note, why)
    if restore.upstream_branch is not None:
        # umami's 16_boards: master edited it after this branch forked, and master's text is applied.
        branch = restore.upstream_branch
        return _Advice(
            (git(path, "merge", branch),),
            f"; {branch} edited it after this branch forked and that text is the applied one (this branch "
            "never changed the file)",
            f"merging {branch} brings the applied text; never edit an applied migration — write a new one",
            show_changed_by=False,
        )
    if restore.rev is None and matching:
        return _name_collision(ctx, verdict, name, restore, matching[0])
    sql = (verdict.snapshot.setup.migrations_dir or path) / name / "migration.sql"
    rel = sql.relative_to(path).as_posix() if path in sql.parents else str(sql)
    steps = (_restore_step(path, rel, sql, name, restore, matching),)
    if (
        restore.applied_sql is not None
        and restore.current_sql is not None
        and (normalised_sql(restore.applied_sql) == normalised_sql(restore.current_sql))
    ):
        return _Advice(
            steps,
            copies + "; only comments and whitespace changed (cosmetic: the SQL that runs is the same)",
            "Prisma checksums the whole file, comments included: restore the applied text",
        )
    return _Advice(
        steps, copies, "never edit an applied migration — put the change in a new migration instead"
    )


def _name_collision(
    ctx: Ctx, verdict: WorktreeVerdict, name: str, restore: Restore, theirs: WorktreeSnapshot
) -> _Advice:
    """Another worktree's different migration of the same name is applied: keep both under two names."""
    rows = verdict.history.rows if verdict.history else ()
    local = verdict.snapshot.folder.names if verdict.snapshot.folder else frozenset()
    renamed = next_name(
        name, verdict.newest_applied or name, [*local, *(r.migration_name for r in rows)], ctx.now
    )
    return _Advice(
        _collision(verdict, name, restore, theirs, renamed),
        f": a name collision — {theirs.worktree.label} has a different migration of the same name, and that "
        "one is applied",
        f"keep both: {renamed} is this branch's migration under a free name (then deploy it); {name} is theirs",
        suggested_name=renamed,
        collides_with=where(theirs),
    )


def _restore_step(
    path: Path, rel: str, sql: Path, name: str, restore: Restore, matching: list[WorktreeSnapshot]
) -> Step:
    if restore.rev:
        return git(path, "checkout", restore.rev[:12], "--", rel)
    if matching:
        other = matching[0].setup.migrations_dir or matching[0].worktree.path
        return shell("cp", operand(str(other / name / "migration.sql")), operand(str(sql)))
    return git(path, "log", "-p", "--", rel, comment="no copy matches the database; find the applied text")
