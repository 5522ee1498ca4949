"""`migwatch guard`: which Prisma commands a command line runs, and whether to let them run (SPEC §11).

Pure apart from reading `package.json` (through `scripts.resolve_command`, which knows every runner:
`npx`, `pnpm [exec|dlx]`, `yarn`, `bunx`, `npm exec`, `prisma`, `node_modules/.bin/prisma`, env
wrappers, and `npm/pnpm/yarn/bun run <script>`). `decide` takes the worktree's state as plain values
(`GuardState`, gathered by `guardrun`) and returns a `Decision` with the message a person or an agent
reads: what would happen, to whom, and what to do instead.

What each guarded command does to a database shared with other worktrees was measured with the real
Prisma 6.19 engine (`../shared/prisma-oracle`, `migrate dev` on a copy of each state):

- `migrate dev` resets ("We need to reset the … database … All data will be lost") when the
  database has migrations the folder lacks (behind, diverged), when an applied migration was edited,
  when a row is failed, and when the schema drifted; it just applies pending migrations, including one
  that sorts before the newest applied one (out of order), and a rolled-back one.
- `migrate reset` drops the database and re-applies this worktree's migrations only.
- `db push --force-reset` recreates the database; `--accept-data-loss` drops what the schema lacks;
  a plain `db push` changes the schema with no migration, which every worktree's next `migrate dev`
  then sees as drift and offers to reset.
"""

from __future__ import annotations

import enum
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from migwatch.scripts import PrismaScript, resolve_command

if TYPE_CHECKING:  # the model module is not needed to decide for a command guard lets through
    from migwatch.model import Finding

# Programs that run other programs: a command line they start that names `prisma` somewhere is read
# from that word on when `resolve_command` cannot tell (`pnpm --filter web exec prisma …` for a
# package it does not know, `yarn run prisma …` with no such script, `npx prisma@6.19.3 …`).
RUNNERS = frozenset({"npx", "pnpx", "bunx", "npm", "pnpm", "yarn", "bun", "node", "dotenv", "env-cmd"})
HELP_FLAGS = frozenset({"-h", "--help"})


class Action(str, enum.Enum):
    """The Prisma commands guard looks at; anything else runs at once."""

    RESET = "migrate reset"
    DEV = "migrate dev"
    PUSH_DATA_LOSS = "db push --force-reset/--accept-data-loss"
    PUSH = "db push"


class Verdict(str, enum.Enum):
    RUN = "run"  # nothing to say
    NOTE = "note"  # runs; one line of information
    WARN = "warn"  # runs for a person; an agent is asked to confirm
    REFUSE = "refuse"


@dataclass(frozen=True)
class GuardedCommand:
    """One guarded Prisma command a command line runs, and the script it runs through (if any)."""

    action: Action
    prisma_argv: tuple[str, ...]
    script: str = ""

    @property
    def shown(self) -> str:
        """`prisma migrate reset --force`: the Prisma command as it will run."""
        return f"prisma {shlex.join(self.prisma_argv)}"


def classify(script: PrismaScript) -> Action | None:
    """The guarded action of one Prisma invocation, or None (help, and every other command)."""
    if HELP_FLAGS.intersection(script.argv):
        return None
    if script.subcommand == "migrate reset":
        return Action.RESET
    if script.subcommand == "migrate dev":
        return Action.DEV
    if script.subcommand == "db push":
        options = {word.partition("=")[0] for word in script.argv}
        return Action.PUSH_DATA_LOSS if options & {"--force-reset", "--accept-data-loss"} else Action.PUSH
    return None


def guarded_commands(argv: Sequence[str], cwd: Path, worktree: Path) -> list[GuardedCommand]:
    """The guarded Prisma commands `argv` runs in `cwd` (empty: run it at once)."""
    resolved = resolve_command(argv, cwd, worktree)
    if not resolved:
        resolved = _fallback(argv, cwd, worktree)
    found = []
    for script in resolved:
        action = classify(script)
        if action is not None:
            found.append(GuardedCommand(action, script.argv, script.name))
    return found


def _fallback(argv: Sequence[str], cwd: Path, worktree: Path) -> list[PrismaScript]:
    """A runner's command line that names Prisma in a form `resolve_command` does not follow."""
    if not argv or os.path.basename(argv[0]) not in RUNNERS:
        return []
    for index, word in enumerate(argv[1:], start=1):
        name = os.path.basename(word)
        if name == "prisma" or name.startswith("prisma@"):
            return resolve_command(["prisma", *argv[index + 1 :]], cwd, worktree)
    return []


