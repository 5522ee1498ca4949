"""Start-up cost of the CLI: the quick paths never import the heavy modules (a regression guard, not a timer).

`migwatch --version` and a `guard` decision for a command guard lets through must answer in tens of
milliseconds (the figures are in bench/, `make bench`); what makes them slow is importing psycopg,
jsonschema, yaml or the pipeline. Each case runs in a fresh interpreter and lists what got imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Modules whose import costs tens to hundreds of milliseconds, and the migwatch modules that pull them in.
HEAVY = (
    "psycopg",
    "jsonschema",
    "yaml",
    "dotenv",
    "watchdog",
    "apscheduler",
    "desktop_notifier",
    "platformdirs",
    "migwatch.config",
    "migwatch.pipeline",
    "migwatch.history",
    "migwatch.diagnose",
    "migwatch.discovery",
    "migwatch.daemon",
)

_PROBE = """
import io, json, sys
from migwatch.cli import main
stdin = sys.argv[2]
if stdin:
    sys.stdin = io.StringIO(stdin)
out = sys.stdout = io.StringIO()  # argparse prints --version on sys.stdout
code = main(json.loads(sys.argv[1]), out=out, err=io.StringIO())
sys.__stdout__.write(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _imported_by(argv: list[str], cwd: Path, stdin: str = "") -> tuple[int, str, list[str]]:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv), stdin],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(completed.stdout)
    return result["code"], result["out"], result["modules"]


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_version_imports_nothing_heavy(tmp_path: Path) -> None:
    code, _, modules = _imported_by(["--version"], tmp_path)
    assert code == 0
    assert _heavy(modules) == []


@pytest.mark.parametrize(
    "command",
    ["ls -la", "npx prisma generate", "pnpm exec prisma migrate status", "git status && npm test"],
)
def test_hook_answer_for_an_unguarded_command_imports_nothing_heavy(tmp_path: Path, command: str) -> None:
    payload = {
        "session_id": "abc123",
        "transcript_path": str(tmp_path / "t.jsonl"),
        "cwd": str(tmp_path),
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "x"},
        "tool_use_id": "toolu_01",
    }
    code, out, modules = _imported_by(["guard", "--hook", "claude-code"], tmp_path, json.dumps(payload))
    assert (code, out) == (0, "")
    assert _heavy(modules) == []
