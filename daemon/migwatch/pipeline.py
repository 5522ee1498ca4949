"""One full check: discovery → read folders and histories → analyse → gather git evidence → findings."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from migwatch import diagnose
from migwatch import git as gitio
from migwatch.checksum import checksum_matches, checksum_variants
from migwatch.config import Config, ProjectConfig
from migwatch.conflictsql import gather_conflict_sql
from migwatch.discovery import discover_worktree, is_ignored, schema_files
from migwatch.gitindex import SHARED_CACHE, GitIndexCache
from migwatch.history import read_history
from migwatch.locating import shared_elsewhere, whereabouts_of
from migwatch.migrations import ChecksumCache, conflict_lines, read_folder
from migwatch.model import DatabaseRef, Finding, History, Worktree
from migwatch.report import DatabaseSummary, ProjectReport, StatusReport, WorktreeSummary
from migwatch.runner import PrismaRunner
from migwatch.scripts import package_manager, prisma_scripts

log = logging.getLogger(__name__)

HistoryReader = Callable[[DatabaseRef], History]
WORKERS = min(8, (os.cpu_count() or 2) * 2)


@dataclass(frozen=True)
class CheckOptions:
    env: Mapping[str, str]
    read_history: HistoryReader = read_history
    cache: ChecksumCache | None = None


def list_project_worktrees(
    project: ProjectConfig, env: Mapping[str, str]
) -> tuple[list[Worktree], list[Worktree]]:
    """(worktrees to check, prunable ones) of a project; bare and ignored ones are left out."""
    found = gitio.list_worktrees(project.repo, env=env)
    live = [w for w in found if not w.bare and not w.prunable and not is_ignored(w, project.ignore_worktrees)]
    prunable = [w for w in found if w.prunable and not is_ignored(w, project.ignore_worktrees)]
    return live, prunable


def snapshot_worktree(
    worktree: Worktree, project: ProjectConfig, options: CheckOptions
) -> diagnose.WorktreeSnapshot:
    """Discover one worktree and read its migrations folder and schema (files only)."""
    setup = discover_worktree(
        worktree,
        configured_schema=project.schema,
        database_url=project.database_url,
        env=options.env,
        env_files=project.env_files,
    )
    folder = None
    if setup.migrations_dir is not None and setup.problem is None:
        folder = (
            read_folder(setup.migrations_dir, options.cache)
            if options.cache
            else read_folder(setup.migrations_dir)
        )
    markers: list[tuple[Path, tuple[int, ...]]] = []
    texts: list[tuple[Path, str]] = []
    if setup.schema_path is not None:
        for file in schema_files(setup.schema_path):
            try:
                raw = file.read_bytes()
            except OSError:
                continue
            texts.append((file, raw.decode("utf-8", "replace")))
            lines = conflict_lines(raw)
            if lines:
                markers.append((file, lines))
    return diagnose.WorktreeSnapshot(
        setup=setup,
        folder=folder,
        schema_markers=tuple(markers),
        schema_text="\n".join(text for _, text in texts),
        client_schema=generated_client_schema(setup.package_dir, worktree.path, texts),
        runner=project_runner(worktree.path, setup.package_dir),
    )


def project_runner(worktree: Path, package_dir: Path) -> PrismaRunner:
    """How fixes run Prisma here: the package.json scripts that run it and the package manager."""
    manager, _ = package_manager(worktree, package_dir)
    return PrismaRunner(package_dir, manager, tuple(prisma_scripts(worktree, package_dir)))


_GENERATOR = re.compile(r"^\s*generator\s+\w+\s*\{(?P<body>.*?)^\s*\}", re.S | re.M)
_SETTING = re.compile(r"""^\s*(?P<key>provider|output)\s*=\s*["'](?P<value>[^"']*)["']""", re.M)
_INLINE_SCHEMA = re.compile(r'"?inlineSchema"?\s*:\s*("(?:[^"\\]|\\.)*")')


def generated_client_schema(
    package_dir: Path, root: Path, schema_texts: Sequence[tuple[Path, str]]
) -> tuple[Path, str] | None:
    """The schema copy inside the generated Prisma Client, if the client was generated."""
    for file, text in schema_texts:
        for block in _GENERATOR.finditer(text):
            settings = {m["key"]: m["value"] for m in _SETTING.finditer(block["body"])}
            provider, output = settings.get("provider"), settings.get("output")
            if provider == "prisma-client" and output:
                class_file = (file.parent / output).resolve() / "internal" / "class.ts"
                try:
                    match = _INLINE_SCHEMA.search(class_file.read_text(encoding="utf-8", errors="replace"))
                    return (class_file, json.loads(match.group(1))) if match else None
                except (OSError, ValueError):
                    return None
            if provider == "prisma-client-js":
                if output:
                    candidates = [(file.parent / output).resolve() / "schema.prisma"]
                else:
                    candidates = [
                        folder / "node_modules" / ".prisma" / "client" / "schema.prisma"
                        for folder in [package_dir, *package_dir.parents]
                        if folder == root or root in folder.parents
                    ]
                for candidate in candidates:
                    try:
                        return candidate, candidate.read_text(encoding="utf-8", errors="replace")
                    except OSError:
                        continue
                return None
    return None


# Reading folders is CPU-bound when the files are in the OS cache (threads then only contend for the
# GIL: 2.1 s serial vs 4.7 s with 8 threads for 100 x 1,000 migrations) and I/O-bound when they are
# not (19 s serial vs 9.4 s threaded). The second worktree, read alone, tells which case this is (the
# first one also fills the name and content caches, so it is slower either way).
COLD_SECONDS_PER_MIGRATION = 50e-6


def scan_worktrees(
    live: Sequence[Worktree], project: ProjectConfig, options: CheckOptions, pool: ThreadPoolExecutor
) -> list[diagnose.WorktreeSnapshot]:
    """Snapshots of every worktree: serially, or on the pool when the disk is the bottleneck."""
    snapshots = [snapshot_worktree(w, project, options) for w in live[:1]]
    if len(live) < 2:
        return snapshots
    started = time.perf_counter()
    second = snapshot_worktree(live[1], project, options)
    count = len(second.folder.migrations) if second.folder else 0
    snapshots.append(second)
    if len(live) > 2 and count and (time.perf_counter() - started) / count > COLD_SECONDS_PER_MIGRATION:
        return [*snapshots, *pool.map(lambda w: snapshot_worktree(w, project, options), live[2:])]
    return [*snapshots, *(snapshot_worktree(w, project, options) for w in live[2:])]


def snapshot_project(
    project: ProjectConfig,
    options: CheckOptions,
    pool: ThreadPoolExecutor,
    histories: Mapping[str, History] | None = None,
) -> diagnose.ProjectSnapshot:
    """Read everything one project's check needs; `histories` may be given (the daemon polls them)."""
    live, prunable = list_project_worktrees(project, options.env)
    snapshots = scan_worktrees(live, project, options, pool)
    refs: dict[str, DatabaseRef] = {}
    for snapshot in snapshots:
        key = diagnose.group_of(snapshot)
        if key is not None and snapshot.setup.database is not None:
            refs.setdefault(key, snapshot.setup.database)
    read: dict[str, History] = dict(histories or {})
    missing = [key for key in refs if key not in read]
    for key, history in zip(missing, pool.map(lambda k: options.read_history(refs[k]), missing), strict=True):
        read[key] = history
    return diagnose.ProjectSnapshot(
        name=project.name,
        repo=project.repo,
        worktrees=tuple(snapshots),
        histories={key: read[key] for key in refs},
        skipped=tuple(prunable),
        base_branch=project.base_branch,
    )


