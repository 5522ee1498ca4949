"""Bounded config input: special files, oversized files, YAML bombs and absurd durations each give exit 2
with one line within 2 s, in `check-config`, `status` and `run`, and a SIGHUP reload survives them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from migwatch.config import ConfigError, load_config, parse_duration
from migwatch.configfile import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_EXPANDED_VALUES, MAX_NUMBER_LENGTH
from tests.support.daemonrun import Daemon
from tests.support.gitrepo import PrismaRepo

GOOD = "projects: [{repo: /r}]\n"


def _laughs(levels: int = 9) -> str:
    """The "billion laughs" alias bomb: 9 aliases per level, 9 levels (9**9 values when expanded)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return GOOD + "\n".join(lines) + "\n"


def _merge_bomb() -> str:
    """Merge keys doubling a mapping 40 times (PyYAML's flatten_mapping copies every pair)."""
    lines = ["m0: &m0 {k: 1}"] + [
        f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}" for i in range(1, 40)
    ]
    return GOOD + "\n".join(lines) + "\n"


# name → (how to make it at `path`, the one expected error line after "<path>")
Maker = Callable[[Path], Path]


def _text(content: str | bytes) -> Maker:
    def make(path: Path) -> Path:
        data = content.encode("utf-8") if isinstance(content, str) else content
        path.write_bytes(data)
        return path

    return make


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _dev_zero(path: Path) -> Path:
    del path
    return Path("/dev/zero")


# These bombs used to hang for minutes: a bound far above the 2 s goal tells a hang from a slow machine.
# The 2 s goal itself is measured by `make bench` (bench/bench_config_bombs.py), not by a timed test.
HANG_BOUND = 15.0

HOSTILE_CONFIGS: dict[str, tuple[Maker, str]] = {
    "dev_zero": (_dev_zero, ": cannot read the config file: it is a character device, not a regular file"),
    "fifo": (_fifo, ": cannot read the config file: it is a named pipe (FIFO), not a regular file"),
    "directory": (_directory, ": cannot read the config file: it is a directory, not a regular file"),
    "oversized": (
        _text(GOOD + "#" * MAX_CONFIG_BYTES),
        f": cannot read the config file: larger than {MAX_CONFIG_BYTES // 1024} KiB; a config file is a few kB",
    ),
    "alias_bomb": (
        _text(_laughs()),
        f":7:10: a5[0]: more than {MAX_EXPANDED_VALUES} values once aliases are expanded (an alias bomb?)",
    ),
    "merge_bomb": (
        _text(_merge_bomb()),
        f":15:23: m13.<<[1]: more than {MAX_EXPANDED_VALUES} values once aliases are expanded (an alias bomb?)",
    ),
    "recursive_alias": (
        _text("projects: &p [{repo: /r, x: *p}]\n"),
        ":1:29: projects[0].x: an alias refers to a value that contains it",
    ),
    "deep_nesting": (
        _text(GOOD + "x: " + "[" * 1000 + "]" * 1000 + "\n"),
        f":2:{MAX_DEPTH + 3}: x{'[0]' * (MAX_DEPTH - 1)}: nested more than {MAX_DEPTH} levels deep",
    ),
    "deep_block_nesting": (
        _text(GOOD + "".join(f"{'  ' * level}k{level}:\n" for level in range(200))),
        f":{MAX_DEPTH + 1}:{2 * MAX_DEPTH - 1}: {'.'.join(f'k{level}' for level in range(MAX_DEPTH - 1))}:"
        f" nested more than {MAX_DEPTH} levels deep",
    ),
    "huge_integer": (
        _text(GOOD + "poll_interval: " + "7" * 5000 + "\n"),
        f":2:16: poll_interval: a number 5000 characters long; at most {MAX_NUMBER_LENGTH} are read",
    ),
    "huge_float": (
        _text(GOOD + "debounce: 1." + "5" * 400 + "\n"),
        f":2:11: debounce: a number 402 characters long; at most {MAX_NUMBER_LENGTH} are read",
    ),
    "huge_duration": (
        _text(GOOD + "debounce: 100000000000s\n"),
        ": debounce: must be from 0 to 10m (got 100000000000s)",
    ),
    "four_hundred_digit_duration": (
        _text(GOOD + "remind_after: '" + "9" * 400 + "h'\n"),
        f": remind_after: must be 0 (never) or from 1m to 720h (got {'9' * 23}…)",
    ),
    "tiny_poll_interval": (
        _text(GOOD + "poll_interval: 1ms\n"),
        ": poll_interval: must be from 100ms to 1h (got 1ms)",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CONFIGS))
def test_hostile_config_gives_one_error_line_quickly(tmp_path: Path, name: str) -> None:
    make, expected = HOSTILE_CONFIGS[name]
    path = make(tmp_path / "config.yaml")

    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    elapsed = time.perf_counter() - started

    assert caught.value.lines() == [f"{path}{expected}"]
    assert elapsed < HANG_BOUND


