"""Builders of fix commands and fix text. Commands are argv lists, never formatted strings.

Every shell line a fix prints is a `Command` (quoted by `shlex.join` when rendered); every SQL
value goes through `sql_literal`. A finding module says *what* to run; this module says *how*.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from migwatch.diagnose.context import Ctx, names
from migwatch.diagnose.semantics import WorktreeSnapshot
from migwatch.display import visible
from migwatch.model import Command, SqlStatement, sql_literal
from migwatch.runner import PrismaRunner

# Characters git reads as pathspec magic (globs, `:(…)` prefixes) in a path after `--`.
_PATHSPEC_MAGIC = frozenset("*?[\\")
# Subcommands whose arguments after `--` are pathspecs; `git mv` takes plain paths (`:(literal)` breaks it).
_PATHSPEC_COMMANDS = frozenset({"add", "checkout", "diff", "log", "restore", "rm", "show", "status"})


def git(worktree: Path, *args: str, comment: str | None = None) -> Command:
    """`git -C <worktree> <args…>`; pathspecs after `--` are taken literally (a folder `m*` is not a glob)."""
    if "--" in args and args[0] in _PATHSPEC_COMMANDS:
        cut = args.index("--") + 1
        args = (*args[:cut], *(pathspec(path) for path in args[cut:]))
    return Command(("git", "-C", str(worktree), *args), comment=comment)


def chain(first: Command, *more: Command, comment: str | None = None) -> Command:
    """`first && more…` as one line; `more` run where `first` does (they must not `cd` elsewhere)."""
    for command in more:
        if command.cwd not in (None, first.cwd):
            raise ValueError(f"cannot chain a command that runs in {command.cwd} after one in {first.cwd}")
    then = first.then + tuple(argv for command in more for argv in (command.argv, *command.then))
    return Command(first.argv, cwd=first.cwd, then=then, comment=comment or first.comment)


def pathspec(path: str) -> str:
    """`path` for git after `--`: as is, or `:(literal)path` when git would read part of it as magic."""
    if path.startswith(":") or any(c in _PATHSPEC_MAGIC for c in path):
        return f":(literal){path}"
    return path


def operand(path: str) -> str:
    """A relative path as an operand of ls, cp, mv, rmdir: `./-x`, so that no name becomes an option."""
    return f"./{path}" if path.startswith("-") else path


def commit_folder(worktree: Path, folder: str, message: str) -> Command:
    """`git -C <wt> add -- <folder> && git -C <wt> commit -m <message>`."""
    return chain(git(worktree, "add", "--", folder), git(worktree, "commit", "-m", message))


def prisma(snapshot: WorktreeSnapshot, *args: str, comment: str | None = None) -> Command:
    """`prisma <args…>` run as this project runs it (`migwatch.runner`): its package.json script, else
    `cd <package dir> && npx prisma <args…>` (Prisma runs where its package.json is)."""
    runner = snapshot.runner or PrismaRunner(snapshot.setup.package_dir)
    return runner.command(*args, comment=comment)


def resolve(snapshot: WorktreeSnapshot, state: str, migration: str, *, comment: str | None = None) -> Command:
    """`cd <package dir> && npx prisma migrate resolve --<state>=<migration>` (state: applied, rolled-back).

    Always `--flag=value`: Prisma's argument parser (the `arg` package) refuses `--rolled-back -x` as
    "option requires argument" and reads everything after the first `=` as the value, whatever it holds
    (measured with the Prisma 6.19 CLI of ../shared/prisma-oracle).
    """
    if state not in ("applied", "rolled-back"):
        raise ValueError(f"prisma migrate resolve has no --{state}")
    return prisma(snapshot, "migrate", "resolve", f"--{state}={migration}", comment=comment)


def deploy(snapshot: WorktreeSnapshot) -> Command:
    """`prisma migrate deploy`, as this project runs it."""
    return prisma(snapshot, "migrate", "deploy")


def shell(*argv: str, comment: str | None = None) -> Command:
    """Any other command (`ls`, `mv`, `cp`, `rmdir`, `pg_isready`)."""
    return Command(tuple(argv), comment=comment)


def reset_warning(ctx: Ctx, snapshot: WorktreeSnapshot, group: str | None) -> str:
    """The warning that `prisma migrate dev`/`reset` would offer to wipe a shared database."""
    others = [s for s in ctx.members(group) if s.worktree.path != snapshot.worktree.path] if group else []
    shared = f"shared with {names(others)}" if others else "it uses"
    return (
        f"Do not run `prisma migrate dev` or `prisma migrate reset` in {snapshot.worktree.path.name}: "
        f"Prisma will offer to reset the database {shared}, deleting everyone's data."
    )


def delete_history_row(migration: str, row_id: str | None) -> SqlStatement | None:
    """`DELETE FROM _prisma_migrations WHERE migration_name = '…';` (or `WHERE id = '…'`), or None.

    A value the output edge would show escaped (control, format or bidi characters) cannot be put in
    a printed literal: pasting it would delete nothing, or another row. Then the row's id is used,
    and when that is not printable either, no statement at all.
    """
    for column, value in (("migration_name", migration), ("id", row_id)):
        if value is None or visible(value, None) != value:
            continue
        try:
            return SqlStatement(f"DELETE FROM _prisma_migrations WHERE {column} = {sql_literal(value)};")
        except ValueError:
            continue
    return None


def delete_history_rows(migrations: Sequence[str], condition: str = "") -> SqlStatement | None:
    """`DELETE FROM _prisma_migrations WHERE migration_name IN ('a', 'b')[ AND …];`, or None when a name
    cannot be printed as it is (see `delete_history_row`). `condition` is fixed SQL of ours
    (`AND finished_at IS NULL`), never a value."""
    if not migrations or any(visible(name, None) != name for name in migrations):
        return None
    try:
        literals = [sql_literal(name) for name in migrations]
    except ValueError:
        return None
    match = f"= {literals[0]}" if len(literals) == 1 else f"IN ({', '.join(literals)})"
    return SqlStatement(f"DELETE FROM _prisma_migrations WHERE migration_name {match}{condition};")
