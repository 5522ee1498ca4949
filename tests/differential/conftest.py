"""Differential fixtures: a Prisma project per history (one git repo, a Prisma 6.19 worktree and a Prisma 7.10
worktree on the same database), migwatch's real pipeline over it, and the real Prisma engine as the oracle."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from migwatch import diagnose, pipeline
from migwatch.config import ProjectConfig
from migwatch.model import Finding
from tests.differential import histories
from tests.differential.histories import History
from tests.differential.oracle import (
    PACKAGE_VERSIONS,
    PRISMA_LINES,
    OracleCall,
    OracleError,
    PrismaLine,
    install,
)
from tests.support.gitrepo import PrismaRepo, prisma7_config_text, schema_text
from tests.support.pg import PgServer

PROJECT_NAME = "americano"
PRISMA7_WORKTREE = ("Americano-prisma7", "chore/prisma-7")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "differential: compares migwatch's verdicts with the real Prisma engine (prisma-oracle)"
    )


# ------------------------------------------------------------------------------------------ the project


@dataclass
class DiffProject:
    """A Prisma project in git with one worktree per Prisma line, all on one database."""

    repo: PrismaRepo
    provider: str
    url: str  # the shared database (absolute file: URL for SQLite)
    worktrees: dict[PrismaLine, Path]
    env: dict[str, str] = field(repr=False)  # what migwatch runs with: isolated git, no DATABASE_URL

    def schema(self, line: PrismaLine) -> Path:
        return self.repo.schema_path(self.worktrees[line])

    def migrations(self, line: PrismaLine) -> Path:
        return self.repo.migrations_path(self.worktrees[line])

    def oracle_call(self, line: PrismaLine) -> OracleCall:
        return OracleCall(schema=self.schema(line), url=self.url, prisma=line)

    def project_config(self) -> ProjectConfig:
        return ProjectConfig(name=PROJECT_NAME, repo=self.repo.main)

    def snapshot(self) -> diagnose.ProjectSnapshot:
        """migwatch's real read of the project: git worktree list, discovery, folders, history table."""
        options = pipeline.CheckOptions(env=self.env)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="migwatch-read") as pool:
            return pipeline.snapshot_project(self.project_config(), options, pool)

    def verdicts(
        self, snapshot: diagnose.ProjectSnapshot | None = None
    ) -> dict[PrismaLine, diagnose.WorktreeVerdict]:
        """migwatch's verdict per Prisma line's worktree."""
        snapshot = snapshot or self.snapshot()
        by_path = {verdict.snapshot.worktree.path: verdict for verdict in diagnose.analyse(snapshot)}
        return {line: by_path[path] for line, path in self.worktrees.items()}

    def findings(self) -> list[Finding]:
        """migwatch's findings for the whole project (with git evidence), as `status` reports them."""
        snapshot = self.snapshot()
        _, found = pipeline.diagnose_project(snapshot, self.env, datetime.now(timezone.utc))
        return found


