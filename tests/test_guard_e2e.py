"""`migwatch guard` end to end: real git worktrees, a real PostgreSQL database in the seed's state.

The seed: main and epic-5 share the database with epic-3; epic-5 applied its migration (main and epic-3
are behind; epic-3 also has an unapplied one, so it is diverged); epic-5 is in sync. Commands that
guard lets through are exec'd for real in a child process: stub runners on PATH record their argv and
exit with a chosen code, which must come back as guard's own exit code. Refusals and hook answers run
in-process (they never exec).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from migwatch.cli import main
from migwatch.guard import setup_lines
from tests.support.gitrepo import SEED_BEHAVIORAL, SEED_VECTOR_INDEXES, PrismaRepo, seed_migrations
from tests.support.pg import PgDatabase
from tests.support.prisma_rows import apply_like_prisma, create_history_table

RUNNERS = ("npx", "pnpm", "pnpx", "yarn", "bunx", "bun", "npm", "prisma")
STUB = '#!/bin/sh\nprintf "%s\\n" "$(basename "$0")" "$@" > "$STUB_RECORD"\nexit "${STUB_EXIT:-0}"\n'
MAIN = "Americano (main)"
EPIC3 = "Americano-epic3 (feature/epic-3-knowledge-graph)"
EPIC5 = "Americano-epic5 (feature/epic-5-behavioral-twin)"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (?P<level>[A-Z]+) (?P<message>GUARD .*)$")


class Seed:
    """The seed story's repository and database, a config with a log file, stub runners on PATH."""

    def __init__(self, tmp_path: Path, database: PgDatabase) -> None:
        self.repo = PrismaRepo.seed_story(tmp_path, "postgresql", database_url=database.url)
        self.database = database
        self.log = tmp_path / "migwatch.log"
        self.config = tmp_path / "config.yaml"
        self.config.write_text(
            f"projects:\n  - repo: {self.repo.main}\nlog:\n  file: {self.log}\n  level: info\n",
            encoding="utf-8",
        )
        with closing(database.connect()) as conn:
            create_history_table(conn, "postgresql")
            for name in sorted(
                p.name for p in self.repo.migrations_path(self.repo.main).iterdir() if p.is_dir()
            ):
                apply_like_prisma(
                    conn, self.repo.migrations_path(self.repo.main) / name, provider="postgresql"
                )
            sql = seed_migrations("postgresql")
            self.repo.write_migration(self.repo.epic5, SEED_BEHAVIORAL, sql[SEED_BEHAVIORAL])
            self.repo.commit(self.repo.epic5, "Story 5.1: behavioral pattern models")
            apply_like_prisma(
                conn, self.repo.migrations_path(self.repo.epic5) / SEED_BEHAVIORAL, provider="postgresql"
            )
            self.repo.write_migration(self.repo.epic3, SEED_VECTOR_INDEXES, sql[SEED_VECTOR_INDEXES])
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for runner in RUNNERS:
            (self.bin / runner).write_text(STUB, encoding="utf-8")
            (self.bin / runner).chmod(0o755)
        self.record = tmp_path / "argv.txt"

    @property
    def db_id(self) -> str:
        """The database as migwatch shows it (no password)."""
        return self.database.url.replace(":secret@", "@")

    def package(self, worktree: Path) -> Path:
        return self.repo.package_path(worktree)

    def run(self, worktree: Path, *argv: str, exit_code: int = 0) -> subprocess.CompletedProcess[str]:
        """`migwatch guard …` as a person runs it, in the worktree's package folder (a real exec)."""
        env = dict(
            os.environ,
            PATH=f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            MIGWATCH_CONFIG=str(self.config),
            STUB_RECORD=str(self.record),
            STUB_EXIT=str(exit_code),
        )
        self.record.unlink(missing_ok=True)
        return subprocess.run(
            [sys.executable, "-m", "migwatch", "guard", *argv],
            cwd=self.package(worktree),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def recorded(self) -> list[str]:
        return self.record.read_text(encoding="utf-8").splitlines()

    def log_lines(self) -> list[tuple[str, str]]:
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        matched = [LOG_LINE.match(line) for line in lines]
        assert all(matched), lines
        return [(m["level"], m["message"]) for m in matched if m]


@pytest.fixture
def seed(
    tmp_path: Path, git_env: dict[str, str], pg_database: PgDatabase, monkeypatch: pytest.MonkeyPatch
) -> Seed:
    built = Seed(tmp_path, pg_database)
    monkeypatch.setenv("MIGWATCH_CONFIG", str(built.config))
    return built


def guard_here(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], folder: Path, *argv: str
) -> tuple[int, str]:
    """`migwatch guard …` in-process in `folder` (for refusals: nothing is exec'd); (exit code, stderr)."""
    monkeypatch.chdir(folder)
    capsys.readouterr()
    code = main(["guard", *argv])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


