#!/usr/bin/env python3
"""Shows, with the real tools, where `prisma migrate status` says "up to date" and migwatch does not.

Builds the seed story (a git repo `Americano` with worktrees `Americano-epic3` and `Americano-epic5`, Prisma
6.19.3, one SQLite database) in a temp folder once per case, runs the real Prisma CLI (`prisma-oracle … --
migrate status`, see ../shared/prisma-oracle) and `python -m migwatch --config … status --no-color` in the
same worktree, and prints a Markdown table plus both outputs with their exit codes (for the README section
"migwatch and `prisma migrate status`").

    .venv/bin/python tools/prisma-vs-migwatch.py [--keep] [--real-paths]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.differential.oracle import OracleError, install, migrate_status  # noqa: E402
from tests.support.gitrepo import SEED_BEHAVIORAL, PrismaRepo, seed_migrations  # noqa: E402
from tests.support.prisma_rows import RowState, apply_like_prisma, create_history_table  # noqa: E402

SHOWN_ROOT = "~/Projects"
# Lines the oracle's driver-adapter set-up adds to Prisma's output; a plain `npx prisma` does not print them.
ADAPTER_NOISE = (
    "WARNING: Your schema specifies",
    "- url",
    "The values from your schema",
    "We recommend you to remove",
)


@dataclass(frozen=True)
class Case:
    title: str
    story: str
    prepare: Callable[[PrismaRepo, Path], Path]  # builds the case; returns the worktree to check


@dataclass(frozen=True)
class Run:
    command: str
    exit_code: int
    output: str


def _apply(database: Path, folder: Path, state: RowState = "applied") -> None:
    with closing(sqlite3.connect(database)) as conn:
        apply_like_prisma(conn, folder, provider="sqlite", state=state)


def _seed_applied(repo: PrismaRepo, database: Path) -> None:
    with closing(sqlite3.connect(database)) as conn:
        create_history_table(conn, "sqlite")
    migrations = repo.migrations_path(repo.main)
    for folder in sorted(p for p in migrations.iterdir() if p.is_dir()):
        _apply(database, folder)


def database_only(repo: PrismaRepo, database: Path) -> Path:
    """epic-5 writes, commits and applies a migration; epic-3 does not have it."""
    _seed_applied(repo, database)
    folder = repo.write_migration(repo.epic5, SEED_BEHAVIORAL, seed_migrations("sqlite")[SEED_BEHAVIORAL])
    repo.commit(repo.epic5, "Story 5.1: behavioral pattern models")
    _apply(database, folder)
    return repo.epic3


def edited(repo: PrismaRepo, database: Path) -> Path:
    """An applied migration.sql is edited afterwards in epic-3."""
    _seed_applied(repo, database)
    sql = repo.migrations_path(repo.epic3) / "20251010120000_add_mission" / "migration.sql"
    sql.write_text(
        sql.read_text(encoding="utf-8") + 'ALTER TABLE "Mission" ADD COLUMN "notes" TEXT;\n', "utf-8"
    )
    return repo.epic3


def rolled_back(repo: PrismaRepo, database: Path) -> Path:
    """epic-5's migration failed, was marked `migrate resolve --rolled-back`, and the branch went on without it."""
    _seed_applied(repo, database)
    scratch = repo.main.parent / "abandoned" / SEED_BEHAVIORAL
    scratch.mkdir(parents=True)
    (scratch / "migration.sql").write_text(seed_migrations("sqlite")[SEED_BEHAVIORAL], encoding="utf-8")
    _apply(database, scratch, state="rolled_back")
    return repo.epic3


CASES = (
    Case(
        "Applied migration missing from this worktree",
        "epic-5 applied `20251016231054_add_story_5_1_behavioral_pattern_models`; epic-3 does not have the folder",
        database_only,
    ),
    Case(
        "Applied migration edited afterwards",
        "`20251010120000_add_mission/migration.sql` was edited in epic-3 after it was applied",
        edited,
    ),
    Case(
        "Rolled-back row of a migration this worktree lacks (Prisma ≤ 7.8)",
        "epic-5's migration failed and was resolved `--rolled-back`; Prisma 6.19 still counts the row",
        rolled_back,
    ),
)


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False
    )


def run_case(case: Case, base: Path) -> tuple[Run, Run]:
    root = base / case.prepare.__name__
    database = root / "dev.db"
    root.mkdir()
    repo = PrismaRepo.seed_story(root, "sqlite", database_url=f"file:{database}")
    worktree = case.prepare(repo, database)
    schema = repo.schema_path(worktree)
    prisma = migrate_status(schema, f"file:{database}", cwd=repo.package_path(worktree))
    prisma_out = "\n".join(
        line for line in prisma.stdout.splitlines() if line.strip() and not line.startswith(ADAPTER_NOISE)
    )
    config = root / "migwatch.yaml"
    config.write_text(
        f"projects:\n  - repo: {repo.main}\nlog:\n  file: {root / 'migwatch.log'}\n", encoding="utf-8"
    )
    env = {key: value for key, value in repo.env.items() if key != "DATABASE_URL"}
    argv = ["--config", str(config), "status", "--no-color", "--worktree", str(worktree)]
    migwatch = _run([sys.executable, "-m", "migwatch", *argv], env)
    package = repo.package_path(worktree)
    return (
        Run(f"cd {package} && npx prisma migrate status", prisma.returncode, prisma_out),
        Run(
            "migwatch status --no-color --worktree " + str(worktree),
            migwatch.returncode,
            migwatch.stdout.rstrip(),
        ),
    )


def _first_finding(output: str) -> str:
    for line in output.splitlines():
        for code in ("behind_database", "checksum_mismatch", "pending", "failed"):
            if code in line:
                return code
    return "(none)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument(
        "--real-paths", action="store_true", help=f"do not shorten the temp folder to {SHOWN_ROOT}"
    )
    args = parser.parse_args()
    try:
        install()
    except OracleError as error:
        sys.stderr.write(f"prisma-vs-migwatch: {error}\n")
        return 2
    base = Path(tempfile.mkdtemp(prefix="prisma-vs-migwatch-"))
    try:
        results = [(case, *run_case(case, base)) for case in CASES]
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    def shown(text: str) -> str:
        if args.real_paths:
            return text
        for case in CASES:
            text = text.replace(str(base / case.prepare.__name__), SHOWN_ROOT)
        return text

    out = [
        "| Situation | `prisma migrate status` (6.19.3) | `migwatch status` |",
        "|---|---|---|",
    ]
    for case, prisma, migwatch in results:
        up_to_date = "Database schema is up to date!" in prisma.output
        verdict = '"Database schema is up to date!"' if up_to_date else "reports a problem"
        out.append(
            f"| {case.title} | exit {prisma.exit_code}, {verdict} | exit {migwatch.exit_code}, "
            f"`{_first_finding(migwatch.output)}` |"
        )
    for case, prisma, migwatch in results:
        out += ["", f"### {case.title}", "", case.story + ".", ""]
        for run in (prisma, migwatch):
            out += [
                "```console",
                f"$ {shown(run.command)}",
                shown(run.output),
                f"# exit code {run.exit_code}",
                "```",
            ]
    if not args.real_paths:
        out += ["", f"(The temp folder the cases were built in is shown as `{SHOWN_ROOT}`.)"]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