def gather_evidence(
    project: diagnose.ProjectSnapshot,
    verdicts: Sequence[diagnose.WorktreeVerdict],
    env: Mapping[str, str],
    index_cache: GitIndexCache | None = None,
) -> diagnose.Evidence:
    """Ask git exactly what the findings need (nothing when all is well)."""
    request = diagnose.evidence_needed(project, verdicts)
    cache = index_cache if index_cache is not None else SHARED_CACHE
    by_path = {s.worktree.path: s for s in project.worktrees}
    restores: dict[tuple[Path, str], diagnose.Restore] = {}
    for path, name, stored in request.restores:
        snapshot = by_path[path]
        rel = _rel(snapshot.setup.migrations_dir, path)
        branches = [
            project.base_branch,
            *(s.worktree.branch for s in project.worktrees if s.worktree.path != path),
        ]
        candidates = [b for b in dict.fromkeys(branches) if b and b != snapshot.worktree.branch]
        restores[(path, name)] = _restore(path, f"{rel}/{name}/migration.sql", stored, env, candidates)
    tracked: dict[tuple[Path, str], bool] = {}
    empty: set[Path] = set()
    for path, name in request.tracked_sql:
        snapshot = by_path[path]
        rel = _rel(snapshot.setup.migrations_dir, path)
        try:
            tracked[(path, name)] = gitio.is_tracked(path, f"{rel}/{name}/migration.sql", env=env)
        except gitio.GitError:
            tracked[(path, name)] = False
        folder = (snapshot.setup.migrations_dir or path) / name
        try:
            if not any(folder.iterdir()):
                empty.add(folder)
        except OSError:
            pass
    conflict = gather_conflict_sql(project, request, env)
    versions = {
        key: relation
        for key in request.collisions
        if (relation := _version_relation(by_path[key[0]], key[1], by_path[key[2]], env)) is not None
    }
    return diagnose.Evidence(
        whereabouts=whereabouts_of(project, verdicts, env, cache),
        shared=shared_elsewhere(project, verdicts, env, cache),
        restores=restores,
        tracked_sql=tracked,
        empty_folders=frozenset(empty),
        base_names=conflict.base_names,
        unmerged_sql=conflict.worktree_sql,
        base_sql=conflict.base_sql,
        applied_sql=conflict.applied_sql,
        versions=versions,
    )


