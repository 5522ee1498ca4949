"""migwatch agrees with the real Prisma engine (6.19.3 CLI and 7.10.0 engine) on generated histories.

Every history (tests/differential/histories.py, seeded) is written into a real git repository with a Prisma
6.19 worktree and a Prisma 7.10 worktree on one database (SQLite file or PostgreSQL), read by migwatch's real
pipeline, and diagnosed by `prisma-oracle --diagnose` for each line; the two verdicts are compared in Prisma's
terms (oracle.PrismaView). All projects are built first, then the oracle runs over all of them in parallel.

`MIGWATCH_DIFF_SEED` shifts the seeds (default 0) to explore other histories; `MIGWATCH_DIFF_SQLITE` and
`MIGWATCH_DIFF_POSTGRES` set the counts (default 150 and 30).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from migwatch.model import PrismaVersion
from tests.differential.conftest import (
    DiffProject,
    Tally,
    build_project,
    sqlite_url,
    write_history,
)
from tests.differential.histories import History, generate
from tests.differential.oracle import (
    PACKAGE_VERSIONS,
    PRISMA_LINES,
    OracleResult,
    PrismaLine,
    PrismaView,
    migwatch_view,
    oracle_view,
    parallel,
    run_many,
)
from tests.support.pg import PgServer

pytestmark = [pytest.mark.differential, pytest.mark.timeout(1200)]

SEED_BASE = int(os.environ.get("MIGWATCH_DIFF_SEED", "0"))
SQLITE_COUNT = int(os.environ.get("MIGWATCH_DIFF_SQLITE", "150"))
POSTGRES_COUNT = int(os.environ.get("MIGWATCH_DIFF_POSTGRES", "30"))
SQLITE_SEEDS = [SEED_BASE + n for n in range(SQLITE_COUNT)]
# PostgreSQL histories come from their own seed range, and may lack the history table altogether.
POSTGRES_SEEDS = [SEED_BASE + 100_000 + n for n in range(POSTGRES_COUNT)]
BUILD_WORKERS = 4


@dataclass(frozen=True)
class Side:
    """One Prisma line's two verdicts on one history."""

    line: PrismaLine
    version: PrismaVersion  # the Prisma version migwatch detected for that worktree
    migwatch: PrismaView
    prisma: PrismaView
    oracle: OracleResult


@dataclass(frozen=True)
class Outcome:
    history: History
    project: DiffProject
    sides: tuple[Side, ...]

    def problems(self) -> list[str]:
        out: list[str] = []
        for side in self.sides:
            expected = tuple(int(part) for part in PACKAGE_VERSIONS[side.line].split("."))
            if side.version != expected:
                out.append(f"[{side.line}] migwatch read Prisma {side.version}, the project has {expected}")
            if side.oracle.document is None:
                out.append(f"[{side.line}] the oracle failed: {side.oracle.problem}")
            out.extend(f"[{side.line}] {line}" for line in side.migwatch.differences(side.prisma))
        return out

    def features(self) -> set[str]:
        """What Prisma's verdicts on this history contained (to show the suite is not vacuous)."""
        found: set[str] = set()
        for side in self.sides:
            view = side.prisma
            found.update(
                name
                for name, present in (
                    ("edited", view.edited),
                    ("failed", view.failed),
                    ("unapplied", view.unapplied),
                    ("unpersisted", view.unpersisted),
                    ("P3015", view.error == "P3015"),
                    ("no-table", not view.has_table),
                )
                if present
            )
        first, second = (side.prisma for side in self.sides)
        if replace(first, directories=None) != replace(second, directories=None):
            found.add("6.19-vs-7.10")
        return found

    def report(self) -> str:
        """Everything needed to see and reproduce a disagreement."""
        parts = [
            self.history.describe(),
            f"regenerate: .venv/bin/python -m tests.differential.histories {self.history.seed}",
            f"project: {self.project.repo.main.parent} (database {self.project.url.split('@')[-1]})",
        ]
        for side in self.sides:
            parts.append(f"--- Prisma {side.line} (worktree {self.project.worktrees[side.line]})")
            parts.append("  migwatch: " + "; ".join(side.migwatch.lines()))
            parts.append("  prisma:   " + "; ".join(side.prisma.lines()))
            if side.prisma.error:
                parts.append("  prisma said: " + side.oracle.error_text.strip()[-600:])
            parts.append("  reproduce: " + side.oracle.call.shell_command())
        parts.extend("DIFFERS " + problem for problem in self.problems())
        return "\n".join(parts)


