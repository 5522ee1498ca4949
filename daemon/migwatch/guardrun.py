"""`migwatch guard`: the worktree's state on the fast path, the decision logged, the command run or refused.

The fast path reads only what the decision needs, and only for the command lines guard looks at: the
worktree list (one git call), every worktree's Prisma setup (files only: who shares the database),
and, for `prisma migrate dev`, this worktree's migrations folder and its one database's history. The
full project check (git evidence, every worktree's folder) runs only to print the fix lines under a
refusal. Everything heavier than `guard.py` is imported inside the functions that need it: a command
guard lets through is exec'd before psycopg, yaml or jsonschema are loaded.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from migwatch.agenthooks import MAX_PAYLOAD_BYTES, PROTOCOLS, PayloadError, answer, read_shell_call
from migwatch.display import COMMAND_LIMIT, visible
from migwatch.guard import (
    Decision,
    GuardedCommand,
    GuardState,
    Verdict,
    decide,
    force_line,
    guarded_commands,
    needs_history,
    worktree_root,
)
from migwatch.scripts import split_commands

if TYPE_CHECKING:
    from migwatch.config import ProjectConfig
    from migwatch.model import Finding, PrismaSetup, Worktree
    from migwatch.pipeline import CheckOptions

GUARD_LOGGER = "migwatch.guard"
EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE = 1, 2, 127, 126


@dataclass(frozen=True)
class GuardContext:
    """What every guard run shares: the config file to read, the environment, where to say things."""

    config_path: Path | None  # None: $MIGWATCH_CONFIG or the platform default
    env: Mapping[str, str]
    err: TextIO
    log_file: Path | None = None  # from the config; None: the platform default
    log_level: str = "info"
    notes: tuple[str, ...] = field(default=())
    verbose: bool = False


def guard_command(argv: Sequence[str], cwd: Path, ctx: GuardContext, *, force: bool) -> int:
    """Decide for `argv` in `cwd`; exec it (never returns) or refuse (exit 1)."""
    shown = shlex.join(argv)
    commands = guarded_commands(argv, cwd, worktree_root(cwd))
    if not commands:
        return execute(argv, ctx.err)
    state, ctx = worktree_state(cwd, commands, ctx)
    decision = decide(commands, state, shown)
    for note in ctx.notes:
        ctx.err.write(visible(f"migwatch guard: {note}", COMMAND_LIMIT) + "\n")
    if decision.verdict is Verdict.REFUSE:
        if not force:
            log_decision(ctx, decision, state, shown)
            ctx.err.write(
                "\n".join(visible(line, COMMAND_LIMIT) for line in [*decision.lines, force_line(shown)])
                + "\n"
            )
            return EXIT_REFUSED
        log_decision(ctx, decision, state, shown, forced=True)
        ctx.err.write(
            visible(
                f"migwatch guard: --force: running `{shown}` although guard refuses it (logged)",
                COMMAND_LIMIT,
            )
            + "\n"
        )
        return execute(argv, ctx.err)
    log_decision(ctx, decision, state, shown)
    for line in decision.lines:  # names of worktrees, branches and migrations: shown, never acted on
        ctx.err.write(visible(line, COMMAND_LIMIT) + "\n")
    return execute(argv, ctx.err)


def hook_command(agent: str, stdin: TextIO, out: TextIO, ctx: GuardContext) -> int:
    """Answer one pre-tool-use hook call of `agent` (exit 0; the verdict is in the JSON on stdout)."""
    protocol = PROTOCOLS[agent]
    try:
        call = read_shell_call(protocol, stdin.read(MAX_PAYLOAD_BYTES + 1))
    except PayloadError as exc:
        ctx.err.write(
            f"migwatch guard --hook {agent}: unreadable hook payload: {exc}; allowing the command\n"
        )
        out.write(protocol.quiet_allow)
        return 0
    decisions: list[tuple[Decision, GuardState, str]] = []
    if call.command is not None:
        for folder, words in commands_by_folder(call.command, call.cwd):
            commands = guarded_commands(words, folder, worktree_root(folder))
            if commands:
                state, ctx = worktree_state(folder, commands, ctx)
                shown = shlex.join(words)
                decisions.append((decide(commands, state, shown), state, shown))
    if not decisions:
        out.write(protocol.quiet_allow)
        return 0
    order = [Verdict.REFUSE, Verdict.WARN, Verdict.NOTE, Verdict.RUN]
    decision, state, shown = min(decisions, key=lambda d: order.index(d[0].verdict))
    log_decision(ctx, decision, state, shown, agent=agent)
    out.write(answer(protocol, decision))
    return 0


def commands_by_folder(text: str, cwd: Path) -> list[tuple[Path, list[str]]]:
    """The simple commands of a shell line with the folder each runs in (`cd x && …` moves it)."""
    found: list[tuple[Path, list[str]]] = []
    for words in split_commands(text):
        if words[0] in {"cd", "pushd"}:
            if len(words) > 1 and not words[1].startswith("-"):
                cwd = Path(os.path.normpath(cwd / os.path.expanduser(words[1])))
            continue
        found.append((cwd, words))
    return found


def execute(argv: Sequence[str], err: TextIO) -> int:
    """Replace this process with the command (its exit code is the command's); 127/126 if it cannot run."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], list(argv))
    except FileNotFoundError:
        err.write(visible(f"migwatch guard: {argv[0]}: command not found", COMMAND_LIMIT) + "\n")
        return EXIT_NOT_FOUND
    except OSError as exc:
        err.write(
            visible(
                f"migwatch guard: cannot run {argv[0]}: {exc.strerror or type(exc).__name__}", COMMAND_LIMIT
            )
            + "\n"
        )
        return EXIT_NOT_EXECUTABLE
    raise AssertionError("unreachable: execvp returned")  # pragma: no cover


# ------------------------------------------------------------------------------------- the fast path


@dataclass(frozen=True)
class _Project:
    """The project of the current worktree: its settings and its live worktrees."""

    config: ProjectConfig
    worktrees: tuple[Worktree, ...]
    this: Worktree


def worktree_state(
    cwd: Path, commands: Sequence[GuardedCommand], ctx: GuardContext
) -> tuple[GuardState, GuardContext]:
    """This worktree's `GuardState` (and the context with the config's log settings and notes)."""
    from migwatch import git as gitio
    from migwatch.logsetup import configure_stderr

    configure_stderr(ctx.verbose)  # here, not in `main`: a command guard lets through needs no logging

    try:
        top = Path(gitio.run_git(cwd, "rev-parse", "--show-toplevel", env=ctx.env).strip())
    except gitio.GitError:
        return GuardState(worktree=str(cwd), problem="not inside a git worktree"), ctx
    try:
        project, ctx = _project(top, ctx)
    except gitio.GitError as exc:
        return GuardState(worktree=str(top), problem=f"git cannot list the worktrees: {exc}"), ctx
    if project is None:
        return GuardState(worktree=str(top), problem="this worktree is ignored by the config"), ctx
    setups = _setups(project, ctx.env)
    mine = setups[project.this.path]
    label = project.this.label
    if mine.problem is not None or mine.database is None:
        return GuardState(worktree=label, problem=mine.problem or "no database URL found"), ctx
    state = GuardState(worktree=label, database=mine.database.id, shared_with=_sharing(project, setups, mine))
    if needs_history(commands) and state.shared:
        state = _with_history(state, project, mine, ctx.env)
    return state, ctx


def _project(top: Path, ctx: GuardContext) -> tuple[_Project | None, GuardContext]:
    """The configured project whose repository this worktree belongs to, else one made from git alone."""
    from migwatch import git as gitio
    from migwatch.config import ConfigError, ProjectConfig, default_config_path, load_config
    from migwatch.discovery import is_ignored

    listed = gitio.list_worktrees(top, env=ctx.env)
    paths = {_real(w.path) for w in listed}
    project = None
    config_path = ctx.config_path or default_config_path(ctx.env)
    if config_path.is_file():
        try:
            config = load_config(config_path, ctx.env)
        except ConfigError as exc:
            note = f"ignoring {config_path}: {exc.errors[0]} (`migwatch check-config` lists every problem)"
            ctx = replace(ctx, notes=(*ctx.notes, note))
        else:
            ctx = replace(ctx, log_file=config.log.file, log_level=config.log.level)
            project = next((p for p in config.projects if _real(p.repo) in paths), None)
    if project is None:
        main = next((w for w in listed if w.is_main), None)
        repo = main.path if main is not None else top
        project = ProjectConfig(name=repo.name, repo=repo)
    live = tuple(
        w for w in listed if not w.bare and not w.prunable and not is_ignored(w, project.ignore_worktrees)
    )
    this = next((w for w in live if _real(w.path) == _real(top)), None)
    return (_Project(project, live, this) if this is not None else None), ctx


def _setups(project: _Project, env: Mapping[str, str]) -> dict[Path, PrismaSetup]:
    from migwatch.discovery import discover_worktree

    return {
        w.path: discover_worktree(
            w,
            configured_schema=project.config.schema,
            database_url=project.config.database_url,
            env=env,
            env_files=project.config.env_files,
        )
        for w in project.worktrees
    }


def _sharing(project: _Project, setups: Mapping[Path, PrismaSetup], mine: PrismaSetup) -> tuple[str, ...]:
    """The other worktrees whose database is this worktree's (same host, port, name and schema, or file)."""
    from migwatch.dburl import group_key

    assert mine.database is not None
    group = group_key(mine.database)
    return tuple(
        w.label
        for w in project.worktrees
        if w.path != project.this.path
        and (other := setups[w.path].database) is not None
        and setups[w.path].problem is None
        and group_key(other) == group
    )


def _with_history(
    state: GuardState, project: _Project, mine: PrismaSetup, env: Mapping[str, str]
) -> GuardState:
    """Add what `migrate dev` depends on: behind, pending, edited, failed — and the fixes, if refused."""
    from migwatch import diagnose
    from migwatch.history import read_history
    from migwatch.pipeline import CheckOptions, snapshot_worktree

    assert mine.database is not None
    history = read_history(mine.database)
    if not history.reachable:
        return replace(state, problem=f"cannot read {mine.database.id}: {history.error}")
    if not history.has_table:
        return replace(state, problem=f"{mine.database.id} has no _prisma_migrations table")
    options = CheckOptions(env=env)
    verdict = diagnose.analyse_worktree(snapshot_worktree(project.this, project.config, options), history)
    failed = tuple(r.migration_name for r in diagnose.counted_rows(history.rows, mine) if r.failed)
    state = replace(
        state,
        checked=True,
        behind=verdict.behind,
        pending=verdict.pending,
        edited=tuple(name for name, _ in verdict.edited),
        failed=failed,
    )
    if state.behind or state.edited or state.failed:
        state = replace(state, findings=_findings(project, mine, options))
    return state


def _findings(project: _Project, mine: PrismaSetup, options: CheckOptions) -> tuple[Finding, ...]:
    """The full check's findings for this worktree and its database's failed rows (the refusal's fixes)."""
    from concurrent.futures import ThreadPoolExecutor

    from migwatch.pipeline import WORKERS, check_project

    assert mine.database is not None
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="migwatch-guard") as pool:
        report = check_project(project.config, options, pool)
    here, database = str(project.this.path), mine.database.id
    return tuple(
        f for f in report.findings if f.worktree == here or (f.code == "failed" and f.database == database)
    )


