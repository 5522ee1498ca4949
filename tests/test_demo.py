"""`migwatch demo` on SQLite and on PostgreSQL: every alert of the story arrives, nothing is left behind."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest

from migwatch.cli import main
from tests.support.pg import PgDatabase


def _demo_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("migwatch-demo-*"))


def _assert_story(out: str) -> None:
    assert "🔔 [ERROR] Americano-epic3: behind the database" in out
    assert "From: feature/epic-5-behavioral-twin (Americano-epic5)" in out
    assert "merge feature/epic-5-behavioral-twin" in out
    assert "🔔 [ERROR] Americano-epic3: applied migration edited" in out
    assert "✅ Americano-epic3: resolved — applied migration edited" in out
    assert "✅ Americano-epic3: resolved — behind the database" in out
    assert "no problems found" in out
    assert "demo failed" not in out


@pytest.mark.leakcheck
def test_demo_sqlite() -> None:
    before = _demo_dirs()
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo"], out=out, err=err) == 0, out.getvalue()
    _assert_story(out.getvalue())
    assert err.getvalue() == ""
    assert _demo_dirs() == before


def test_demo_postgres(pg_database: PgDatabase) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo", "--postgres", pg_database.url], out=out, err=err) == 0, out.getvalue()
    _assert_story(out.getvalue())
    assert "secret" not in out.getvalue()
    with pg_database.connect() as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'migwatch_demo_%'"
        ).fetchall()
    assert schemas == []


def test_demo_postgres_unreachable() -> None:
    out = io.StringIO()
    code = main(["demo", "--postgres", "postgresql://u:topsecret@127.0.0.1:1/x"], out=out, err=io.StringIO())
    assert code == 1
    assert out.getvalue().startswith("demo failed: cannot connect to postgresql://u:***@127.0.0.1:1/x")
    assert "topsecret" not in out.getvalue()
