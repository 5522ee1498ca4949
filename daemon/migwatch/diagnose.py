"""The pure core: from what was read (folders, history rows, worktrees, git evidence) to findings.

No I/O here. `analyse` compares every worktree with its database the way its own Prisma version
does (SPEC §5); `findings` turns that into SPEC §6 findings with exact fix commands, using the git
evidence the pipeline gathered for exactly the cases `analyse` found.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from migwatch.checksum import checksum_matches
from migwatch.dburl import group_key, parse_postgres
from migwatch.model import (
    Finding,
    GitOrigin,
    History,
    HistoryRow,
    MigrationsFolder,
    PrismaSetup,
    Severity,
    Worktree,
)
from migwatch.ordering import collation_key

SUPPORTED_PROVIDERS = frozenset({"postgresql", "sqlite"})
LOG_HEAD_LINES = 3


# ---------------------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class WorktreeSnapshot:
    """One worktree as read: how Prisma sees it, its migrations folder, conflict markers in its schema."""

    setup: PrismaSetup
    folder: MigrationsFolder | None = None
    schema_markers: tuple[tuple[Path, tuple[int, ...]], ...] = ()
    schema_text: str = ""  # all schema files, concatenated
    client_schema: tuple[Path, str] | None = None  # the generated Prisma Client's copy of the schema

    @property
    def worktree(self) -> Worktree:
        return self.setup.worktree


@dataclass(frozen=True)
class ProjectSnapshot:
    """Everything read for one project; `histories` is keyed by `dburl.group_key`."""

    name: str
    repo: Path
    worktrees: tuple[WorktreeSnapshot, ...]
    histories: Mapping[str, History]
    skipped: tuple[Worktree, ...] = ()  # prunable worktrees
    base_branch: str | None = None


@dataclass(frozen=True)
class Restore:
    """Git facts for an edited migration.sql."""

    rev: str | None = None  # a commit whose migration.sql matches the database
    changed_by: str | None = None  # "an uncommitted change in this worktree" / "<sha> <subject> (…)"


@dataclass(frozen=True)
class Evidence:
    """Git facts the pipeline gathered for the cases `analyse` found (see `evidence_needed`)."""

    committed: Mapping[Path, frozenset[str]] = field(default_factory=dict)  # worktree → names at HEAD
    origins: Mapping[str, GitOrigin | None] = field(default_factory=dict)  # name → git origin
    restores: Mapping[tuple[Path, str], Restore] = field(default_factory=dict)
    tracked_sql: Mapping[tuple[Path, str], bool] = field(default_factory=dict)  # migration.sql at HEAD?
    empty_folders: frozenset[Path] = frozenset()
    base_names: Mapping[str, frozenset[str]] = field(default_factory=dict)  # migrations dir → names on base
    unmerged_sql: Mapping[Path, str] = field(default_factory=dict)  # migration folder → its SQL text


# -------------------------------------------------------------------------------------------- analyse


@dataclass(frozen=True)
class WorktreeVerdict:
    """How one worktree stands against its database, by its own Prisma version's rules."""

    snapshot: WorktreeSnapshot
    group: str | None
    history: History | None
    behind: tuple[str, ...] = ()  # in the database (counted rows), not in the folder
    pending: tuple[str, ...] = ()  # in the folder with migration.sql, not in the database
    edited: tuple[tuple[str, str | None], ...] = ()  # (name, stored checksum) of the first counted row
    missing_sql: tuple[str, ...] = ()
    unreadable: tuple[tuple[str, str], ...] = ()
    out_of_order: tuple[str, ...] = ()
    applied_here: int = 0
    newest_applied: str | None = None

    @property
    def checked(self) -> bool:
        return self.history is not None and self.history.reachable and self.history.has_table


def counts_rolled_back(setup: PrismaSetup) -> bool:
    """Prisma up to 7.8 counts rolled-back rows as present; 7.9 and later ignore them."""
    return setup.prisma_version < (7, 9, 0)


def counted_rows(rows: Sequence[HistoryRow], setup: PrismaSetup) -> list[HistoryRow]:
    """The rows this worktree's Prisma takes into account, in started_at order."""
    keep_rolled_back = counts_rolled_back(setup)
    return [row for row in rows if keep_rolled_back or not row.rolled_back]


def group_of(snapshot: WorktreeSnapshot) -> str | None:
    """The database group key of a worktree (None when it cannot be checked)."""
    setup = snapshot.setup
    if setup.problem or setup.database is None or setup.provider not in SUPPORTED_PROVIDERS:
        return None
    return group_key(setup.database)


