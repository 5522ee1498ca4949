"""Discovery (SPEC §4): each worktree read the way its own Prisma version reads it, on real folders and git."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from migwatch.discovery import detect_version, discover_worktree, parse_version
from migwatch.envfiles import EnvScope, prisma6_env_files, read_env_file
from migwatch.git import list_worktrees, parse_worktree_list
from migwatch.model import PrismaSetup, Worktree
from migwatch.prismaconfig import ConfigValues, read_prisma_config
from tests.support.gitrepo import SEED_EPIC3, SEED_EPIC5, PrismaRepo

PG_URL = "postgresql://kyin:s3cret@localhost:5432/americano?schema=public"
PG_ID = "postgresql://kyin@localhost:5432/americano?schema=public"

SCHEMA_ENV = (
    'generator client {\n  provider = "prisma-client-js"\n}\n\n'
    'datasource db {\n  provider = "postgresql"\n  url      = env("DATABASE_URL")\n}\n'
)
SCHEMA_NO_URL = 'datasource db {\n  provider = "postgresql"\n}\n'
SQLITE_SCHEMA = 'datasource db {\n  provider = "sqlite"\n  url      = "file:./dev.db"\n}\n'

PRISMA7_CONFIG = (
    'import "dotenv/config";\n'
    'import { defineConfig, env } from "prisma/config";\n\n'
    "export default defineConfig({\n"
    '  schema: "prisma/schema.prisma",\n'
    '  migrations: { path: "prisma/migrations" },\n'
    '  datasource: { url: env("DATABASE_URL") },\n'
    "});\n"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def package_json(folder: Path, version: str | None = None, **extra: object) -> Path:
    manifest: dict[str, object] = {"name": folder.name, "private": True, **extra}
    if version is not None:
        manifest["devDependencies"] = {"prisma": version}
    return write(folder / "package.json", json.dumps(manifest) + "\n")


def worktree(path: Path) -> Worktree:
    return Worktree(path=path, head=None, branch="main", is_main=True)


def discover(
    root: Path, env: Mapping[str, str] | None = None, *, schema: str | None = None, url: str | None = None
) -> PrismaSetup:
    return discover_worktree(worktree(root), configured_schema=schema, database_url=url, env=env or {})


# -- layouts ---------------------------------------------------------------------------------------------


def test_plain_layout(tmp_path: Path) -> None:
    package_json(tmp_path, "^6.19.0")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_ENV)
    write(tmp_path / ".env", f'DATABASE_URL="{PG_URL}"\n')
    setup = discover(tmp_path)
    assert setup.problem is None
    assert setup.prisma_version == (6, 19, 0)
    assert setup.package_dir == tmp_path
    assert setup.schema_path == tmp_path / "prisma" / "schema.prisma"
    assert setup.migrations_dir == tmp_path / "prisma" / "migrations"
    assert setup.config_file is None
    assert setup.provider == "postgresql"
    assert setup.database is not None
    assert setup.database.id == PG_ID
    assert setup.database.url == PG_URL
    assert setup.database.schema == "public"
    assert setup.notes == ()


def test_root_schema_prisma(tmp_path: Path) -> None:
    package_json(tmp_path, "6.19.3")
    write(tmp_path / "schema.prisma", SCHEMA_ENV)
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.schema_path == tmp_path / "schema.prisma"
    assert setup.migrations_dir == tmp_path / "migrations"
    assert setup.database is not None and setup.database.id == PG_ID


def test_seed_monorepo_worktrees(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = PrismaRepo.seed_story(tmp_path, database_url=PG_URL)
    worktrees = list_worktrees(repo.main)
    assert [(w.path, w.branch, w.is_main) for w in worktrees] == [
        (repo.main, "main", True),
        (repo.epic3, SEED_EPIC3[1], False),
        (repo.epic5, SEED_EPIC5[1], False),
    ]
    for tree in worktrees:
        setup = discover_worktree(tree, configured_schema=None, database_url=None, env={})
        assert setup.problem is None, setup.problem
        assert setup.worktree == tree
        assert setup.prisma_version == (6, 19, 3)
        assert setup.package_dir == tree.path / "apps" / "web"
        assert setup.schema_path == tree.path / "apps/web/prisma/schema.prisma"
        assert setup.migrations_dir == tree.path / "apps/web/prisma/migrations"
        assert setup.database is not None and setup.database.id == PG_ID


def test_configured_schema_wins(tmp_path: Path) -> None:
    package_json(tmp_path / "apps" / "web", "6.19.3")
    write(tmp_path / "apps/web/prisma/schema.prisma", SCHEMA_ENV)
    write(tmp_path / "apps/admin/prisma/schema.prisma", SCHEMA_ENV)
    assert discover(tmp_path, {"DATABASE_URL": PG_URL}).problem == "no Prisma schema found"
    assert discover(tmp_path).notes == (
        "several Prisma schemas (apps/admin/prisma/schema.prisma, apps/web/prisma/schema.prisma); "
        "set 'schema' for this project in the config",
    )
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL}, schema="apps/web/prisma/schema.prisma")
    assert setup.package_dir == tmp_path / "apps" / "web"
    assert setup.schema_path == tmp_path / "apps/web/prisma/schema.prisma"
    assert setup.database is not None and setup.database.id == PG_ID


def test_monorepo_walk_skips_node_modules(tmp_path: Path) -> None:
    package_json(tmp_path / "apps" / "web", "6.19.3")
    write(tmp_path / "apps/web/prisma/schema.prisma", SCHEMA_ENV)
    write(tmp_path / "node_modules/some-lib/prisma/schema.prisma", SCHEMA_ENV)
    write(tmp_path / "apps/web/node_modules/.prisma/client/schema.prisma", SCHEMA_ENV)
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.schema_path == tmp_path / "apps/web/prisma/schema.prisma"


def test_package_json_prisma_schema_key(tmp_path: Path) -> None:
    package_json(tmp_path, "6.19.3", prisma={"schema": "db/main.prisma"})
    write(tmp_path / "db" / "main.prisma", SCHEMA_ENV)
    write(tmp_path / "prisma" / "schema.prisma", SQLITE_SCHEMA)  # not the one package.json names
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.schema_path == tmp_path / "db" / "main.prisma"
    assert setup.migrations_dir == tmp_path / "db" / "migrations"
    assert setup.provider == "postgresql"


def test_schema_folder_with_the_datasource_in_one_file(tmp_path: Path) -> None:
    package_json(tmp_path, "6.19.3", prisma={"schema": "./prisma"})
    write(tmp_path / "prisma" / "models" / "user.prisma", "model User {\n  id Int @id\n}\n")
    write(tmp_path / "prisma" / "models" / "post.prisma", "model Post {\n  id Int @id\n}\n")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_ENV)
    (tmp_path / "prisma" / "migrations").mkdir()
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.problem is None
    assert setup.schema_path == tmp_path / "prisma"
    assert setup.migrations_dir == tmp_path / "prisma" / "migrations"
    assert setup.provider == "postgresql"
    assert setup.database is not None and setup.database.id == PG_ID


def test_schema_folder_datasource_in_a_nested_file(tmp_path: Path) -> None:
    package_json(tmp_path, "7.10.0")
    write(
        tmp_path / "prisma.config.ts",
        'import { defineConfig } from "prisma/config";\nexport default defineConfig({\n'
        '  schema: "db/",\n  datasource: { url: "postgresql://kyin@localhost:5432/americano" },\n});\n',
    )
    write(tmp_path / "db" / "a_models.prisma", "model A {\n  id Int @id\n}\n")
    write(tmp_path / "db" / "z" / "source.prisma", 'datasource db {\n  provider = "postgres"\n}\n')
    setup = discover(tmp_path)
    assert setup.problem is None
    assert setup.schema_path == tmp_path / "db"
    assert setup.migrations_dir == tmp_path / "db" / "migrations"
    assert setup.provider == "postgresql"
    assert setup.database is not None and setup.database.id == PG_ID


# -- Prisma 7 config files -------------------------------------------------------------------------------


def prisma7_project(root: Path, config_name: str = "prisma.config.ts", config: str = PRISMA7_CONFIG) -> Path:
    package_json(root, "7.10.0")
    write(root / "prisma" / "schema.prisma", SCHEMA_NO_URL)
    return write(root / config_name, config)


def test_prisma7_config_with_dotenv_import_reads_the_env_file(tmp_path: Path) -> None:
    config = prisma7_project(tmp_path)
    write(tmp_path / ".env", f"DATABASE_URL={PG_URL}\n")
    write(tmp_path / "prisma" / ".env", "DATABASE_URL=postgresql://wrong@elsewhere:5432/x\n")
    setup = discover(tmp_path)
    assert setup.problem is None
    assert setup.prisma_version == (7, 10, 0)
    assert setup.config_file == config
    assert setup.schema_path == tmp_path / "prisma" / "schema.prisma"
    assert setup.migrations_dir == tmp_path / "prisma" / "migrations"
    assert setup.database is not None and setup.database.id == PG_ID
    # The environment wins over the file.
    other = "postgresql://ci@db.internal:6543/americano_ci"
    from_env = discover(tmp_path, {"DATABASE_URL": other})
    assert from_env.database is not None
    assert from_env.database.id == "postgresql://ci@db.internal:6543/americano_ci?schema=public"


def test_prisma7_config_without_dotenv_import_ignores_the_env_file(tmp_path: Path) -> None:
    prisma7_project(tmp_path, config=PRISMA7_CONFIG.replace('import "dotenv/config";\n', ""))
    write(tmp_path / ".env", f"DATABASE_URL={PG_URL}\n")
    setup = discover(tmp_path)
    assert setup.database is None
    assert setup.problem == (
        "DATABASE_URL is not set (looked in: the environment only (no env file is loaded here); "
        'datasource.url = env("DATABASE_URL") of prisma.config.ts reads it)'
    )
    with_env = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert with_env.database is not None and with_env.database.id == PG_ID


def test_prisma7_dotenv_does_not_expand_variables(tmp_path: Path) -> None:
    # `import "dotenv/config"` is plain dotenv: `${HOST}` stays as written (no dotenv-expand).
    prisma7_project(tmp_path)
    write(tmp_path / ".env", "HOST=localhost\nDATABASE_URL=postgresql://kyin@${HOST}:5432/americano\n")
    setup = discover(tmp_path)
    assert setup.database is not None
    assert setup.database.url == "postgresql://kyin@${HOST}:5432/americano"


def test_prisma7_dotenv_config_call(tmp_path: Path) -> None:
    config = PRISMA7_CONFIG.replace(
        'import "dotenv/config";\n', 'import { config } from "dotenv";\nconfig();\n'
    )
    prisma7_project(tmp_path, config=config)
    write(tmp_path / ".env", f"DATABASE_URL={PG_URL}\n")
    setup = discover(tmp_path)
    assert setup.database is not None and setup.database.id == PG_ID


def test_prisma7_literal_url_and_paths(tmp_path: Path) -> None:
    package_json(tmp_path, "7.10.0")
    write(tmp_path / "db" / "schema.prisma", SCHEMA_NO_URL)
    write(
        tmp_path / "prisma.config.ts",
        "// schema: 'commented/out.prisma'\n"
        'import { defineConfig } from "prisma/config";\n'
        "export default defineConfig({\n"
        "  schema: 'db/schema.prisma',\n"
        "  migrations: {\n    seed: 'tsx seed.ts',\n    path: `db/history`,\n  },\n"
        f'  datasource: {{\n    url: "{PG_URL}",\n  }},\n'
        "});\n",
    )
    setup = discover(tmp_path)
    assert setup.schema_path == tmp_path / "db" / "schema.prisma"
    assert setup.migrations_dir == tmp_path / "db" / "history"
    assert setup.database is not None and setup.database.url == PG_URL


def test_prisma7_without_a_config_file(tmp_path: Path) -> None:
    package_json(tmp_path, "7.10.0")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_ENV)
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.database is None
    assert setup.problem == "Prisma 7 needs a prisma.config.ts with datasource.url; none was found"


def test_dot_config_prisma_ts(tmp_path: Path) -> None:
    config = prisma7_project(
        tmp_path,
        config_name=".config/prisma.ts",
        config=PRISMA7_CONFIG.replace(': "prisma/', ': "../prisma/'),
    )
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.problem is None
    assert setup.config_file == config
    assert setup.schema_path == tmp_path / "prisma" / "schema.prisma"
    assert setup.migrations_dir == tmp_path / "prisma" / "migrations"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("7.10.0", "prisma7.config.ts"), ("^7.10.2", "prisma7.config.ts"), ("7.9.1", "prisma.config.ts")],
)
def test_prisma7_config_is_preferred_from_7_10_only(tmp_path: Path, version: str, expected: str) -> None:
    package_json(tmp_path, version)
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_NO_URL)
    write(tmp_path / "db7" / "schema.prisma", SCHEMA_NO_URL)
    write(tmp_path / "prisma7.config.ts", PRISMA7_CONFIG.replace(': "prisma/', ': "db7/'))
    write(tmp_path / "prisma.config.ts", PRISMA7_CONFIG)
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.config_file == tmp_path / expected
    schema_dir = "db7" if expected == "prisma7.config.ts" else "prisma"
    assert setup.schema_path == tmp_path / schema_dir / "schema.prisma"
    assert setup.migrations_dir == tmp_path / schema_dir / "migrations"


def test_prisma7_config_alone_is_unknown_before_7_10(tmp_path: Path) -> None:
    package_json(tmp_path, "7.9.0")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_NO_URL)
    write(tmp_path / "prisma7.config.ts", PRISMA7_CONFIG)
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.config_file is None
    assert setup.problem == "Prisma 7 needs a prisma.config.ts with datasource.url; none was found"


def test_computed_schema_path_gives_a_note_and_the_defaults(tmp_path: Path) -> None:
    package_json(tmp_path, "7.10.0")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_NO_URL)
    write(
        tmp_path / "prisma.config.ts",
        'import path from "node:path";\nimport { defineConfig, env } from "prisma/config";\n'
        "export default defineConfig({\n"
        '  schema: pickSchema("x"),\n'
        "  migrations: { path: dirs[0] },\n"
        '  datasource: { url: env("DATABASE_URL") },\n'
        "});\n",
    )
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.notes == (
        'prisma.config.ts: migwatch could not evaluate schema (pickSchema("x")), migrations.path (dirs[0]); '
        "it assumed Prisma's defaults there",
    )
    assert setup.schema_path == tmp_path / "prisma" / "schema.prisma"
    assert setup.migrations_dir == tmp_path / "prisma" / "migrations"
    assert setup.database is not None and setup.database.id == PG_ID


def read_config(path: Path, env: Mapping[str, str] | None = None) -> ConfigValues:
    return read_prisma_config(path, cwd=path.parent, env=env or {}, read_env=read_env_file)


def test_read_config_file_keys(tmp_path: Path) -> None:
    write(tmp_path / ".env", f"DATABASE_URL={PG_URL}\n")
    config = read_config(write(tmp_path / "prisma.config.ts", PRISMA7_CONFIG))
    assert (config.schema, config.migrations_path, config.url, config.url_variables) == (
        tmp_path / "prisma/schema.prisma",
        tmp_path / "prisma/migrations",
        PG_URL,
        ("DATABASE_URL",),
    )
    assert config.has_datasource_url and config.env_files == (tmp_path / ".env",) and config.computed == ()
    generic = read_config(
        write(
            tmp_path / "b.ts",
            'import { env } from "prisma/config";\nexport default { datasource: { url: env<Env>("DB") } }\n',
        )
    )
    assert (generic.url, generic.missing_env, generic.url_variables) == (None, "DB", ("DB",))
    process_env = read_config(
        write(tmp_path / "c.ts", "export default { datasource: { url: process.env.DIRECT_URL } }\n"),
        {"DIRECT_URL": PG_URL},
    )
    assert (process_env.url, process_env.url_expression) == (PG_URL, "process.env.DIRECT_URL")
    computed = read_config(write(tmp_path / "d.ts", "export default { datasource: { url: makeUrl() } }\n"))
    assert computed.computed == ("datasource.url (makeUrl())",)
    assert computed.has_datasource_url


# -- version detection -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("^6.19.0", (6, 19, 0)),
        ("~7.10.1", (7, 10, 1)),
        (">=7.9 <8", (7, 9, 0)),
        ("7", (7, 0, 0)),
        ("6.19.3", (6, 19, 3)),
        ("latest", None),
        ("workspace:*", None),
    ],
)
def test_parse_version(text: str, version: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == version


def test_version_from_installed_package(tmp_path: Path) -> None:
    package_json(tmp_path, "^6.0.0")
    write(tmp_path / "node_modules" / "prisma" / "package.json", '{"name": "prisma", "version": "7.9.2"}')
    assert detect_version(tmp_path, tmp_path, False) == (
        (7, 9, 2),
        f"installed {tmp_path / 'node_modules/prisma'}",
    )


def test_version_from_hoisted_install_in_a_parent(tmp_path: Path) -> None:
    web = tmp_path / "apps" / "web"
    package_json(web, "^6.19.0")
    write(tmp_path / "node_modules" / "prisma" / "package.json", '{"name": "prisma", "version": "6.19.3"}')
    assert detect_version(web, tmp_path, False)[0] == (6, 19, 3)


def test_version_from_dependencies_or_a_parent_manifest(tmp_path: Path) -> None:
    web = tmp_path / "apps" / "web"
    package_json(web)
    write(tmp_path / "package.json", json.dumps({"dependencies": {"prisma": "~7.10.1"}}))
    assert detect_version(web, tmp_path, False) == ((7, 10, 1), "package.json range '~7.10.1'")


def test_unparsable_range_uses_the_newest_rules(tmp_path: Path) -> None:
    package_json(tmp_path, "latest")
    assert detect_version(tmp_path, tmp_path, False) == ((7, 10, 0), "unreadable range 'latest'")


def test_version_7_when_the_config_sets_datasource_url_else_6(tmp_path: Path) -> None:
    package_json(tmp_path)
    config = read_config(write(tmp_path / "prisma.config.ts", PRISMA7_CONFIG))
    assert detect_version(tmp_path, tmp_path, config.has_datasource_url)[0] == (7, 0, 0)
    no_url = read_config(write(tmp_path / "other.ts", 'export default { schema: "x.prisma" }\n'))
    assert detect_version(tmp_path, tmp_path, no_url.has_datasource_url) == ((6, 0, 0), "default")
    assert detect_version(tmp_path, tmp_path, False) == ((6, 0, 0), "default")


def test_version_guessed_from_the_config_keeps_that_config(tmp_path: Path) -> None:
    # No version anywhere; prisma7.config.ts setting datasource.url says "7": it must stay the config.
    package_json(tmp_path)
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_NO_URL)
    write(tmp_path / "prisma7.config.ts", PRISMA7_CONFIG)
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.prisma_version == (7, 0, 0)
    assert setup.config_file == tmp_path / "prisma7.config.ts"
    assert setup.database is not None and setup.database.id == PG_ID


# -- Prisma 6 environment --------------------------------------------------------------------------------


def prisma6_env(
    package_dir: Path, root: Path, schema_dir: Path, env: Mapping[str, str]
) -> tuple[dict[str, str], list[Path]]:
    scope = EnvScope.from_environment(env)
    loaded = [f for f in prisma6_env_files(package_dir, root, schema_dir) if scope.load(f, expand=True)]
    return scope.values, loaded


def prisma6_monorepo(root: Path) -> Path:
    package_json(root, workspaces=["apps/web"])
    web = root / "apps" / "web"
    package_json(web, "6.19.3")
    write(web / "prisma" / "schema.prisma", SCHEMA_ENV)
    return web


def test_prisma6_root_env_wins_over_the_schema_env(tmp_path: Path) -> None:
    web = prisma6_monorepo(tmp_path)
    write(web / ".env", f"DATABASE_URL={PG_URL}\nONLY_ROOT=1\n")
    write(web / "prisma" / ".env", "DATABASE_URL=postgresql://wrong@nowhere:5432/x\nONLY_SCHEMA=2\n")
    setup = discover(tmp_path)
    assert setup.database is not None and setup.database.id == PG_ID
    merged, loaded = prisma6_env(web, tmp_path, web / "prisma", {})
    assert loaded == [web / ".env", web / "prisma" / ".env"]
    assert (merged["ONLY_ROOT"], merged["ONLY_SCHEMA"], merged["DATABASE_URL"]) == ("1", "2", PG_URL)
    assert setup.env_files == (web / ".env", web / "prisma" / ".env")
    assert setup.url_from == f'url = env("DATABASE_URL") of schema.prisma, DATABASE_URL from {web / ".env"}'


def test_prisma6_root_env_is_next_to_the_nearest_package_json(tmp_path: Path) -> None:
    web = prisma6_monorepo(tmp_path)
    write(tmp_path / ".env", "DATABASE_URL=postgresql://monorepo-root@nowhere:5432/x\n")
    write(web / "prisma" / ".env", f"DATABASE_URL={PG_URL}\n")
    # apps/web has the nearest package.json but no .env: the repo root's .env is not Prisma's.
    setup = discover(tmp_path)
    assert setup.database is not None and setup.database.id == PG_ID


def test_prisma6_process_env_wins_over_both(tmp_path: Path) -> None:
    web = prisma6_monorepo(tmp_path)
    write(web / ".env", "DATABASE_URL=postgresql://root-env@nowhere:5432/x\n")
    write(web / "prisma" / ".env", "DATABASE_URL=postgresql://schema-env@nowhere:5432/x\n")
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.database is not None and setup.database.id == PG_ID


def test_prisma6_variable_expansion(tmp_path: Path) -> None:
    web = prisma6_monorepo(tmp_path)
    write(web / ".env", "DB_HOST=filehost\nDB_NAME=americano\n")
    write(
        web / "prisma" / ".env",
        "DB_PORT=5432\nDATABASE_URL=postgresql://${DB_USER}:${DB_PASSWORD}@${DB_HOST}:${DB_PORT}/${DB_NAME}\n"
        "LITERAL=\\${DB_HOST}\n",
    )
    # Set variables (the daemon's environment) win inside expansions too; other files' values are seen.
    env = {"DB_USER": "kyin", "DB_PASSWORD": "s3cret", "DB_HOST": "localhost"}
    setup = discover(tmp_path, env)
    assert setup.database is not None
    assert setup.database.url == "postgresql://kyin:s3cret@localhost:5432/americano"
    assert setup.database.id == "postgresql://kyin@localhost:5432/americano?schema=public"
    merged, _ = prisma6_env(web, tmp_path, web / "prisma", env)
    assert merged["LITERAL"] == "${DB_HOST}"


def test_prisma6_expansion_of_an_unset_variable_is_empty(tmp_path: Path) -> None:
    web = prisma6_monorepo(tmp_path)
    write(web / ".env", "A=${NOPE}x\nB=${B}\n")
    merged, _ = prisma6_env(web, tmp_path, web / "prisma", {})
    assert merged["A"] == "x"
    assert merged["B"] == "${B}"  # a self-reference does not hang


def test_prisma6_with_a_config_file_loads_no_env(tmp_path: Path) -> None:
    package_json(tmp_path, "6.19.3")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_ENV)
    write(
        tmp_path / "prisma.config.ts",
        'import { defineConfig } from "prisma/config";\nexport default defineConfig({ schema: "prisma/schema.prisma" });\n',
    )
    write(tmp_path / ".env", f"DATABASE_URL={PG_URL}\n")
    setup = discover(tmp_path)
    assert setup.prisma_version == (6, 19, 3)
    assert setup.database is None
    assert setup.problem == (
        "DATABASE_URL is not set (looked in: the environment only (no env file is loaded here); "
        'url = env("DATABASE_URL") of schema.prisma reads it)'
    )
    # With the dotenv import (Prisma 7's rule), the config folder's .env is read.
    write(
        tmp_path / "prisma.config.ts",
        'import "dotenv/config";\nimport { defineConfig } from "prisma/config";\n'
        'export default defineConfig({ schema: "prisma/schema.prisma" });\n',
    )
    with_dotenv = discover(tmp_path)
    assert with_dotenv.database is not None and with_dotenv.database.id == PG_ID


def test_prisma6_missing_variable(tmp_path: Path) -> None:
    package_json(tmp_path, "6.19.3")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_ENV)
    write(tmp_path / ".env", "OTHER=1\n")
    assert discover(tmp_path).problem == (
        f"DATABASE_URL is not set (looked in: the environment, {tmp_path / '.env'}; "
        'url = env("DATABASE_URL") of schema.prisma reads it)'
    )


def test_config_override_url_wins(tmp_path: Path) -> None:
    package_json(tmp_path, "6.19.3")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_ENV)
    setup = discover(tmp_path, {"DATABASE_URL": "postgresql://x@y:1/z"}, url=PG_URL)
    assert setup.database is not None and setup.database.id == PG_ID


# -- SQLite paths ----------------------------------------------------------------------------------------


def test_sqlite_relative_to_the_schema_folder_in_prisma6(tmp_path: Path) -> None:
    package_json(tmp_path, "6.19.3")
    write(tmp_path / "prisma" / "schema.prisma", SQLITE_SCHEMA)
    setup = discover(tmp_path)
    assert setup.provider == "sqlite"
    assert setup.database is not None
    assert setup.database.id == f"file:{tmp_path / 'prisma' / 'dev.db'}"


def test_sqlite_relative_to_the_config_folder_in_prisma7(tmp_path: Path) -> None:
    package_json(tmp_path, "7.10.0")
    write(tmp_path / "prisma" / "schema.prisma", 'datasource db {\n  provider = "sqlite"\n}\n')
    write(tmp_path / "prisma.config.ts", PRISMA7_CONFIG)
    write(tmp_path / ".env", "DATABASE_URL=file:./dev.db\n")
    setup = discover(tmp_path)
    assert setup.database is not None
    assert setup.database.id == f"file:{tmp_path / 'dev.db'}"


# -- worktree list ---------------------------------------------------------------------------------------


def test_worktree_list_prunable_detached_locked(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = PrismaRepo.create(tmp_path)
    head = repo.git(repo.main, "rev-parse", "HEAD")
    gone = repo.add_worktree("gone", "feature/gone")
    detached = tmp_path / "detached"
    repo.git(repo.main, "worktree", "add", "-q", "--detach", str(detached))
    locked = repo.add_worktree("locked", "feature/locked")
    repo.git(repo.main, "worktree", "lock", "--reason", "on a USB disk", str(locked))
    shutil.rmtree(gone)

    worktrees = list_worktrees(repo.main)
    # git lists the main worktree first, then the linked ones by their metadata folder name.
    assert worktrees == [
        Worktree(path=repo.main, head=head, branch="main", is_main=True),
        Worktree(path=detached, head=head, branch=None),
        Worktree(
            path=gone,
            head=head,
            branch="feature/gone",
            prunable="gitdir file points to non-existent location",
        ),
        Worktree(path=locked, head=head, branch="feature/locked", locked=True),
    ]
    assert worktrees[1].label == f"detached (detached {head[:8]})"
    # Listing from any worktree gives the same list.
    assert list_worktrees(locked) == worktrees


def test_worktree_list_of_a_bare_repository(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = PrismaRepo.create(tmp_path)
    bare = tmp_path / "bare.git"
    repo.git(tmp_path, "clone", "-q", "--bare", str(repo.main), str(bare))
    checkout = tmp_path / "checkout"
    repo.git(bare, "worktree", "add", "-q", str(checkout), "main")
    head = repo.git(checkout, "rev-parse", "HEAD")
    assert list_worktrees(bare) == [
        Worktree(path=bare, head=None, branch=None, is_main=True, bare=True),
        Worktree(path=checkout, head=head, branch="main"),
    ]


def test_parse_worktree_list_porcelain_z() -> None:
    text = (
        "worktree /r/main\0HEAD aaaa\0branch refs/heads/main\0\0"
        "worktree /r/with space\nand newline\0HEAD bbbb\0branch refs/heads/feature/x\0locked\0\0"
        "worktree /r/gone\0HEAD cccc\0detached\0prunable gitdir file points to non-existent location\0\0"
        "worktree /r/locked-reason\0HEAD dddd\0branch refs/heads/l\0locked because\0\0"
    )
    assert parse_worktree_list(text) == [
        Worktree(path=Path("/r/main"), head="aaaa", branch="main", is_main=True),
        Worktree(path=Path("/r/with space\nand newline"), head="bbbb", branch="feature/x", locked=True),
        Worktree(
            path=Path("/r/gone"),
            head="cccc",
            branch=None,
            prunable="gitdir file points to non-existent location",
        ),
        Worktree(path=Path("/r/locked-reason"), head="dddd", branch="l", locked=True),
    ]
    assert parse_worktree_list("") == []


# -- bounded input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env_text",
    [
        "DATABASE_URL=postgresql://u:" + "p@" * 500_000 + "h/db\n",  # a 1 MB invalid URL
        "A0=x\n"
        + "".join(f"A{i}=${{A{i - 1}}}${{A{i - 1}}}\n" for i in range(1, 60))
        + "DATABASE_URL=${A59}\n",
    ],
    ids=["1 MB URL", "${} doubling bomb"],
)
def test_huge_values_give_one_line_at_once(tmp_path: Path, env_text: str) -> None:
    import time

    package_json(tmp_path, "6.19.3")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_ENV)
    write(tmp_path / ".env", env_text)
    started = time.perf_counter()
    setup = discover(tmp_path)
    assert time.perf_counter() - started < 10.0  # a hang bound: expanding the doubling bomb takes for ever
    assert setup.database is None
    assert setup.problem == (
        "the database URL is longer than 4,096 characters: not a database URL "
        f'(from url = env("DATABASE_URL") of schema.prisma, DATABASE_URL from {tmp_path / ".env"})'
    )


def test_direct_url_is_what_prisma6_migrate_reads(tmp_path: Path) -> None:
    package_json(tmp_path, "6.19.3")
    write(
        tmp_path / "prisma" / "schema.prisma",
        SCHEMA_ENV.replace('env("DATABASE_URL")', 'env("DATABASE_URL")\n  directUrl = env("DIRECT_URL")'),
    )
    pooled = "postgresql://kyin:s3cret@pooler.internal:6543/americano?pgbouncer=true"
    write(tmp_path / ".env", f"DATABASE_URL={pooled}\n")
    missing = discover(tmp_path)
    assert missing.problem == (
        f"DIRECT_URL is not set (looked in: the environment, {tmp_path / '.env'}; "
        'directUrl = env("DIRECT_URL") of schema.prisma reads it)'
    )
    assert missing.missing_variables == ("DIRECT_URL",)
    write(tmp_path / ".env", f"DATABASE_URL={pooled}\nDIRECT_URL={PG_URL}\n")
    setup = discover(tmp_path)
    assert setup.database is not None and setup.database.id == PG_ID
    assert (
        setup.url_from
        == f'directUrl = env("DIRECT_URL") of schema.prisma, DIRECT_URL from {tmp_path / ".env"}'
    )


def test_prisma7_ignores_direct_url_in_its_config(tmp_path: Path) -> None:
    package_json(tmp_path, "7.8.0")
    write(tmp_path / "prisma" / "schema.prisma", SCHEMA_NO_URL)
    write(
        tmp_path / "prisma.config.ts",
        'import { defineConfig } from "prisma/config";\n'
        "export default defineConfig({\n"
        "  datasource: { url: process.env.DATABASE_URL!, directUrl: process.env.DIRECT_URL! },\n"
        "});\n",
    )
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL, "DIRECT_URL": "postgresql://x@direct:5432/other"})
    assert setup.database is not None and setup.database.id == PG_ID
    assert (
        setup.url_from
        == "datasource.url = process.env.DATABASE_URL! of prisma.config.ts, DATABASE_URL from environment"
    )
    assert setup.notes == (
        "prisma.config.ts sets datasource.directUrl, which Prisma 7 does not read: its migrate commands use "
        "datasource.url, and so does migwatch",
    )


def test_migrations_path_outside_the_worktree_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    package_json(root, "7.8.0")
    write(root / "prisma" / "schema.prisma", SCHEMA_NO_URL)
    write(
        root / "prisma.config.ts",
        'import { defineConfig } from "prisma/config";\n'
        'export default defineConfig({ migrations: { path: "/usr/share" }, datasource: { url: "file:./x.db" } });\n',
    )
    setup = discover(root)
    assert setup.migrations_dir is None
    assert setup.problem == (
        f"the migrations path /usr/share is outside the worktree {root}; migwatch reads only folders inside it"
    )


def test_schema_folder_prisma7_and_computed_config(tmp_path: Path) -> None:
    # rallly's layout: packages/database with prisma/ holding models/*.prisma, a computed config.
    package = tmp_path / "packages" / "database"
    package_json(package, "^7.8.0")
    write(package / "prisma" / "schema.prisma", SCHEMA_NO_URL)
    write(package / "prisma" / "models" / "poll.prisma", "model Poll {\n  id Int @id\n}\n")
    write(
        package / "prisma.config.ts",
        'import path from "node:path";\nimport { defineConfig } from "prisma/config";\n'
        'try {\n  process.loadEnvFile(path.join(__dirname, ".env"));\n} catch {}\n'
        "export default defineConfig({\n"
        '  schema: path.join(__dirname, "prisma"),\n'
        '  migrations: { path: path.join(__dirname, "prisma/migrations") },\n'
        "  datasource: { url: process.env.DIRECT_DATABASE_URL || process.env.DATABASE_URL },\n"
        "});\n",
    )
    write(
        package / ".env", f"DATABASE_URL=postgresql://pooled@elsewhere:5432/x\nDIRECT_DATABASE_URL={PG_URL}\n"
    )
    setup = discover(tmp_path)
    assert (setup.package_dir, setup.schema_path, setup.migrations_dir) == (
        package,
        package / "prisma",
        package / "prisma" / "migrations",
    )
    assert setup.database is not None and setup.database.id == PG_ID
    assert setup.url_from == (
        "datasource.url = process.env.DIRECT_DATABASE_URL || process.env.DATABASE_URL of prisma.config.ts, "
        f"DIRECT_DATABASE_URL from {package / '.env'}"
    )


@pytest.mark.parametrize(
    ("version", "migrations"),
    [
        ("6.5.0", "prisma/migrations"),
        ("6.19.3", "prisma/schema/migrations"),
        ("7.8.0", "prisma/schema/migrations"),
    ],
)
def test_schema_folder_migrations_per_version(tmp_path: Path, version: str, migrations: str) -> None:
    package_json(tmp_path, version, prisma={"schema": "prisma/schema"})
    write(tmp_path / "prisma" / "schema" / "schema.prisma", SCHEMA_ENV)
    write(tmp_path / "prisma" / "schema" / "link.prisma", "model Link {\n  id Int @id\n}\n")
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.schema_path == tmp_path / "prisma" / "schema"
    assert setup.migrations_dir == tmp_path / migrations


def test_package_folder_without_package_json_is_where_prisma_runs(tmp_path: Path) -> None:
    package_json(tmp_path, "6.19.3")
    write(tmp_path / "backend" / "prisma" / "schema.prisma", SCHEMA_ENV)
    setup = discover(tmp_path, {"DATABASE_URL": PG_URL})
    assert setup.package_dir == tmp_path / "backend"
