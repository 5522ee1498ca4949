"""The seed story end to end through `migwatch status`: real git worktrees, real PostgreSQL and SQLite."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from migwatch.cli import main
from tests.support.gitrepo import PrismaRepo, seed_migrations
from tests.support.pg import PgDatabase
from tests.support.prisma_rows import apply_like_prisma, create_history_table

EPIC5_MIGRATION = "20251016231054_add_story_5_1_behavioral_pattern_models"
EPIC3_MIGRATION = "20251016000000_create_vector_indexes"
EPIC5_BRANCH = "feature/epic-5-behavioral-twin"
EPIC3_BRANCH = "feature/epic-3-knowledge-graph"


class Story:
    """The seed's repository and database, with 'apply like Prisma' for either provider."""

    def __init__(
        self, repo: PrismaRepo, provider: str, connect: Callable[[], Any], url: str, config: Path
    ) -> None:
        self.repo = repo
        self.provider = provider
        self.connect = connect
        self.url = url
        self.config = config

    def apply(self, worktree: Path, name: str) -> None:
        with closing(self.connect()) as conn:
            apply_like_prisma(conn, self.repo.migrations_path(worktree) / name, provider=self.provider)
            if self.provider == "sqlite":
                conn.commit()

    def status(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--config", str(self.config), "status", *args], out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def status_json(self) -> tuple[int, dict[str, Any]]:
        code, out, err = self.status("--json")
        assert err == ""
        return code, json.loads(out)


def _build(tmp_path: Path, provider: str, url: str, connect: Callable[[], Any]) -> Story:
    repo = PrismaRepo.seed_story(tmp_path, provider, database_url=url)
    config = tmp_path / "config.yaml"
    config.write_text(f"projects:\n  - repo: {repo.main}\n    base_branch: main\n", encoding="utf-8")
    story = Story(repo, provider, connect, url, config)
    with closing(connect()) as conn:
        create_history_table(conn, provider)
        if provider == "sqlite":
            conn.commit()
    for name in sorted(p.name for p in repo.migrations_path(repo.main).iterdir() if p.is_dir()):
        story.apply(repo.main, name)
    sql = seed_migrations(provider)
    repo.write_migration(repo.epic5, EPIC5_MIGRATION, sql[EPIC5_MIGRATION])
    repo.commit(repo.epic5, "Story 5.1: behavioral pattern models")
    story.apply(repo.epic5, EPIC5_MIGRATION)
    repo.write_migration(repo.epic3, EPIC3_MIGRATION, sql[EPIC3_MIGRATION])
    return story


@pytest.fixture(params=["postgresql", "sqlite"])
def story(request: pytest.FixtureRequest, tmp_path: Path, git_env: dict[str, str]) -> Iterator[Story]:
    if request.param == "postgresql":
        database: PgDatabase = request.getfixturevalue("pg_database")
        yield _build(tmp_path, "postgresql", database.url, database.connect)
    else:
        db_file = tmp_path / "dev.db"
        yield _build(tmp_path, "sqlite", f"file:{db_file}", lambda: sqlite3.connect(db_file))


def _status_schema() -> dict[str, Any]:
    text = resources.files("migwatch").joinpath("status_schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _by(doc: dict[str, Any], worktree: Path) -> list[tuple[str, str | None]]:
    return sorted((f["code"], f["migration"]) for f in doc["findings"] if f["worktree"] == str(worktree))


def test_seed_story(story: Story) -> None:
    repo = story.repo
    code, doc = story.status_json()
    jsonschema.validate(doc, _status_schema())
    assert code == 1
    assert doc["ok"] is False
    assert _by(doc, repo.epic3) == [
        ("behind_database", EPIC5_MIGRATION),
        ("out_of_order", EPIC3_MIGRATION),
        ("pending", EPIC3_MIGRATION),
    ]
    assert _by(doc, repo.epic5) == []
    states = {Path(w["path"]).name: w["state"] for w in doc["projects"][0]["worktrees"]}
    assert states == {"Americano": "behind", "Americano-epic3": "diverged", "Americano-epic5": "ok"}

    behind = next(
        f for f in doc["findings"] if f["code"] == "behind_database" and f["worktree"] == str(repo.epic3)
    )
    assert behind["severity"] == "error"
    assert behind["details"]["found_in"] == [{"worktree": str(repo.epic5), "branch": EPIC5_BRANCH}]
    assert behind["fix"][0] == f"git -C {repo.epic3} merge {EPIC5_BRANCH}"
    assert "Do not run `prisma migrate dev` or `prisma migrate reset` in Americano-epic3" in behind["fix"][1]
    assert "shared with Americano, Americano-epic5" in behind["fix"][1]
    assert not any("resolve --applied" in line for line in behind["fix"] if not line.startswith("why:"))
    assert "Americano-epic3 (feature/epic-3-knowledge-graph) is behind the database" in behind["message"]

    pending = next(f for f in doc["findings"] if f["code"] == "pending")
    assert f"cd {repo.package_path(repo.epic3)} && npx prisma migrate deploy" in pending["fix"]
    assert {w["worktree"] for w in pending["details"]["would_be_behind"]} == {str(repo.main), str(repo.epic5)}

    database = doc["projects"][0]["databases"][0]
    assert (database["applied"], database["failed"], database["latest"]) == (4, 0, EPIC5_MIGRATION)
    assert "secret" not in json.dumps(doc)

    # epic-3 applies its migration as Prisma would: now epic-5 is behind, found in epic-3.
    story.apply(repo.epic3, EPIC3_MIGRATION)
    code, doc = story.status_json()
    jsonschema.validate(doc, _status_schema())
    assert code == 1
    assert _by(doc, repo.epic5) == [("behind_database", EPIC3_MIGRATION)]
    behind = next(f for f in doc["findings"] if f["worktree"] == str(repo.epic5))
    assert behind["details"]["found_in"] == [{"worktree": str(repo.epic3), "branch": EPIC3_BRANCH}]
    # Not committed in epic-3 yet: the fix is to commit it there first, then merge.
    assert behind["fix"][0].startswith(f"git -C {repo.epic3} add ")
    assert behind["fix"][1] == f"git -C {repo.epic5} merge {EPIC3_BRANCH}"
    assert _by(doc, repo.epic3) == [("behind_database", EPIC5_MIGRATION)]


def test_text_table(story: Story) -> None:
    code, out, err = story.status("--no-color")
    assert (code, err) == (1, "")
    assert "Americano-epic3  feature/epic-3-knowledge-graph  diverged" in out
    assert "Americano-epic5  feature/epic-5-behavioral-twin  ok" in out
    assert f"$ git -C {story.repo.epic3} merge {EPIC5_BRANCH}" in out
    assert "\033[" not in out
    assert "secret" not in out


def test_worktree_filter(story: Story) -> None:
    code, out, _ = story.status("--json", "--worktree", str(story.repo.epic5))
    doc = json.loads(out)
    assert code == 0
    assert [Path(w["path"]).name for w in doc["projects"][0]["worktrees"]] == ["Americano-epic5"]
    assert doc["findings"] == []


def test_fixed_worktree_is_ok(story: Story) -> None:
    repo = story.repo
    repo.merge(repo.main, EPIC5_BRANCH)
    repo.merge(repo.epic3, EPIC5_BRANCH)
    code, doc = story.status_json()
    assert _by(doc, repo.epic3) == [("out_of_order", EPIC3_MIGRATION), ("pending", EPIC3_MIGRATION)]
    assert _by(doc, repo.main) == []
    assert code == 1
