"""What every finding module shares: the check's context and the one way a finding is built."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from migwatch.catalogue import kind_of
from migwatch.diagnose.evidence import Evidence
from migwatch.diagnose.semantics import ProjectSnapshot, WorktreeSnapshot, WorktreeVerdict
from migwatch.model import Finding, Fix, Origin


@dataclass(frozen=True)
class Ctx:
    """One check of one project: what was read, what `analyse` concluded, the git evidence, the time."""

    project: ProjectSnapshot
    verdicts: Sequence[WorktreeVerdict]
    evidence: Evidence
    now: datetime

    def members(self, group: str) -> list[WorktreeSnapshot]:
        """The worktrees that use the database of `group`, in worktree order."""
        return [v.snapshot for v in self.verdicts if v.group == group]


def finding(
    ctx: Ctx,
    code: str,
    *,
    database: str | None,
    worktree: Path | None,
    migration: str | None,
    message: str,
    fix: Fix | None = None,
    remark: bool = False,
    origin: WorktreeSnapshot | None = None,
    **details: object,
) -> Finding:
    """A finding of `code` with the catalogue's severity (its remark severity when `remark`)."""
    kind = kind_of(code)
    return Finding(
        code=code,
        severity=(kind.remark_severity or kind.severity) if remark else kind.severity,
        project=ctx.project.name,
        database=database,
        worktree=str(worktree) if worktree else None,
        migration=migration,
        message=message,
        fix=fix or Fix(),
        details=details,
        origin=Origin(str(origin.worktree.path), origin.worktree.branch) if origin else None,
    )


def database_id(snapshot: WorktreeSnapshot) -> str | None:
    """The redacted id of the worktree's database, as messages show it."""
    return snapshot.setup.database.id if snapshot.setup.database else None


def names(snapshots: Sequence[WorktreeSnapshot]) -> str:
    """`Americano, Americano-epic5`: worktree folder names for a message."""
    return ", ".join(s.worktree.path.name for s in snapshots) or "no other worktree"


def where(snapshot: WorktreeSnapshot) -> dict[str, str | None]:
    """A worktree as a `details` entry (`found_in`, `matches_in`, …)."""
    return {"worktree": str(snapshot.worktree.path), "branch": snapshot.worktree.branch}
