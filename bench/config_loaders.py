"""Computed Prisma 7 configs: Prisma's own config loader vs migwatch's tree-sitter evaluation (issue 11).

For every config in tests/fixtures/prisma-configs, runs Prisma 7.8's `loadConfigFromFile` (a Node
process per config, as migwatch would have to) and `prismaconfig.read_prisma_config`, and prints
whether they agree on schema, migrations.path and datasource.url, and what each costs. The loader is
installed with npm into bench/work/config-loader on first use. With `--record`, the loader's answers
are written to each fixture's expected.json (what tests/test_prismaconfig.py compares against).

Run: `.venv/bin/python bench/config_loaders.py [--record]`
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(1, str(ROOT / "daemon"))

from migwatch.envfiles import read_env_file  # noqa: E402
from migwatch.prismaconfig import read_prisma_config  # noqa: E402

CONFIGS = ROOT / "tests" / "fixtures" / "prisma-configs"
WORK = ROOT / "bench" / "work" / "config-loader"
PACKAGES = ["prisma@7.8.0", "@prisma/config@7.8.0", "dotenv@17"]
LOADER = """import { loadConfigFromFile } from '@prisma/config'
const [configFile, cwd] = process.argv.slice(2)
process.chdir(cwd)
const r = await loadConfigFromFile({ configFile, configRoot: cwd })
const c = r.config ?? {}
console.log(JSON.stringify({ schema: c.schema ?? null, migrations: c.migrations?.path ?? null,
  url: c.datasource?.url || null, error: r.error ? r.error._tag : null }))
"""


def install() -> None:
    if (WORK / "node_modules" / "@prisma" / "config").is_dir():
        return
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "package.json").write_text('{"name": "config-loader", "private": true}\n')
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", *PACKAGES],
        cwd=WORK,
        check=True,
    )


def relative(value: str | Path | None, folder: Path) -> str | None:
    return None if value is None else os.path.relpath(value, folder)


def compare(name: str, record: bool) -> tuple[bool, float, float]:
    expected_file = CONFIGS / name / "expected.json"
    expected = json.loads(expected_file.read_text())
    project = WORK / "projects" / name
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(CONFIGS / name, project)  # under WORK, so `import "prisma/config"` resolves
    folder = (project / expected["config"]).resolve()
    env = {**expected["env"], "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    started = time.perf_counter()
    completed = subprocess.run(
        ["node", str(WORK / "load.mjs"), str(folder / "prisma.config.ts"), str(folder)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    node_seconds = time.perf_counter() - started
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    prisma = {
        "schema": relative(loaded["schema"], folder),
        "migrations": relative(loaded["migrations"], folder),
        "url": loaded["url"],
    }
    started = time.perf_counter()
    values = read_prisma_config(
        folder / "prisma.config.ts", cwd=folder, env=expected["env"], read_env=read_env_file
    )
    ours_seconds = time.perf_counter() - started
    ours = {
        "schema": relative(values.schema, folder),
        "migrations": relative(values.migrations_path, folder),
        "url": values.url,
    }
    if record:
        expected["prisma_7_8_loader"] = prisma
        expected_file.write_text(json.dumps(expected, indent=1) + "\n")
    agree = ours == prisma
    print(
        f"{name:28} agree={agree!s:5} loader {node_seconds * 1000:6.0f} ms  tree-sitter {ours_seconds * 1000:5.1f} ms"
    )
    return agree, node_seconds, ours_seconds


def run() -> None:
    install()
    (WORK / "load.mjs").write_text(LOADER)
    results = [compare(p.name, "--record" in sys.argv) for p in sorted(CONFIGS.iterdir())]
    print(
        f"agree on {sum(r[0] for r in results)} of {len(results)} configs; median per config: "
        f"Prisma's loader {statistics.median(r[1] for r in results) * 1000:.0f} ms, "
        f"tree-sitter {statistics.median(r[2] for r in results) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    run()