def worktree_root(cwd: Path) -> Path:
    """The worktree holding `cwd`: the nearest folder with a `.git` entry (cwd itself if none)."""
    for folder in (cwd, *cwd.parents):
        if os.path.lexists(folder / ".git"):
            return folder
    return cwd


# ------------------------------------------------------------------------------------------- decide


@dataclass(frozen=True)
class GuardState:
    """This worktree and its database as `guardrun` found them (the fast path: one project, one database).

    `shared_with` names the other worktrees on the same database (`folder (branch)`); `checked` says
    whether the history was read (only `migrate dev` needs it); `findings` are the ones that say what
    to do instead (this worktree's, and the database's failed rows).
    """

    worktree: str
    database: str | None = None
    shared_with: tuple[str, ...] = ()
    checked: bool = False
    problem: str | None = None  # why the worktree or its database could not be checked
    behind: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = field(default=(), compare=False)

    @property
    def shared(self) -> bool:
        return bool(self.shared_with)


@dataclass(frozen=True)
class Decision:
    """What guard does with a command line, why (a short reason for the log), and what it says."""

    verdict: Verdict
    reason: str
    lines: tuple[str, ...] = ()
    command: GuardedCommand | None = None


# Which findings tell what to do instead of each reason for refusing `migrate dev`.
_FIX_CODES = {"behind": "behind_database", "edited": "checksum_mismatch", "failed": "failed"}


def needs_history(commands: Sequence[GuardedCommand]) -> bool:
    """Only `migrate dev` depends on the history; the others depend on who shares the database."""
    return any(c.action is Action.DEV for c in commands)


def decide(commands: Sequence[GuardedCommand], state: GuardState, shown: str) -> Decision:
    """The decision for a command line (`shown`, as typed) that runs `commands`: the strictest one wins."""
    decisions = [_decide_one(command, state, shown) for command in commands]
    order = [Verdict.REFUSE, Verdict.WARN, Verdict.NOTE, Verdict.RUN]
    decisions.sort(key=lambda d: order.index(d.verdict))
    return decisions[0] if decisions else Decision(Verdict.RUN, "not guarded")


def _decide_one(command: GuardedCommand, state: GuardState, shown: str) -> Decision:
    if state.problem is not None and (command.action is Action.DEV or not state.shared):
        line = f"migwatch guard: cannot check {state.worktree}: {state.problem}; running `{shown}` unchecked"
        return Decision(Verdict.NOTE, "unchecked", (line,), command)
    if not state.shared:
        return Decision(Verdict.RUN, "private database", (), command)
    if command.action is Action.RESET:
        return _refuse(command, state, shown, "reset", _reset_effect(state))
    if command.action is Action.PUSH_DATA_LOSS:
        return _refuse(command, state, shown, "push-data-loss", _push_effect(command, state))
    if command.action is Action.PUSH:
        line = (
            f"migwatch guard: warning: `{shown}` changes {state.database}, shared with {_others(state)}, "
            "without a migration: their migration histories will no longer describe its schema, and "
            "the next `prisma migrate dev` in any of them will see drift and offer to reset it"
        )
        return Decision(Verdict.WARN, "push-shared", (line,), command)
    return _decide_dev(command, state, shown)


def _decide_dev(command: GuardedCommand, state: GuardState, shown: str) -> Decision:
    reasons = _dev_reset_reasons(state)
    if reasons:
        effect = (
            f"Prisma would find that {'; '.join(reasons)}, and offer to reset {state.database}: "
            "every table dropped, all data lost."
        )
        key = "+".join(k for k in ("behind", "edited", "failed") if getattr(state, k))
        return _refuse(command, state, shown, key, effect)
    if state.pending:
        names = ", ".join(state.pending[:3]) + (" …" if len(state.pending) > 3 else "")
        line = (
            f"migwatch guard: `{shown}` applies {_count(len(state.pending), 'migration')} ({names}) to "
            f"{state.database}; {_others(state)} will be behind it until they have the folder"
        )
        return Decision(Verdict.NOTE, "pending", (line,), command)
    return Decision(Verdict.RUN, "in sync", (), command)


