"""`migwatch guard`, the pure part: which commands a command line runs, the decision, the agents' protocols."""

from __future__ import annotations

import io
import json
import os
import shlex
from pathlib import Path

import pytest

from migwatch.agenthooks import PROTOCOLS, PayloadError, answer, read_shell_call
from migwatch.cli import main
from migwatch.guard import (
    AGENT_LINE,
    Action,
    Decision,
    GuardedCommand,
    GuardState,
    Verdict,
    decide,
    guarded_commands,
    worktree_root,
)
from migwatch.guardrun import commands_by_folder
from migwatch.model import Command, Finding, Fix, Severity
from tests.support.hostile import TERMINAL_PAYLOADS, raw_controls

RESET, DEV, PUSH, LOSS = Action.RESET, Action.DEV, Action.PUSH, Action.PUSH_DATA_LOSS


@pytest.mark.parametrize(
    ("command", "action"),
    [
        ("npx prisma migrate dev", DEV),
        ("npx --yes prisma migrate dev --name add_user", DEV),
        ("npx -p prisma prisma migrate reset --force", RESET),
        ("npx prisma@6.19.3 migrate reset", RESET),
        ("pnpm prisma migrate reset", RESET),
        ("pnpm exec prisma migrate dev", DEV),
        ("pnpm dlx prisma migrate reset", RESET),
        ("pnpm --filter web exec prisma migrate reset", RESET),
        ("pnpx prisma migrate dev", DEV),
        ("yarn prisma migrate dev", DEV),
        ("yarn exec prisma migrate reset", RESET),
        ("yarn dlx prisma db push --force-reset", LOSS),
        ("yarn run prisma migrate reset", RESET),
        ("bunx prisma migrate dev", DEV),
        ("bun x prisma db push", PUSH),
        ("bun run prisma migrate dev", DEV),
        ("npm exec prisma -- migrate dev", DEV),
        ("npm exec -- prisma migrate reset --force", RESET),
        ("npm x prisma migrate reset", RESET),
        ("prisma migrate dev --create-only", DEV),
        ("prisma --schema prisma/schema.prisma migrate reset", RESET),
        ("node_modules/.bin/prisma migrate reset --force", RESET),
        ("./node_modules/.bin/prisma db push --accept-data-loss", LOSS),
        ("../../node_modules/.bin/prisma db push --accept-data-loss=true", LOSS),
        ("dotenv -e ../../.env -- npx prisma migrate dev", DEV),
        ("env-cmd -f .env.local prisma migrate reset", RESET),
        ("env DATABASE_URL=postgresql://x@h/db npx prisma migrate dev", DEV),
        ("sh -c 'npx prisma migrate reset --force'", RESET),
    ],
)
def test_every_runner_form(tmp_path: Path, command: str, action: Action) -> None:
    found = guarded_commands(shlex.split(command), tmp_path, tmp_path)
    assert [c.action for c in found] == [action]


@pytest.mark.parametrize(
    "command",
    [
        "npx prisma generate",
        "npx prisma migrate deploy",
        "npx prisma migrate status",
        "npx prisma migrate dev --help",
        "pnpm prisma migrate reset -h",
        "npx prisma studio",
        "echo prisma migrate reset",
        "git commit -m 'prisma migrate reset'",
        "npm test",
        "ls",
    ],
)
def test_commands_that_run_at_once(tmp_path: Path, command: str) -> None:
    assert guarded_commands(shlex.split(command), tmp_path, tmp_path) == []


def test_package_json_scripts(tmp_path: Path) -> None:
    package = tmp_path / "apps" / "web"
    package.mkdir(parents=True)
    scripts = {
        "db:reset": "prisma migrate reset --force && prisma db seed",
        "db:dev": "dotenv -e ../../.env -- prisma migrate dev",
        "migrate": "pnpm run db:dev",
        "build": "next build",
    }
    (package / "package.json").write_text(json.dumps({"name": "web", "scripts": scripts}), encoding="utf-8")
    for command, expected in [
        ("npm run db:reset", [GuardedCommand(RESET, ("migrate", "reset", "--force"), "db:reset")]),
        ("pnpm db:reset", [GuardedCommand(RESET, ("migrate", "reset", "--force"), "db:reset")]),
        ("yarn migrate", [GuardedCommand(DEV, ("migrate", "dev"), "migrate")]),
        ("bun run db:dev", [GuardedCommand(DEV, ("migrate", "dev"), "db:dev")]),
        ("npm run build", []),
    ]:
        assert guarded_commands(shlex.split(command), package, tmp_path) == expected, command


