"""Real projects' migrations (tests/fixtures/real_pairs, see its README): migwatch's verdict against both
orders applied to a real PostgreSQL or SQLite database.

Each case: the migrations before (`state/`), and two sides (`x/`, `y/`) as two branches wrote them. Both
sides must apply alone on the state (else they were not written apart); the case is a real conflict
when one order fails or the orders leave different schemas; migwatch must flag exactly those.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migwatch.sqlschema import parse_migration
from migwatch.sqlschema.conflicts import clashes
from tests.support.applyorder import Applied, Step, apply_pg_database, apply_sqlite
from tests.support.pg import PgServer

REAL = Path(__file__).parent / "fixtures" / "real_pairs"
CASES = sorted(p.parent for p in REAL.glob("*/*/*/case.json"))


def _side(folder: Path) -> list[Step]:
    return [(m.name, (m / "migration.sql").read_text()) for m in sorted(folder.iterdir())]


def test_three_projects_or_more() -> None:
    assert len({case.parent.name for case in CASES}) >= 3


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}-{c.name}" for c in CASES])
def test_verdict_matches_both_orders(case: Path, pg_server: PgServer) -> None:
    provider = case.parent.parent.name
    meta = json.loads((case / "case.json").read_text())
    state, x, y = _side(case / "state"), _side(case / "x"), _side(case / "y")

    def apply(steps: list[Step]) -> Applied:
        if provider == "sqlite":
            return apply_sqlite(steps)
        pg_server.ensure_running()
        return apply_pg_database(pg_server, steps)

    assert apply([*state, *x]).failed_at is None and apply([*state, *y]).failed_at is None
    xy, yx = apply([*state, *x, *y]), apply([*state, *y, *x])
    real = bool(xy.failed_at or yx.failed_at or xy.schema != yx.schema)
    assert real == meta["conflict"], (meta, xy.error, yx.error)
    flagged = [
        clash
        for _, a in x
        for _, b in y
        if (ours := parse_migration(a, provider)) and (theirs := parse_migration(b, provider))
        for clash in clashes(ours, theirs)
    ]
    assert bool(flagged) == real, (meta, flagged)