def _rel(directory: Path | None, root: Path) -> str:
    if directory is None:
        return ""
    try:
        return directory.relative_to(root).as_posix()
    except ValueError:
        return ""


def _text(file: Path) -> str | None:
    try:
        return file.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def _restore(
    worktree: Path, rel: str, stored: str, env: Mapping[str, str], candidates: Sequence[str] = ()
) -> diagnose.Restore:
    try:
        changed_by = gitio.last_change(worktree, rel, env=env)
        for rev in ["HEAD", *gitio.file_revisions(worktree, rel, env=env)]:
            blob = gitio.blob_at(worktree, rev, rel, env=env)
            if blob is not None and checksum_matches(stored, checksum_variants(blob)):
                if rev == "HEAD":
                    rev = gitio.run_git(worktree, "rev-parse", "HEAD", env=env).strip()
                applied = blob.decode("utf-8", "replace")
                return diagnose.Restore(
                    rev=rev, changed_by=changed_by, applied_sql=applied, current_sql=_text(worktree / rel)
                )
        upstream = None
        if changed_by is None or not changed_by.startswith("an uncommitted"):
            upstream = _edited_upstream(worktree, rel, stored, env, candidates)
    except gitio.GitError as exc:
        log.debug("no git history for %s in %s: %s", rel, worktree, exc)
        return diagnose.Restore()
    return diagnose.Restore(changed_by=changed_by, upstream_branch=upstream)


def _edited_upstream(
    worktree: Path, rel: str, stored: str, env: Mapping[str, str], candidates: Sequence[str]
) -> str | None:
    """The first candidate branch whose tip has the applied text while this HEAD still has the text of
    their merge base: the file was edited on that branch after the fork, so merging it brings the
    applied text without a conflict in this file."""
    here = gitio.blob_at(worktree, "HEAD", rel, env=env)
    if here is None:
        return None
    for branch in candidates:
        tip = gitio.blob_at(worktree, branch, rel, env=env)
        if tip is None or not checksum_matches(stored, checksum_variants(tip)):
            continue
        base = gitio.merge_base(worktree, "HEAD", branch, env=env)
        if base is not None and gitio.blob_at(worktree, base, rel, env=env) == here:
            return branch
    return None


def _version_relation(
    here: diagnose.WorktreeSnapshot, name: str, other: diagnose.WorktreeSnapshot, env: Mapping[str, str]
) -> str | None:
    """ "older" when this worktree's migration.sql is the text of the merge base of the two HEADs and the
    other's is a later commit's, "newer" the other way round; None for two migrations that were added
    apart, copies that differ from what is committed, or when git cannot tell."""
    here_rel, other_rel = (
        _rel(here.setup.migrations_dir, here.worktree.path),
        _rel(other.setup.migrations_dir, other.worktree.path),
    )
    if not here_rel or here_rel != other_rel or other.worktree.head is None:
        return None
    rel = f"{here_rel}/{name}/migration.sql"
    here_blob = gitio.blob_at(here.worktree.path, "HEAD", rel, env=env)
    other_blob = gitio.blob_at(here.worktree.path, other.worktree.head, rel, env=env)
    if here_blob is None or other_blob is None or here_blob == other_blob:
        return None
    if not (_committed(here, name, here_blob) and _committed(other, name, other_blob)):
        return None  # an uncommitted edit: nothing git can say about it
    try:
        base = gitio.merge_base(here.worktree.path, "HEAD", other.worktree.head, env=env)
    except gitio.GitError:
        return None
    base_blob = gitio.blob_at(here.worktree.path, base, rel, env=env) if base else None
    if base_blob == here_blob:
        return "older"
    if base_blob == other_blob:
        return "newer"
    return None


