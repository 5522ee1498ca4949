"""`migwatch` through `main(argv)` and as a real process: exact exit codes and messages."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

import pytest

from migwatch import __version__, cli
from tests.support.gitrepo import PrismaRepo


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_missing_config_says_run_init(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert run("--config", str(path), "status") == (
        2,
        "",
        f"{path}: no config file; run 'migwatch init' in your repository to create one\n",
    )


def test_config_errors_all_at_once(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "projects:\n  - repo: /x\n    shema: a\npoll_interval: fast\nnotifiers: {desktop: {enabled: 3}}\n"
    )
    code, out, err = run("--config", str(path), "check-config")
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 3, lines
    assert any("notifiers.desktop.enabled" in line for line in lines)
    assert any("poll_interval: must be a duration like 500ms, 2s, 5m or 4h" in line for line in lines)
    assert any("projects[0].shema: unknown key; did you mean 'schema'?" in line for line in lines)
    assert all(line.startswith(str(path)) for line in lines)


def test_check_config_ok(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"projects:\n  - repo: {tmp_path}\n")
    assert run("--config", str(path), "check-config") == (0, f"{path}: ok (1 project)\n", "")


def test_config_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(f"projects:\n  - repo: {tmp_path}\n")
    monkeypatch.setenv("MIGWATCH_CONFIG", str(path))
    assert run("check-config")[0] == 0


def test_usage_error_is_one_line() -> None:
    code, out, err = run("frobnicate")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "invalid choice: 'frobnicate'" in err


def test_unknown_project_and_worktree(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = PrismaRepo.seed_story(tmp_path, "sqlite", database_url="file:./dev.db")
    config = tmp_path / "config.yaml"
    config.write_text(f"projects:\n  - repo: {repo.main}\n")
    code, out, err = run("--config", str(config), "status", "--project", "nope")
    assert (code, out) == (2, "")
    assert err == f"no project named 'nope' in {config} (known: Americano)\n"
    code, out, err = run("--config", str(config), "status", "--worktree", str(tmp_path))
    assert (code, err) == (2, f"{tmp_path} is not a worktree of any configured project\n")


def test_repo_that_is_not_there(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"projects:\n  - name: gone\n    repo: {tmp_path / 'gone'}\n")
    code, out, err = run("--config", str(config), "status", "--no-color")
    assert (code, err) == (1, "")
    assert f"project gone: repository folder {tmp_path / 'gone'} does not exist" in out


def test_internal_error_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_dir = tmp_path / "logs"
    monkeypatch.setattr("migwatch.logsetup.internal_error_log", lambda: log_dir / "internal-errors.log")

    def explode(args: argparse.Namespace, out: TextIO) -> int:
        raise RuntimeError("postgresql://me:hunter2@db/x exploded")

    monkeypatch.setitem(cli.COMMANDS, "check-config", explode)
    code, out, err = run("check-config")
    assert (code, out) == (3, "")
    assert err == (
        "migwatch: internal error: postgresql://me:***@db/x exploded "
        f"(the traceback is in {log_dir / 'internal-errors.log'})\n"
    )
    logged = (log_dir / "internal-errors.log").read_text()
    assert "Traceback" in logged and "hunter2" not in logged


def test_internal_error_log_shows_escapes_and_bounds_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_dir = tmp_path / "logs"
    monkeypatch.setattr("migwatch.logsetup.internal_error_log", lambda: log_dir / "internal-errors.log")

    def explode(args: argparse.Namespace, out: TextIO) -> int:
        raise RuntimeError("migration \x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\rforged line" + "x" * 1_000_000)

    monkeypatch.setitem(cli.COMMANDS, "check-config", explode)
    assert run("check-config")[0] == 3
    logged = (log_dir / "internal-errors.log").read_text()
    assert "\x1b" not in logged and "\x07" not in logged and "\r" not in logged
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\rforged line" in logged
    assert len(logged) < 20_000 and max(len(line) for line in logged.splitlines()) <= cli.TRACE_LINE_LIMIT


def test_real_process_prints_no_traceback(tmp_path: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path), MIGWATCH_CONFIG=str(tmp_path / "missing.yaml"))
    env.pop("XDG_CONFIG_HOME", None)
    proc = subprocess.run(
        [sys.executable, "-m", "migwatch", "status"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert (
        proc.stderr
        == f"{tmp_path / 'missing.yaml'}: no config file; run 'migwatch init' in your repository to create one\n"
    )
    assert "Traceback" not in proc.stderr


def test_version_string() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "migwatch", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout) == (0, f"migwatch {__version__}\n")
