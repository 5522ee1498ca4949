"""The pure core: from what was read (folders, history rows, worktrees, git evidence) to findings.

No I/O here. `analyse` (semantics.py) compares every worktree with its database the way its own
Prisma version does (SPEC §5); `findings` turns that into SPEC §6 findings with exact fix commands,
using the git evidence (evidence.py) the pipeline gathered for exactly the cases `analyse` found.
Each finding family has its own module; the tables below say which check runs when.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from migwatch.diagnose.branches import behind_base_findings, prunable_findings, unlisted_project
from migwatch.diagnose.client import stale_client_findings
from migwatch.diagnose.conflicts import name_collisions, schema_conflicts
from migwatch.diagnose.context import Ctx
from migwatch.diagnose.database import LOG_HEAD_LINES, database_findings
from migwatch.diagnose.edits import edited_findings
from migwatch.diagnose.evidence import (
    AppliedSql,
    Evidence,
    EvidenceRequest,
    Restore,
    evidence_needed,
    migrations_rel,
    unmerged_migrations,
)
from migwatch.diagnose.files import folder_findings, marker_findings, missing_sql_findings, setup_findings
from migwatch.diagnose.history import (
    behind_findings,
    pending_findings,
)
from migwatch.diagnose.renames import newer_name, out_of_order_findings
from migwatch.diagnose.semantics import (
    SUPPORTED_PROVIDERS,
    ProjectSnapshot,
    WorktreeSnapshot,
    WorktreeVerdict,
    analyse,
    analyse_worktree,
    counted_rows,
    counts_rolled_back,
    group_of,
    worktree_state,
)
from migwatch.model import Finding
from migwatch.prismaschema import datamodel_blocks

__all__ = [
    "LOG_HEAD_LINES",
    "SUPPORTED_PROVIDERS",
    "AppliedSql",
    "Evidence",
    "EvidenceRequest",
    "ProjectSnapshot",
    "Restore",
    "WorktreeSnapshot",
    "WorktreeVerdict",
    "analyse",
    "analyse_worktree",
    "counted_rows",
    "counts_rolled_back",
    "datamodel_blocks",
    "evidence_needed",
    "findings",
    "group_of",
    "migrations_rel",
    "newer_name",
    "unlisted_project",
    "unmerged_migrations",
    "worktree_state",
]

WorktreeCheck = Callable[[Ctx, WorktreeVerdict], list[Finding]]


def _always(verdict: WorktreeVerdict) -> bool:
    return True


def _supported(verdict: WorktreeVerdict) -> bool:
    """Prisma's files can be read: the setup has no problem and the provider is one migwatch checks."""
    setup = verdict.snapshot.setup
    return not setup.problem and setup.provider in SUPPORTED_PROVIDERS


def _compared(verdict: WorktreeVerdict) -> bool:
    """The folder was compared with a readable history table."""
    return _supported(verdict) and verdict.checked


# Per worktree, in order: (when it applies, the check). Add a finding's check here (CONTRIBUTING.md).
WORKTREE_CHECKS: tuple[tuple[Callable[[WorktreeVerdict], bool], WorktreeCheck], ...] = (
    (_always, setup_findings),
    (_supported, marker_findings),
    (_supported, folder_findings),
    (_compared, behind_findings),
    (_compared, edited_findings),
    (_compared, missing_sql_findings),
    (_compared, pending_findings),
    (_compared, out_of_order_findings),
    (_always, behind_base_findings),
    (_always, stale_client_findings),
)


def _database_checks(ctx: Ctx) -> list[Finding]:
    return [
        f for group, history in ctx.project.histories.items() for f in database_findings(ctx, group, history)
    ]


def _worktree_checks(ctx: Ctx) -> list[Finding]:
    return [
        f
        for verdict in ctx.verdicts
        for applies, check in WORKTREE_CHECKS
        if applies(verdict)
        for f in check(ctx, verdict)
    ]


# Per project, in order.
PROJECT_CHECKS: tuple[Callable[[Ctx], list[Finding]], ...] = (
    prunable_findings,
    _database_checks,
    _worktree_checks,
    schema_conflicts,
    name_collisions,
)


def findings(
    project: ProjectSnapshot,
    verdicts: Sequence[WorktreeVerdict],
    evidence: Evidence,
    now: datetime | None = None,
) -> list[Finding]:
    """Every SPEC §6 finding of a project, most severe first."""
    ctx = Ctx(project, verdicts, evidence, now or datetime.now(timezone.utc))
    out = [f for check in PROJECT_CHECKS for f in check(ctx)]
    out.sort(key=lambda f: (f.severity.rank, f.worktree or "", f.code, f.migration or ""))
    return out