def _build(root: Path, seed: int, provider: str, pg: PgServer | None) -> tuple[History, DiffProject]:
    case = root / f"seed{seed}"
    case.mkdir()
    if provider == "sqlite":
        history = generate(seed)
        url = sqlite_url(case)
    else:
        assert pg is not None
        history = generate(seed, allow_no_table=True)
        url = pg.url(pg.create_database())
    project = build_project(case, provider, url)
    write_history(project, history, case / "scratch", pg)
    return history, project


def _run(root: Path, seeds: list[int], provider: str, pg: PgServer | None = None) -> dict[int, Outcome]:
    """Build every case, read each with migwatch, then run the oracle over all of them in parallel."""
    built = parallel(lambda seed: _build(root, seed, provider, pg), seeds, BUILD_WORKERS)
    verdicts = parallel(lambda case: case[1].verdicts(), built, BUILD_WORKERS)
    calls = [project.oracle_call(line) for _, project in built for line in PRISMA_LINES]
    results = iter(run_many(calls))
    outcomes: dict[int, Outcome] = {}
    for seed, (history, project), by_line in zip(seeds, built, verdicts, strict=True):
        sides = []
        for line in PRISMA_LINES:
            result = next(results)
            verdict = by_line[line]
            sides.append(
                Side(
                    line,
                    verdict.snapshot.setup.prisma_version,
                    migwatch_view(verdict),
                    oracle_view(result),
                    result,
                )
            )
        outcomes[seed] = Outcome(history, project, tuple(sides))
    return outcomes


@pytest.fixture(scope="module")
def sqlite_outcomes(tmp_path_factory: pytest.TempPathFactory, prisma_oracle: None) -> dict[int, Outcome]:
    return _run(tmp_path_factory.mktemp("diff-sqlite"), SQLITE_SEEDS, "sqlite")


@pytest.fixture(scope="module")
def postgres_outcomes(
    tmp_path_factory: pytest.TempPathFactory, prisma_oracle: None, pg_server: PgServer
) -> dict[int, Outcome]:
    pg_server.ensure_running()
    return _run(tmp_path_factory.mktemp("diff-pg"), POSTGRES_SEEDS, "postgresql", pg_server)


def _check(outcome: Outcome, backend: str, tally: Tally) -> None:
    problems = outcome.problems()
    tally.record(backend, not problems, outcome.features())
    if problems:
        pytest.fail("migwatch and Prisma disagree\n" + outcome.report(), pytrace=False)


@pytest.mark.parametrize("seed", SQLITE_SEEDS, ids=[f"sqlite-seed{seed}" for seed in SQLITE_SEEDS])
def test_sqlite_history_agrees_with_prisma(
    seed: int, sqlite_outcomes: dict[int, Outcome], agreement_tally: Tally
) -> None:
    _check(sqlite_outcomes[seed], "SQLite", agreement_tally)


@pytest.mark.parametrize("seed", POSTGRES_SEEDS, ids=[f"postgres-seed{seed}" for seed in POSTGRES_SEEDS])
def test_postgres_history_agrees_with_prisma(
    seed: int, postgres_outcomes: dict[int, Outcome], agreement_tally: Tally
) -> None:
    _check(postgres_outcomes[seed], "PostgreSQL", agreement_tally)


def test_histories_cover_every_kind_of_verdict(
    sqlite_outcomes: dict[int, Outcome], postgres_outcomes: dict[int, Outcome]
) -> None:
    """The generated histories make Prisma report every kind of finding, and differ between its lines."""
    if SQLITE_COUNT < 150 or POSTGRES_COUNT < 30:
        pytest.skip("coverage is asserted on the full set (150 SQLite + 30 PostgreSQL histories)")
    seen: dict[str, int] = {}
    for outcome in [*sqlite_outcomes.values(), *postgres_outcomes.values()]:
        for feature in outcome.features():
            seen[feature] = seen.get(feature, 0) + 1
    wanted = ["edited", "failed", "unapplied", "unpersisted", "P3015", "6.19-vs-7.10", "no-table"]
    assert {feature: seen.get(feature, 0) for feature in wanted if not seen.get(feature)} == {}, seen
