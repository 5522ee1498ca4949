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