def analyse_worktree(snapshot: WorktreeSnapshot, history: History | None) -> WorktreeVerdict:
    """Compare one worktree's folder with its database's history (SPEC §5)."""
    group = group_of(snapshot)
    folder = snapshot.folder
    if history is None or not history.reachable or not history.has_table or folder is None or folder.error:
        return WorktreeVerdict(snapshot=snapshot, group=group, history=history)
    rows = counted_rows(history.rows, snapshot.setup)
    present: dict[str, HistoryRow] = {}
    for row in rows:
        present.setdefault(row.migration_name, row)  # the first counted row per name is the one checked
    local = {m.name: m for m in folder.migrations}
    behind = tuple(name for name in present if name not in local)
    pending: list[str] = []
    missing: list[str] = []
    unreadable: list[tuple[str, str]] = []
    edited: list[tuple[str, str | None]] = []
    for migration in folder.migrations:
        if migration.read_error:
            unreadable.append((migration.name, migration.read_error))
            continue
        if not migration.has_sql:
            missing.append(migration.name)
            continue
        first_row = present.get(migration.name)
        if first_row is None:
            pending.append(migration.name)
        elif not checksum_matches(first_row.checksum, migration.checksums):
            edited.append((migration.name, first_row.checksum))
    applied_names = [row.migration_name for row in rows if not row.failed]
    newest = max(applied_names, key=collation_key) if applied_names else None
    out_of_order = (
        tuple(name for name in pending if collation_key(name) < collation_key(newest)) if newest else ()
    )
    return WorktreeVerdict(
        snapshot=snapshot,
        group=group,
        history=history,
        behind=behind,
        pending=tuple(pending),
        edited=tuple(edited),
        missing_sql=tuple(missing),
        unreadable=tuple(unreadable),
        out_of_order=out_of_order,
        applied_here=sum(1 for name in local if name in present),
        newest_applied=newest,
    )


def analyse(project: ProjectSnapshot) -> list[WorktreeVerdict]:
    """Verdicts for every worktree of a project, in worktree order."""
    verdicts = []
    for snapshot in project.worktrees:
        group = group_of(snapshot)
        verdicts.append(analyse_worktree(snapshot, project.histories.get(group) if group else None))
    return verdicts


def worktree_state(verdict: WorktreeVerdict) -> str:
    """ok, pending, behind, diverged, broken or unknown (SPEC §7)."""
    snapshot = verdict.snapshot
    if not verdict.checked:
        return "unknown"
    folder = snapshot.folder
    lock_mismatch = _lock_mismatch(snapshot)
    markers = snapshot.schema_markers or (folder and any(m.conflict_lines for m in folder.migrations))
    if verdict.edited or verdict.missing_sql or verdict.unreadable or lock_mismatch or markers:
        return "broken"
    if verdict.behind and verdict.pending:
        return "diverged"
    if verdict.behind:
        return "behind"
    if verdict.pending:
        return "pending"
    return "ok"


def _lock_mismatch(snapshot: WorktreeSnapshot) -> bool:
    folder, provider = snapshot.folder, snapshot.setup.provider
    return bool(
        folder and folder.lock_provider is not None and provider and _norm(folder.lock_provider) != provider
    )


def _norm(provider: str) -> str:
    return "postgresql" if provider == "postgres" else provider


# ------------------------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class EvidenceRequest:
    """The git questions the findings need answered (asked only for what was found)."""

    committed: frozenset[Path]  # worktrees whose HEAD listing is needed
    origins: frozenset[tuple[str, str]]  # (migration name, migrations folder relative to the repo root)
    restores: frozenset[tuple[Path, str, str]]  # (worktree, migration, stored checksum)
    tracked_sql: frozenset[tuple[Path, str]]  # (worktree, migration) missing migration.sql
    base_dirs: frozenset[str] = frozenset()  # migrations dirs (repo-relative) to list on the base branch


def evidence_needed(project: ProjectSnapshot, verdicts: Sequence[WorktreeVerdict]) -> EvidenceRequest:
    """Which git facts `findings` will use, so the pipeline asks git only for those."""
    committed: set[Path] = set()
    origins: set[tuple[str, str]] = set()
    restores: set[tuple[Path, str, str]] = set()
    tracked: set[tuple[Path, str]] = set()
    for verdict in verdicts:
        for name in verdict.behind:
            holders = _holders(project, name)
            committed.update(s.worktree.path for s in holders)
            if not holders:
                rel = _migrations_rel(verdict.snapshot)
                origins.add((name, rel or ""))
        for name, stored in verdict.edited:
            restores.add((verdict.snapshot.worktree.path, name, stored or ""))
        for name in verdict.missing_sql:
            tracked.add((verdict.snapshot.worktree.path, name))
    base_dirs = frozenset(
        rel for s in project.worktrees if project.base_branch and (rel := _migrations_rel(s)) is not None
    )
    return EvidenceRequest(
        frozenset(committed), frozenset(origins), frozenset(restores), frozenset(tracked), base_dirs
    )


def unmerged_migrations(project: ProjectSnapshot, evidence: Evidence) -> dict[Path, list[str]]:
    """Per worktree, the migrations its folder has that the base branch does not (needs `base_names`)."""
    out: dict[Path, list[str]] = {}
    for snapshot in project.worktrees:
        rel = _migrations_rel(snapshot)
        if snapshot.folder is None or rel is None or rel not in evidence.base_names:
            continue
        if snapshot.worktree.branch == project.base_branch:
            continue
        base = evidence.base_names[rel]
        out[snapshot.worktree.path] = [
            m.name for m in snapshot.folder.migrations if m.name not in base and m.has_sql
        ]
    return out


