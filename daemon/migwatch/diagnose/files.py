"""File findings: how a worktree's Prisma files are set up and whether Prisma can read them.

discovery and unsupported_provider (the worktree cannot be checked), conflict_markers,
provider_mismatch, missing_sql (no migration.sql) and unreadable_path (a migration.sql or a migrations
folder that cannot be read).
"""

from __future__ import annotations

from pathlib import Path

from migwatch.diagnose.context import Ctx, database_id, finding
from migwatch.diagnose.fixes import git, operand, shell
from migwatch.diagnose.semantics import SUPPORTED_PROVIDERS, WorktreeVerdict, lock_mismatch
from migwatch.model import Finding, Fix, Note, PrismaSetup


def setup_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """discovery remarks and problems, and unsupported_provider: why a worktree is not (fully) checked."""
    setup = verdict.snapshot.setup
    path, label, db = setup.worktree.path, setup.worktree.label, database_id(verdict.snapshot)
    out = [
        finding(
            ctx,
            "discovery",
            database=db,
            worktree=path,
            migration=None,
            message=f"{label}: {note}",
            remark=True,
        )
        for note in setup.notes
    ]
    if setup.problem:
        no_schema = setup.problem.startswith("no Prisma schema")
        where = _discovery_hint(setup)
        out.append(
            finding(
                ctx,
                "discovery",
                database=db,
                worktree=path,
                migration=None,
                message=f"{label} cannot be checked: {setup.problem}",
                fix=Fix() if no_schema else Fix(steps=(Note(where),)),
                remark=no_schema,
            )
        )
    elif setup.provider not in SUPPORTED_PROVIDERS:
        out.append(
            finding(
                ctx,
                "unsupported_provider",
                database=db,
                worktree=path,
                migration=None,
                message=f"{label} uses provider {setup.provider}; migwatch checks postgresql and sqlite only",
            )
        )
    return out


def marker_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """conflict_markers: one per schema file or migration.sql with `<<<<<<<`/`>>>>>>>` lines."""
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
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
        plural = "s" if len(lines) > 1 else ""
        add = git(path, "add", "--", str(file)).render()
        out.append(
            finding(
                ctx,
                "conflict_markers",
                database=database_id(snapshot),
                worktree=path,
                migration=migration,
                message=f"{snapshot.worktree.label}: merge conflict markers in {file} at line{plural} {shown}",
                fix=Fix(
                    steps=(git(path, "diff", "--", str(file)),),
                    why=f"resolve the conflict at line{plural} {shown}, then `{add}`; Prisma cannot parse the file as it is",
                ),
                file=str(file),
                lines=list(lines),
            )
        )
    return out


def folder_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """unreadable_path for a migrations folder that cannot be listed; provider_mismatch for the lock file."""
    snapshot = verdict.snapshot
    setup, folder = snapshot.setup, snapshot.folder
    path, label, db = setup.worktree.path, setup.worktree.label, database_id(snapshot)
    out: list[Finding] = []
    if folder is not None and folder.error:
        out.append(
            finding(
                ctx,
                "unreadable_path",
                database=db,
                worktree=path,
                migration=None,
                message=f"{label}: cannot list {folder.path}: {folder.error}",
                fix=Fix(
                    steps=(shell("ls", "-ld", str(folder.path)),),
                    why="migwatch and Prisma must be able to read this folder",
                ),
            )
        )
    if lock_mismatch(snapshot) and folder is not None:
        lock = folder.path / "migration_lock.toml"
        restore = git(path, "checkout", "HEAD", "--").render()
        out.append(
            finding(
                ctx,
                "provider_mismatch",
                database=db,
                worktree=path,
                migration=None,
                message=(
                    f'{label}: {lock} says provider = "{folder.lock_provider}" but the schema\'s datasource is '
                    f'"{setup.provider}"; every Prisma migrate command fails (P3019) until they agree'
                ),
                fix=Fix(
                    steps=(git(path, "diff", "HEAD", "--", str(lock)),),
                    why="either the datasource provider or migration_lock.toml changed; restore the wrong one "
                    f"({restore} <file>) — migrations written for one provider do not run on another",
                ),
                lock_provider=folder.lock_provider,
                datasource_provider=setup.provider,
            )
        )
    return out


def missing_sql_findings(ctx: Ctx, verdict: WorktreeVerdict) -> list[Finding]:
    """missing_sql: migration folders without migration.sql; unreadable_path: migration.sql files that
    cannot be read."""
    out = [_missing_sql(ctx, verdict, name) for name in verdict.missing_sql]
    snapshot = verdict.snapshot
    setup = snapshot.setup
    for name, error in verdict.unreadable:
        out.append(
            finding(
                ctx,
                "unreadable_path",
                database=database_id(snapshot),
                worktree=setup.worktree.path,
                migration=name,
                message=f"{setup.worktree.label}: {error}",
                fix=Fix(
                    steps=(
                        shell(
                            "ls",
                            "-l",
                            str(setup.migrations_dir / name) if setup.migrations_dir else operand(name),
                        ),
                    ),
                    why="Prisma cannot read this migration either",
                ),
            )
        )
    return out


def _missing_sql(ctx: Ctx, verdict: WorktreeVerdict, name: str) -> Finding:
    snapshot = verdict.snapshot
    path = snapshot.worktree.path
    folder = (snapshot.setup.migrations_dir or path) / name
    applied = verdict.history is not None and any(r.migration_name == name for r in verdict.history.rows)
    effect = (
        "it is applied, so `prisma migrate status` fails with P3015"
        if applied
        else "`prisma migrate deploy` fails on it"
    )
    rel = (folder / "migration.sql").relative_to(path).as_posix() if path in folder.parents else str(folder)
    if ctx.evidence.tracked_sql.get((path, name)):
        fix = Fix(steps=(git(path, "checkout", "HEAD", "--", rel),), why="restores the file git has")
    elif folder in ctx.evidence.empty_folders:
        fix = Fix(
            steps=(shell("rmdir", str(folder)),),
            why="an empty folder is not a migration, but Prisma treats it as one",
        )
    else:
        fix = Fix(
            steps=(shell("ls", "-la", str(folder)),),
            why="git does not have its migration.sql; restore it from where it was written, or move the folder "
            "out of the migrations folder if it is not a migration",
        )
    return finding(
        ctx,
        "missing_sql",
        database=database_id(snapshot),
        worktree=path,
        migration=name,
        message=f"{snapshot.worktree.label}: migration folder {name} has no migration.sql; {effect}",
        fix=fix,
    )


def _discovery_hint(setup: PrismaSetup) -> str:
    """One line of what to do about a worktree that cannot be checked (prose, never a command)."""
    if setup.missing_variables:
        names = " and ".join(setup.missing_variables)
        return (
            f"set {names} in one of the files listed, or list the env file that sets it under `env_files` "
            "for this project in the migwatch config (or set `database_url` there)"
        )
    if setup.problem and "is outside the worktree" in setup.problem:
        return "point the migrations path at a folder inside the worktree (or leave it at Prisma's default)"
    if setup.url_from:
        return f"correct the URL where migwatch read it ({setup.url_from}), or set `database_url` for this project"
    return "set `database_url` (or `env_files`) for this project in the migwatch config"