def test_worktree_root_is_the_nearest_git_entry(tmp_path: Path) -> None:
    (tmp_path / "wt" / "apps" / "web").mkdir(parents=True)
    (tmp_path / "wt" / ".git").write_text("gitdir: /elsewhere\n", encoding="utf-8")
    assert worktree_root(tmp_path / "wt" / "apps" / "web") == tmp_path / "wt"


def test_cd_moves_the_folder_of_later_commands(tmp_path: Path) -> None:
    text = "cd apps/web && npx prisma migrate dev; cd .. && ls"
    assert commands_by_folder(text, tmp_path) == [
        (tmp_path / "apps" / "web", ["npx", "prisma", "migrate", "dev"]),
        (tmp_path / "apps", ["ls"]),
    ]


# ------------------------------------------------------------------------------------------- decide

DB = "postgresql://kyin@localhost:5432/americano?schema=public"
HERE = "Americano-epic3 (feature/epic-3)"
OTHERS = ("Americano (main)", "Americano-epic5 (feature/epic-5)")
BEHIND_FIX = Fix(
    steps=(Command(("git", "-C", "/w/Americano-epic3", "merge", "feature/epic-5")),),
    why="the folder lives on feature/epic-5",
)


def _state(**changes: object) -> GuardState:
    values: dict[str, object] = {
        "worktree": HERE,
        "database": DB,
        "shared_with": OTHERS,
        "checked": True,
    }
    values.update(changes)
    return GuardState(**values)  # type: ignore[arg-type]


def _finding(code: str, fix: Fix) -> Finding:
    return Finding(code, Severity.ERROR, "americano", DB, "/w/Americano-epic3", "m", "message", fix)


def test_migrate_dev_behind_is_refused_with_the_fix() -> None:
    state = _state(
        behind=("20251016231054_add_story_5_1",),
        pending=("20251016000000_create_vector_indexes",),
        findings=(
            _finding("behind_database", BEHIND_FIX),
            _finding("pending", Fix(steps=(Command(("npx", "prisma", "migrate", "deploy")),))),
        ),
    )
    decision = decide([GuardedCommand(DEV, ("migrate", "dev"))], state, "npx prisma migrate dev")
    assert decision.verdict is Verdict.REFUSE
    assert decision.reason == "behind"
    assert decision.lines == (
        f"migwatch guard: refused `npx prisma migrate dev` in {HERE}.",
        "What would happen: Prisma would find that the database has 1 migration this worktree lacks "
        f"(20251016231054_add_story_5_1), and offer to reset {DB}: every table dropped, all data lost.",
        "Who would lose it: the worktrees sharing that database: Americano (main), Americano-epic5 (feature/epic-5).",
        "Instead, first:",
        "  git -C /w/Americano-epic3 merge feature/epic-5",
        "  why: the folder lives on feature/epic-5",
        "  then run the command again.",
    )


def test_many_findings_with_the_same_fix_show_each_line_once() -> None:
    """documenso: a worktree 27 migrations behind gets one merge line, not 27 copies with their whys."""
    names = [f"2025100{i}000000_m{i}" for i in range(1, 4)]
    merge = Command(("git", "-C", "/w/Americano-epic3", "merge", "main"))
    warning = "Do not run `prisma migrate dev` or `prisma migrate reset` in Americano-epic3: …"
    state = _state(
        behind=tuple(names),
        findings=tuple(
            _finding("behind_database", Fix(steps=(merge,), reset_warning=warning, why=f"{n} lives on main"))
            for n in names
        ),
    )
    decision = decide([GuardedCommand(DEV, ("migrate", "dev"))], state, "npx prisma migrate dev")
    assert decision.lines[3:] == (
        "Instead, first:",
        "  git -C /w/Americano-epic3 merge main",
        f"  {warning}",
        "  then run the command again.",
    )