def _holders(project: ProjectSnapshot, name: str) -> list[WorktreeSnapshot]:
    return [s for s in project.worktrees if s.folder is not None and name in s.folder.names]


def _migrations_rel(snapshot: WorktreeSnapshot) -> str | None:
    directory = snapshot.setup.migrations_dir
    if directory is None:
        return None
    try:
        return directory.relative_to(snapshot.worktree.path).as_posix()
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class _Ctx:
    project: ProjectSnapshot
    verdicts: Sequence[WorktreeVerdict]
    evidence: Evidence
    now: datetime


def findings(
    project: ProjectSnapshot,
    verdicts: Sequence[WorktreeVerdict],
    evidence: Evidence,
    now: datetime | None = None,
) -> list[Finding]:
    """Every SPEC §6 finding of a project, most severe first."""
    ctx = _Ctx(project, verdicts, evidence, now or datetime.now(timezone.utc))
    out: list[Finding] = []
    for worktree in project.skipped:
        out.append(_prunable(ctx, worktree))
    for group, history in project.histories.items():
        out.extend(_database_findings(ctx, group, history))
    for verdict in verdicts:
        out.extend(_worktree_findings(ctx, verdict))
        out.extend(_behind_base(ctx, verdict))
        out.extend(_stale_client(ctx, verdict))
    out.extend(_schema_conflicts(ctx))
    out.sort(key=lambda f: (f.severity.rank, f.worktree or "", f.code, f.migration or ""))
    return out


def _finding(
    ctx: _Ctx,
    code: str,
    severity: Severity,
    *,
    database: str | None,
    worktree: Path | None,
    migration: str | None,
    message: str,
    fix: Sequence[str] = (),
    **details: object,
) -> Finding:
    return Finding(
        code=code,
        severity=severity,
        project=ctx.project.name,
        database=database,
        worktree=str(worktree) if worktree else None,
        migration=migration,
        message=message,
        fix=tuple(fix),
        details=details,
    )


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def _members(ctx: _Ctx, group: str) -> list[WorktreeSnapshot]:
    return [v.snapshot for v in ctx.verdicts if v.group == group]


def _names(snapshots: Sequence[WorktreeSnapshot]) -> str:
    return ", ".join(s.worktree.path.name for s in snapshots) or "no other worktree"


def _deploy(setup: PrismaSetup) -> str:
    return f"cd {_q(setup.package_dir)} && npx prisma migrate deploy"


def _dev_warning(ctx: _Ctx, snapshot: WorktreeSnapshot, group: str | None) -> str:
    others = [s for s in _members(ctx, group) if s.worktree.path != snapshot.worktree.path] if group else []
    shared = f"shared with {_names(others)}" if others else "it uses"
    return (
        f"Do not run `prisma migrate dev` or `prisma migrate reset` in {snapshot.worktree.path.name}: "
        f"Prisma will offer to reset the database {shared}, deleting everyone's data."
    )


def _prunable(ctx: _Ctx, worktree: Worktree) -> Finding:
    return _finding(
        ctx,
        "worktree_prunable",
        Severity.INFO,
        database=None,
        worktree=worktree.path,
        migration=None,
        message=f"worktree {worktree.label} is gone from disk ({worktree.prunable}); skipped",
        fix=(f"git -C {_q(ctx.project.repo)} worktree prune", "why: git still lists the deleted worktree"),
    )


def _database_findings(ctx: _Ctx, group: str, history: History) -> list[Finding]:
    members = _members(ctx, group)
    if not members:
        return []
    first = members[0]
    db = history.database.id
    if not history.reachable:
        return [
            _finding(
                ctx,
                "database_unreachable",
                Severity.ERROR,
                database=db,
                worktree=None,
                migration=None,
                message=f"cannot read {db} (used by {_names(members)}): {history.error}",
                fix=_unreachable_fix(history),
                used_by=[str(s.worktree.path) for s in members],
            )
        ]
    out: list[Finding] = []
    if history.migration_running:
        out.append(
            _finding(
                ctx,
                "migration_running",
                Severity.INFO,
                database=db,
                worktree=None,
                migration=None,
                message=f"a Prisma migrate command is running on {db}; alerts wait until it ends",
                fix=("wait for it to finish",),
            )
        )
    if not history.has_table:
        first_local = next(iter(first.folder.migrations), None) if first.folder else None
        baseline = (
            f"cd {_q(first.setup.package_dir)} && npx prisma migrate resolve --applied {first_local.name}"
            if first_local
            else None
        )
        fix = [_deploy(first.setup)]
        if baseline:
            fix.append(f"{baseline}  # instead, if the database already has this schema (baseline)")
        fix.append("why: Prisma has never migrated this database, so it has no history to compare")
        extra = f" ({history.error})" if history.error else ""
        out.append(
            _finding(
                ctx,
                "not_managed",
                Severity.INFO,
                database=db,
                worktree=None,
                migration=None,
                message=f"{db} has no _prisma_migrations table{extra}: Prisma has not migrated it yet",
                fix=fix,
            )
        )
        return out
    for row in history.rows:
        if row.failed:
            out.append(_failed(ctx, group, members, row, db))
    return out


