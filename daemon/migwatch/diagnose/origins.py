"""behind_database origins (SPEC §6a): where a migration the worktree lacks lives, read from the git
history index (`migwatch.whereabouts`), and the fix that fits each place.

- this HEAD has it (only the working tree lost it) → restore it from HEAD;
- the tip tree of a branch has it → merge that branch (the base branch first, then a branch of a
  worktree that has it, then the most recent; never one whose tip lacks the folder);
- another worktree has it, uncommitted → commit it there, then merge that branch here;
- this branch or the base branch renamed or squashed it into newer migrations → take those and
  record them as applied, then delete the old rows (measured with Prisma 6.19: `migrate resolve
  --applied <new>` plus deleting the old rows leaves `migrate status` clean, and migwatch too);
- … or deleted it → which commit did; the row is orphaned;
- no ref has it → applied from work that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from migwatch.diagnose.context import Ctx
from migwatch.diagnose.evidence import migrations_rel
from migwatch.diagnose.fixes import commit_folder, delete_history_row, delete_history_rows, git, resolve
from migwatch.diagnose.semantics import WorktreeVerdict
from migwatch.migindex import MigrationChange
from migwatch.model import HistoryRow, Note, Step
from migwatch.whereabouts import Whereabouts

MAX_REFS_SHOWN = 3
UNKNOWN = Whereabouts("unknown", note="git was not asked")


@dataclass(frozen=True)
class Placement:
    """What the behind_database finding says about the migration's origin, and its fix."""

    steps: tuple[Step, ...]
    text: str  # the end of the message: where it is
    why: str
    details: dict[str, object] = field(default_factory=dict)


def _commit_text(change: MigrationChange) -> str:
    commit = change.commit
    return f"commit {commit.short} ({commit.date}, {commit.author}: {commit.subject!r})"


def _commit_details(change: MigrationChange) -> dict[str, object]:
    commit = change.commit
    return {"commit": commit.sha, "date": commit.date, "author": commit.author, "subject": commit.subject}


def _refs_text(where: Whereabouts) -> str:
    shown = [t.name if t.kind != "worktree" else f"the HEAD of {Path(t.name).name}" for t in where.refs]
    more = f" and {len(shown) - MAX_REFS_SHOWN} more" if len(shown) > MAX_REFS_SHOWN else ""
    return f"{', '.join(shown[:MAX_REFS_SHOWN])}{more} {'have' if len(shown) > 1 else 'has'} it"


def replaced_together(ctx: Ctx, verdict: WorktreeVerdict, where: Whereabouts) -> list[str]:
    """The migrations this worktree is behind on that the same commit replaced by the same successors."""
    path = verdict.snapshot.worktree.path
    return [
        name
        for name in verdict.behind
        if (other := ctx.evidence.whereabouts.get((path, name))) is not None
        and other.removal is not None
        and where.removal is not None
        and other.removal.commit == where.removal.commit
        and other.successors == where.successors
    ]


def replaced_fix(ctx: Ctx, verdict: WorktreeVerdict, where: Whereabouts) -> tuple[Step, ...]:
    """Take the successors, record them as applied (their SQL already ran), delete the old rows."""
    snapshot = verdict.snapshot
    local = snapshot.folder.names if snapshot.folder else frozenset()
    rows = verdict.history.rows if verdict.history else ()
    applied = {r.migration_name for r in rows if not r.rolled_back and not r.failed}
    steps: list[Step] = []
    if any(s not in local for s in where.successors):
        if where.successor_ref:
            steps.append(git(snapshot.worktree.path, "merge", where.successor_ref))
        else:
            steps.append(
                Note(f"first bring {', '.join(where.successors)} into this worktree (no branch has it)")
            )
    steps += [
        resolve(snapshot, "applied", successor) for successor in where.successors if successor not in applied
    ]
    delete = delete_history_rows(replaced_together(ctx, verdict, where))
    text = "then delete the rows of the migrations it replaced (their SQL already ran): "
    steps.append(
        Note(text, delete)
        if delete
        else Note(text + "(their names cannot be printed as they are: pick them by id)")
    )
    return tuple(steps)


def _replaced(ctx: Ctx, verdict: WorktreeVerdict, where: Whereabouts) -> Placement:
    assert where.removal is not None
    verb = "renamed it to" if where.removal.kind == "renamed" else "squashed it into"
    into = ", ".join(where.successors)
    return Placement(
        replaced_fix(ctx, verdict, where),
        f"{_commit_text(where.removal)} {verb} {into}, whose SQL holds it",
        f"the database ran its SQL under the old name; record {into} as applied instead of running it again",
        {
            "kind": verb.split()[0],
            "successors": list(where.successors),
            "deletes_rows": replaced_together(ctx, verdict, where),
            **_commit_details(where.removal),
        },
    )


