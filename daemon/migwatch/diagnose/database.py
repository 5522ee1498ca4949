"""Database-level findings: unreachable, not managed by Prisma, a migration running, failed rows."""

from __future__ import annotations

from collections.abc import Sequence

from migwatch.checksum import checksum_matches
from migwatch.dburl import UrlError, parse_postgres
from migwatch.diagnose.context import Ctx, finding, names, where
from migwatch.diagnose.fixes import chain, delete_history_rows, deploy, resolve, shell
from migwatch.diagnose.semantics import WorktreeSnapshot, counts_rolled_back
from migwatch.model import Finding, Fix, History, HistoryRow, Note, Step

LOG_HEAD_LINES = 3


def database_findings(ctx: Ctx, group: str, history: History) -> list[Finding]:
    """The findings about one database shared by the worktrees of `group`."""
    members = ctx.members(group)
    if not members:
        return []
    db = history.database.id
    if history.denied:
        return [
            finding(
                ctx,
                "history_denied",
                database=db,
                worktree=None,
                migration=None,
                message=f"cannot read the migration history of {db} (used by {names(members)}): {history.error}",
                fix=_grant_fix(history),
                used_by=[str(s.worktree.path) for s in members],
            )
        ]
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
    """An empty database gets deploy; one that already has tables is baselined (Prisma's baselining guide:
    every local migration recorded as applied without running it)."""
    local = [m.name for m in first.folder.migrations if m.has_sql] if first.folder else []
    db = history.database.id
    extra = f" ({history.error})" if history.error else ""
    if history.tables and local:
        marks = [resolve(first, "applied", name) for name in local]
        steps: tuple[Step, ...] = (chain(*marks),)
        shown = ", ".join(history.tables)
        message = f"{db} has no _prisma_migrations table{extra} but already has tables ({shown}…)"
        why = (
            "if these tables are this schema, baseline: record every local migration as applied without running "
            "it (deploy would fail on the first CREATE of a table that exists); if they are not, this is the "
            "wrong database"
        )
    else:
        steps = (deploy(first),)
        message = f"{db} has no _prisma_migrations table{extra} and no tables: Prisma has not migrated it yet"
        why = "an empty database: deploy creates the history table and applies every migration"
    return finding(
        ctx,
        "not_managed",
        database=db,
        worktree=None,
        migration=None,
        message=message,
        fix=Fix(steps=steps, why=why),
        tables=list(history.tables),
    )


def _grant_fix(history: History) -> Fix:
    ref = history.database
    try:
        role = parse_postgres(ref.url).user if ref.provider == "postgresql" else None
    except UrlError:
        role = None
    quoted = '"' + (role or "<role>").replace('"', '""') + '"'
    schema = '"' + ref.schema.replace('"', '""') + '"'
    return Fix(
        steps=(Note(f"as the table's owner: GRANT SELECT ON {schema}._prisma_migrations TO {quoted};"),),
        why="migwatch only reads the history table; the URL's role needs SELECT on it, nothing more",
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
    local = here.folder.get(name) if here.folder is not None else None
    if (
        local is not None
        and local.has_sql
        and not checksum_matches(row.checksum, local.checksums)
        and (counts_rolled_back(here.setup))
    ):
        steps, why = _edited_after_failure(here, name)
    else:
        steps, why = _resolve_steps(here, name, bool(holders)), None
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
            why=why or "until the failed row is resolved, every `prisma migrate deploy` stops with P3009",
        ),
        origin=holders[0] if holders else None,
        logs="\n".join((row.logs or "").splitlines()[:20]),
        started_at=started,
        found_in=[where(s) for s in holders],
    )


def _resolve_steps(here: WorktreeSnapshot, name: str, has_folder: bool) -> list[Step]:
    """Prisma's own way out: mark it rolled back (after undoing) or applied (after finishing by hand)."""
    steps: list[Step] = [resolve(here, "rolled-back", name, comment="after undoing its partial changes")]
    if has_folder:
        steps.append(resolve(here, "applied", name, comment="after finishing its changes by hand"))
    else:
        search = shell("git", "log", "--all", "--", f"*{name}").render()
        steps.append(
            Note(f"# --applied needs the folder {name}, which no worktree has: get it first ({search})")
        )
    return steps


def _edited_after_failure(here: WorktreeSnapshot, name: str) -> tuple[list[Step], str]:
    """The file was fixed after it failed: drop the failed row, then deploy the fixed file.

    Measured with Prisma 6.19 (../shared/prisma-oracle): after `resolve --rolled-back` and `deploy`, the
    rolled-back row keeps the old checksum and Prisma ≤ 7.8 compares it, so the migration stays
    "edited" (and `migrate dev` offers a reset); without the failed row, deploy leaves it clean.
    """
    delete = delete_history_rows([name], " AND finished_at IS NULL AND rolled_back_at IS NULL")
    undo = "undo its partial changes in the database by hand, then delete the failed row: "
    steps: list[Step] = [Note(undo, delete) if delete else Note(undo + "pick it by id"), deploy(here)]
    why = (
        f"{name} was edited after it failed (that is how a failed migration gets fixed); marking the failed row "
        "rolled back would keep its old checksum, which this Prisma version still compares"
    )
    return steps, why
