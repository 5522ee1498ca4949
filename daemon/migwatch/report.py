"""The status report: objects, the JSON document (SPEC §7) and the human table. Pure formatting."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from migwatch.display import COMMAND_LIMIT, visible
from migwatch.model import Finding, Severity

JSON_VERSION = 1


@dataclass(frozen=True)
class DatabaseSummary:
    id: str
    provider: str
    reachable: bool
    managed: bool
    applied: int
    failed: int
    latest: str | None


@dataclass(frozen=True)
class WorktreeSummary:
    path: Path
    branch: str | None
    head: str | None
    schema: str | None
    migrations_dir: str | None
    database: str | None
    prisma_version: str
    local: int | None  # None: the migrations folder was not read (the worktree cannot be checked)
    applied_here: int | None  # None: the database's history is not known for this worktree
    state: str
    database_from: str | None = None  # which datasource URL migrate uses, and where its value came from


@dataclass(frozen=True)
class ProjectReport:
    name: str
    repo: Path
    databases: tuple[DatabaseSummary, ...]
    worktrees: tuple[WorktreeSummary, ...]
    findings: tuple[Finding, ...]

    def only_worktree(self, path: Path) -> ProjectReport:
        """The same report limited to one worktree (and the database findings that concern it)."""
        target = os.path.realpath(path)
        keep = [w for w in self.worktrees if os.path.realpath(w.path) == target]
        databases = {w.database for w in keep}
        return replace(
            self,
            worktrees=tuple(keep),
            databases=tuple(d for d in self.databases if d.id in databases),
            findings=tuple(
                f
                for f in self.findings
                if (f.worktree and os.path.realpath(f.worktree) == target)
                or (f.worktree is None and f.database in databases)
            ),
        )


@dataclass(frozen=True)
class StatusReport:
    checked_at: datetime
    projects: tuple[ProjectReport, ...]

    @property
    def findings(self) -> list[Finding]:
        return [f for p in self.projects for f in p.findings]

    @property
    def ok(self) -> bool:
        """No finding of severity warning or error."""
        return not any(f.severity in (Severity.ERROR, Severity.WARNING) for f in self.findings)


def to_json(report: StatusReport) -> dict[str, Any]:
    """The `status --json` document, version 1."""
    return {
        "version": JSON_VERSION,
        "checked_at": report.checked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ok": report.ok,
        "projects": [
            {
                "name": p.name,
                "repo": str(p.repo),
                "databases": [
                    {
                        "id": d.id,
                        "provider": d.provider,
                        "reachable": d.reachable,
                        "managed": d.managed,
                        "applied": d.applied,
                        "failed": d.failed,
                        "latest": d.latest,
                    }
                    for d in p.databases
                ],
                "worktrees": [
                    {
                        "path": str(w.path),
                        "branch": w.branch,
                        "head": w.head,
                        "schema": w.schema,
                        "migrations_dir": w.migrations_dir,
                        "database": w.database,
                        "prisma_version": w.prisma_version,
                        "local": w.local,
                        "applied_here": w.applied_here,
                        "state": w.state,
                        "database_from": w.database_from,
                    }
                    for w in p.worktrees
                ],
            }
            for p in report.projects
        ],
        "findings": [f.to_json() for f in report.findings],
    }


_COLOURS = {
    "error": "\033[31m",
    "warning": "\033[33m",
    "info": "\033[36m",
    "ok": "\033[32m",
    "behind": "\033[31m",
    "diverged": "\033[31m",
    "broken": "\033[31m",
    "pending": "\033[33m",
    "unknown": "\033[90m",
    "bold": "\033[1m",
    "dim": "\033[2m",
}
_RESET = "\033[0m"


def render_text(report: StatusReport, *, colour: bool = False) -> str:
    """The human `status` output: a table per project, then its findings with their fixes."""

    def paint(text: str, style: str) -> str:
        return f"{_COLOURS[style]}{text}{_RESET}" if colour and style in _COLOURS else text

    lines: list[str] = []
    for project in report.projects:
        lines.append(paint(f"{visible(project.name)}  {visible(project.repo)}", "bold"))
        for database in project.databases:
            state = "reachable" if database.reachable else "UNREACHABLE"
            if database.reachable and not database.managed:
                state = "no _prisma_migrations table"
            latest = f", latest {visible(database.latest)}" if database.latest else ""
            failed = f", {database.failed} failed" if database.failed else ""
            read = _read_through(project.worktrees, database.id)
            lines.append(
                f"  database {visible(database.id)}: {state}, {database.applied} applied{failed}{latest}{read}"
            )
        if project.worktrees:
            lines += _worktree_table(project.worktrees, paint)
        if project.findings:
            lines.append("")
            for group in same_fix_groups(project.findings):
                finding = group[0]
                tag = paint(f"{finding.severity.value.upper():7}", finding.severity.value)
                lines.append(f"  {tag} {finding.code}: {visible(finding.message)}")
                fix = finding.fix
                if len(group) > 1:
                    lines.append(f"          {_also(group[1:])}")
                    fix = replace(fix, why=_group_why(group))
                for is_command, line in fix.shown():
                    shown = visible(line, COMMAND_LIMIT)
                    lines.append(f"          $ {shown}" if is_command else f"          {paint(shown, 'dim')}")
        else:
            lines.append(paint("  no problems found", "ok"))
        lines.append("")
    counts = {s: sum(1 for f in report.findings if f.severity is s) for s in Severity}
    summary = ", ".join(f"{n} {s.value}{'s' if n != 1 else ''}" for s, n in counts.items())
    lines.append(f"checked {report.checked_at:%Y-%m-%d %H:%M:%S} UTC: {summary}")
    return "\n".join(lines) + "\n"


# Migrations named when several findings of one worktree share a code and a fix (`status --json` has all).
ALSO_NAMED = 5


def same_fix_groups(findings: Sequence[Finding]) -> list[list[Finding]]:
    """Findings about migrations of one worktree with the same code and the same fix steps, shown once.

    A worktree 27 migrations behind is one block naming the others, not 27 copies of one `git merge`.
    """
    groups: dict[object, list[Finding]] = {}
    for finding in findings:
        key: object = (
            (
                finding.code,
                finding.severity,
                finding.database,
                finding.worktree,
                tuple(replace(finding.fix, why=None).lines()),
            )
            if finding.migration is not None
            else id(finding)
        )
        groups.setdefault(key, []).append(finding)
    return list(groups.values())


def _group_why(group: Sequence[Finding]) -> str | None:
    """The group's `why`: the one they share, or the one they share but for naming their own migration
    ("does not know these migrations"), else none (the steps say what to do)."""
    whys = {f.fix.why.replace(f.migration, "\0") if f.fix.why and f.migration else f.fix.why for f in group}
    if len(whys) != 1:
        return None
    why = whys.pop()
    return why.replace("\0", "these migrations") if why else None


def _also(others: Sequence[Finding]) -> str:
    names = ", ".join(visible(f.migration or "") for f in others[:ALSO_NAMED])
    more = f" and {len(others) - ALSO_NAMED} more" if len(others) > ALSO_NAMED else ""
    return f"the same for {len(others)} more migration{'s' if len(others) != 1 else ''}: {names}{more}"


def _read_through(worktrees: tuple[WorktreeSummary, ...], database: str) -> str:
    """`, read through directUrl = env("DIRECT_URL") of schema.prisma`: the setting migrate uses."""
    settings = dict.fromkeys(
        w.database_from.split(", ", 1)[0] for w in worktrees if w.database == database and w.database_from
    )
    return f", read through {visible('; '.join(settings))}" if settings else ""


def _worktree_table(worktrees: tuple[WorktreeSummary, ...], paint: Callable[[str, str], str]) -> list[str]:
    """One row per worktree; every cell made visible first, so no name can add a row or a column."""
    headers = ("WORKTREE", "BRANCH", "STATE", "LOCAL", "APPLIED", "PRISMA")
    rows = [
        (
            visible(w.path.name),
            visible(w.branch) if w.branch else "(detached)",
            w.state,
            "-" if w.local is None else str(w.local),
            "-" if w.applied_here is None else str(w.applied_here),
            visible(w.prisma_version),
        )
        for w in worktrees
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  " + "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        cells[2] = paint(cells[2], row[2])
        lines.append("  " + "  ".join(cells).rstrip())
    return lines