@pytest.mark.parametrize("payload", sorted(TERMINAL_PAYLOADS))
def test_hostile_names_stay_visible_in_hook_answers(payload: str) -> None:
    name = TERMINAL_PAYLOADS[payload]
    merge = Command(("git", "-C", "/w/Americano-epic3", "merge", f"feature/{name}"))
    state = _state(behind=(name,), findings=(_finding("behind_database", Fix(steps=(merge,), why=name)),))
    decision = decide([GuardedCommand(DEV, ("migrate", "dev"))], state, "npx prisma migrate dev")
    assert decision.verdict is Verdict.REFUSE
    for protocol in PROTOCOLS.values():
        body = json.loads(answer(protocol, decision))
        for text in _strings(body):
            assert raw_controls(text, allow="\n") == [], (protocol.agent, text)


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_migrate_dev_edited_and_failed_are_refused() -> None:
    state = _state(edited=("20251001000000_init",), failed=("20251010120000_add_mission",))
    decision = decide([GuardedCommand(DEV, ("migrate", "dev"))], state, "pnpm prisma migrate dev")
    assert (decision.verdict, decision.reason) == (Verdict.REFUSE, "edited+failed")
    assert decision.lines[1] == (
        "What would happen: Prisma would find that 20251001000000_init was edited after it was applied; "
        f"20251010120000_add_mission failed in the database, and offer to reset {DB}: every table dropped, "
        "all data lost."
    )


def test_migrate_dev_in_sync_runs_and_pending_runs_with_a_note() -> None:
    dev = [GuardedCommand(DEV, ("migrate", "dev"))]
    assert decide(dev, _state(), "npx prisma migrate dev") == Decision(Verdict.RUN, "in sync", (), dev[0])
    decision = decide(
        dev, _state(pending=("20251016000000_create_vector_indexes",)), "npx prisma migrate dev"
    )
    assert (decision.verdict, decision.lines) == (
        Verdict.NOTE,
        (
            "migwatch guard: `npx prisma migrate dev` applies 1 migration (20251016000000_create_vector_indexes) "
            f"to {DB}; Americano (main), Americano-epic5 (feature/epic-5) will be behind it until they have the folder",
        ),
    )


def test_migrate_dev_on_a_private_database_runs_even_when_behind() -> None:
    decision = decide([GuardedCommand(DEV, ("migrate", "dev"))], _state(shared_with=(), behind=("x",)), "x")
    assert (decision.verdict, decision.reason) == (Verdict.RUN, "private database")


def test_reset_is_refused_on_a_shared_database_and_runs_on_a_private_one() -> None:
    reset = [GuardedCommand(RESET, ("migrate", "reset", "--force"), "db:reset")]
    decision = decide(reset, _state(checked=False), "npm run db:reset")
    assert (decision.verdict, decision.reason) == (Verdict.REFUSE, "reset")
    assert decision.lines == (
        f"migwatch guard: refused `npm run db:reset` (the script `db:reset` runs `prisma migrate reset --force`) in {HERE}.",
        f"What would happen: `prisma migrate reset` drops every table of {DB} and re-applies only this "
        "worktree's migrations: the other worktrees' data, and every migration they applied that this "
        "worktree lacks, are gone.",
        "Who would lose it: the worktrees sharing that database: Americano (main), Americano-epic5 (feature/epic-5).",
        "Instead: nothing here needs a reset of the shared database; to start over, point this worktree's "
        "database URL at a database of its own.",
    )
    assert decide(reset, _state(shared_with=()), "npm run db:reset").verdict is Verdict.RUN


def test_db_push() -> None:
    loss = [GuardedCommand(LOSS, ("db", "push", "--accept-data-loss"))]
    decision = decide(loss, _state(), "npx prisma db push --accept-data-loss")
    assert (decision.verdict, decision.lines[1]) == (
        Verdict.REFUSE,
        f"What would happen: `prisma db push --accept-data-loss` drops the tables and columns of {DB} that "
        "schema.prisma lacks, including those the other worktrees' migrations created, with their data.",
    )
    reset = [GuardedCommand(LOSS, ("db", "push", "--force-reset"))]
    assert decide(reset, _state(), "x").lines[1] == (
        f"What would happen: `prisma db push --force-reset` drops every table of {DB} and recreates the schema empty."
    )
    push = [GuardedCommand(PUSH, ("db", "push"))]
    warned = decide(push, _state(), "npx prisma db push")
    assert (warned.verdict, warned.lines) == (
        Verdict.WARN,
        (
            f"migwatch guard: warning: `npx prisma db push` changes {DB}, shared with Americano (main), "
            "Americano-epic5 (feature/epic-5), without a migration: their migration histories will no longer "
            "describe its schema, and the next `prisma migrate dev` in any of them will see drift and offer to reset it",
        ),
    )
    assert decide(push, _state(shared_with=()), "x").verdict is Verdict.RUN


