"""`migwatch init`: real git repositories and worktrees in tmp_path; the written config is then used,
unchanged, by the real `check-config` and `status` (SQLite files and the test PostgreSQL cluster)."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from migwatch.cli import main
from migwatch.initcmd import InitError, init_command
from tests.support.gitrepo import SEED_EPIC3, SEED_EPIC5, PrismaRepo
from tests.support.pg import PgServer

NO_SCHEMA = (
    'no Prisma schema found in {repo} (looked for prisma.config.ts, package.json "prisma.schema", '
    "prisma/schema.prisma, and **/prisma/schema.prisma)"
)
REFUSED = "{config} already exists; use --force to overwrite it or --print to see the new one"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def migwatch(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Runs `migwatch ARGV…` through `cli.main`; stderr is the process's (init's summary goes there too)."""

    def run(*argv: str | Path) -> Run:
        capsys.readouterr()
        out = io.StringIO()
        code = main([str(arg) for arg in argv], out=out)
        return Run(code, out.getvalue(), capsys.readouterr().err)

    return run


@pytest.fixture(autouse=True)
def _environment(git_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A DATABASE_URL of the machine would win over every worktree's .env.
    for name in ("DATABASE_URL", "MIGWATCH_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Where the tests write the config: a folder that does not exist yet."""
    return tmp_path / "config" / "migwatch" / "config.yaml"


def project_of(config: Path) -> dict[str, Any]:
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert len(document["projects"]) == 1
    project: dict[str, Any] = document["projects"][0]
    return project


def assert_usable(migwatch: Callable[..., Run], config: Path, worktrees: list[Path]) -> dict[str, Any]:
    """check-config accepts the config and status --json uses it as is, listing every worktree."""
    checked = migwatch("--config", config, "check-config")
    assert (checked.code, checked.out, checked.err) == (0, f"{config}: ok (1 project)\n", "")
    status = migwatch("--config", config, "status", "--json")
    assert status.code in (0, 1), status.err
    assert status.err == ""
    document: dict[str, Any] = json.loads(status.out)
    (project,) = document["projects"]
    assert sorted(w["path"] for w in project["worktrees"]) == sorted(str(w) for w in worktrees)
    return document


def next_steps(config: Path) -> str:
    return (
        "\nNext:\n"
        f"  check every worktree now:{' ' * 22}migwatch --config {config} status\n"
        f"  watch in the background, with desktop alerts:  migwatch --config {config} service install\n"
        + guard_lines(f"migwatch --config {config}")
    )


def guard_lines(migwatch: str) -> str:
    """The aliases and agent hooks `init` prints (npm: the manager when there is no lockfile)."""
    claude = (
        '{"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": '
        f'"{migwatch} guard --hook claude-code"}}]}}]}}}}'
    )
    gemini = (
        '{"hooks": {"BeforeTool": [{"matcher": "run_shell_command", "hooks": [{"type": "command", "command": '
        f'"{migwatch} guard --hook gemini-cli"}}]}}]}}}}'
    )
    return (
        "\nGuard the shared database (refuses `prisma migrate reset` on it, and `prisma migrate dev` in a worktree\n"
        "that is behind, diverged, edited or failed; everything else runs at once):\n"
        "  for people, in ~/.bashrc or ~/.zshrc:\n"
        f"    alias npx='{migwatch} guard -- npx'\n"
        f"    alias npm='{migwatch} guard -- npm'\n"
        "  for Claude Code, merged into .claude/settings.json:\n"
        f"    {claude}\n"
        "  for Gemini CLI, merged into .gemini/settings.json:\n"
        f"    {gemini}\n"
    )


# --- layouts ------------------------------------------------------------------------------------------


def test_single_repository_with_the_plain_layout(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.create(tmp_path, package_dir="", provider="sqlite")
    repo.write_env(repo.main, 'DATABASE_URL="file:./dev.db"\n')

    run = migwatch("--config", config, "init", repo.main)

    assert run.code == 0
    assert run.err == ""
    assert run.out == (
        f"Repository: {repo.main} (1 worktree)\n"
        "\n"
        "Worktrees:\n"
        f"  Americano (main)  {repo.main}\n"
        "    Prisma:     6.19.3\n"
        "    schema:     prisma/schema.prisma\n"
        "    migrations: prisma/migrations (0 migrations)\n"
        f"    database:   file:{repo.main}/prisma/dev.db\n"
        f'    read from:  url = env("DATABASE_URL") of schema.prisma, DATABASE_URL from {repo.main / ".env"}\n'
        "\n"
        "Databases:\n"
        f"  file:{repo.main}/prisma/dev.db  (sqlite; used by Americano)\n"
        "\n"
        f"Wrote {config}: project Americano, repo {repo.main}, base_branch main.\n" + next_steps(config)
    )
    assert project_of(config) == {"name": "Americano", "repo": str(repo.main), "base_branch": "main"}
    document = assert_usable(migwatch, config, [repo.main])
    assert document["projects"][0]["worktrees"][0]["schema"] == "prisma/schema.prisma"
    # init writes the config file and nothing else: the database is not created, the folder stays clean.
    assert not (repo.main / "prisma" / "dev.db").exists()
    assert repo.git(repo.main, "status", "--porcelain", "--ignored") == "!! .env"
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.yaml"]


def test_monorepo_seed_story_shares_nothing_but_finds_every_worktree(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite", database_url="file:./dev.db")
    worktrees = [repo.main, repo.epic3, repo.epic5]

    run = migwatch("--config", config, "init", repo.main)

    assert (run.code, run.err) == (0, "")
    lines = run.out.splitlines()
    assert lines[0] == f"Repository: {repo.main} (3 worktrees)"
    for worktree, label in (
        (repo.main, "Americano (main)"),
        (repo.epic3, f"{SEED_EPIC3[0]} ({SEED_EPIC3[1]})"),
        (repo.epic5, f"{SEED_EPIC5[0]} ({SEED_EPIC5[1]})"),
    ):
        at = lines.index(f"  {label}  {worktree}")
        assert lines[at + 1 : at + 5] == [
            "    Prisma:     6.19.3",
            "    schema:     apps/web/prisma/schema.prisma",
            "    migrations: apps/web/prisma/migrations (3 migrations)",
            f"    database:   file:{worktree}/apps/web/prisma/dev.db",
        ]
        # `file:./dev.db` is relative to each worktree's schema folder: one database per worktree.
        assert f"  file:{worktree}/apps/web/prisma/dev.db  (sqlite; used by {worktree.name})" in lines
    # Every worktree finds apps/web/prisma/schema.prisma by itself, so the config does not pin it.
    assert project_of(config) == {"name": "Americano", "repo": str(repo.main), "base_branch": "main"}
    document = assert_usable(migwatch, config, worktrees)
    assert {w["schema"] for w in document["projects"][0]["worktrees"]} == {"apps/web/prisma/schema.prisma"}


def test_two_sqlite_databases_are_grouped_by_file(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite")
    shared, own = tmp_path / "shared.db", tmp_path / "epic3.db"
    repo.write_env(repo.main, f'DATABASE_URL="file:{shared}"\n')
    repo.write_env(repo.epic5, f'DATABASE_URL="file:{shared}"\n')
    repo.write_env(repo.epic3, f'DATABASE_URL="file:{own}"\n')

    run = migwatch("--config", config, "init", repo.epic5)

    assert run.code == 0
    databases = run.out.split("\nDatabases:\n", 1)[1].split("\n\n", 1)[0]
    assert databases == (
        f"  file:{shared}  (sqlite; shared by 2 worktrees: Americano, {SEED_EPIC5[0]})\n"
        f"  file:{own}  (sqlite; used by {SEED_EPIC3[0]})"
    )
    document = assert_usable(migwatch, config, [repo.main, repo.epic3, repo.epic5])
    assert sorted(d["id"] for d in document["projects"][0]["databases"]) == sorted(
        [f"file:{shared}", f"file:{own}"]
    )


def test_two_postgresql_databases_with_passwords_never_shown(
    tmp_path: Path, config: Path, pg_server: PgServer, pg_url: str, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "postgresql", database_url=pg_url)
    other_url = pg_server.url(pg_server.create_database())
    repo.write_env(repo.epic3, f'DATABASE_URL="{other_url}"\n')
    assert ":secret@" in pg_url and ":secret@" in other_url
    shown = pg_url.replace(":secret@", ":***@")
    shown_other = other_url.replace(":secret@", ":***@")

    run = migwatch("--config", config, "init", repo.main)

    assert (run.code, run.err) == (0, "")
    assert "secret" not in run.out
    assert f"    database:   {shown}" in run.out.splitlines()
    assert f"    database:   {shown_other}" in run.out.splitlines()
    databases = run.out.split("\nDatabases:\n", 1)[1].split("\n\n", 1)[0]
    assert databases == (
        f"  {shown}  (postgresql; shared by 2 worktrees: Americano, {SEED_EPIC5[0]})\n"
        f"  {shown_other}  (postgresql; used by {SEED_EPIC3[0]})"
    )
    assert "secret" not in config.read_text(encoding="utf-8")
    document = assert_usable(migwatch, config, [repo.main, repo.epic3, repo.epic5])
    assert len(document["projects"][0]["databases"]) == 2
    assert all(d["reachable"] for d in document["projects"][0]["databases"])


def test_printout_redacts_a_password_in_any_url_shape(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    # A PostgreSQL URL under a sqlite datasource becomes a mangled "file path": still no password.
    repo = PrismaRepo.create(tmp_path, package_dir="", provider="sqlite")
    repo.write_env(repo.main, 'DATABASE_URL="postgresql://kyin:hunter2@db.internal:5432/americano"\n')

    run = migwatch("--config", config, "init", "--print", repo.main)

    assert run.code == 0
    assert "hunter2" not in run.out + run.err
    assert "kyin:***@db.internal" in run.err


def test_no_env_file_reports_the_missing_url_and_still_writes_the_config(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite")

    run = migwatch("--config", config, "init", repo.main)

    assert (run.code, run.err) == (0, "")
    lines = run.out.splitlines()
    problems = [line for line in lines if line.startswith("    problem:    ")]
    assert problems == [
        f"    problem:    DATABASE_URL is not set (looked in: the environment, {tree / 'apps/web/.env'} (missing);"
        ' url = env("DATABASE_URL") of schema.prisma reads it)'
        for tree in (repo.main, repo.epic3, repo.epic5)
    ]
    assert "  none found: no worktree has a database URL (see the problems above)" in lines
    assert (
        "  set the missing variables above in one of the files named there (or list the env file that"
        " sets them under env_files in the config, or set database_url there); until then `status`"
        " shows those worktrees as unknown"
    ) in lines
    assert project_of(config) == {"name": "Americano", "repo": str(repo.main), "base_branch": "main"}
    document = assert_usable(migwatch, config, [repo.main, repo.epic3, repo.epic5])
    assert {w["state"] for w in document["projects"][0]["worktrees"]} == {"unknown"}


def test_ambiguous_schema_is_pinned_when_the_other_worktrees_agree(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite", database_url="file:./dev.db")
    # An untracked second Prisma package in epic-3 only: that worktree alone cannot choose.
    legacy = repo.epic3 / "packages" / "legacy" / "prisma"
    legacy.mkdir(parents=True)
    (legacy / "schema.prisma").write_text((repo.schema_path(repo.epic3)).read_text(encoding="utf-8"))

    run = migwatch("--config", config, "init", repo.main)

    assert run.code == 0
    assert project_of(config) == {
        "name": "Americano",
        "repo": str(repo.main),
        "schema": "apps/web/prisma/schema.prisma",
        "base_branch": "main",
    }
    assert "schema apps/web/prisma/schema.prisma." in run.out
    assert "problem:" not in run.out
    document = assert_usable(migwatch, config, [repo.main, repo.epic3, repo.epic5])
    assert {w["schema"] for w in document["projects"][0]["worktrees"]} == {"apps/web/prisma/schema.prisma"}


def test_base_branch_master_and_none(tmp_path: Path, config: Path) -> None:
    repo = PrismaRepo.create(tmp_path, package_dir="", provider="sqlite")
    repo.git(repo.main, "branch", "-m", "main", "master")
    assert init_command(repo.main, config, force=False, print_only=False, out=io.StringIO()) == 0
    assert project_of(config)["base_branch"] == "master"
    repo.git(repo.main, "branch", "-m", "master", "trunk")
    assert init_command(repo.main, config, force=True, print_only=False, out=io.StringIO()) == 0
    assert "base_branch" not in project_of(config)


# --- finding the repository ---------------------------------------------------------------------------


def test_from_a_subfolder_of_a_worktree_finds_the_same_repository(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite", database_url="file:./dev.db")
    from_main = tmp_path / "from-main.yaml"
    assert migwatch("--config", from_main, "init", repo.main).code == 0

    run = migwatch("--config", config, "init", repo.epic3 / "apps" / "web" / "prisma" / "migrations")

    assert run.code == 0
    assert run.out.splitlines()[0] == f"Repository: {repo.main} (3 worktrees)"
    assert config.read_text(encoding="utf-8") == from_main.read_text(encoding="utf-8")
    assert_usable(migwatch, config, [repo.main, repo.epic3, repo.epic5])


def test_a_pruned_worktree_is_listed_as_skipped(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite", database_url="file:./dev.db")
    gone = repo.add_worktree("Americano-tmp", "tmp")
    shutil.rmtree(gone)

    run = migwatch("--config", config, "init", repo.main)

    assert run.code == 0
    assert run.out.splitlines()[0] == f"Repository: {repo.main} (3 worktrees)"
    assert (
        f"  {gone}  skipped (prunable: gitdir file points to non-existent location)" in run.out.splitlines()
    )


def test_outside_a_git_repository(tmp_path: Path, config: Path, migwatch: Callable[..., Run]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InitError) as raised:
        init_command(plain, config, force=False, print_only=False, out=io.StringIO())
    assert str(raised.value) == f"{plain} is not inside a git repository"

    run = migwatch("--config", config, "init", plain)
    assert (run.code, run.out, run.err) == (2, "", f"{plain} is not inside a git repository\n")
    assert not config.parent.exists()


def test_a_repository_without_a_prisma_schema(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.create(tmp_path, package_dir="", provider="sqlite")
    (repo.main / "prisma" / "schema.prisma").unlink()
    message = NO_SCHEMA.format(repo=repo.main)
    with pytest.raises(InitError) as raised:
        init_command(repo.main, config, force=False, print_only=False, out=io.StringIO())
    assert str(raised.value) == message

    run = migwatch("--config", config, "init", repo.main)
    assert (run.code, run.out, run.err) == (2, "", message + "\n")
    assert not config.parent.exists()


# --- writing --------------------------------------------------------------------------------------------


def test_refuses_to_overwrite_without_force(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite", database_url="file:./dev.db")
    config.parent.mkdir(parents=True)
    config.write_text("projects: []\n", encoding="utf-8")
    message = REFUSED.format(config=config)

    with pytest.raises(InitError) as raised:
        init_command(repo.main, config, force=False, print_only=False, out=io.StringIO())
    assert str(raised.value) == message

    run = migwatch("--config", config, "init", repo.main)
    assert (run.code, run.out, run.err) == (2, "", message + "\n")
    assert config.read_text(encoding="utf-8") == "projects: []\n"


def test_force_overwrites(tmp_path: Path, config: Path, migwatch: Callable[..., Run]) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite", database_url="file:./dev.db")
    assert migwatch("--config", config, "init", repo.main).code == 0
    first = config.read_text(encoding="utf-8")
    config.write_text(first.replace("name: Americano", "name: edited"), encoding="utf-8")

    run = migwatch("--config", config, "init", "--force", repo.epic5)

    assert (run.code, run.err) == (0, "")
    assert config.read_text(encoding="utf-8") == first
    assert f"{config} already watches this repository (project edited)." in run.out.splitlines()
    assert (
        f"Overwrote {config}: project Americano, repo {repo.main}, base_branch main." in run.out.splitlines()
    )
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.yaml"]


def test_print_writes_the_yaml_to_stdout_and_no_file(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite", database_url="file:./dev.db")

    run = migwatch("--config", config, "init", "--print", repo.epic3)

    assert run.code == 0
    assert not config.parent.exists()
    assert run.out.startswith("# migwatch configuration, written by `migwatch init`.\n")
    document = yaml.safe_load(run.out)
    assert document["projects"] == [{"name": "Americano", "repo": str(repo.main), "base_branch": "main"}]
    # The summary goes to stderr, so `migwatch init --print > config.yaml` gives a clean file.
    assert run.err.startswith(f"Repository: {repo.main} (3 worktrees)\n")
    assert f"Printed the config to stdout; nothing was written (the config file is {config})." in run.err
    assert f"  write this config:{' ' * 29}migwatch --config {config} init {repo.main}\n" in run.err

    # Printing never needs --force, and what it prints is what init would write.
    assert migwatch("--config", config, "init", repo.main).code == 0
    again = migwatch("--config", config, "init", "--print", repo.main)
    assert again.code == 0
    assert again.out == config.read_text(encoding="utf-8") == run.out
    assert f"migwatch --config {config} init --force {repo.main}\n" in again.err


def test_init_writes_env_files_when_an_env_file_of_the_repository_sets_the_variable(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    # The URL lives in the repository root's .env.development, which nothing the project runs loads
    # (no wrapper script): init finds it, writes env_files, and status reads it in every worktree.
    repo = PrismaRepo.seed_story(tmp_path, "sqlite")
    for tree in (repo.main, repo.epic3, repo.epic5):
        (tree / ".env.development").write_text('DATABASE_URL="file:./dev.db"\n', encoding="utf-8")
        (tree / ".env.example").write_text('DATABASE_URL="file:./example.db"\n', encoding="utf-8")

    run = migwatch("--config", config, "init", repo.main)

    assert (run.code, run.err) == (0, "")
    assert project_of(config)["env_files"] == [".env.development"]
    assert (
        f"Wrote {config}: project Americano, repo {repo.main}, base_branch main, env_files .env.development."
        in (run.out.splitlines())
    )
    document = assert_usable(migwatch, config, [repo.main, repo.epic3, repo.epic5])
    for worktree in document["projects"][0]["worktrees"]:
        assert worktree["database"] == f"file:{worktree['path']}/apps/web/prisma/dev.db"
        assert worktree["database_from"] == (
            f'url = env("DATABASE_URL") of schema.prisma, DATABASE_URL from {worktree["path"]}/.env.development'
        )


def test_unchecked_worktrees_show_a_dash_not_zero(
    tmp_path: Path, config: Path, migwatch: Callable[..., Run]
) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite")
    assert migwatch("--config", config, "init", repo.main).code == 0

    status = migwatch("--config", config, "status")

    rows = [
        line.split() for line in status.out.splitlines() if line.startswith(("  Americano ", "  Americano-"))
    ]
    assert [(row[0], row[2], row[3], row[4]) for row in rows] == [
        ("Americano", "unknown", "-", "-"),
        ("Americano-epic3", "unknown", "-", "-"),
        ("Americano-epic5", "unknown", "-", "-"),
    ]