def _unreachable_fix(history: History) -> tuple[str, ...]:
    ref = history.database
    if ref.provider == "postgresql":
        target = parse_postgres(ref.url)
        return (
            f"pg_isready -h {_q(target.host)} -p {target.port}",
            "why: check that the server runs and that the URL's host, port, user and password are right",
        )
    return (
        f"ls -l {_q(ref.id.removeprefix('file:'))}",
        "why: check that the database file exists and is readable",
    )


def _failed(ctx: _Ctx, group: str, members: Sequence[WorktreeSnapshot], row: HistoryRow, db: str) -> Finding:
    name = row.migration_name
    holders = [s for s in members if s.folder is not None and name in s.folder.names]
    where = holders[0] if holders else members[0]
    logs = [line for line in (row.logs or "").splitlines() if line.strip()][:LOG_HEAD_LINES]
    started = row.started_at.isoformat(timespec="seconds") if row.started_at else "unknown time"
    cd = f"cd {_q(where.setup.package_dir)}"
    fix = [f"{cd} && npx prisma migrate resolve --rolled-back {name}  # after undoing its partial changes"]
    if holders:
        fix.append(
            f"{cd} && npx prisma migrate resolve --applied {name}  # after finishing its changes by hand"
        )
    else:
        fix.append(
            f"# --applied needs the folder {name}, which no worktree has: get it first (git log --all -- '*{name}')"
        )
    fix.append("why: until the failed row is resolved, every `prisma migrate deploy` stops with P3009")
    log_text = f" Log: {' | '.join(logs)}" if logs else " (no log recorded)"
    return _finding(
        ctx,
        "failed",
        Severity.ERROR,
        database=db,
        worktree=where.worktree.path,
        migration=name,
        message=f"{name} failed in {db} (started {started}), from {_names(holders) if holders else 'unknown'}.{log_text}",
        fix=fix,
        logs="\n".join((row.logs or "").splitlines()[:20]),
        started_at=started,
        found_in=[_where(s) for s in holders],
    )


def _where(snapshot: WorktreeSnapshot) -> dict[str, str | None]:
    return {"worktree": str(snapshot.worktree.path), "branch": snapshot.worktree.branch}


