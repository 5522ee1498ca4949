"""prisma.config.ts evaluated without running it (prismaconfig.py), against what Prisma's own loader
returned for the same files (tests/fixtures/prisma-configs/*/expected.json, Prisma 7.8's
loadConfigFromFile; recorded with bench/config_loaders.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from migwatch.envfiles import read_env_file
from migwatch.prismaconfig import read_prisma_config

CONFIGS = Path(__file__).parent / "fixtures" / "prisma-configs"
# Configs outside the documented subset: Prisma's answer differs from migwatch's "unknown".
OUTSIDE_THE_SUBSET = {"synthetic-function": "statement `tryLoadEnvFile('.env')`"}


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.iterdir()))
def test_evaluation_agrees_with_prismas_loader(name: str) -> None:
    expected = json.loads((CONFIGS / name / "expected.json").read_text())
    folder = (CONFIGS / name / expected["config"]).resolve()
    values = read_prisma_config(
        folder / "prisma.config.ts", cwd=folder, env=expected["env"], read_env=read_env_file
    )
    ours = {
        "schema": os.path.relpath(values.schema, folder) if values.schema else None,
        "migrations": os.path.relpath(values.migrations_path, folder) if values.migrations_path else None,
        "url": values.url,
    }
    prisma = expected["prisma_7_8_loader"]
    if name in OUTSIDE_THE_SUBSET:
        assert ours["url"] is None and prisma["url"] is not None
        assert any(OUTSIDE_THE_SUBSET[name] in c for c in values.computed), values.computed
        ours["url"] = prisma["url"]
    assert ours == prisma
    assert values.error is None


def test_the_documented_subset(tmp_path: Path) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "dev.env").write_text("HOST=db.internal\nNAME=app\n")
    config = tmp_path / "prisma.config.ts"
    config.write_text(
        'import * as path from "path";\n'
        'import { join, resolve as res } from "node:path";\n'
        'import dotenv from "dotenv";\n'
        'import { defineConfig, env, type PrismaConfig } from "prisma/config";\n'
        "const mode = process.env.MODE ?? 'dev';\n"
        "dotenv.config({ path: `envs/${mode}.env`, override: false });\n"
        "const config = {\n"
        "  schema: mode === 'dev' ? join(import.meta.dirname, 'db') : 'other',\n"
        "  migrations: { path: res('db', 'migrations') },\n"
        "  datasource: {\n"
        "    url: `postgresql://me@${process.env.HOST}:5432/${env('NAME')}` as string,\n"
        "    shadowDatabaseUrl: process.env.SHADOW!,\n"
        "  },\n"
        "} satisfies PrismaConfig;\n"
        "export default defineConfig(config);\n"
    )
    values = read_prisma_config(config, cwd=tmp_path, env={}, read_env=read_env_file)
    assert (values.schema, values.migrations_path, values.url) == (
        tmp_path / "db",
        tmp_path / "db" / "migrations",
        "postgresql://me@db.internal:5432/app",
    )
    assert values.url_variables == ("HOST", "NAME")
    assert values.env_files == (tmp_path / "envs" / "dev.env",)
    assert (values.computed, values.shadow_url_set, values.error) == ((), False, None)


def test_unknown_code_is_reported_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = tmp_path / "prisma.config.ts"
    config.write_text(
        'import { execSync } from "node:child_process";\n'
        f'execSync("touch {marker}");\n'
        "export default { datasource: { url: require('./url.js') } };\n"
    )
    values = read_prisma_config(config, cwd=tmp_path, env={}, read_env=read_env_file)
    assert not marker.exists()
    assert values.computed[0].startswith('statement `execSync("touch ')
    assert values.computed[1:] == ("datasource.url (require('./url.js'))",)