def test_migrate_dev_is_refused_in_the_behind_worktree(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = seed.repo
    code, err = guard_here(
        monkeypatch, capsys, seed.package(repo.epic3), "--", "npx", "prisma", "migrate", "dev"
    )
    assert code == 1
    lines = err.splitlines()
    assert lines[:3] == [
        f"migwatch guard: refused `npx prisma migrate dev` in {EPIC3}.",
        f"What would happen: Prisma would find that the database has 1 migration this worktree lacks ({SEED_BEHAVIORAL}), "
        f"and offer to reset {seed.db_id}: every table dropped, all data lost.",
        f"Who would lose it: the worktrees sharing that database: {MAIN}, {EPIC5}.",
    ]
    assert lines[3] == "Instead, first:"
    assert lines[4] == f"  git -C {repo.epic3} merge feature/epic-5-behavioral-twin"
    assert lines[-2:] == [
        "  then run the command again.",
        "To run it anyway (logged): migwatch guard --force -- npx prisma migrate dev",
    ]
    assert "secret" not in err
    assert seed.log_lines() == [
        (
            "WARNING",
            f'GUARD refuse worktree="{EPIC3}" command="npx prisma migrate dev" reason=behind '
            f'database="{seed.db_id}" '
            f'shared_with="{MAIN}, {EPIC5}"',
        )
    ]


def test_the_printed_fix_makes_migrate_dev_run(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = seed.repo
    # main is behind epic-5's migration: refused; its first fix line, executed verbatim, brings the
    # folder, and then `migrate dev` has nothing to reset: guard lets it run.
    code, err = guard_here(
        monkeypatch, capsys, seed.package(repo.main), "--", "npx", "prisma", "migrate", "dev"
    )
    assert code == 1
    fix = next(line.strip() for line in err.splitlines() if line.startswith("  git -C"))
    assert fix == f"git -C {repo.main} merge feature/epic-5-behavioral-twin"
    subprocess.run(fix, shell=True, check=True, capture_output=True, env=repo.env)
    result = seed.run(repo.main, "--", "npx", "prisma", "migrate", "dev", exit_code=0)
    assert (result.returncode, result.stderr) == (0, "")
    assert seed.recorded() == ["npx", "prisma", "migrate", "dev"]


def test_migrate_dev_runs_when_in_sync_and_the_exit_code_passes_through(seed: Seed) -> None:
    result = seed.run(
        seed.repo.epic5, "--", "npx", "prisma", "migrate", "dev", "--name", "add user", exit_code=42
    )
    assert (result.returncode, result.stdout, result.stderr) == (42, "", "")
    assert seed.recorded() == ["npx", "prisma", "migrate", "dev", "--name", "add user"]
    assert seed.log_lines() == [
        (
            "INFO",
            f'GUARD run worktree="{EPIC5}" command="npx prisma migrate dev --name \'add user\'" reason="in sync" '
            f'database="{seed.db_id}" shared_with="{MAIN}, {EPIC3}"',
        )
    ]


def test_unguarded_commands_run_at_once(seed: Seed) -> None:
    result = seed.run(seed.repo.epic3, "npx", "prisma", "generate", exit_code=3)
    assert (result.returncode, result.stderr) == (3, "")
    assert seed.recorded() == ["npx", "prisma", "generate"]
    assert not seed.log.exists()  # not a guarded command: no config read, nothing logged
    missing = seed.run(seed.repo.epic3, "--", "no-such-program-here", "x")
    assert (missing.returncode, missing.stderr) == (
        127,
        "migwatch guard: no-such-program-here: command not found\n",
    )


@pytest.mark.parametrize(
    "argv",
    [
        "npx prisma migrate reset --force",
        "npx prisma@6.19.3 migrate reset",
        "pnpm prisma migrate reset",
        "pnpm exec prisma migrate reset --force",
        "pnpm dlx prisma migrate reset",
        "yarn prisma migrate reset",
        "bunx prisma migrate reset",
        "npm exec -- prisma migrate reset --force",
        "prisma migrate reset",
        "node_modules/.bin/prisma migrate reset --force",
    ],
)
def test_migrate_reset_on_the_shared_database_is_refused_with_every_runner(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: str
) -> None:
    code, err = guard_here(monkeypatch, capsys, seed.package(seed.repo.epic5), "--", *argv.split())
    assert code == 1
    assert err.splitlines()[0] == f"migwatch guard: refused `{argv}` in {EPIC5}."
    assert err.splitlines()[2] == f"Who would lose it: the worktrees sharing that database: {MAIN}, {EPIC3}."


def test_migrate_reset_on_a_private_database_runs(seed: Seed, pg_server: object) -> None:
    private = seed.database.server.create_database()
    seed.repo.write_env(seed.repo.epic3, f'DATABASE_URL="{seed.database.server.url(private)}"\n')
    result = seed.run(seed.repo.epic3, "--", "npx", "prisma", "migrate", "reset", "--force", exit_code=5)
    assert (result.returncode, result.stderr) == (5, "")
    assert seed.recorded() == ["npx", "prisma", "migrate", "reset", "--force"]
    assert seed.log_lines()[-1][1].startswith(
        f'GUARD run worktree="{EPIC3}" command="npx prisma migrate reset --force" reason="private database"'
    )


def test_force_runs_a_refused_command_and_logs_it(seed: Seed) -> None:
    result = seed.run(
        seed.repo.epic5, "--force", "--", "npx", "prisma", "migrate", "reset", "--force", exit_code=9
    )
    assert result.returncode == 9
    assert result.stderr == (
        "migwatch guard: --force: running `npx prisma migrate reset --force` although guard refuses it (logged)\n"
    )
    assert seed.recorded() == ["npx", "prisma", "migrate", "reset", "--force"]
    level, message = seed.log_lines()[-1]
    assert (level, message.split(" reason=")[0]) == (
        "WARNING",
        f'GUARD force worktree="{EPIC5}" command="npx prisma migrate reset --force"',
    )


def test_db_push(seed: Seed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = guard_here(
        monkeypatch,
        capsys,
        seed.package(seed.repo.epic5),
        "--",
        "npx",
        "prisma",
        "db",
        "push",
        "--accept-data-loss",
    )
    assert (code, err.splitlines()[0]) == (
        1,
        f"migwatch guard: refused `npx prisma db push --accept-data-loss` in {EPIC5}.",
    )
    result = seed.run(seed.repo.epic5, "--", "npx", "prisma", "db", "push", exit_code=0)
    assert result.returncode == 0
    assert result.stderr.startswith("migwatch guard: warning: `npx prisma db push` changes ")
    assert seed.recorded() == ["npx", "prisma", "db", "push"]


def test_npm_run_script(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = seed.package(seed.repo.epic5)
    manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
    manifest["scripts"] = {
        "db:reset": "dotenv -e ../../.env -- prisma migrate reset --force && prisma db seed",
        "db:migrate": "prisma migrate dev",
        "build": "next build",
    }
    (package / "package.json").write_text(json.dumps(manifest), encoding="utf-8")
    for argv in (
        ["npm", "run", "db:reset"],
        ["pnpm", "db:reset"],
        ["yarn", "run", "db:reset"],
        ["bun", "run", "db:reset"],
    ):
        code, err = guard_here(monkeypatch, capsys, package, "--", *argv)
        assert (code, err.splitlines()[0]) == (
            1,
            f"migwatch guard: refused `{' '.join(argv)}` (the script `db:reset` runs "
            f"`prisma migrate reset --force`) in {EPIC5}.",
        )
    result = seed.run(seed.repo.epic5, "--", "npm", "run", "db:migrate", exit_code=4)  # in sync: runs
    assert (result.returncode, seed.recorded()) == (4, ["npm", "run", "db:migrate"])
    result = seed.run(seed.repo.epic5, "--", "npm", "run", "build")
    assert (result.returncode, seed.recorded()) == (0, ["npm", "run", "build"])


# ---------------------------------------------------------------------------------------- agent hooks


def hook(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], agent: str, payload: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(payload))
    out = io.StringIO()
    capsys.readouterr()
    code = main(["guard", "--hook", agent], out=out)
    return code, out.getvalue(), capsys.readouterr().err


def claude_payload(cwd: Path, command: str) -> str:
    return json.dumps(
        {
            "session_id": "abc123",
            "transcript_path": str(cwd / "t.jsonl"),
            "cwd": str(cwd),
            "permission_mode": "default",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": command, "description": "run it", "timeout": 120000},
            "tool_use_id": "toolu_01ABC123",
        }
    )


def gemini_payload(cwd: Path, command: str, directory: str | None = None) -> str:
    tool_input = {"command": command, "description": "run it"}
    if directory is not None:
        tool_input["directory"] = directory
    return json.dumps(
        {
            "session_id": "abc123",
            "transcript_path": str(cwd / "t.json"),
            "cwd": str(cwd),
            "hook_event_name": "BeforeTool",
            "timestamp": "2026-11-29T10:30:00Z",
            "tool_name": "run_shell_command",
            "tool_input": tool_input,
        }
    )


def test_claude_code_hook(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = seed.repo
    code, out, err = hook(
        monkeypatch,
        capsys,
        "claude-code",
        claude_payload(repo.epic3, "cd apps/web && npx prisma migrate dev"),
    )
    assert (code, err) == (0, "")
    decision = json.loads(out)["hookSpecificOutput"]
    assert (decision["hookEventName"], decision["permissionDecision"]) == ("PreToolUse", "deny")
    reason = decision["permissionDecisionReason"].splitlines()
    assert reason[0] == f"migwatch guard: refused `npx prisma migrate dev` in {EPIC3}."
    assert reason[-1] == "Do not work around this refusal: tell the user what it says and ask how to go on."
    assert not any("--force" in line for line in reason)
    assert seed.log_lines()[-1][1].endswith("agent=claude-code")
    # allowed: in sync, and commands guard does not look at
    for cwd, command in [
        (seed.package(repo.epic5), "npx prisma migrate dev"),
        (repo.epic3, "git status && npm test"),
    ]:
        assert hook(monkeypatch, capsys, "claude-code", claude_payload(cwd, command)) == (0, "", "")
    code, out, err = hook(
        monkeypatch, capsys, "claude-code", claude_payload(seed.package(repo.epic5), "npx prisma db push")
    )
    assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "ask"


def test_gemini_cli_hook(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = seed.repo
    code, out, err = hook(
        monkeypatch,
        capsys,
        "gemini-cli",
        gemini_payload(repo.epic5, "pnpm prisma migrate reset --force", "apps/web"),
    )
    assert (code, err) == (0, "")
    answer = json.loads(out)
    assert answer["decision"] == "deny"
    assert (
        answer["reason"].splitlines()[0]
        == f"migwatch guard: refused `pnpm prisma migrate reset --force` in {EPIC5}."
    )
    assert answer["systemMessage"] == answer["reason"].splitlines()[0]
    assert hook(monkeypatch, capsys, "gemini-cli", gemini_payload(repo.epic5, "ls -la")) == (0, "{}\n", "")


@pytest.mark.parametrize("agent", ["claude-code", "gemini-cli"])
@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("not json at all", "not JSON (Expecting value: line 1 column 1 (char 0))"),
        ('{"tool_name": "Bash"}', 'no absolute "cwd"'),
        ("", "not JSON (Expecting value: line 1 column 1 (char 0))"),
    ],
)
def test_malformed_hook_payload_is_allowed_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    agent: str,
    payload: str,
    problem: str,
) -> None:
    code, out, err = hook(monkeypatch, capsys, agent, payload)
    assert (code, out) == (0, "" if agent == "claude-code" else "{}\n")
    assert err == f"migwatch guard --hook {agent}: unreadable hook payload: {problem}; allowing the command\n"


def test_the_printed_alias_and_hooks_work(seed: Seed) -> None:
    """What `migwatch init` prints, used verbatim: the alias in bash, each hook command with its payload."""
    lines = setup_lines(f"migwatch --config {seed.config}", ["npx", "pnpm"])
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{seed.bin}{os.pathsep}{os.environ['PATH']}",
    )
    env.update(STUB_RECORD=str(seed.record), STUB_EXIT="0")
    alias = next(line.strip() for line in lines if line.strip().startswith("alias npx="))
    script = f"shopt -s expand_aliases\n{alias}\nnpx prisma migrate reset --force\n"
    shell = subprocess.run(
        ["bash", "-c", script],
        cwd=seed.package(seed.repo.epic5),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 1
    assert (
        shell.stderr.splitlines()[0]
        == f"migwatch guard: refused `npx prisma migrate reset --force` in {EPIC5}."
    )
    snippets = [json.loads(line) for line in lines if line.strip().startswith("{")]
    payloads = [
        claude_payload(seed.repo.epic5, "npx prisma migrate reset"),
        gemini_payload(seed.repo.epic5, "npx prisma migrate reset"),
    ]
    for snippet, payload in zip(snippets, payloads, strict=True):
        (event,) = snippet["hooks"].values()
        command = event[0]["hooks"][0]["command"]
        ran = subprocess.run(
            command, shell=True, input=payload, env=env, capture_output=True, text=True, timeout=60
        )
        assert (ran.returncode, ran.stderr) == (0, "")
        assert "deny" in json.dumps(json.loads(ran.stdout))
