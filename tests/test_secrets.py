"""Passwords never leave migwatch: realistic `.env` mistakes × every output channel (issue 11.5, 16).

Each mistake is a small real repository whose `.env` holds a database URL written the way people get
it wrong. `init`, `status`, `status --json`, `status -v` and a real `run --once` (debug log file,
alert state file, a command notifier's stdin) run on it, and every channel is searched for the
password in each spelling (as written, percent-encoded, percent-decoded, JSON-escaped).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import psycopg
import pytest
import yaml

from migwatch.cli import main
from migwatch.config import alert_codes
from tests.support.gitrepo import PrismaRepo
from tests.support.pg import PgServer

ROLE = "mistake"
ROLE_PASSWORD = "Hunter@2:x"  # a real role: URLs with the unencoded `@` and `:` must still connect


@dataclass(frozen=True)
class Mistake:
    name: str
    secret: str
    env: Callable[[str, int], str]  # (database, port) → the .env text
    provider: str = "postgresql"
    direct_url: bool = False
    checked: bool = False  # the URL is right despite the look of it: the worktree is checked


MISTAKES = [
    Mistake(
        "unencoded @ and : in the password",
        ROLE_PASSWORD,
        lambda db, port: f'DATABASE_URL="postgresql://{ROLE}:{ROLE_PASSWORD}@127.0.0.1:{port}/{db}"\n',
        checked=True,
    ),
    Mistake(
        "unencoded /",
        "pa/ss-9f3",
        lambda db, p: f"DATABASE_URL=postgresql://{ROLE}:pa/ss-9f3@127.0.0.1:{p}/{db}\n",
    ),
    Mistake(
        "unencoded #",
        "pa#ss-7k2",
        lambda db, p: f'DATABASE_URL="postgresql://{ROLE}:pa#ss-7k2@127.0.0.1:{p}/{db}"\n',
    ),
    Mistake(
        "unencoded ?",
        "pa?ss-4q8",
        lambda db, p: f"DATABASE_URL=postgresql://{ROLE}:pa?ss-4q8@127.0.0.1:{p}/{db}\n",
    ),
    Mistake(
        "URL pasted twice",
        "twice-5z1",
        lambda db, p: (
            f"DATABASE_URL=postgresql://{ROLE}:twice-5z1@127.0.0.1:{p}/{db}"
            f"postgresql://{ROLE}:twice-5z1@127.0.0.1:{p}/{db}\n"
        ),
    ),
    Mistake(
        "key/value DSN",
        "dsn-3m7",
        lambda db, p: f"DATABASE_URL='host=127.0.0.1 port={p} user={ROLE} password=dsn-3m7 dbname={db}'\n",
    ),
    Mistake(
        "password as a query parameter",
        ROLE_PASSWORD,
        lambda db, p: (
            f"DATABASE_URL=postgresql://{ROLE}@127.0.0.1:{p}/{db}?schema=public&password={quote(ROLE_PASSWORD)}\n"
        ),
        checked=True,
    ),
    Mistake(
        "PostgreSQL URL under a sqlite datasource",
        "sqlite-6t4",
        lambda db, p: "DATABASE_URL=postgresql://mistake:sqlite-6t4@db.internal:5432/x\n",
        provider="sqlite",
    ),
    Mistake(
        "a space in the password",
        "open sesame-2",
        lambda db, p: f'DATABASE_URL="postgresql://{ROLE}:open sesame-2@127.0.0.1:{p}/{db}"\n',
    ),
    Mistake(
        "an unencoded % in a wrong password",
        "100%pure-1x",
        lambda db, p: f"DATABASE_URL=postgresql://{ROLE}:100%pure-1x@127.0.0.1:{p}/{db}\n",
    ),
    Mistake(
        "a wrong password in directUrl",
        "direct-wrong-8",
        lambda db, p: (
            f"DATABASE_URL=postgresql://{ROLE}:{quote(ROLE_PASSWORD)}@127.0.0.1:{p}/{db}\n"
            f"DIRECT_URL=postgresql://{ROLE}:direct-wrong-8@127.0.0.1:{p}/{db}\n"
        ),
        direct_url=True,
    ),
    Mistake(
        "a password expanded from another variable",
        "exp-secret-4",
        lambda db, p: (
            f"DB_PASSWORD=exp-secret-4\nDATABASE_URL=postgresql://{ROLE}:${{DB_PASSWORD}}@127.0.0.1:{p}/{db}\n"
        ),
    ),
]


def spellings(secret: str) -> set[str]:
    plain = {secret, quote(secret, safe=""), unquote(secret)}
    return (
        plain
        | {json.dumps(s)[1:-1] for s in plain}
        | {json.dumps(s, ensure_ascii=False)[1:-1] for s in plain}
    )


@pytest.fixture(scope="module")
def role(pg_server: PgServer) -> Iterator[str]:
    database = pg_server.create_database()
    with psycopg.connect(pg_server.url(database).split("?")[0], autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'")
        admin.execute(f"GRANT ALL ON DATABASE {database} TO {ROLE}")
    yield database


def in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`migwatch ARGV` through cli.main (stderr is the process's: logging writes there)."""
    capsys.readouterr()
    out = io.StringIO()
    code = main(argv, out=out)
    return code, out.getvalue(), capsys.readouterr().err


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    completed = subprocess.run(
        [sys.executable, "-m", "migwatch", *argv],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return completed.returncode, completed.stdout, completed.stderr


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_no_channel_shows_the_password(
    mistake: Mistake,
    role: str,
    pg_server: PgServer,
    tmp_path: Path,
    git_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = PrismaRepo.create(tmp_path, package_dir="", provider=mistake.provider)
    if mistake.direct_url:
        schema = repo.schema_path(repo.main)
        schema.write_text(
            schema.read_text().replace(
                'env("DATABASE_URL")', 'env("DATABASE_URL")\n  directUrl = env("DIRECT_URL")'
            )
        )
    repo.write_env(repo.main, mistake.env(role, pg_server.port))
    state, logs, notified = tmp_path / "state", tmp_path / "log" / "migwatch.log", tmp_path / "notified.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MIGWATCH_CONFIG"}}
    env.update(git_env, MIGWATCH_STATE_DIR=str(state), XDG_STATE_HOME=str(tmp_path / "xdg"))
    config = tmp_path / "config.yaml"
    channels: dict[str, str] = {}
    for name in ("DATABASE_URL", "DIRECT_URL", "MIGWATCH_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    code, channels["init stdout"], channels["init stderr"] = in_process(
        ["--config", str(config), "init", str(repo.main)], capsys
    )
    assert code == 0, channels["init stderr"]
    channels["config file"] = config.read_text(encoding="utf-8")
    written = yaml.safe_load(channels["config file"])
    written.update(
        log={"file": str(logs), "level": "debug"},
        notifiers={
            "desktop": {"enabled": False},
            "command": {"enabled": True, "argv": ["/bin/sh", "-c", f"cat >> {notified}; echo >> {notified}"]},
        },
        alerts=dict.fromkeys(alert_codes(), True),
    )
    config.write_text(yaml.safe_dump(written), encoding="utf-8")
    code, channels["status stdout"], channels["status stderr"] = in_process(
        ["--config", str(config), "status"], capsys
    )
    _, channels["status --json"], _ = in_process(["--config", str(config), "status", "--json"], capsys)
    _, _, channels["status -v stderr"] = in_process(["--config", str(config), "-v", "status"], capsys)
    _, channels["run --once stdout"], channels["run --once stderr"] = run(
        ["--config", str(config), "run", "--once"], env, tmp_path
    )
    channels["log file (debug)"] = logs.read_text(encoding="utf-8") if logs.exists() else ""
    channels["alert state file"] = "".join(p.read_text(encoding="utf-8") for p in state.glob("*.json"))
    channels["notifier stdin"] = notified.read_text(encoding="utf-8") if notified.exists() else ""

    leaks = {name: [s for s in spellings(mistake.secret) if s in text] for name, text in channels.items()}
    assert {name: found for name, found in leaks.items() if found} == {}
    document = json.loads(channels["status --json"])
    databases = document["projects"][0]["databases"]
    assert (bool(databases) and all(d["reachable"] for d in databases)) == mistake.checked, databases
    # Every channel was exercised: the findings reached the log, the state file and the notifier.
    assert channels["log file (debug)"] and channels["alert state file"] and channels["notifier stdin"]
    record_figures(mistake.name, channels)


def record_figures(name: str, channels: dict[str, str]) -> None:
    """One line per mistake for the note (channels searched); shown with `pytest -s`."""
    print(f"\nsecrets: {name}: password found in 0 of {len(channels)} channels ({time.strftime('%H:%M:%S')})")