def _removed(verdict: WorktreeVerdict, name: str, where: Whereabouts, row: HistoryRow | None) -> Placement:
    assert where.removal is not None
    path = verdict.snapshot.worktree.path
    rel = migrations_rel(verdict.snapshot) or "prisma/migrations"
    whose = "this branch or the base branch" if where.kind == "removed_here" else "a branch"
    undo = "" if row is not None and row.rolled_back else "undo its changes in the database by hand, then "
    delete = delete_history_row(name, row.id if row is not None else None)
    orphaned = f"its row is orphaned: if its changes are unwanted, {undo}delete the row: "
    restore = git(path, "checkout", f"{where.removal.commit.short}^", "--", f"{rel}/{name}")
    steps: tuple[Step, ...] = (
        Note(orphaned, delete)
        if delete
        else Note(orphaned + "(neither its name nor its id can be printed as is)"),
        Note(
            "if they are still wanted, restore the folder as it was before that commit: " + restore.render()
        ),
    )
    added = [n for n, _ in where.removal.added_with if n != name]
    rows = verdict.history.rows if verdict.history else ()
    applied = {r.migration_name for r in rows if not r.rolled_back and not r.failed}
    unapplied = [n for n in added if n not in applied]
    if unapplied:
        # Its SQL is not in theirs (a squash rewrites it), so only a person can say they are equivalent.
        marks = " && ".join(resolve(verdict.snapshot, "applied", n).render() for n in unapplied)
        steps += (
            Note(
                f"the same commit added {', '.join(unapplied)}, whose SQL is not only this one's: if it replaces "
                "it and the database already has everything it creates, record it as applied instead of running "
                f"it ({marks}), then delete the old rows; else deploy it after deleting them"
            ),
        )
    elif added:
        # umami's 'combine heatmap prisma migration': merged into a migration that is already applied.
        steps += (
            Note(
                f"the same commit changed {', '.join(added)}, already applied here: if it took this migration's "
                "SQL, only this row has to go"
            ),
        )
    return Placement(
        steps,
        f"{_commit_text(where.removal)} deleted it from {whose}",
        "no branch will bring the folder back: the row must go, or the folder must come back",
        {"kind": "deleted", **_commit_details(where.removal)},
    )


def _uncommitted(verdict: WorktreeVerdict, name: str, where: Whereabouts) -> Placement:
    assert where.holder is not None
    holder = where.holder.worktree
    steps: tuple[Step, ...] = (
        commit_folder(holder.path, f"{where.holder.migrations_dir}/{name}", f"Add migration {name}"),
    )
    if holder.branch:
        steps += (git(verdict.snapshot.worktree.path, "merge", holder.branch),)
    else:
        steps += (
            Note(f"then merge the new commit of {holder.path.name} (a detached HEAD) into this worktree"),
        )
    return Placement(
        steps,
        f"it is in {holder.label}, not committed yet",
        "a merge brings only committed migrations",
        {"kind": "uncommitted", "worktree": str(holder.path), "branch": holder.branch},
    )


def placement(
    ctx: Ctx, verdict: WorktreeVerdict, name: str, row: HistoryRow | None, applied_at: str | None
) -> Placement:
    """Where the migration is, the steps that resolve the behind_database, and why."""
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    rel = migrations_rel(snapshot) or "prisma/migrations"
    where = ctx.evidence.whereabouts.get((path, name), UNKNOWN)
    bring = f"{path.name}'s Prisma does not know {name}; bring the folder here from where it lives"
    if where.kind == "restore":
        return Placement(
            (git(path, "checkout", "HEAD", "--", f"{rel}/{name}"),),
            "this worktree's HEAD has it: only its working tree lost it",
            bring,
            {"kind": "restore"},
        )
    if where.kind == "branch" and where.merge_ref:
        refs = [t.name for t in where.refs]
        return Placement(
            (git(path, "merge", where.merge_ref),),
            _refs_text(where),
            bring,
            {"kind": "branch", "refs": refs},
        )
    if where.kind == "uncommitted":
        return _uncommitted(verdict, name, where)
    if where.kind in ("removed_here", "removed") and where.successors:
        return _replaced(ctx, verdict, where)
    if where.kind in ("removed_here", "removed"):
        return _removed(verdict, name, where, row)
    when = f" on {applied_at}" if applied_at else ""
    undo = "" if row is not None and row.rolled_back else "undo its changes in the database by hand, then "
    delete = delete_history_row(name, row.id if row is not None else None)
    ask = f"ask who applied it{when}; if it was abandoned, {undo}delete its row: "
    steps = (
        Note(ask, delete) if delete else Note(ask + "(neither its name nor its id can be printed as is)"),
    )
    why = "`prisma migrate resolve --applied` cannot work without the folder"
    if where.kind == "unknown":
        return Placement(
            steps,
            f"where it lives is not known: {where.note}",
            why,
            {"kind": "unknown", "note": where.note},
        )
    gone = f"no worktree, branch, tag or commit has it: it was applied{when} from work that is gone"
    return Placement(
        steps,
        gone + (f" ({where.note})" if where.note else ""),
        why,
        {"kind": "gone", "note": where.note},
    )


def successor_of(ctx: Ctx, verdict: WorktreeVerdict, name: str) -> Whereabouts | None:
    """The rename/squash whose successors include this (pending) migration, if this worktree is behind on it."""
    path = verdict.snapshot.worktree.path
    for behind in verdict.behind:
        where = ctx.evidence.whereabouts.get((path, behind))
        if where is not None and name in where.successors:
            return where
    return None