def test_unknown_state_runs_unchecked_but_a_known_shared_reset_is_refused() -> None:
    dev = [GuardedCommand(DEV, ("migrate", "dev"))]
    state = _state(checked=False, problem="cannot read the database: connection refused")
    assert decide(dev, state, "npx prisma migrate dev").lines == (
        f"migwatch guard: cannot check {HERE}: cannot read the database: connection refused; "
        "running `npx prisma migrate dev` unchecked",
    )
    reset = [GuardedCommand(RESET, ("migrate", "reset"))]
    assert decide(reset, state, "npx prisma migrate reset").verdict is Verdict.REFUSE
    lost = GuardState(worktree="/tmp/x", problem="not inside a git worktree")
    assert decide(reset, lost, "npx prisma migrate reset").verdict is Verdict.NOTE


def test_the_strictest_command_of_a_line_wins() -> None:
    both = [GuardedCommand(PUSH, ("db", "push")), GuardedCommand(RESET, ("migrate", "reset"))]
    assert decide(both, _state(), "x").verdict is Verdict.REFUSE


# ----------------------------------------------------------------------------------- agent protocols

# Payloads as the vendors document them (see the links in migwatch/agenthooks.py).
CLAUDE_PAYLOAD = {
    "session_id": "abc123",
    "transcript_path": "/home/u/.claude/projects/p/00893aaf-19fa-41d2-8238-13269b9b3ca0.jsonl",
    "cwd": "/w/Americano-epic3",
    "permission_mode": "default",
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {
        "command": "npx prisma migrate dev",
        "description": "Apply the schema change",
        "timeout": 120000,
        "run_in_background": False,
    },
    "tool_use_id": "toolu_01ABC123",
}
GEMINI_PAYLOAD = {
    "session_id": "abc123",
    "transcript_path": "/home/u/.gemini/tmp/chats/session.json",
    "cwd": "/w/Americano-epic3",
    "hook_event_name": "BeforeTool",
    "timestamp": "2026-11-29T10:30:00Z",
    "tool_name": "run_shell_command",
    "tool_input": {"command": "npx prisma migrate dev", "description": "Apply it", "directory": "apps/web"},
}


def test_read_shell_call_per_protocol() -> None:
    claude = read_shell_call(PROTOCOLS["claude-code"], json.dumps(CLAUDE_PAYLOAD))
    assert (claude.command, claude.cwd) == ("npx prisma migrate dev", Path("/w/Americano-epic3"))
    gemini = read_shell_call(PROTOCOLS["gemini-cli"], json.dumps(GEMINI_PAYLOAD))
    assert (gemini.command, gemini.cwd) == ("npx prisma migrate dev", Path("/w/Americano-epic3/apps/web"))
    other_tool = dict(CLAUDE_PAYLOAD, tool_name="Read", tool_input={"file_path": "/w/x"})
    assert read_shell_call(PROTOCOLS["claude-code"], json.dumps(other_tool)).command is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not JSON (Expecting value: line 1 column 1 (char 0))"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"tool_name": "Bash", "tool_input": {"command": "ls"}}', 'no absolute "cwd"'),
        ('{"cwd": "relative", "tool_name": "Bash"}', 'no absolute "cwd"'),
        ('{"cwd": "/w", "tool_name": "Bash", "tool_input": "ls"}', '"tool_input" is not an object'),
        (
            '{"cwd": "/w", "tool_name": "Bash", "tool_input": {"command": 7}}',
            'no "tool_input.command" string',
        ),
        ("x" * 1_000_001, "the payload is larger than 1000000 bytes"),
    ],
)
def test_malformed_payloads(text: str, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        read_shell_call(PROTOCOLS["claude-code"], text)
    assert str(caught.value) == message


def test_answers_per_protocol() -> None:
    refused = Decision(Verdict.REFUSE, "reset", ("migwatch guard: refused `x`.", "Who would lose it: …"))
    warned = Decision(Verdict.WARN, "push-shared", ("migwatch guard: warning: `npx prisma db push` …",))
    allowed = Decision(Verdict.NOTE, "pending", ("migwatch guard: applies 1 migration",))
    claude, gemini = PROTOCOLS["claude-code"], PROTOCOLS["gemini-cli"]
    reason = f"migwatch guard: refused `x`.\nWho would lose it: …\n{AGENT_LINE}"
    assert json.loads(answer(claude, refused)) == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }
    assert json.loads(answer(claude, warned))["hookSpecificOutput"]["permissionDecision"] == "ask"
    assert answer(claude, allowed) == ""
    assert json.loads(answer(gemini, refused)) == {
        "decision": "deny",
        "reason": reason,
        "systemMessage": "migwatch guard: refused `x`.",
    }
    assert json.loads(answer(gemini, warned))["decision"] == "ask"
    assert answer(gemini, allowed) == "{}\n"


