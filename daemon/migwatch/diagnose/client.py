"""Client findings: stale_client, a generated Prisma Client built from another schema."""

from __future__ import annotations

from migwatch.diagnose.context import Ctx, database_id, finding
from migwatch.diagnose.fixes import prisma
from migwatch.diagnose.semantics import WorktreeVerdict
from migwatch.model import Finding, Fix
from migwatch.prismaschema import block_name, datamodel_blocks


def stale_client_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """stale_client when the client's copy of the schema differs in its data model from the worktree's."""
    snapshot = verdict.snapshot
    if snapshot.client_schema is None or not snapshot.schema_text:
        return []
    client_path, client_text = snapshot.client_schema
    ours, theirs = datamodel_blocks(snapshot.schema_text), datamodel_blocks(client_text)
    if ours == theirs:
        return []
    differs_in = sorted({block_name(block) for block in set(ours) ^ set(theirs)})
    return [
        finding(
            ctx,
            "stale_client",
            database=database_id(snapshot),
            worktree=snapshot.worktree.path,
            migration=None,
            message=f"{snapshot.worktree.label}: the generated Prisma Client ({client_path}) was built from another "
            f"schema; it differs in {', '.join(differs_in[:6])}",
            fix=Fix(
                steps=(prisma(snapshot, "generate"),),
                why="the client's types and queries must match this worktree's schema (stale after a checkout)",
            ),
            client=str(client_path),
            differs_in=differs_in,
        )
    ]