def _worktree_findings(ctx: _Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    snapshot = verdict.snapshot
    setup = snapshot.setup
    path = snapshot.worktree.path
    label = snapshot.worktree.label
    db = setup.database.id if setup.database else None
    out: list[Finding] = []
    for note in setup.notes:
        out.append(
            _finding(
                ctx,
                "discovery",
                Severity.INFO,
                database=db,
                worktree=path,
                migration=None,
                message=f"{label}: {note}",
            )
        )
    if setup.problem:
        no_schema = setup.problem.startswith("no Prisma schema")
        out.append(
            _finding(
                ctx,
                "discovery",
                Severity.INFO if no_schema else Severity.WARNING,
                database=db,
                worktree=path,
                migration=None,
                message=f"{label} cannot be checked: {setup.problem}",
                fix=()
                if no_schema
                else (
                    "set it in the worktree's .env (or `database_url` for this project in the migwatch config)",
                ),
            )
        )
        return out
    if setup.provider not in SUPPORTED_PROVIDERS:
        out.append(
            _finding(
                ctx,
                "unsupported_provider",
                Severity.INFO,
                database=db,
                worktree=path,
                migration=None,
                message=f"{label} uses provider {setup.provider}; migwatch checks postgresql and sqlite only",
            )
        )
        return out
    out.extend(_marker_findings(ctx, verdict))
    folder = snapshot.folder
    if folder is not None and folder.error:
        out.append(
            _finding(
                ctx,
                "missing_sql",
                Severity.ERROR,
                database=db,
                worktree=path,
                migration=None,
                message=f"{label}: cannot list {folder.path}: {folder.error}",
                fix=(
                    f"ls -ld {_q(folder.path)}",
                    "why: migwatch and Prisma must be able to read this folder",
                ),
            )
        )
    if _lock_mismatch(snapshot) and folder is not None:
        lock = folder.path / "migration_lock.toml"
        out.append(
            _finding(
                ctx,
                "provider_mismatch",
                Severity.ERROR,
                database=db,
                worktree=path,
                migration=None,
                message=(
                    f'{label}: {lock} says provider = "{folder.lock_provider}" but the schema\'s datasource is '
                    f'"{setup.provider}"; every Prisma migrate command fails (P3019) until they agree'
                ),
                fix=(
                    f"git -C {_q(path)} diff HEAD -- {_q(lock)}",
                    "why: either the datasource provider or migration_lock.toml changed; restore the wrong one "
                    f"(git -C {_q(path)} checkout HEAD -- <file>) — migrations written for one provider do not run on another",
                ),
                lock_provider=folder.lock_provider,
                datasource_provider=setup.provider,
            )
        )
    if not verdict.checked:
        return out
    for name in verdict.behind:
        out.append(_behind(ctx, verdict, name))
    for name, stored in verdict.edited:
        out.append(_edited(ctx, verdict, name, stored))
    for name in verdict.missing_sql:
        out.append(_missing_sql(ctx, verdict, name))
    for name, error in verdict.unreadable:
        out.append(
            _finding(
                ctx,
                "missing_sql",
                Severity.ERROR,
                database=db,
                worktree=path,
                migration=name,
                message=f"{label}: {error}",
                fix=(
                    f"ls -l {_q(setup.migrations_dir / name if setup.migrations_dir else name)}",
                    "why: Prisma cannot read this migration either",
                ),
            )
        )
    for name in verdict.pending:
        out.append(_pending(ctx, verdict, name))
    for name in verdict.out_of_order:
        out.append(_out_of_order(ctx, verdict, name))
    return out


def _marker_findings(ctx: _Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = snapshot.setup.database.id if snapshot.setup.database else None
    files: list[tuple[Path, tuple[int, ...], str | None]] = [
        (f, lines, None) for f, lines in snapshot.schema_markers
    ]
    if snapshot.folder is not None:
        files += [
            (m.path / "migration.sql", m.conflict_lines, m.name)
            for m in snapshot.folder.migrations
            if m.conflict_lines
        ]
    out = []
    for file, lines, migration in files:
        shown = ", ".join(str(n) for n in lines[:10])
        out.append(
            _finding(
                ctx,
                "conflict_markers",
                Severity.ERROR,
                database=db,
                worktree=path,
                migration=migration,
                message=f"{snapshot.worktree.label}: merge conflict markers in {file} at line{'s' if len(lines) > 1 else ''} {shown}",
                fix=(
                    f"git -C {_q(path)} diff -- {_q(file)}",
                    f"why: resolve the conflict at line{'s' if len(lines) > 1 else ''} {shown}, then "
                    f"`git -C {_q(path)} add {_q(file)}`; Prisma cannot parse the file as it is",
                ),
                file=str(file),
                lines=list(lines),
            )
        )
    return out


def _applied_row(verdict: WorktreeVerdict, name: str) -> HistoryRow | None:
    if verdict.history is None:
        return None
    return next((r for r in verdict.history.rows if r.migration_name == name), None)


def _behind(ctx: _Ctx, verdict: WorktreeVerdict, name: str) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = snapshot.setup.database.id if snapshot.setup.database else None
    holders = [s for s in _holders(ctx.project, name) if s.worktree.path != path]
    row = _applied_row(verdict, name)
    applied_at = row.started_at.isoformat(timespec="seconds") if row and row.started_at else None
    rel = _migrations_rel(snapshot) or "prisma/migrations"
    state = ""
    if row is not None and row.failed:
        state = " (its row is failed)"
    elif row is not None and row.rolled_back:
        state = (
            " (its row is rolled back — its changes were undone — but this worktree's Prisma still counts it)"
        )
    fix: list[str] = []
    origin_text: str
    committed_holder = next(
        (
            s
            for s in holders
            if s.worktree.branch and name in ctx.evidence.committed.get(s.worktree.path, frozenset())
        ),
        None,
    )
    if committed_holder is not None:
        branch = committed_holder.worktree.branch
        fix.append(f"git -C {_q(path)} merge {_q(branch or '')}")
        origin_text = (
            f"it is in {_names(holders)} ({', '.join(s.worktree.branch or 'detached' for s in holders)})"
        )
    elif holders:
        holder = holders[0]
        holder_rel = _migrations_rel(holder) or rel
        fix.append(
            f"git -C {_q(holder.worktree.path)} add {_q(holder_rel + '/' + name)} && "
            f"git -C {_q(holder.worktree.path)} commit -m {_q('Add migration ' + name)}"
        )
        if holder.worktree.branch:
            fix.append(f"git -C {_q(path)} merge {_q(holder.worktree.branch)}")
        origin_text = f"it is in {_names(holders)}, not committed yet"
    else:
        origin = ctx.evidence.origins.get(name)
        if origin is not None and origin.branches:
            fix.append(f"git -C {_q(path)} merge {_q(origin.branches[0])}")
            origin_text = (
                f"no worktree has it; branch{'es' if len(origin.branches) > 1 else ''} "
                f"{', '.join(origin.branches)} (commit {origin.commit[:10]} {origin.subject!r}) "
                f"{'have' if len(origin.branches) > 1 else 'has'} it"
            )
        elif origin is not None:
            fix.append(f"git -C {_q(path)} checkout {origin.commit[:12]} -- {_q(rel + '/' + name)}")
            origin_text = f"no branch has it; commit {origin.commit[:10]} ({origin.date}) does"
        else:
            when = f" on {applied_at}" if applied_at else ""
            origin_text = (
                f"no worktree, branch or commit has it: it was applied{when} from work that is gone "
                "(an abandoned experiment?)"
            )
            fix.append(
                f"# ask who applied it{when}; if it was abandoned, "
                + (
                    ""
                    if row is not None and row.rolled_back
                    else "undo its changes in the database by hand, then "
                )
                + f"delete its row: DELETE FROM _prisma_migrations WHERE migration_name = '{name}';"
            )
    fix.append(_dev_warning(ctx, snapshot, verdict.group))
    fix.append(
        f"why: {path.name}'s Prisma does not know {name}; bring the folder here from where it lives "
        "(`prisma migrate resolve --applied` cannot work without the folder)"
    )
    return _finding(
        ctx,
        "behind_database",
        Severity.ERROR,
        database=db,
        worktree=path,
        migration=name,
        message=f"{snapshot.worktree.label} is behind the database: {name} is "
        f"{'applied' if not state else 'recorded'} in {db}{state} "
        f"but missing from {rel}; {origin_text}",
        fix=fix,
        found_in=[_where(s) for s in holders],
        applied_at=applied_at,
    )


def _pending(ctx: _Ctx, verdict: WorktreeVerdict, name: str) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = snapshot.setup.database.id if snapshot.setup.database else None
    others = [
        s
        for s in _members(ctx, verdict.group or "")
        if s.worktree.path != path and (s.folder is None or name not in s.folder.names)
    ]
    fix = [_deploy(snapshot.setup)]
    if verdict.behind:
        fix.append(
            f"# before that, bring in the migrations {path.name} is behind on (its behind_database alerts)"
        )
    if others:
        fix.append(
            f"why: applies it to {db}; then {_names(others)} will be behind the database until they get "
            f"{name} (merge {snapshot.worktree.branch or 'this branch'})"
        )
    else:
        fix.append(f"why: applies it to {db}")
    return _finding(
        ctx,
        "pending",
        Severity.WARNING,
        database=db,
        worktree=path,
        migration=name,
        message=f"{snapshot.worktree.label}: {name} is not applied to {db}",
        fix=fix,
        would_be_behind=[_where(s) for s in others],
    )


def _newer_name(name: str, newest: str, now: datetime) -> str:
    """A folder name that sorts after `newest`: a fresh 14-digit timestamp with the same description."""
    stamp = now.astimezone(timezone.utc)
    if newest[:14].isdigit():
        try:
            newest_time = datetime.strptime(newest[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
            stamp = max(stamp, newest_time + timedelta(seconds=1))
        except ValueError:
            pass
    description = name[14:].lstrip("_") if name[:14].isdigit() else name
    return f"{stamp:%Y%m%d%H%M%S}_{description}"


def _out_of_order(ctx: _Ctx, verdict: WorktreeVerdict, name: str) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = snapshot.setup.database.id if snapshot.setup.database else None
    newest = verdict.newest_applied or ""
    renamed = _newer_name(name, newest, ctx.now)
    base = snapshot.setup.migrations_dir or path
    return _finding(
        ctx,
        "out_of_order",
        Severity.WARNING,
        database=db,
        worktree=path,
        migration=name,
        message=(
            f"{snapshot.worktree.label}: {name} is not applied and sorts before {newest}, the newest migration "
            f"applied to {db}"
        ),
        fix=(
            f"mv {_q(base / name)} {_q(base / renamed)}",
            "why: `prisma migrate deploy` would apply it out of order and `prisma migrate dev` would report a "
            "diverged history; rename it to a newer timestamp before it is applied or merged, if it depends on later ones",
        ),
        newest_applied=newest,
        suggested_name=renamed,
    )


def _edited(ctx: _Ctx, verdict: WorktreeVerdict, name: str, stored: str | None) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = snapshot.setup.database.id if snapshot.setup.database else None
    sql = (snapshot.setup.migrations_dir or path) / name / "migration.sql"
    rel = sql.relative_to(path).as_posix() if path in sql.parents else str(sql)
    matching = [
        s
        for s in _members(ctx, verdict.group or "")
        if s.worktree.path != path
        and s.folder is not None
        and (m := s.folder.get(name)) is not None
        and checksum_matches(stored, m.checksums)
    ]
    restore = ctx.evidence.restores.get((path, name), Restore())
    fix: list[str] = []
    if restore.rev:
        fix.append(f"git -C {_q(path)} checkout {restore.rev[:12]} -- {_q(rel)}")
    elif matching:
        other = matching[0].setup.migrations_dir or matching[0].worktree.path
        fix.append(f"cp {_q(other / name / 'migration.sql')} {_q(sql)}")
    else:
        fix.append(
            f"git -C {_q(path)} log -p -- {_q(rel)}  # no copy matches the database; find the applied text"
        )
    fix.append(_dev_warning(ctx, snapshot, verdict.group))
    fix.append("why: never edit an applied migration — put the change in a new migration instead")
    copies = (
        f"; the copy in {_names(matching)} matches the database"
        if matching
        else "; no worktree's copy matches"
    )
    changed = f" (changed by {restore.changed_by})" if restore.changed_by else ""
    no_checksum = " (its row has no checksum)" if not stored else ""
    return _finding(
        ctx,
        "checksum_mismatch",
        Severity.ERROR,
        database=db,
        worktree=path,
        migration=name,
        message=(
            f"{snapshot.worktree.label}: applied migration {name} was edited{changed}: its migration.sql no longer "
            f"matches the checksum recorded in {db}{no_checksum}{copies}"
        ),
        fix=fix,
        matches_in=[_where(s) for s in matching],
        restore_rev=restore.rev,
        changed_by=restore.changed_by,
    )


def _missing_sql(ctx: _Ctx, verdict: WorktreeVerdict, name: str) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    db = snapshot.setup.database.id if snapshot.setup.database else None
    folder = (snapshot.setup.migrations_dir or path) / name
    applied = verdict.history is not None and any(r.migration_name == name for r in verdict.history.rows)
    effect = (
        "it is applied, so `prisma migrate status` fails with P3015"
        if applied
        else "`prisma migrate deploy` fails on it"
    )
    rel = (folder / "migration.sql").relative_to(path).as_posix() if path in folder.parents else str(folder)
    if ctx.evidence.tracked_sql.get((path, name)):
        fix = [f"git -C {_q(path)} checkout HEAD -- {_q(rel)}", "why: restores the file git has"]
    elif folder in ctx.evidence.empty_folders:
        fix = [f"rmdir {_q(folder)}", "why: an empty folder is not a migration, but Prisma treats it as one"]
    else:
        fix = [
            f"ls -la {_q(folder)}",
            "why: git does not have its migration.sql; restore it from where it was written, or move the folder "
            "out of the migrations folder if it is not a migration",
        ]
    return _finding(
        ctx,
        "missing_sql",
        Severity.ERROR,
        database=db,
        worktree=path,
        migration=name,
        message=f"{snapshot.worktree.label}: migration folder {name} has no migration.sql; {effect}",
        fix=fix,
    )


def _behind_base(ctx: _Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    snapshot = verdict.snapshot
    base = ctx.project.base_branch
    rel = _migrations_rel(snapshot)
    if not base or snapshot.folder is None or rel is None or snapshot.worktree.branch == base:
        return []
    on_base = ctx.evidence.base_names.get(rel)
    if not on_base:
        return []
    missing = sorted(on_base - snapshot.folder.names, key=collation_key)
    if not missing:
        return []
    path = snapshot.worktree.path
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return [
        _finding(
            ctx,
            "behind_base",
            Severity.INFO,
            database=snapshot.setup.database.id if snapshot.setup.database else None,
            worktree=path,
            migration=None,
            message=f"{snapshot.worktree.label}: {base} has {len(missing)} migration{'s' if len(missing) > 1 else ''} "
            f"this branch lacks: {shown}",
            fix=(
                f"git -C {_q(path)} merge {_q(base)}",
                f"why: merge (or rebase onto) {base} early, so migrations stay in one order",
            ),
            base_branch=base,
            missing=missing,
        )
    ]


# --- stale Prisma Client ---------------------------------------------------------------------------------

_BLOCK = re.compile(r"^\s*(model|enum|type|view)\s+(\w+)\s*\{(.*?)^\s*\}", re.S | re.M)


def datamodel_blocks(schema_text: str) -> list[str]:
    """The schema's models, enums, types and views, comments and layout removed, sorted.

    Generated clients keep a reformatted copy of the schema, so text is compared in this form.
    """
    without_comments = re.sub(r"//[^\n]*", "", schema_text)
    blocks = []
    for kind, name, body in _BLOCK.findall(without_comments):
        fields = sorted(" ".join(line.split()) for line in body.splitlines() if line.strip())
        blocks.append(f"{kind} {name} {{{'; '.join(fields)}}}")
    return sorted(blocks)


def _stale_client(ctx: _Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    snapshot = verdict.snapshot
    if snapshot.client_schema is None or not snapshot.schema_text:
        return []
    client_path, client_text = snapshot.client_schema
    ours, theirs = datamodel_blocks(snapshot.schema_text), datamodel_blocks(client_text)
    if ours == theirs:
        return []
    changed = sorted(set(ours) ^ set(theirs))
    names = sorted({block.split(" ", 2)[1] for block in changed})
    setup = snapshot.setup
    return [
        _finding(
            ctx,
            "stale_client",
            Severity.WARNING,
            database=setup.database.id if setup.database else None,
            worktree=snapshot.worktree.path,
            migration=None,
            message=f"{snapshot.worktree.label}: the generated Prisma Client ({client_path}) was built from another "
            f"schema; it differs in {', '.join(names[:6])}",
            fix=(
                f"cd {_q(setup.package_dir)} && npx prisma generate",
                "why: the client's types and queries must match this worktree's schema (stale after a checkout)",
            ),
            client=str(client_path),
            differs_in=names,
        )
    ]


# --- schema conflicts between unmerged migrations --------------------------------------------------------

_STATEMENT_SPLIT = re.compile(r";\s*(?:\n|$)")
_IDENT = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[\w$]+)'
_QUALIFIED = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_ALTER_TABLE = re.compile(
    rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<table>{_QUALIFIED})\s+(?P<rest>.*)$",
    re.I | re.S,
)
_DROP_TABLE = re.compile(
    rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<tables>{_QUALIFIED}(?:\s*,\s*{_QUALIFIED})*)", re.I
)
_ACTION = re.compile(
    rf"(?:^|,)\s*(?P<verb>ADD|DROP|ALTER|RENAME)\s+(?:COLUMN\s+)?(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?P<column>{_IDENT})",
    re.I,
)
_NOT_COLUMNS = frozenset({"constraint", "primary", "foreign", "unique", "check", "index", "to", "exclude"})
WHOLE_TABLE = "*"


def _unquote(identifier: str) -> str:
    identifier = identifier.strip()
    if identifier[:1] in '"`[':
        identifier = identifier[1:-1].replace('""', '"')
    return identifier


def _table_name(qualified: str) -> str:
    return _unquote(re.split(r"\s*\.\s*(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", qualified)[-1])


def sql_touches(sql_text: str) -> set[tuple[str, str]]:
    """(table, column) pairs a migration alters, adds, drops or renames; (table, "*") for whole tables."""
    touches: set[tuple[str, str]] = set()
    text = re.sub(r"--[^\n]*", "", sql_text)
    for statement in _STATEMENT_SPLIT.split(text):
        drop = _DROP_TABLE.match(statement)
        if drop:
            for table in re.split(r"\s*,\s*", drop.group("tables")):
                touches.add((_table_name(table), WHOLE_TABLE))
            continue
        alter = _ALTER_TABLE.match(statement)
        if not alter:
            continue
        table = _table_name(alter.group("table"))
        rest = alter.group("rest")
        if re.match(r"RENAME\s+TO\b", rest, re.I):
            # SQLite's table redefinition renames "new_X" to X: the whole of X is rewritten.
            target = (
                _unquote(rest.split(None, 2)[2].strip().rstrip(";"))
                if len(rest.split(None, 2)) > 2
                else table
            )
            touches.add((table.removeprefix("new_"), WHOLE_TABLE))
            touches.add((target, WHOLE_TABLE))
            continue
        for action in _ACTION.finditer(rest):
            column = _unquote(action.group("column"))
            if column.lower() in _NOT_COLUMNS:
                continue
            touches.add((table, column))
    return touches


def _overlap(a: set[tuple[str, str]], b: set[tuple[str, str]]) -> list[tuple[str, str]]:
    shared = a & b
    for table, column in a:
        if (table, WHOLE_TABLE) in b or (column == WHOLE_TABLE and any(t == table for t, _ in b)):
            shared.add((table, column))
    return sorted(shared)


def _schema_conflicts(ctx: _Ctx) -> list[Finding]:
    if not ctx.evidence.base_names:
        return []
    unmerged = unmerged_migrations(ctx.project, ctx.evidence)
    by_path = {s.worktree.path: s for s in ctx.project.worktrees}
    touches: dict[tuple[Path, str], set[tuple[str, str]]] = {}
    for path, names in unmerged.items():
        folder_dir = by_path[path].setup.migrations_dir
        for name in names:
            text = ctx.evidence.unmerged_sql.get(folder_dir / name) if folder_dir else None
            if text:
                touches[(path, name)] = sql_touches(text)
    local = {p: s.folder.names if s.folder else frozenset() for p, s in by_path.items()}
    out: list[Finding] = []
    paths = list(unmerged)
    for i, first in enumerate(paths):
        for second in paths[i + 1 :]:
            for name_a in unmerged[first]:
                for name_b in unmerged[second]:
                    if name_a == name_b or name_a in local[second] or name_b in local[first]:
                        continue
                    shared = _overlap(
                        touches.get((first, name_a), set()), touches.get((second, name_b), set())
                    )
                    if not shared:
                        continue
                    for here, mine, there, theirs in (
                        (first, name_a, second, name_b),
                        (second, name_b, first, name_a),
                    ):
                        out.append(_conflict(ctx, by_path[here], mine, by_path[there], theirs, shared))
    return out


def _conflict(
    ctx: _Ctx,
    here: WorktreeSnapshot,
    mine: str,
    there: WorktreeSnapshot,
    theirs: str,
    shared: Sequence[tuple[str, str]],
) -> Finding:
    what = ", ".join(f"{t}.{c}" if c != WHOLE_TABLE else f"table {t}" for t, c in shared[:5])
    return _finding(
        ctx,
        "schema_conflict",
        Severity.WARNING,
        database=here.setup.database.id if here.setup.database else None,
        worktree=here.worktree.path,
        migration=mine,
        message=(
            f"{here.worktree.label}: {mine} and {theirs} in {there.worktree.label} both change {what}; "
            "coordinate before either is merged"
        ),
        fix=(
            f"git -C {_q(here.worktree.path)} diff {_q(ctx.project.base_branch or 'HEAD')}...{_q(there.worktree.branch or there.worktree.head or 'HEAD')} -- {_q(str(_migrations_rel(here) or '.'))}",
            f"why: the second of these to be merged will fail or undo the first; agree who changes {what}",
        ),
        other_worktree=str(there.worktree.path),
        other_branch=there.worktree.branch,
        other_migration=theirs,
        columns=[f"{t}.{c}" for t, c in shared],
    )
