"""The README's promise: in a fresh clone, `make demo` alone sets everything up and plays the story.

Needs the package registries (pip installs into a new venv); set MIGWATCH_OFFLINE=1 to skip it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.network
@pytest.mark.skipif(
    os.environ.get("MIGWATCH_OFFLINE") == "1", reason="MIGWATCH_OFFLINE=1: no package registries"
)
@pytest.mark.timeout(900)
def test_make_demo_in_a_fresh_clone(tmp_path: Path, git_env: dict[str, str]) -> None:
    clone = tmp_path / "migwatch"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    proc = subprocess.run(
        ["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=840, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "Americano-epic3: behind the database" in proc.stdout
    assert "From: feature/epic-5-behavioral-twin (Americano-epic5)" in proc.stdout
    assert "applied migration edited" in proc.stdout
    assert "resolved" in proc.stdout
    assert "Traceback" not in output
    assert (clone / ".venv" / "bin" / "migwatch").exists()
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("migwatch-demo-*")]
    assert not [p for p in leftovers if p.stat().st_mtime > (tmp_path.stat().st_mtime - 1)]
