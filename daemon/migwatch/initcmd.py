"""`migwatch init [PATH]`: find the repository, its worktrees and databases; write a commented config."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from migwatch import git as gitio
from migwatch import shellquote
from migwatch.config import (
    ConfigError,
    default_config_path,
    load_config,
    parse_config,
    render_commented_config,
)
from migwatch.dburl import group_key, parse_postgres, redact
from migwatch.discovery import discover_worktree
from migwatch.display import COMMAND_LIMIT, visible
from migwatch.envfiles import env_files_defining
from migwatch.errors import UserError
from migwatch.migrations import read_folder
from migwatch.model import DatabaseRef, PrismaSetup, Worktree

log = logging.getLogger(__name__)

BASE_BRANCH_CANDIDATES = ("main", "master")
_LOOKED_FOR = (
    'prisma.config.ts, package.json "prisma.schema", prisma/schema.prisma, and **/prisma/schema.prisma'
)


class InitError(UserError):
    """`migwatch init` cannot go on; the message is one line for the user (exit 2)."""


@dataclass(frozen=True)
class RepositoryScan:
    """What `init` found: the repository, each live worktree's Prisma setup, and the worktrees skipped."""

    repo: Path  # the main worktree (the folder the config names)
    setups: tuple[PrismaSetup, ...]
    skipped: tuple[Worktree, ...]  # bare or prunable
    schema: str | None  # the project-wide schema to write, when auto-detection alone would not find it
    base_branch: str | None
    env_files: tuple[str, ...] = ()  # env files found to define the URL's variable (written to the config)

    @property
    def name(self) -> str:
        """The project name: the main checkout's folder (a bare `shop.git` gives `shop`)."""
        return self.repo.name.removesuffix(".git") or self.repo.name


def find_toplevel(path: Path, env: Mapping[str, str]) -> Path:
    """The checkout (or bare repository) that `path` is inside; InitError when there is none."""
    if not path.exists():
        raise InitError(f"{path} does not exist")
    folder = path if path.is_dir() else path.parent
    try:
        return Path(gitio.run_git(folder, "rev-parse", "--show-toplevel", env=env).strip())
    except gitio.GitError as exc:
        if "not a git repository" in str(exc):
            raise InitError(f"{path} is not inside a git repository") from None
        # Inside a bare repository or its git dir there is no work tree; git still lists the worktrees.
        bare = gitio.run_git(folder, "rev-parse", "--is-bare-repository", env=env, check=False).strip()
        if bare == "true":
            return Path(gitio.run_git(folder, "rev-parse", "--absolute-git-dir", env=env).strip())
        raise InitError(str(exc)) from None


def scan_repository(path: Path, env: Mapping[str, str]) -> RepositoryScan:
    """Find the repository at `path` and discover every worktree the way `migwatch status` will."""
    toplevel = find_toplevel(path, env)
    try:
        worktrees = gitio.list_worktrees(toplevel, env=env)
    except gitio.GitError as exc:
        raise InitError(str(exc)) from None
    main = next((w for w in worktrees if w.is_main), None)
    repo = main.path if main is not None and main.path.is_dir() else toplevel
    live = [w for w in worktrees if not w.bare and not w.prunable]
    skipped = tuple(w for w in worktrees if w.bare or w.prunable)
    setups = [discover_worktree(w, configured_schema=None, database_url=None, env=env) for w in live]
    if not any(s.schema_path is not None for s in setups) and not any(s.notes for s in setups):
        raise InitError(f"no Prisma schema found in {repo} (looked for {_LOOKED_FOR})")
    schema = _project_schema(setups)
    env_files = _env_files_defining_the_url(setups)
    if schema is not None or env_files:
        # Re-read every worktree the way the written config makes `status` read it.
        setups = [
            discover_worktree(w, configured_schema=schema, database_url=None, env=env, env_files=env_files)
            for w in live
        ]
    return RepositoryScan(
        repo=repo,
        setups=tuple(setups),
        skipped=skipped,
        schema=schema,
        base_branch=_base_branch(repo, env),
        env_files=env_files,
    )


def _env_files_defining_the_url(setups: Sequence[PrismaSetup]) -> tuple[str, ...]:
    """Env files of the repository (relative to each worktree) that set a variable a URL needs but that
    nothing the project runs loads: the worktree's own, between its package folder and its root."""
    found: list[str] = []
    for setup in setups:
        root = setup.worktree.path
        folders = [
            setup.package_dir,
            *[p for p in setup.package_dir.parents if p == root or root in p.parents],
        ]
        for variable in setup.missing_variables:
            for file in env_files_defining(variable, folders)[:1]:
                relative = _relative(file, root)
                if relative is not None and relative not in found:
                    found.append(relative)
    return tuple(found)