# ---------------------------------------------------------------------------------------------- log


def log_decision(
    ctx: GuardContext,
    decision: Decision,
    state: GuardState,
    shown: str,
    *,
    forced: bool = False,
    agent: str | None = None,
) -> None:
    """One `GUARD <verdict> key=value …` line in the daemon's log file (never raises)."""
    import logging

    from migwatch.logsetup import add_file_log, default_log_file, key_values

    verdict = "force" if forced else decision.verdict.value
    fields: list[tuple[str, object]] = [
        ("worktree", state.worktree),
        ("command", shown),
        ("reason", decision.reason),
        ("database", state.database),
        ("shared_with", ", ".join(state.shared_with) or None),
        ("agent", agent),
    ]
    line = f"GUARD {verdict} {key_values(fields)}"  # None values are left out
    logger = logging.getLogger(GUARD_LOGGER)
    logger.propagate = False  # the person already reads the decision on stderr
    try:
        handler = add_file_log(ctx.log_file or default_log_file(), ctx.log_level, logger=logger)
    except OSError as exc:
        ctx.err.write(f"migwatch guard: cannot write the log: {exc.strerror or type(exc).__name__}\n")
        return
    try:
        logger.log(logging.WARNING if verdict in {"refuse", "force"} else logging.INFO, line)
    finally:
        logger.removeHandler(handler)
        handler.close()


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))
