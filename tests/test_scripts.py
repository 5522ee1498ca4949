"""package.json scripts → Prisma commands, env files and package manager (scripts.py), plain values."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from migwatch.scripts import (
    PrismaScript,
    exec_argv,
    package_manager,
    prisma_scripts,
    resolve_command,
    run_script_argv,
    split_commands,
)


def write_package(folder: Path, scripts: dict[str, str], **fields: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps({**fields, "scripts": scripts}))
    return folder


def summary(found: list[PrismaScript]) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return [(s.name, s.subcommand, tuple(str(f) for f in s.env_files), s.wrappers) for s in found]


def test_create_t3_turbo_with_env_chain(tmp_path: Path) -> None:
    # The layout of t3-oss/create-t3-turbo's packages/db (with Prisma instead of Drizzle).
    root = write_package(tmp_path, {"db:push": "turbo -F @acme/db push", "dev": "turbo watch dev"})
    (root / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    db = write_package(
        root / "packages" / "db",
        {
            "with-env": "dotenv -e ../../.env --",
            "push": "pnpm with-env prisma db push",
            "migrate": "pnpm with-env prisma migrate deploy --schema ./prisma/schema.prisma",
            "studio": "pnpm with-env prisma studio --port 5556",
        },
        name="@acme/db",
    )
    found = prisma_scripts(root, db)
    env = str(root / ".env")
    assert summary(found) == [
        ("push", "db push", (env,), ("dotenv-cli",)),
        ("migrate", "migrate deploy", (env,), ("dotenv-cli",)),
        ("studio", "studio", (env,), ("dotenv-cli",)),
        ("db:push", "db push", (env,), ("dotenv-cli",)),
    ]
    assert found[0].via == ("push", "with-env")
    assert found[0].argv == ("db", "push")
    assert found[1].schema == db / "prisma/schema.prisma"
    assert found[3].via == ("db:push", "push", "with-env")
    assert (found[3].cwd, found[3].prisma_cwd) == (root, db)
    assert package_manager(root, db) == ("pnpm", f"{root / 'pnpm-lock.yaml'}")
    assert run_script_argv("pnpm", found[1].name) == ["pnpm", "run", "migrate"]


def test_npm_chain_with_and_and_generate(tmp_path: Path) -> None:
    pkg = write_package(
        tmp_path,
        {
            "db:generate": "prisma generate",
            "db:deploy": "npm run db:generate && prisma migrate deploy",
            "postinstall": "prisma generate || true",
            "build": "next build",
        },
    )
    assert summary(prisma_scripts(pkg, pkg)) == [
        ("db:generate", "generate", (), ()),
        ("db:deploy", "generate", (), ()),
        ("db:deploy", "migrate deploy", (), ()),
        ("postinstall", "generate", (), ()),
    ]


@pytest.mark.parametrize(
    ("script", "files", "wrapper", "subcommand"),
    [
        (
            "dotenv -e ../../.env -e .env -- prisma migrate dev",
            ["../../.env", ".env"],
            "dotenv-cli",
            "migrate dev",
        ),
        ("dotenv -e=.env.test -- prisma migrate reset --force", [".env.test"], "dotenv-cli", "migrate reset"),
        ("dotenv -- prisma migrate deploy", [".env"], "dotenv-cli", "migrate deploy"),
        (
            "dotenv -c development -- prisma db push",
            [".env.development.local", ".env.local", ".env.development", ".env"],
            "dotenv-cli",
            "db push",
        ),
        ("env-cmd -f ./.env.local prisma migrate dev", ["./.env.local"], "env-cmd", "migrate dev"),
        (
            "env-cmd --file ../.env -- prisma migrate resolve --applied 1_init",
            ["../.env"],
            "env-cmd",
            "migrate resolve",
        ),
        ("env-cmd ./config/.env prisma generate", ["./config/.env"], "env-cmd", "generate"),
        (
            "node --env-file=../../.env --env-file .env.local node_modules/.bin/prisma migrate deploy",
            [".env.local", "../../.env"],
            "node --env-file",
            "migrate deploy",
        ),
        (
            "node --env-file=.env ./node_modules/prisma/build/index.js db seed",
            [".env"],
            "node --env-file",
            "db seed",
        ),
        (
            "dotenvx run -f .env.local -f .env -- npx prisma migrate deploy",
            [".env.local", ".env"],
            "dotenvx",
            "migrate deploy",
        ),
        ("set -a && source ../.env && prisma migrate deploy", ["../.env"], "source", "migrate deploy"),
    ],
)
def test_env_wrappers(tmp_path: Path, script: str, files: list[str], wrapper: str, subcommand: str) -> None:
    pkg = write_package(tmp_path / "apps" / "web", {"db": script})
    [found] = prisma_scripts(tmp_path, pkg)
    assert (found.subcommand, list(found.env_files), found.wrappers) == (
        subcommand,
        [Path(os.path.normpath(pkg / f)) for f in files],
        (wrapper,),
    )


def test_inline_variables_and_cross_env(tmp_path: Path) -> None:
    pkg = write_package(
        tmp_path,
        {
            "test:db": "cross-env DATABASE_URL=file:./test.db NODE_ENV=test prisma migrate reset --force --skip-seed",
            "ci": "DATABASE_URL=$CI_URL prisma migrate deploy",
        },
    )
    first, second = prisma_scripts(pkg, pkg)
    assert (first.subcommand, first.env_vars, first.wrappers) == (
        "migrate reset",
        (("DATABASE_URL", "file:./test.db"), ("NODE_ENV", "test")),
        ("cross-env",),
    )
    assert (second.subcommand, second.env_vars, second.wrappers) == (
        "migrate deploy",
        (("DATABASE_URL", "$CI_URL"),),
        (),
    )


def test_outer_wrapper_files_come_first(tmp_path: Path) -> None:
    # dotenv never overrides a set variable: the file loaded by the outer wrapper wins.
    pkg = write_package(
        tmp_path,
        {
            "migrate": "dotenv -e .env.shared -- npm run migrate:inner",
            "migrate:inner": "env-cmd -f .env prisma migrate deploy",
        },
    )
    found = [s for s in prisma_scripts(pkg, pkg) if s.name == "migrate"]
    assert summary(found) == [
        (
            "migrate",
            "migrate deploy",
            (str(pkg / ".env.shared"), str(pkg / ".env")),
            ("dotenv-cli", "env-cmd"),
        )
    ]


@pytest.mark.parametrize(
    "script",
    [
        "yarn with-env prisma migrate dev",
        "yarn run with-env prisma migrate dev",
        "bun run with-env prisma migrate dev",
        "pnpm run with-env prisma migrate dev",
        "npm run with-env -- prisma migrate dev",
        "sh -c 'pnpm with-env prisma migrate dev'",
    ],
)
def test_every_manager_runs_scripts_with_appended_args(tmp_path: Path, script: str) -> None:
    pkg = write_package(tmp_path, {"with-env": "dotenv -e ../.env --", "dev:db": script})
    found = [s for s in prisma_scripts(pkg, pkg) if s.name == "dev:db"]
    assert summary(found) == [("dev:db", "migrate dev", (str(tmp_path.parent / ".env"),), ("dotenv-cli",))]


@pytest.mark.parametrize(
    "script",
    [
        "npm run db:migrate -w packages/db",
        "npm run db:migrate --workspace=packages/db",
        "npm --prefix packages/db run db:migrate",
        "pnpm --filter @app/db db:migrate",
        "pnpm -F @app/db run db:migrate",
        "pnpm -C packages/db db:migrate",
        "yarn workspace @app/db db:migrate",
        "turbo run db:migrate --filter=@app/db",
        "turbo db:migrate",
    ],
)
def test_root_scripts_delegating_to_the_package(tmp_path: Path, script: str) -> None:
    root = write_package(tmp_path, {"migrate": script})
    db = write_package(root / "packages" / "db", {"db:migrate": "prisma migrate deploy"}, name="@app/db")
    found = [s for s in prisma_scripts(root, db) if s.name == "migrate"]
    assert [(s.subcommand, s.cwd, s.prisma_cwd, s.via) for s in found] == [
        ("migrate deploy", root, db, ("migrate", "db:migrate"))
    ]


def test_other_workspaces_and_non_prisma_scripts_give_nothing(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "web": "pnpm --filter @app/web dev",
            "install:all": "pnpm install",
            "lint": "eslint . && tsc --noEmit",
            "loop": "npm run loop2",
            "loop2": "npm run loop",
            "broken": "dotenv -e '.env -- prisma migrate deploy",
            "echo": "echo prisma migrate reset > /dev/null 2>&1",
        },
    )
    write_package(root / "packages" / "db", {"dev": "prisma studio"}, name="@app/db")
    assert prisma_scripts(root, root / "packages" / "db") == [
        PrismaScript(
            name="dev",
            subcommand="studio",
            argv=("studio",),
            cwd=root / "packages" / "db",
            prisma_cwd=root / "packages" / "db",
            via=("dev",),
        )
    ]


def test_split_commands() -> None:
    assert split_commands("a 'b c' && d\"e\" || f ; g | h 2>&1 > out.log & i") == [
        ["a", "b c"],
        ["de"],
        ["f"],
        ["g"],
        ["h"],
        ["i"],
    ]
    assert split_commands("unbalanced 'quote") == []


def test_package_manager_sources(tmp_path: Path) -> None:
    root = write_package(tmp_path, {}, packageManager="yarn@4.5.0")
    pkg = write_package(root / "apps" / "api", {})
    (root / "package-lock.json").write_text("{}")
    assert package_manager(root, pkg) == ("yarn", f"packageManager 'yarn@4.5.0' in {root / 'package.json'}")
    (root / "package.json").write_text("{}")
    assert package_manager(root, pkg) == ("npm", f"{root / 'package-lock.json'}")
    (pkg / "bun.lock").write_text("{}")
    assert package_manager(root, pkg) == ("bun", f"{pkg / 'bun.lock'}")
    assert package_manager(tmp_path / "nothing", tmp_path / "nothing") == (
        "npm",
        "no lockfile (npm is the default)",
    )


def test_printed_argv_per_manager() -> None:
    assert run_script_argv("npm", "db:deploy") == ["npm", "run", "db:deploy"]
    assert run_script_argv("npm", "db", ["--force"]) == ["npm", "run", "db", "--", "--force"]
    assert run_script_argv("yarn", "db", ["--force"]) == ["yarn", "run", "db", "--force"]
    assert exec_argv("npm", ["migrate", "deploy"]) == ["npx", "prisma", "migrate", "deploy"]
    assert exec_argv("pnpm", ["generate"]) == ["pnpm", "exec", "prisma", "generate"]
    assert exec_argv("bun", ["generate"]) == ["bunx", "prisma", "generate"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["npm", "run", "db:reset"], [("db:reset", "migrate reset", ("db:reset", "with-env"))]),
        (["pnpm", "db:reset", "--skip-seed"], [("db:reset", "migrate reset", ("db:reset", "with-env"))]),
        (["npx", "prisma", "migrate", "reset", "--force"], [("", "migrate reset", ())]),
        (["pnpm", "prisma", "migrate", "dev"], [("", "migrate dev", ())]),
        (["npm", "exec", "--", "prisma", "db", "push", "--accept-data-loss"], [("", "db push", ())]),
        (["bunx", "--bun", "prisma", "migrate", "dev", "--name", "x"], [("", "migrate dev", ())]),
        (["node_modules/.bin/prisma", "migrate", "reset"], [("", "migrate reset", ())]),
        (["dotenv", "-e", ".env", "--", "yarn", "prisma", "migrate", "dev"], [("", "migrate dev", ())]),
        (["npm", "run", "lint"], []),
        (["npm", "install"], []),
    ],
)
def test_resolve_command_for_the_guard(
    tmp_path: Path, argv: list[str], expected: list[tuple[str, str, tuple[str, ...]]]
) -> None:
    pkg = write_package(
        tmp_path / "apps" / "web",
        {
            "with-env": "dotenv -e ../../.env --",
            "db:reset": "pnpm with-env prisma migrate reset --force",
            "lint": "eslint",
        },
    )
    (pkg / "src").mkdir()
    found = resolve_command(argv, pkg / "src", tmp_path)
    assert [(s.name, s.subcommand, s.via) for s in found] == expected
    assert all(s.cwd == pkg / "src" for s in found)
    if argv[:2] == ["npm", "run"] and found:
        assert found[0].env_files == (tmp_path / ".env",)
        assert found[0].argv == ("migrate", "reset", "--force")


def test_oversized_and_malformed_package_json(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{" + " " * 1_100_000 + "}")
    assert prisma_scripts(tmp_path, tmp_path) == []
    (tmp_path / "package.json").write_text('{"scripts": ["prisma migrate reset"]}')
    assert prisma_scripts(tmp_path, tmp_path) == []
    (tmp_path / "package.json").write_text("not json")
    assert prisma_scripts(tmp_path, tmp_path) == []
