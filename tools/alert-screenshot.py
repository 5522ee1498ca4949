"""Takes the README's picture of a real alert: the seed story's findings, sent by migwatch's desktop
notifier to a real notification server (Xvfb + private D-Bus + dunst), captured from the screen.

    .venv/bin/python tools/alert-screenshot.py [docs/alert.png]

Needs Xvfb, dbus, dunst (tools/system-deps.sh) and ImageMagick's `import`/`convert` (apt-get install
imagemagick); it installs ImageMagick with apt-get when it is missing and it runs as root.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.gitrepo import PrismaRepo, isolated_environ, seed_migrations  # noqa: E402
from tests.support.notifyserver import NotificationServer  # noqa: E402
from tests.support.prisma_rows import apply_like_prisma, create_history_table  # noqa: E402

from migwatch.alerts import AlertPolicy, AlertState, update  # noqa: E402
from migwatch.config import parse_config  # noqa: E402
from migwatch.notify.desktop import DesktopNotifierThread  # noqa: E402
from migwatch.pipeline import CheckOptions, run_status  # noqa: E402

STORY_5_1 = "20251016231054_add_story_5_1_behavioral_pattern_models"


def _ensure_imagemagick() -> None:
    if shutil.which("import") and Path("/etc/ImageMagick-6").exists():
        return
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "imagemagick"], check=True)


def main() -> int:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "alert.png").resolve()
    _ensure_imagemagick()
    work = Path(tempfile.mkdtemp(prefix="migwatch-shot-"))
    server = NotificationServer.start()
    try:
        env = isolated_environ(work / "home")
        db = work / "dev.db"
        repo = PrismaRepo.seed_story(work, "sqlite", database_url=f"file:{db}", env=env)
        with closing(sqlite3.connect(db)) as conn:
            create_history_table(conn, "sqlite")
            for folder in sorted(p for p in repo.migrations_path(repo.main).iterdir() if p.is_dir()):
                apply_like_prisma(conn, folder, provider="sqlite")
            repo.write_migration(repo.epic5, STORY_5_1, seed_migrations("sqlite")[STORY_5_1])
            repo.commit(repo.epic5, "Story 5.1")
            apply_like_prisma(conn, repo.migrations_path(repo.epic5) / STORY_5_1, provider="sqlite")
            conn.commit()
        config = parse_config(f"projects:\n  - repo: {repo.main}\n", source=None, env=env)
        report = run_status(config, CheckOptions(env=env))
        _, alerts = update(AlertState(records={}), report.findings, time.time(), AlertPolicy(0, True))
        chosen = [a for a in alerts if a.finding.worktree == str(repo.epic3)]
        os.environ.update(server.env)
        notifier = DesktopNotifierThread()
        try:
            for alert in chosen:
                notifier.send(alert)
        finally:
            notifier.close()
        server.wait_for_displayed(len(chosen), timeout=10)
        display = server.env["DISPLAY"]
        raw = work / "screen.png"
        subprocess.run(["import", "-display", display, "-window", "root", str(raw)], check=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["convert", str(raw), "-trim", "+repage", "-bordercolor", "black", "-border", "8", str(target)],
            check=True,
        )
        print(f"wrote {target} ({len(chosen)} alert{'s' if len(chosen) != 1 else ''})")
        return 0
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
