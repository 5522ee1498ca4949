"""Worktrees checked against the right database after `migwatch init`, with no config edit, on the
real-project layouts of tests/fixtures/layouts (the figure of issue 11).

Run: `.venv/bin/python bench/corpus_checked.py`. With `PYTHONPATH=<other checkout>/daemon` it measures
that version of migwatch instead (how the "before" figure was taken).
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from tests.support.pg import PgDatabase, PgServer
from tests.test_corpus import LAYOUTS_UNDER_TEST, Layout, build, prepare_databases

from migwatch.cli import main


def checked(layout: Layout, server: PgServer) -> int:
    """How many of the layout's two worktrees `status` checks against the right database, state ok."""
    root = Path(tempfile.mkdtemp())
    repo, feature, env = build(layout, root)
    os.environ.update({k: env[k] for k in ("HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM") if k in env})
    direct = PgDatabase(server, server.create_database())
    expected = prepare_databases(layout, (repo, feature), direct, server.url(server.create_database()))
    config = root / "config.yaml"
    main(["--config", str(config), "init", str(repo)], out=io.StringIO())
    out = io.StringIO()
    main(["--config", str(config), "status", "--json"], out=out)
    document = json.loads(out.getvalue()) if out.getvalue().strip() else {"projects": []}
    worktrees = document["projects"][0]["worktrees"] if document["projects"] else []
    return sum(1 for w in worktrees if w["database"] == expected.get(Path(w["path"])) and w["state"] == "ok")


def run() -> None:
    server = PgServer.start_new()
    total = good = 0
    try:
        for layout in LAYOUTS_UNDER_TEST:
            count = checked(layout, server)
            print(f"{layout.name}: {count}/2 worktrees checked against the right database")
            good, total = good + count, total + 2
    finally:
        server.cleanup()
    print(f"total: {good}/{total} worktrees checked with no config edit")


if __name__ == "__main__":
    run()
