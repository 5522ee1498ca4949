"""out_of_order (SPEC §6a): rename a migration only where no other branch or worktree has it, in the
project's own naming scheme (14-digit timestamps, or the next number for `20_add_billing`-style names);
otherwise say that deploying it out of order is what Prisma does, and when that is safe."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from migwatch.diagnose.context import Ctx, database_id, finding
from migwatch.diagnose.fixes import deploy, operand, shell
from migwatch.diagnose.semantics import WorktreeVerdict
from migwatch.model import Finding, Fix

_NUMBERED = re.compile(r"^(?P<number>\d+)_(?P<description>.*)$", re.S)
TIMESTAMP_DIGITS = 14


def newer_name(name: str, newest: str, now: datetime) -> str:
    """A folder name that sorts after `newest`: a fresh 14-digit timestamp with the same description."""
    stamp = now.astimezone(timezone.utc)
    if newest[:TIMESTAMP_DIGITS].isdigit():
        try:
            newest_time = datetime.strptime(newest[:TIMESTAMP_DIGITS], "%Y%m%d%H%M%S").replace(
                tzinfo=timezone.utc
            )
            stamp = max(stamp, newest_time + timedelta(seconds=1))
        except ValueError:
            pass
    description = name[TIMESTAMP_DIGITS:].lstrip("_") if name[:TIMESTAMP_DIGITS].isdigit() else name
    return f"{stamp:%Y%m%d%H%M%S}_{description}"


def next_name(name: str, newest: str, known: Iterable[str], now: datetime) -> str:
    """The name this migration gets to sort after `newest`, in the project's scheme.

    Numbered names (`20_add_billing`, not 14-digit timestamps) take the next number after every known
    one, zero-padded like the name (umami's `01_init` … `21_add_heatmap`); others a newer timestamp.
    """
    match = _NUMBERED.match(name)
    if match is None or len(match["number"]) == TIMESTAMP_DIGITS:
        return newer_name(name, newest, now)
    numbers = [
        int(m["number"]) for n in known if (m := _NUMBERED.match(n)) and len(m["number"]) != TIMESTAMP_DIGITS
    ]
    following = max(numbers, default=int(match["number"])) + 1
    return f"{following:0{len(match['number'])}d}_{match['description']}"


def out_of_order_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """out_of_order: one per unapplied migration that sorts before the newest applied one."""
    return [_out_of_order(ctx, verdict, name) for name in verdict.out_of_order]


def _out_of_order(ctx: Ctx, verdict: WorktreeVerdict, name: str) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = database_id(snapshot)
    newest = verdict.newest_applied or ""
    message = (
        f"{snapshot.worktree.label}: {name} is not applied and sorts before {newest}, the newest migration "
        f"applied to {db}"
    )
    shared = ctx.evidence.shared.get((path, name), ())
    if shared:
        return finding(
            ctx,
            "out_of_order",
            database=db,
            worktree=path,
            migration=name,
            message=f"{message}; {', '.join(shared[:3])}{' and others' if len(shared) > 3 else ''} "
            f"{'have' if len(shared) > 1 else 'has'} it too, so it keeps its name",
            fix=Fix(
                steps=(deploy(snapshot),),
                why="renaming a migration that other branches or worktrees have breaks them; `prisma migrate "
                "deploy` applies it now, out of order, which is what Prisma does with every unapplied migration "
                f"(it only compares names, not the order they ran in) — safe when it does not depend on {newest} "
                "or other migrations applied after its place",
            ),
            newest_applied=newest,
            shared_with=list(shared),
        )
    rows = verdict.history.rows if verdict.history else ()
    local = snapshot.folder.names if snapshot.folder else frozenset()
    renamed = next_name(name, newest, [*local, *(r.migration_name for r in rows)], ctx.now)
    base = snapshot.setup.migrations_dir or path
    return finding(
        ctx,
        "out_of_order",
        database=db,
        worktree=path,
        migration=name,
        message=f"{message}; no other branch or worktree has it",
        fix=Fix(
            steps=(shell("mv", operand(str(base / name)), operand(str(base / renamed))),),
            why=f"renamed to {renamed} it sorts after {newest}, so `prisma migrate deploy` applies it in order "
            "and every worktree that later merges it sees one history",
        ),
        newest_applied=newest,
        suggested_name=renamed,
    )