def _committed(snapshot: diagnose.WorktreeSnapshot, name: str, blob: bytes) -> bool:
    local = next((m for m in snapshot.folder.migrations if m.name == name), None) if snapshot.folder else None
    return local is not None and bool(set(local.checksums) & set(checksum_variants(blob)))


def diagnose_project(
    snapshot: diagnose.ProjectSnapshot,
    env: Mapping[str, str],
    now: datetime,
    index_cache: GitIndexCache | None = None,
) -> tuple[list[diagnose.WorktreeVerdict], list[Finding]]:
    """Analyse, gather evidence for what was found, and produce findings.

    `index_cache`: the git history index cache (default: the process's; the daemon keeps one alive).
    """
    verdicts = diagnose.analyse(snapshot)
    evidence = gather_evidence(snapshot, verdicts, env, index_cache)
    return verdicts, diagnose.findings(snapshot, verdicts, evidence, now)


def project_report(
    project: ProjectConfig,
    snapshot: diagnose.ProjectSnapshot,
    verdicts: Sequence[diagnose.WorktreeVerdict],
    found: Sequence[Finding],
) -> ProjectReport:
    """The status document's view of one project."""
    databases = []
    for history in snapshot.histories.values():
        counted = [r for r in history.rows if not r.rolled_back]
        applied = [r for r in counted if not r.failed]
        databases.append(
            DatabaseSummary(
                id=history.database.id,
                provider=history.database.provider,
                reachable=history.reachable,
                managed=history.has_table,
                applied=len(applied),
                failed=sum(1 for r in history.rows if r.failed),
                latest=applied[-1].migration_name if applied else None,
            )
        )
    worktrees = []
    for verdict in verdicts:
        setup = verdict.snapshot.setup
        wt = setup.worktree
        state = diagnose.worktree_state(verdict)
        worktrees.append(
            WorktreeSummary(
                path=wt.path,
                branch=wt.branch,
                head=wt.head,
                schema=_rel(setup.schema_path, wt.path)
                or (str(setup.schema_path) if setup.schema_path else None),
                migrations_dir=_rel(setup.migrations_dir, wt.path)
                or (str(setup.migrations_dir) if setup.migrations_dir else None),
                database=setup.database.id if setup.database else None,
                prisma_version=".".join(str(n) for n in setup.prisma_version),
                local=len(verdict.snapshot.folder.migrations) if verdict.snapshot.folder else None,
                applied_here=None if state == "unknown" else verdict.applied_here,
                state=state,
                database_from=setup.url_from,
            )
        )
    return ProjectReport(
        name=project.name,
        repo=project.repo,
        databases=tuple(databases),
        worktrees=tuple(worktrees),
        findings=tuple(found),
    )


def check_project(
    project: ProjectConfig, options: CheckOptions, pool: ThreadPoolExecutor, now: datetime | None = None
) -> ProjectReport:
    """One full check of one project; git problems become a finding, never an exception."""
    now = now or datetime.now(timezone.utc)
    started = time.monotonic()
    try:
        snapshot = snapshot_project(project, options, pool)
    except gitio.GitError as exc:
        finding = diagnose.unlisted_project(project.name, project.repo, str(exc))
        return ProjectReport(
            name=project.name, repo=project.repo, databases=(), worktrees=(), findings=(finding,)
        )
    verdicts, found = diagnose_project(snapshot, options.env, now)
    log.debug("checked project %s in %.3f s", project.name, time.monotonic() - started)
    return project_report(project, snapshot, verdicts, found)


def run_status(
    config: Config,
    options: CheckOptions,
    *,
    project_names: Sequence[str] = (),
    worktree: Path | None = None,
    now: datetime | None = None,
) -> StatusReport:
    """`migwatch status`: check every (selected) project once."""
    now = now or datetime.now(timezone.utc)
    projects = [p for p in config.projects if not project_names or p.name in project_names]
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="migwatch-read") as pool:
        reports = [check_project(p, options, pool, now) for p in projects]
    if worktree is not None:
        reports = [r.only_worktree(worktree) for r in reports]
    return StatusReport(checked_at=now, projects=tuple(reports))