def test_root_scripts_that_delegate_to_a_workspace_package(tmp_path: Path) -> None:
    """documenso/documenso (v2.17.0): the root's `npm run prisma:migrate-dev` loads the env with
    dotenv-cli and runs the same-named script of the `@documenso/prisma` workspace package."""
    root_scripts = {
        "prisma:migrate-dev": "npm run with:env -- npm run prisma:migrate-dev -w @documenso/prisma",
        "prisma:migrate-reset": "npm run with:env -- npm run prisma:migrate-reset -w @documenso/prisma",
        "prisma:generate": "npm run with:env -- npm run prisma:generate -w @documenso/prisma",
        "with:env": "dotenv -e .env -e .env.local --",
    }
    root = {"name": "@documenso/root", "workspaces": ["apps/*", "packages/*"], "scripts": root_scripts}
    (tmp_path / "package.json").write_text(json.dumps(root), encoding="utf-8")
    package = tmp_path / "packages" / "prisma"
    package.mkdir(parents=True)
    scripts = {
        "prisma:generate": "prisma generate",
        "prisma:migrate-dev": "prisma migrate dev --skip-seed",
        "prisma:migrate-reset": "prisma migrate reset",
    }
    (package / "package.json").write_text(
        json.dumps({"name": "@documenso/prisma", "scripts": scripts}), encoding="utf-8"
    )
    for command, expected in [
        (
            "npm run prisma:migrate-dev",
            [GuardedCommand(DEV, ("migrate", "dev", "--skip-seed"), "prisma:migrate-dev")],
        ),
        (
            "npm run prisma:migrate-reset",
            [GuardedCommand(RESET, ("migrate", "reset"), "prisma:migrate-reset")],
        ),
        ("npm run prisma:generate", []),
    ]:
        assert guarded_commands(shlex.split(command), tmp_path, tmp_path) == expected, command


def test_workspace_packages_are_reread_when_they_change(tmp_path: Path) -> None:
    root = {"name": "root", "workspaces": ["packages/*"], "scripts": {"db": "npm run db -w @x/db"}}
    (tmp_path / "package.json").write_text(json.dumps(root), encoding="utf-8")
    assert guarded_commands(["npm", "run", "db"], tmp_path, tmp_path) == []
    package = tmp_path / "packages" / "db"
    package.mkdir(parents=True)  # a new workspace package appears
    manifest = package / "package.json"
    manifest.write_text(
        json.dumps({"name": "@x/db", "scripts": {"db": "prisma migrate dev"}}), encoding="utf-8"
    )
    assert [c.action for c in guarded_commands(["npm", "run", "db"], tmp_path, tmp_path)] == [DEV]
    manifest.write_text(
        json.dumps({"name": "@x/db", "scripts": {"db": "prisma migrate reset"}}), encoding="utf-8"
    )
    os.utime(manifest, ns=(manifest.stat().st_atime_ns, manifest.stat().st_mtime_ns + 1_000_000))
    assert [c.action for c in guarded_commands(["npm", "run", "db"], tmp_path, tmp_path)] == [RESET]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["guard"], "migwatch guard: give the command to run after --: migwatch guard -- npx prisma …"),
        (["guard", "--"], "migwatch guard: give the command to run after --: migwatch guard -- npx prisma …"),
        (
            ["guard", "--hook", "claude-code", "--", "ls"],
            "migwatch guard: --hook reads the command from the agent's payload on stdin",
        ),
        (
            ["guard", "--hook", "cursor"],
            "migwatch guard: argument --hook: invalid choice: 'cursor' (choose from 'claude-code', 'gemini-cli')",
        ),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(argv, out=out, err=err) == 2
    assert (out.getvalue(), err.getvalue()) == ("", message + "\n")
