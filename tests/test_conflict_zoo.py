"""The conflict zoo, applied for real: migwatch's verdict against what two real databases do.

For every case (tests/fixtures/conflict_zoo, written by the real Prisma CLI, see
tools/gen-conflict-zoo.py), the base migration and both branches' migrations are applied to a real
PostgreSQL and a real SQLite database in both orders. A case is a real conflict when one order fails
or the two orders leave different schemas; migwatch must flag exactly those (no false positive, no
false negative), and the case must show what it was written to show.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migwatch.sqlschema import parse_migration
from migwatch.sqlschema.conflicts import clashes, describe
from tests.support.applyorder import Outcome, apply_pg, apply_sqlite, both_orders
from tests.support.pg import PgDatabase

ZOO = Path(__file__).parent / "fixtures" / "conflict_zoo"
CASES = json.loads((ZOO / "cases.json").read_text())
PARAMS = [(name, provider) for name, case in CASES.items() for provider in case["conflict"]]


def _read(provider: str, name: str) -> tuple[str, str, str]:
    folder = ZOO / provider / name
    return tuple((folder / f"{part}.sql").read_text() for part in ("base", "a", "b"))  # type: ignore[return-value]


def _flagged(provider: str, a_sql: str, b_sql: str) -> list[str]:
    a, b = parse_migration(a_sql, provider), parse_migration(b_sql, provider)
    assert a is not None and b is not None
    return [describe(c, "A", "B") for c in clashes(a, b)]


def _outcome(provider: str, pg_database: PgDatabase | None, base: str, a: str, b: str) -> Outcome:
    steps = [("base", base)], [("a", a)], [("b", b)]
    if provider == "sqlite":
        return both_orders(apply_sqlite, *steps)
    assert pg_database is not None
    return both_orders(lambda s: apply_pg(pg_database.connect, s), *steps)


@pytest.fixture(scope="module")
def zoo_database(pg_server: object) -> PgDatabase:
    from tests.support.pg import PgServer

    assert isinstance(pg_server, PgServer)
    pg_server.ensure_running()
    return PgDatabase(pg_server, pg_server.create_database())


@pytest.mark.parametrize(("name", "provider"), PARAMS, ids=[f"{p}-{n}" for n, p in PARAMS])
def test_verdict_matches_both_orders(name: str, provider: str, zoo_database: PgDatabase) -> None:
    base, a, b = _read(provider, name)
    outcome = _outcome(provider, zoo_database, base, a, b)
    assert not outcome.base_failed, outcome
    expected = CASES[name]["conflict"][provider]
    assert outcome.conflict == expected, f"{CASES[name]['what']}: the databases say {outcome}"
    flagged = _flagged(provider, a, b)
    assert bool(flagged) == outcome.conflict, (
        f"migwatch says {flagged or 'no conflict'}; databases: {outcome}"
    )