def test_limits_leave_room_for_real_configs(tmp_path: Path) -> None:
    projects = "".join(
        f"  - &p{i} {{name: p{i}, repo: /r{i}, ignore_worktrees: ['*/tmp-*', '~/scratch-{i}']}}\n"
        for i in range(300)
    )
    aliases = "".join(f"    - *p{i}\n" for i in range(0, 300, 30))
    path = tmp_path / "config.yaml"
    path.write_text(f"projects:\n{projects}x-reuse:\n  list:\n{aliases}", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:  # only the unknown key: sizes and aliases are fine
        load_config(path, {})
    assert caught.value.errors == ["x-reuse: unknown key; expected one of: " + _keys()]
    path.write_text(
        f"projects:\n{projects}poll_interval: 100ms\ndebounce: 10m\nremind_after: 720h\n", encoding="utf-8"
    )
    config = load_config(path, {})
    assert len(config.projects) == 300
    assert (config.poll_interval, config.debounce, config.remind_after) == (0.1, 600.0, 720 * 3600.0)


def _keys() -> str:
    from migwatch.config import config_schema

    return ", ".join(config_schema()["properties"])


@pytest.mark.parametrize(
    ("key", "low", "high"),
    [("poll_interval", "100ms", "1h"), ("debounce", "0", "10m"), ("remind_after", "1m", "720h")],
)
def test_duration_ranges_are_in_the_schema_and_enforced(
    tmp_path: Path, key: str, low: str, high: str
) -> None:
    from migwatch.config import config_schema

    schema = config_schema()["properties"][key]
    assert schema["x-range"] == [low, high]
    assert f"from {low} to {high}" in schema["description"].lower()
    path = tmp_path / "config.yaml"
    for edge in (low, high):
        path.write_text(f"{GOOD}{key}: '{edge}'\n", encoding="utf-8")
        assert getattr(load_config(path, {}), key) == parse_duration(edge)
    # Just outside, as seconds (the number form is range-checked too).
    for outside in (parse_duration(low) - 0.001, parse_duration(high) + 1):
        if outside < 0:
            continue
        path.write_text(f"{GOOD}{key}: {outside}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path, {})
        assert caught.value.errors[0].startswith(f"{key}: must be ")
        assert f"from {low} to {high} (got {outside})" in caught.value.errors[0]


# --- the real commands, as subprocesses ------------------------------------------------------------------


def _migwatch(config: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str, float]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "migwatch", "--config", str(config), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return completed.returncode, completed.stdout, completed.stderr, time.perf_counter() - started


@pytest.mark.parametrize("name", ["dev_zero", "fifo", "directory", "oversized", "alias_bomb", "deep_nesting"])
def test_bombs_and_special_files_exit_2_with_one_line(tmp_path: Path, name: str) -> None:
    make, expected = HOSTILE_CONFIGS[name]
    path = make(tmp_path / "config.yaml")
    env = dict(os.environ, MIGWATCH_STATE_DIR=str(tmp_path / "state"), HOME=str(tmp_path))
    for command in (["check-config"], ["status"], ["run"]):
        code, out, err, elapsed = _migwatch(path, *command, env=env)
        assert (code, out, err) == (2, "", f"{path}{expected}\n"), command
        assert elapsed < HANG_BOUND, (command, elapsed)


def test_sighup_reload_survives_every_hostile_config(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = PrismaRepo.create(tmp_path / "projects")
    config = tmp_path / "config.yaml"
    good = f"projects:\n  - repo: {repo.main}\nnotifiers: {{desktop: {{enabled: false}}}}\n"
    config.write_text(good, encoding="utf-8")
    daemon = Daemon(config, dict(git_env, MIGWATCH_STATE_DIR=str(tmp_path / "state")))
    try:
        daemon.wait_line(r"migwatch: ready ")
        for name in sorted(HOSTILE_CONFIGS):
            make, expected = HOSTILE_CONFIGS[name]
            staged = make(tmp_path / f"staged-{name}")
            config.unlink()
            if staged == Path("/dev/zero"):
                config.symlink_to(staged)
            else:
                staged.rename(config)
            mark = len(daemon.lines)
            started = time.perf_counter()
            daemon.proc.send_signal(signal.SIGHUP)
            kept = daemon.wait_line(r"reload failed: keeping the running config", after=mark)
            assert time.perf_counter() - started < HANG_BOUND, name
            failed = [line for line in daemon.lines[mark : kept + 1] if "reload failed" in line]
            assert failed == [
                f"migwatch: reload failed: {config}{expected}",
                "migwatch: reload failed: keeping the running config",
            ], name
            if config.is_dir():
                config.rmdir()
            else:
                config.unlink()
            config.write_text(good, encoding="utf-8")
        # Still alive and still taking a good config.
        mark = len(daemon.lines)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_line(r"migwatch: reload config=", after=mark)
        code, _ = daemon.terminate()  # its stop time is test_daemon's business (2 s, measured unloaded)
        assert code == 0
    finally:
        daemon.close()