def _dev_reset_reasons(state: GuardState) -> list[str]:
    reasons = []
    if state.behind:
        reasons.append(
            f"the database has {_count(len(state.behind), 'migration')} this worktree lacks "
            f"({_names(state.behind)})"
        )
    if state.edited:
        reasons.append(f"{_names(state.edited)} was edited after it was applied")
    if state.failed:
        reasons.append(f"{_names(state.failed)} failed in the database")
    return reasons


def _reset_effect(state: GuardState) -> str:
    return (
        f"`prisma migrate reset` drops every table of {state.database} and re-applies only this "
        "worktree's migrations: the other worktrees' data, and every migration they applied that this "
        "worktree lacks, are gone."
    )


def _push_effect(command: GuardedCommand, state: GuardState) -> str:
    options = {word.partition("=")[0] for word in command.prisma_argv}
    if "--force-reset" in options:
        return f"`prisma db push --force-reset` drops every table of {state.database} and recreates the schema empty."
    return (
        f"`prisma db push --accept-data-loss` drops the tables and columns of {state.database} that "
        "schema.prisma lacks, including those the other worktrees' migrations created, with their data."
    )


def _refuse(command: GuardedCommand, state: GuardState, shown: str, reason: str, effect: str) -> Decision:
    runs = f" (the script `{command.script}` runs `{command.shown}`)" if command.script else ""
    lines = [
        f"migwatch guard: refused `{shown}`{runs} in {state.worktree}.",
        f"What would happen: {effect}",
        f"Who would lose it: the worktrees sharing that database: {_others(state)}.",
        *_instead(command, state),
    ]
    return Decision(Verdict.REFUSE, reason, tuple(lines), command)


def force_line(shown: str) -> str:
    """The last line a person reads under a refusal (an agent is told to ask its user instead)."""
    return f"To run it anyway (logged): migwatch guard --force -- {shown}"


AGENT_LINE = "Do not work around this refusal: tell the user what it says and ask how to go on."


def _instead(command: GuardedCommand, state: GuardState) -> list[str]:
    codes = {code for key, code in _FIX_CODES.items() if getattr(state, key)}
    fixes = [f for f in state.findings if f.code in codes and f.fix]
    if fixes:
        # A worktree 27 migrations behind has 27 findings with the same merge and the same warning:
        # each line once, in order; the per-migration "why" only when there is one finding to explain.
        shown: dict[str, None] = {}
        for finding in fixes:
            why = f"why: {finding.fix.why}" if finding.fix.why else None
            for line in finding.fix.lines():
                if len(fixes) == 1 or line != why:
                    shown.setdefault(line, None)
        return ["Instead, first:", *(f"  {line}" for line in shown), "  then run the command again."]
    if command.action is Action.DEV:
        return []
    if command.action is Action.RESET:
        return [
            "Instead: nothing here needs a reset of the shared database; to start over, point this "
            "worktree's database URL at a database of its own."
        ]
    return ["Instead: make the schema change a migration, so the other worktrees receive it through git."]


def _others(state: GuardState) -> str:
    return ", ".join(state.shared_with)


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# ---------------------------------------------------------------------------------------- set-up text


def setup_lines(migwatch: str, managers: Sequence[str]) -> list[str]:
    """What `migwatch init` prints to put guard in front of Prisma: shell aliases and the agents' hooks.

    `migwatch` is how to call it (`migwatch`, or `migwatch --config PATH`); `managers` the runners a
    person types (`npx`, and the project's package manager).
    """
    import json

    aliases = [f"alias {m}={shlex.quote(f'{migwatch} guard -- {m}')}" for m in dict.fromkeys(managers)]
    claude = {
        "hooks": {
            "PreToolUse": [
                {
                    "matcher": "Bash",
                    "hooks": [{"type": "command", "command": f"{migwatch} guard --hook claude-code"}],
                }
            ]
        }
    }
    gemini = {
        "hooks": {
            "BeforeTool": [
                {
                    "matcher": "run_shell_command",
                    "hooks": [{"type": "command", "command": f"{migwatch} guard --hook gemini-cli"}],
                }
            ]
        }
    }
    return [
        "",
        "Guard the shared database (refuses `prisma migrate reset` on it, and `prisma migrate dev` in a worktree",
        "that is behind, diverged, edited or failed; everything else runs at once):",
        "  for people, in ~/.bashrc or ~/.zshrc:",
        *(f"    {alias}" for alias in aliases),
        "  for Claude Code, merged into .claude/settings.json:",
        f"    {json.dumps(claude)}",
        "  for Gemini CLI, merged into .gemini/settings.json:",
        f"    {json.dumps(gemini)}",
    ]