def build_project(
    root: Path,
    provider: str,
    url: str,
    *,
    lines: Iterable[PrismaLine] = PRISMA_LINES,
    env: Mapping[str, str] | None = None,
) -> DiffProject:
    """`root/Americano` laid out for Prisma 6.19 (schema `url = env("DATABASE_URL")` + `.env`), and a worktree
    `Americano-prisma7` on `chore/prisma-7` laid out for Prisma 7.10 (`prisma.config.ts` with `datasource.url`
    + dotenv); each worktree's `.env` holds `DATABASE_URL=url`.

    `lines` picks the worktrees to keep in the project (both by default).
    """
    wanted = tuple(lines)
    repo = PrismaRepo.create(root, provider=provider, prisma_version=PACKAGE_VERSIONS["6.19"], env=env)
    worktrees: dict[PrismaLine, Path] = {}
    if "6.19" in wanted:
        worktrees["6.19"] = repo.main
    if "7.10" in wanted:
        prisma7 = repo.add_worktree(*PRISMA7_WORKTREE)
        package = repo.package_path(prisma7)
        manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
        manifest["dependencies"] = {"@prisma/client": PACKAGE_VERSIONS["7.10"], "dotenv": "^16.4.7"}
        manifest["devDependencies"] = {"prisma": PACKAGE_VERSIONS["7.10"]}
        (package / "package.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        repo.schema_path(prisma7).write_text(schema_text(provider, url_env=None), encoding="utf-8")
        (package / "prisma.config.ts").write_text(prisma7_config_text("DATABASE_URL"), encoding="utf-8")
        repo.commit(prisma7, "Upgrade to Prisma 7")
        worktrees["7.10"] = prisma7
    for worktree in worktrees.values():
        repo.write_env(worktree, f'DATABASE_URL="{url}"\n')
    if "6.19" not in wanted:
        # The main checkout stays a Prisma 6 project; keep it out of the comparison by giving it no URL.
        (repo.package_path(repo.main) / ".env").unlink(missing_ok=True)
    migwatch_env = {key: value for key, value in repo.env.items() if key != "DATABASE_URL"}
    return DiffProject(repo=repo, provider=provider, url=url, worktrees=worktrees, env=migwatch_env)


def write_history(project: DiffProject, history: History, scratch: Path, pg: PgServer | None = None) -> None:
    """Write the history's folders into every worktree and its rows into the project's database."""
    for line in project.worktrees:
        histories.write_folder(history, project.migrations(line), scratch / f"elsewhere-{line}")
    if project.provider == "sqlite":
        if history.has_table:
            histories.write_sqlite(history, Path(project.url.removeprefix("file:")), scratch / "applied")
        return
    assert pg is not None, "a PostgreSQL project needs the test server"
    dbname = project.url.rsplit("/", 1)[1].split("?", 1)[0]
    if history.has_table:
        with pg.admin_connect(dbname) as conn:
            histories.write_rows(history, conn, "postgresql", scratch / "applied")


def sqlite_url(root: Path) -> str:
    return f"file:{root / 'dev.db'}"


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def prisma_oracle() -> None:
    """Install the oracle's Prisma packages once per session; fails (never skips) without node/npm."""
    try:
        install()
    except OracleError as error:
        pytest.fail(str(error), pytrace=False)


@dataclass
class Tally:
    """Agreement counts per backend and what Prisma's verdicts contained, for the terminal summary."""

    counts: dict[str, list[int]] = field(default_factory=dict)  # backend → [agreed, checked]
    coverage: dict[str, int] = field(default_factory=dict)  # verdict feature → histories showing it

    def record(self, backend: str, agreed: bool, features: Iterable[str] = ()) -> None:
        entry = self.counts.setdefault(backend, [0, 0])
        entry[0] += int(agreed)
        entry[1] += 1
        for feature in features:
            self.coverage[feature] = self.coverage.get(feature, 0) + 1


_TALLY = pytest.StashKey[Tally]()


@pytest.fixture(scope="session")
def agreement_tally(request: pytest.FixtureRequest) -> Tally:
    """Where test_agreement records each history's outcome (printed by pytest_terminal_summary)."""
    return request.config.stash.setdefault(_TALLY, Tally())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    tally = config.stash.get(_TALLY, None)
    if tally is None or not tally.counts:
        return
    parts = [f"{agreed}/{checked} {backend}" for backend, (agreed, checked) in tally.counts.items()]
    disagreed = any(agreed != checked for agreed, checked in tally.counts.values())
    terminalreporter.write_line(
        f"differential: {' + '.join(parts)} histories agree with Prisma {' and '.join(PRISMA_LINES)}"
        + (" (the others are in the failures above)" if disagreed else "")
    )
    if tally.coverage:
        shown = ", ".join(f"{feature} {count}" for feature, count in sorted(tally.coverage.items()))
        terminalreporter.write_line(f"differential: histories per verdict feature: {shown}")