def _relative(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None


def _project_schema(setups: Sequence[PrismaSetup]) -> str | None:
    """A schema path for the config only when some worktree cannot choose one by itself (several schemas)
    and every worktree that did choose agrees on one that exists in the undecided ones too."""
    undecided = [s for s in setups if s.schema_path is None]
    found = {_relative(s.schema_path, s.worktree.path) for s in setups if s.schema_path is not None}
    if not undecided or len(found) != 1:
        return None
    (schema,) = found
    if schema is None or not all((s.worktree.path / schema).exists() for s in undecided):
        return None
    return schema


def _base_branch(repo: Path, env: Mapping[str, str]) -> str | None:
    local = set(gitio.branches_of(repo, [f"refs/heads/{name}" for name in BASE_BRANCH_CANDIDATES], env=env))
    return next((name for name in BASE_BRANCH_CANDIDATES if name in local), None)


def project_entry(scan: RepositoryScan) -> dict[str, Any]:
    """The `projects:` entry for the scanned repository."""
    # The config expands $VARIABLES in `repo`; `$$` keeps a literal `$` of a folder name.
    return {
        "name": scan.name,
        "repo": str(scan.repo).replace("$", "$$"),
        "schema": scan.schema,
        "base_branch": scan.base_branch,
        "env_files": list(scan.env_files) or None,
    }


def shown_database(ref: DatabaseRef) -> str:
    """How a database is named for the user: its redacted identity, with `user:***@` if it has a password."""
    if ref.provider == "postgresql":
        target = parse_postgres(ref.url)
        prefix = f"postgresql://{target.user}@"
        if target.user and target.password is not None and ref.id.startswith(prefix):
            return f"postgresql://{target.user}:***@{ref.id[len(prefix) :]}"
    return ref.id


def render_summary(scan: RepositoryScan) -> list[str]:
    """What was found, for people: the repository, each worktree, and the databases they share."""
    count = len(scan.setups)
    lines = [f"Repository: {scan.repo} ({count} worktree{'s' if count != 1 else ''})", "", "Worktrees:"]
    for setup in scan.setups:
        lines += _worktree_lines(setup)
    for worktree in scan.skipped:
        why = "bare repository" if worktree.bare else f"prunable: {worktree.prunable}"
        lines.append(f"  {worktree.path}  skipped ({why})")
    groups: dict[str, list[PrismaSetup]] = {}
    for setup in scan.setups:
        if setup.database is not None:
            groups.setdefault(group_key(setup.database), []).append(setup)
    lines += ["", "Databases:"]
    if not groups:
        lines.append("  none found: no worktree has a database URL (see the problems above)")
    for members in groups.values():
        database = members[0].database
        if database is None:
            continue
        names = ", ".join(s.worktree.path.name for s in members)
        shared = f"shared by {len(members)} worktrees: {names}" if len(members) > 1 else f"used by {names}"
        lines.append(f"  {shown_database(database)}  ({database.provider}; {shared})")
    return lines


def _worktree_lines(setup: PrismaSetup) -> list[str]:
    root = setup.worktree.path
    lines = [f"  {setup.worktree.label}  {root}"]
    lines.append(f"    Prisma:     {'.'.join(str(n) for n in setup.prisma_version)}")
    if setup.schema_path is not None:
        lines.append(f"    schema:     {_relative(setup.schema_path, root) or setup.schema_path}")
    if setup.migrations_dir is not None:
        lines.append(
            f"    migrations: {_relative(setup.migrations_dir, root) or setup.migrations_dir}"
            f" ({_migration_count(setup.migrations_dir)})"
        )
    if setup.database is not None:
        lines.append(f"    database:   {shown_database(setup.database)}")
    if setup.url_from is not None:
        lines.append(f"    read from:  {setup.url_from}")
    if setup.problem is not None:
        lines.append(f"    problem:    {setup.problem}")
    lines += [f"    note:       {note}" for note in setup.notes]
    return lines


def _migration_count(folder: Path) -> str:
    read = read_folder(folder)
    if not read.exists:
        return "does not exist yet"
    if read.error is not None:
        return read.error
    count = len(read.migrations)
    return f"{count} migration{'s' if count != 1 else ''}"


def _projects_already_there(config_path: Path, scan: RepositoryScan, env: Mapping[str, str]) -> list[str]:
    """Names of the existing config's projects that watch this repository (any of its checkouts)."""
    try:
        existing = load_config(config_path, env)
    except ConfigError:
        return []
    checkouts = [path.resolve() for path in (scan.repo, *(s.worktree.path for s in scan.setups))]
    return [
        project.name
        for project in existing.projects
        if any(project.repo == checkout or checkout in project.repo.parents for checkout in checkouts)
    ]


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        if path.exists():
            os.chmod(tmp_name, path.stat().st_mode & 0o777)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def init_command(
    path: Path,
    config_path: Path,
    *,
    force: bool,
    print_only: bool,
    out: TextIO,
    err: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """`migwatch init`: print what was found and write (or, with print_only, print) the config."""
    env = os.environ if env is None else env
    err = err if err is not None else sys.stderr
    exists = config_path.exists()
    if exists and not force and not print_only:
        raise InitError(
            f"{config_path} already exists; use --force to overwrite it or --print to see the new one"
        )
    scan = scan_repository(path, env)
    text = render_commented_config([project_entry(scan)])
    # Never write a config that `check-config` would refuse.
    parse_config(text, source=config_path, env=env)
    already = _projects_already_there(config_path, scan, env) if exists else []
    lines = render_summary(scan)
    lines.append("")
    if already:
        lines.append(f"{config_path} already watches this repository (project {', '.join(already)}).")
    if print_only:
        out.write(text)
        lines.append(f"Printed the config to stdout; nothing was written (the config file is {config_path}).")
    else:
        try:
            write_atomically(config_path, text)
        except OSError as exc:
            raise InitError(f"cannot write {config_path}: {exc.strerror or type(exc).__name__}") from None
        log.info("wrote %s for %s", config_path, scan.repo)
        verb = "Overwrote" if exists else "Wrote"
        lines.append(
            f"{verb} {config_path}: project {scan.name}, repo {scan.repo}"
            + (f", base_branch {scan.base_branch}" if scan.base_branch else "")
            + (f", schema {scan.schema}" if scan.schema else "")
            + (f", env_files {', '.join(scan.env_files)}" if scan.env_files else "")
            + "."
        )
    lines += _next_steps(scan, config_path, env, print_only=print_only, exists=exists)
    lines += _guard_lines(scan, config_path, env)
    summary = err if print_only else out
    # One element of `lines` is one line: a name or a path holding a newline or an escape cannot add one.
    summary.write("\n".join(visible(redact(line), COMMAND_LIMIT) for line in lines) + "\n")
    return 0


def _next_steps(
    scan: RepositoryScan, config_path: Path, env: Mapping[str, str], *, print_only: bool, exists: bool
) -> list[str]:
    option = (
        "" if config_path == default_config_path(env) else f" --config {shellquote.quote(str(config_path))}"
    )
    steps: list[tuple[str, str]] = []
    if print_only:
        steps.append(
            (
                "write this config:",
                f"migwatch{option} init{' --force' if exists else ''} {shellquote.quote(str(scan.repo))}",
            )
        )
    steps.append(("check every worktree now:", f"migwatch{option} status"))
    steps.append(("watch in the background, with desktop alerts:", f"migwatch{option} service install"))
    width = max(len(why) for why, _ in steps)
    lines = ["", "Next:"]
    if any(s.database is None for s in scan.setups):
        lines.append(
            "  set the missing variables above in one of the files named there (or list the env file that"
            " sets them under env_files in the config, or set database_url there); until then `status`"
            " shows those worktrees as unknown"
        )
    lines += [f"  {why.ljust(width)}  {command}" for why, command in steps]
    return lines


def _guard_lines(scan: RepositoryScan, config_path: Path, env: Mapping[str, str]) -> list[str]:
    """The aliases and agent hooks that put `migwatch guard` in front of Prisma (see guard.setup_lines)."""
    from migwatch.guard import setup_lines
    from migwatch.scripts import package_manager

    option = (
        "" if config_path == default_config_path(env) else f" --config {shellquote.quote(str(config_path))}"
    )
    package_dir = scan.setups[0].package_dir if scan.setups else scan.repo
    manager, _ = package_manager(scan.repo, package_dir)
    return setup_lines(f"migwatch{option}", ["npx", manager])
