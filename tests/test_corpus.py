"""Real projects' layouts: `init` then `status` with no config edit check every worktree against the
right database (issue 11.6).

Each fixture under tests/fixtures/layouts/<project>/ holds the layout files of a real open-source
Prisma project (its SOURCE file names the repository and commit): package.json files with their
scripts, the Prisma config file as written, the schema head, the env example. The test makes a git
repository of it with a second worktree, writes the env file where the project's own docs and scripts
put it (as a developer would), applies one migration to a real database like Prisma does, and runs
`migwatch init` and `migwatch status --json` unchanged.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from migwatch.cli import main
from tests.support.gitrepo import isolated_environ, run_git
from tests.support.pg import PgDatabase, PgServer
from tests.support.prisma_rows import apply_like_prisma, create_history_table

LAYOUTS = Path(__file__).parent / "fixtures" / "layouts"
MIGRATION = "20250101000000_corpus_check"


@dataclass(frozen=True)
class Layout:
    name: str
    env_file: str  # where a developer puts the env (per the project's docs and scripts)
    env: str  # its text; {direct} is the database migrate must use, {pooled} another real one
    migrations: str  # the migrations folder Prisma uses for this layout
    provider: str = "postgresql"
    read_from: str = ""  # the start of what `status` says it reads through


LAYOUTS_UNDER_TEST = [
    Layout(  # npm workspaces, Prisma 6, directUrl, root scripts `dotenv -e .env -e .env.local -- npm run … -w`
        "documenso",
        ".env",
        'NEXT_PRIVATE_DATABASE_URL="{pooled}"\nNEXT_PRIVATE_DIRECT_DATABASE_URL="{direct}"\n',
        "packages/prisma/migrations",
        read_from='directUrl = env("NEXT_PRIVATE_DIRECT_DATABASE_URL") of schema.prisma',
    ),
    Layout(  # yarn 4 workspaces, Prisma 6, root `dotenv -- yarn workspace @linkwarden/prisma deploy`
        "linkwarden",
        ".env",
        "DATABASE_URL={direct}\n",
        "packages/prisma/migrations",
        read_from='url = env("DATABASE_URL") of schema.prisma',
    ),
    Layout(  # pnpm + turbo, Prisma 7, computed config: loadEnvFile(path.join(__dirname, ".env")), A || B
        "rallly",
        "packages/database/.env",
        "DATABASE_URL={pooled}\nDIRECT_DATABASE_URL={direct}\n",
        "packages/database/prisma/migrations",
        read_from="datasource.url = process.env.DIRECT_DATABASE_URL || process.env.DATABASE_URL",
    ),
    Layout(  # pnpm, Prisma 7, dotenv config({ path: path.resolve(__dirname, "../../.env") }), schema folder
        "formbricks",
        ".env",
        "DATABASE_URL='{direct}'\n",
        "packages/database/.prisma-migrations",
        read_from='datasource.url = env("DATABASE_URL")',
    ),
    Layout(  # single package, Prisma 6.5, prisma/schema folder found by default, directUrl
        "papermark",
        ".env",
        "POSTGRES_PRISMA_URL={pooled}\nPOSTGRES_PRISMA_URL_NON_POOLING={direct}\n",
        "prisma/migrations",
        read_from='directUrl = env("POSTGRES_PRISMA_URL_NON_POOLING") of schema.prisma',
    ),
    Layout(  # single package, Prisma 6, SQLite: file:./data.db relative to the schema
        "epic-stack",
        ".env",
        'DATABASE_PATH="./prisma/data.db"\nDATABASE_URL="file:./data.db?connection_limit=1"\n',
        "prisma/migrations",
        provider="sqlite",
        read_from='url = env("DATABASE_URL") of schema.prisma',
    ),
    Layout(  # single package, Prisma 7, dotenv.config(), process.env.DIRECT_URL (Supabase pooler + direct)
        "cirql",
        ".env",
        'DATABASE_URL="{pooled}"\nDIRECT_URL="{direct}"\n',
        "prisma/migrations",
        read_from="datasource.url = process.env.DIRECT_URL",
    ),
    Layout(  # bun, Prisma 7, schema folder, env("DIRECT_URL") loaded by `dotenv -e .env.local --` scripts
        "betterauth",
        ".env.local",
        "DATABASE_URL={pooled}\nDIRECT_URL={direct}\n",
        "prisma/migrations",
        read_from='datasource.url = env("DIRECT_URL")',
    ),
    Layout(  # pnpm, Prisma 7, `import "dotenv/config"` and env("DATABASE_URL")
        "umami",
        ".env",
        "DATABASE_URL={direct}\n",
        "prisma/migrations",
        read_from="datasource.url = env('DATABASE_URL')",
    ),
]


def build(layout: Layout, root: Path) -> tuple[Path, Path, dict[str, str]]:
    """The fixture as a git repository with a committed migration, plus a second worktree."""
    repo = root / layout.name
    shutil.copytree(LAYOUTS / layout.name, repo, ignore=shutil.ignore_patterns("SOURCE"))
    migration = repo / layout.migrations / MIGRATION
    migration.mkdir(parents=True)
    (migration / "migration.sql").write_text('CREATE TABLE "CorpusCheck" (id INTEGER PRIMARY KEY);\n')
    (repo / layout.migrations / "migration_lock.toml").write_text(f'provider = "{layout.provider}"\n')
    (repo / ".gitignore").write_text(".env*\n!.env.example\n!.env.sample\n*.db\n")
    env = isolated_environ(root / ".git-home")
    run_git(repo, "init", "-q", "-b", "main", env=env)
    run_git(repo, "add", "-A", env=env)
    run_git(repo, "commit", "-q", "-m", "layout", env=env)
    feature = root / f"{layout.name}-feature"
    run_git(repo, "worktree", "add", "-q", str(feature), "-b", "feature", env=env)
    return repo, feature, env


def status_document(config: Path) -> dict[str, object]:
    out = io.StringIO()
    code = main(["--config", str(config), "status", "--json"], out=out)
    assert code == 0, out.getvalue()
    document: dict[str, object] = json.loads(out.getvalue())
    return document


def prepare_databases(
    layout: Layout, trees: tuple[Path, Path], direct: PgDatabase, pooled: str
) -> dict[Path, str]:
    """Write each worktree's env file (direct and pooled URLs), apply the first migration as Prisma does,
    and return the database id `status` must show per worktree. The pooled database is a decoy with no
    history table: reading the wrong URL shows."""
    repo = trees[0]
    expected: dict[Path, str] = {}
    for tree in trees:
        (tree / layout.env_file).write_text(layout.env.format(direct=direct.url, pooled=pooled))
        if layout.provider == "sqlite":
            database = tree / "prisma" / "data.db"
            with closing(sqlite3.connect(database)) as conn:
                create_history_table(conn, "sqlite")
                apply_like_prisma(conn, tree / layout.migrations / MIGRATION, provider="sqlite")
                conn.commit()
            expected[tree] = f"file:{database}"
        else:
            expected[tree] = direct.url.replace(":secret@", "@")
    if layout.provider == "postgresql":
        with closing(direct.connect()) as conn:
            create_history_table(conn, "postgresql")
            apply_like_prisma(conn, repo / layout.migrations / MIGRATION, provider="postgresql")
        with closing(psycopg.connect(pooled.split("?")[0], autocommit=True)) as conn:
            conn.execute('CREATE TABLE "Decoy" (id int)')
    return expected


CHECKED: dict[str, tuple[int, int]] = {}


@pytest.mark.parametrize("layout", LAYOUTS_UNDER_TEST, ids=[layout.name for layout in LAYOUTS_UNDER_TEST])
def test_init_and_status_check_every_worktree_against_the_right_database(
    layout: Layout,
    tmp_path: Path,
    pg_server: PgServer,
    pg_database: PgDatabase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("DATABASE_URL", "DIRECT_URL", "MIGWATCH_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    repo, feature, env = build(layout, tmp_path)
    for key in ("HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"):
        if key in env:
            monkeypatch.setenv(key, env[key])
    expected = prepare_databases(
        layout, (repo, feature), pg_database, pg_server.url(pg_server.create_database())
    )

    config = tmp_path / "config.yaml"
    assert main(["--config", str(config), "init", str(repo)], out=io.StringIO()) == 0
    capsys.readouterr()
    document = status_document(config)

    [project] = document["projects"]  # type: ignore[index]
    worktrees = {Path(w["path"]): w for w in project["worktrees"]}
    assert set(worktrees) == {repo, feature}
    for tree, summary in worktrees.items():
        assert summary["database"] == expected[tree], (tree, summary)
        assert (summary["state"], summary["local"], summary["applied_here"]) == ("ok", 1, 1), summary
        assert str(summary["database_from"]).startswith(layout.read_from), summary["database_from"]
    assert all(d["reachable"] and d["applied"] == 1 for d in project["databases"])
    assert [f for f in document["findings"] if f["severity"] != "info"] == []  # type: ignore[index]
    CHECKED[layout.name] = (sum(1 for w in worktrees.values() if w["state"] == "ok"), len(worktrees))
    print(f"\ncorpus: {layout.name}: {CHECKED[layout.name][0]}/{CHECKED[layout.name][1]} worktrees checked")


def test_conflict_markers_in_any_file_of_a_schema_folder(
    tmp_path: Path,
    pg_database: PgDatabase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # rallly keeps its models in prisma/models/*.prisma; Prisma reads every .prisma file of the folder.
    layout = next(layout for layout in LAYOUTS_UNDER_TEST if layout.name == "rallly")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    repo, feature, env = build(layout, tmp_path)
    for key in ("HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"):
        if key in env:
            monkeypatch.setenv(key, env[key])
    for tree in (repo, feature):
        (tree / layout.env_file).write_text(f"DATABASE_URL={pg_database.url}\n")
    with closing(pg_database.connect()) as conn:
        create_history_table(conn, "postgresql")
        apply_like_prisma(conn, repo / layout.migrations / MIGRATION, provider="postgresql")
    models = feature / "packages" / "database" / "prisma" / "models" / "poll.prisma"
    models.write_text(
        models.read_text() + "<<<<<<< HEAD\nmodel A {\n  id Int @id\n}\n=======\n>>>>>>> other\n"
    )
    config = tmp_path / "config.yaml"
    assert main(["--config", str(config), "init", str(repo)], out=io.StringIO()) == 0
    capsys.readouterr()
    out = io.StringIO()
    assert main(["--config", str(config), "status", "--json"], out=out) == 1
    document = json.loads(out.getvalue())
    markers = [f["details"] for f in document["findings"] if f["code"] == "conflict_markers"]
    first = models.read_text().splitlines().index("<<<<<<< HEAD") + 1
    assert markers == [{"file": str(models), "lines": [first, first + 5]}]
