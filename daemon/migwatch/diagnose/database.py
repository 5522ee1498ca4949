"""Database-level findings: unreachable, not managed by Prisma, a migration running, failed rows."""

from __future__ import annotations

from collections.abc import Sequence

from migwatch.dburl import parse_postgres
from migwatch.diagnose.context import Ctx, finding, names, where
from migwatch.diagnose.fixes import deploy, resolve, shell
from migwatch.diagnose.semantics import WorktreeSnapshot
from migwatch.model import Command, Finding, Fix, History, HistoryRow, Note

LOG_HEAD_LINES = 3


def database_findings(ctx: Ctx, group: str, history: History) -> list[Finding]:
    """The findings about one database shared by the worktrees of `group`."""
    members = ctx.members(group)
    if not members:
        return []
    db = history.database.id
    if not history.reachable:
        return [
            finding(
                ctx,
                "database_unreachable",
                database=db,
                worktree=None,
                migration=None,
                message=f"cannot read {db} (used by {names(members)}): {history.error}",
                fix=_unreachable_fix(history),
                used_by=[str(s.worktree.path) for s in members],
            )
        ]
    out: list[Finding] = []
    if history.migration_running:
        out.append(
            finding(
                ctx,
                "migration_running",
                database=db,
                worktree=None,
                migration=None,
                message=f"a Prisma migrate command is running on {db}; alerts wait until it ends",
                fix=Fix(steps=(Note("wait for it to finish"),)),
            )
        )
    if not history.has_table:
        return [*out, _not_managed(ctx, members[0], history)]
    return out + [_failed(ctx, members, row, db) for row in history.rows if row.failed]


def _not_managed(ctx: Ctx, first: WorktreeSnapshot, history: History) -> Finding:
    first_local = next(iter(first.folder.migrations), None) if first.folder else None
    steps = [deploy(first)]
    if first_local:
        comment = "instead, if the database already has this schema (baseline)"
        steps.append(resolve(first, "applied", first_local.name, comment=comment))
    db = history.database.id
    extra = f" ({history.error})" if history.error else ""
    return finding(
        ctx,
        "not_managed",
        database=db,
        worktree=None,
        migration=None,
        message=f"{db} has no _prisma_migrations table{extra}: Prisma has not migrated it yet",
        fix=Fix(
            steps=tuple(steps), why="Prisma has never migrated this database, so it has no history to compare"
        ),
    )


def _unreachable_fix(history: History) -> Fix:
    ref = history.database
    if ref.provider == "postgresql":
        target = parse_postgres(ref.url)
        return Fix(
            steps=(shell("pg_isready", "-h", target.host, "-p", str(target.port)),),
            why="check that the server runs and that the URL's host, port, user and password are right",
        )
    return Fix(
        steps=(shell("ls", "-l", ref.id.removeprefix("file:")),),
        why="check that the database file exists and is readable",
    )


def _failed(ctx: Ctx, members: Sequence[WorktreeSnapshot], row: HistoryRow, db: str) -> Finding:
    name = row.migration_name
    holders = [s for s in members if s.folder is not None and name in s.folder.names]
    here = holders[0] if holders else members[0]
    logs = [line for line in (row.logs or "").splitlines() if line.strip()][:LOG_HEAD_LINES]
    started = row.started_at.isoformat(timespec="seconds") if row.started_at else "unknown time"
    rolled_back = "after undoing its partial changes"
    steps: list[Command | Note] = [resolve(here, "rolled-back", name, comment=rolled_back)]
    if holders:
        applied = "after finishing its changes by hand"
        steps.append(resolve(here, "applied", name, comment=applied))
    else:
        search = shell("git", "log", "--all", "--", f"*{name}").render()
        steps.append(
            Note(f"# --applied needs the folder {name}, which no worktree has: get it first ({search})")
        )
    log_text = f" Log: {' | '.join(logs)}" if logs else " (no log recorded)"
    return finding(
        ctx,
        "failed",
        database=db,
        worktree=here.worktree.path,
        migration=name,
        message=f"{name} failed in {db} (started {started}), from {names(holders) if holders else 'unknown'}.{log_text}",
        fix=Fix(
            steps=tuple(steps),
            why="until the failed row is resolved, every `prisma migrate deploy` stops with P3009",
        ),
        origin=holders[0] if holders else None,
        logs="\n".join((row.logs or "").splitlines()[:20]),
        started_at=started,
        found_in=[where(s) for s in holders],
    )
