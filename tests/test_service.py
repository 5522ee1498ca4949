"""`migwatch service`: the rendered systemd unit checked by the real `systemd-analyze verify`, the plist by
plistlib, install/uninstall/status against the real `systemctl` of this machine (which has no user
manager), and the unit's ExecStart / the plist's ProgramArguments run for real up to READY=1.

`systemd-analyze verify` as root in a container: plain `verify FILE` works; `--user verify FILE` needs
XDG_RUNTIME_DIR ("Failed to lookup RuntimeDirectory path" otherwise), so the tests give it an empty one.
Verify exits 0 on unknown keys but prints a warning, hence the check that stderr is empty too.
"""

from __future__ import annotations

import io
import os
import plistlib
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from migwatch import service
from migwatch.service import ServiceContext, ServiceError
from tests.support.gitrepo import isolated_environ, run_git

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = REPO_ROOT / "daemon" / "migwatch" / "templates"
# The console script of the venv running these tests: a real executable for `verify` to check.
MIGWATCH_SCRIPT = Path(sys.executable).parent / "migwatch"
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
SERVICE_PATH_ENV = "/usr/bin:/usr/local/bin:/bin"  # the folder of /usr/bin/git first, then the defaults
UID = 1000


def make_context(
    tmp_path: Path,
    *,
    platform: str = "linux",
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
    argv0: list[str] | None = None,
) -> ServiceContext:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if config_path is None:
        config_path = tmp_path / "config" / "config.yaml"
        config_path.parent.mkdir(exist_ok=True)
        config_path.write_text("projects: []\n", encoding="utf-8")
    return ServiceContext(
        platform=platform,
        home=home,
        config_path=config_path,
        log_dir=tmp_path / "logs",
        argv0=argv0 if argv0 is not None else [str(MIGWATCH_SCRIPT)],
        uid=UID,
        env=env if env is not None else {"PATH": BASE_PATH, "HOME": str(home)},
    )


def user_manager_env(tmp_path: Path) -> dict[str, str]:
    """An environment that looks like a login session with a user manager (XDG_RUNTIME_DIR/systemd exists).

    There is none behind it in this container, so the real systemctl still fails to connect."""
    runtime = tmp_path / "runtime"
    (runtime / "systemd").mkdir(parents=True)
    return {"PATH": BASE_PATH, "HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(runtime)}


def systemd_verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert shutil.which("systemd-analyze"), "systemd-analyze is needed: apt-get install systemd"
    folder = tmp_path / "verify"
    folder.mkdir()
    unit = folder / service.UNIT_NAME
    unit.write_text(unit_text, encoding="utf-8")
    runtime = tmp_path / "verify-runtime"
    runtime.mkdir(mode=0o700)
    env = {"PATH": BASE_PATH, "HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run(
        ["systemd-analyze", "--user", "verify", str(unit)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def unit_setting(unit_text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit_text.splitlines() if line.startswith(f"{key}=")]


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*"))


# --- templates ------------------------------------------------------------------------------------------


def test_repo_templates_equal_package_templates() -> None:
    assert (REPO_ROOT / "systemd" / "migwatch.service").read_bytes() == (
        TEMPLATES / "migwatch.service"
    ).read_bytes()
    assert (REPO_ROOT / "launchd" / "dev.migwatch.agent.plist").read_bytes() == (
        TEMPLATES / "dev.migwatch.agent.plist"
    ).read_bytes()


# --- systemd unit ---------------------------------------------------------------------------------------


def test_rendered_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    unit = service.render_unit(ctx)
    result = systemd_verify(unit, tmp_path)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")
    assert unit_setting(unit, "ExecStart") == [f"{MIGWATCH_SCRIPT} --config {ctx.config_path} run"]
    assert unit_setting(unit, "Type") == ["notify"]
    assert unit_setting(unit, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_setting(unit, "RestartPreventExitStatus") == ["2"]
    assert unit_setting(unit, "Environment") == ["PYTHONUNBUFFERED=1", f'"PATH={SERVICE_PATH_ENV}"']
    assert unit_setting(unit, "WantedBy") == ["default.target"]
    assert "${" not in unit  # every placeholder filled


def test_verify_catches_a_missing_executable(tmp_path: Path) -> None:
    # Proves the verify test above checks ExecStart: a unit pointing nowhere fails.
    missing = tmp_path / "nowhere" / "migwatch"
    result = systemd_verify(service.render_unit(make_context(tmp_path, argv0=[str(missing)])), tmp_path)
    assert result.returncode == 1
    assert f"Command {missing} is not executable: No such file or directory" in result.stderr


def test_unit_with_spaces_and_specials_in_paths_verifies(tmp_path: Path) -> None:
    # systemd resolves `%` specifiers everywhere and `$VAR` in arguments; verify checks the executable
    # exists, so a wrongly quoted executable path fails it.
    odd_bin = tmp_path / "bin dir %h $X ü"
    odd_bin.mkdir()
    (odd_bin / "migwatch").symlink_to(MIGWATCH_SCRIPT)
    config = tmp_path / "my config" / "config 100% $HOME.yaml"
    config.parent.mkdir()
    config.write_text("projects: []\n", encoding="utf-8")
    ctx = make_context(tmp_path, config_path=config, argv0=[str(odd_bin / "migwatch")])
    unit = service.render_unit(ctx)
    assert unit_setting(unit, "ExecStart") == [
        f'"{tmp_path}/bin dir %%h $X ü/migwatch" --config "{tmp_path}/my config/config 100%% $$HOME.yaml" run'
    ]
    result = systemd_verify(unit, tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


def test_unit_with_space_in_config_path_verifies_and_splits_back(tmp_path: Path) -> None:
    config = tmp_path / "with space" / "config.yaml"
    config.parent.mkdir()
    config.write_text("projects: []\n", encoding="utf-8")
    unit = service.render_unit(make_context(tmp_path, config_path=config))
    assert shlex.split(unit_setting(unit, "ExecStart")[0]) == [
        str(MIGWATCH_SCRIPT),
        "--config",
        str(config),
        "run",
    ]
    result = systemd_verify(unit, tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


def test_unit_refuses_an_executable_path_systemd_cannot_start(tmp_path: Path) -> None:
    script = tmp_path / 'it"s' / "migwatch"
    with pytest.raises(ServiceError) as raised:
        service.render_unit(make_context(tmp_path, argv0=[str(script)]))
    assert str(raised.value) == (
        f"systemd cannot start an executable whose path has quotes or backslashes: {script}; "
        "install migwatch in another folder"
    )


def test_unit_refuses_a_newline_in_a_path(tmp_path: Path) -> None:
    config = tmp_path / "two\nlines.yaml"
    config.write_text("projects: []\n", encoding="utf-8")
    with pytest.raises(ServiceError) as raised:
        service.render_unit(make_context(tmp_path, config_path=config))
    assert (
        str(raised.value)
        == f"cannot write a service file for a path with control characters: {str(config)!r}"
    )


def test_unit_path_honours_xdg_config_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert service.unit_path(make_context(tmp_path)) == home / ".config/systemd/user/migwatch.service"
    xdg = make_context(tmp_path, env={"PATH": BASE_PATH, "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert service.unit_path(xdg) == tmp_path / "xdg/systemd/user/migwatch.service"
    relative = make_context(tmp_path, env={"PATH": BASE_PATH, "XDG_CONFIG_HOME": "relative/xdg"})
    assert service.unit_path(relative) == home / ".config/systemd/user/migwatch.service"
    darwin = make_context(tmp_path, platform="darwin")
    assert service.unit_path(darwin) == home / "Library/LaunchAgents/dev.migwatch.agent.plist"


def test_default_argv0_prefers_the_console_script_next_to_the_interpreter(tmp_path: Path) -> None:
    assert service.default_argv0(sys.executable) == [str(MIGWATCH_SCRIPT)]
    # An interpreter with no `migwatch` script beside it starts the module instead.
    lone = tmp_path / "python3"
    lone.symlink_to(sys.executable)
    assert service.default_argv0(str(lone)) == [str(lone), "-m", "migwatch"]


# --- launchd plist --------------------------------------------------------------------------------------


def test_rendered_plist_parses_with_the_expected_keys(tmp_path: Path) -> None:
    config = tmp_path / "a & <b>" / "config.yaml"
    config.parent.mkdir()
    config.write_text("projects: []\n", encoding="utf-8")
    ctx = make_context(tmp_path, platform="darwin", config_path=config)
    parsed = plistlib.loads(service.render_plist(ctx).encode("utf-8"))
    assert parsed == {
        "Label": "dev.migwatch.agent",
        "ProgramArguments": [str(MIGWATCH_SCRIPT), "--config", str(config), "run"],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Background",
        "StandardOutPath": str(tmp_path / "logs" / "launchd.stdout.log"),
        "StandardErrorPath": str(tmp_path / "logs" / "launchd.stderr.log"),
        "EnvironmentVariables": {"PATH": SERVICE_PATH_ENV, "PYTHONUNBUFFERED": "1"},
    }
    assert Path(parsed["ProgramArguments"][0]).is_file()
    assert os.access(parsed["ProgramArguments"][0], os.X_OK)


def test_plist_with_module_argv0(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, platform="darwin", argv0=[sys.executable, "-m", "migwatch"])
    parsed = plistlib.loads(service.render_plist(ctx).encode("utf-8"))
    assert parsed["ProgramArguments"] == [
        sys.executable,
        "-m",
        "migwatch",
        "--config",
        str(ctx.config_path),
        "run",
    ]


# --- install / uninstall / status on Linux --------------------------------------------------------------


def test_install_dry_run_prints_file_and_commands_and_writes_nothing(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, env=user_manager_env(tmp_path))
    before = files_under(tmp_path)
    out = io.StringIO()
    assert service.install(ctx, dry_run=True, out=out) == 0
    path = tmp_path / "home/.config/systemd/user/migwatch.service"
    assert out.getvalue() == (
        f"would write {path}:\n{service.render_unit(ctx)}"
        "would run: systemctl --user daemon-reload\n"
        "would run: systemctl --user enable --now migwatch.service\n"
    )
    assert files_under(tmp_path) == before


def test_install_dry_run_over_a_changed_unit_also_restarts(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, env=user_manager_env(tmp_path))
    path = service.unit_path(ctx)
    path.parent.mkdir(parents=True)
    path.write_text("[Unit]\nDescription=older migwatch\n", encoding="utf-8")
    out = io.StringIO()
    assert service.install(ctx, dry_run=True, out=out) == 0
    assert out.getvalue().endswith(
        "would run: systemctl --user daemon-reload\n"
        "would run: systemctl --user enable --now migwatch.service\n"
        "would run: systemctl --user restart migwatch.service\n"
    )
    assert path.read_text(encoding="utf-8") == "[Unit]\nDescription=older migwatch\n"


def test_install_dry_run_without_user_manager_says_so(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    out = io.StringIO()
    assert service.install(ctx, dry_run=True, out=out) == 0
    assert out.getvalue().endswith(
        "would run: systemctl --user enable --now migwatch.service\n"
        "note: no systemd user manager here (XDG_RUNTIME_DIR is not set); "
        "a real install stops after writing\n"
    )
    assert not (tmp_path / "home" / ".config").exists()


def test_install_refuses_without_config(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "config.yaml"
    ctx = make_context(tmp_path, config_path=missing)
    with pytest.raises(ServiceError) as raised:
        service.install(ctx, dry_run=False, out=io.StringIO())
    assert str(raised.value) == f"config file {missing} does not exist; run 'migwatch init' first"
    assert not (tmp_path / "home" / ".config").exists()


def test_install_without_user_manager_writes_the_unit_and_says_how_to_start(tmp_path: Path) -> None:
    # This container has no systemd user manager and no XDG_RUNTIME_DIR: the real situation the
    # message is for.
    ctx = make_context(tmp_path)
    out = io.StringIO()
    with pytest.raises(ServiceError) as raised:
        service.install(ctx, dry_run=False, out=out)
    path = tmp_path / "home/.config/systemd/user/migwatch.service"
    assert str(raised.value) == (
        f"no systemd user manager here (XDG_RUNTIME_DIR is not set); the unit is at {path}; "
        f"start it by hand with: {MIGWATCH_SCRIPT} --config {ctx.config_path} run"
    )
    assert out.getvalue() == f"wrote {path}\n"
    assert path.read_text(encoding="utf-8") == service.render_unit(ctx)
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir()] == ["migwatch.service"]  # no temp file left


def test_install_when_real_systemctl_cannot_reach_a_bus(tmp_path: Path) -> None:
    # XDG_RUNTIME_DIR/systemd exists, so install goes on to run the real systemctl, which fails.
    env = user_manager_env(tmp_path)
    ctx = make_context(tmp_path, env=env)
    out = io.StringIO()
    with pytest.raises(ServiceError) as raised:
        service.install(ctx, dry_run=False, run=lambda argv: service.subprocess_run(argv, env=env), out=out)
    path = service.unit_path(ctx)
    assert str(raised.value) == (
        "no systemd user manager here (systemctl --user daemon-reload: Failed to connect to bus: "
        f"No such file or directory); the unit is at {path}; "
        f"start it by hand with: {MIGWATCH_SCRIPT} --config {ctx.config_path} run"
    )
    assert out.getvalue() == f"wrote {path}\n$ systemctl --user daemon-reload\n"
    assert path.is_file()


def test_uninstall_dry_run_prints_commands_and_changes_nothing(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, env=user_manager_env(tmp_path))
    path = service.unit_path(ctx)
    path.parent.mkdir(parents=True)
    path.write_text(service.render_unit(ctx), encoding="utf-8")
    before = files_under(tmp_path)
    out = io.StringIO()
    assert service.uninstall(ctx, dry_run=True, out=out) == 0
    assert out.getvalue() == (
        "would run: systemctl --user disable --now migwatch.service\n"
        f"would remove {path}\n"
        "would run: systemctl --user daemon-reload\n"
    )
    assert files_under(tmp_path) == before


def test_uninstall_without_user_manager_removes_unit_and_wants_link(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    path = service.unit_path(ctx)
    wants = path.parent / "default.target.wants"
    wants.mkdir(parents=True)
    path.write_text(service.render_unit(ctx), encoding="utf-8")
    (wants / "migwatch.service").symlink_to(path)
    out = io.StringIO()
    assert service.uninstall(ctx, dry_run=False, out=out) == 0
    assert out.getvalue() == (
        "note: no systemd user manager here (XDG_RUNTIME_DIR is not set); nothing to stop\n"
        f"removed {wants / 'migwatch.service'}\n"
        f"removed {path}\n"
    )
    assert sorted(p.name for p in path.parent.rglob("*")) == ["default.target.wants"]


def test_uninstall_when_not_installed(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    out = io.StringIO()
    assert service.uninstall(ctx, dry_run=False, out=out) == 0
    assert out.getvalue() == f"migwatch service is not installed ({service.unit_path(ctx)} does not exist)\n"


def test_status_without_user_manager(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    path = service.unit_path(ctx)
    log_file = tmp_path / "logs" / "migwatch.log"
    out = io.StringIO()
    assert service.status(ctx, out=out, log_file=log_file) == 1
    assert out.getvalue() == (
        f"installed: no ({path} does not exist)\n"
        "running: unknown (no systemd user manager)\n"
        f"log: {log_file} (not written yet)\n"
    )
    path.parent.mkdir(parents=True)
    path.write_text(service.render_unit(ctx), encoding="utf-8")
    log_file.parent.mkdir()
    log_file.write_text("".join(f"event=line{number}\n" for number in range(1, 13)), encoding="utf-8")
    out = io.StringIO()
    assert service.status(ctx, out=out, log_file=log_file) == 1
    assert out.getvalue() == (
        f"installed: yes ({path})\n"
        "running: unknown (no systemd user manager)\n"
        f"last 10 lines of {log_file}:\n" + "".join(f"  event=line{number}\n" for number in range(3, 13))
    )


def test_status_with_real_systemctl_that_cannot_reach_a_bus(tmp_path: Path) -> None:
    env = user_manager_env(tmp_path)
    ctx = make_context(tmp_path, env=env)
    out = io.StringIO()
    code = service.status(ctx, run=lambda argv: service.subprocess_run(argv, env=env), out=out, log_file=None)
    assert code == 1
    assert out.getvalue() == (
        f"installed: no ({service.unit_path(ctx)} does not exist)\n"
        "running: unknown (no systemd user manager)\n"
    )


# --- macOS ----------------------------------------------------------------------------------------------
# launchctl cannot run on Linux. These tests pass a `run` that records argv and answers like a
# successful (or "not loaded") launchctl: a seam for a command we cannot run here, not a claim that
# launchd accepted anything. The plist itself is checked with plistlib above.


class RecordingRun:
    def __init__(self, answers: Mapping[str, tuple[int, str]] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.answers = dict(answers or {})

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        code, stderr = self.answers.get(argv[1], (0, ""))
        return subprocess.CompletedProcess(argv, code, "", stderr)


def test_darwin_install_dry_run(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, platform="darwin")
    out = io.StringIO()
    assert service.install(ctx, dry_run=True, run=RecordingRun(), out=out) == 0
    path = tmp_path / "home/Library/LaunchAgents/dev.migwatch.agent.plist"
    assert out.getvalue() == (
        f"would write {path}:\n{service.render_plist(ctx)}"
        "would run: launchctl bootout gui/1000/dev.migwatch.agent\n"
        "would run: launchctl enable gui/1000/dev.migwatch.agent\n"
        f"would run: launchctl bootstrap gui/1000 {path}\n"
    )
    assert not path.parent.exists()
    assert not ctx.log_dir.exists()


def test_darwin_install_writes_plist_and_bootstraps(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, platform="darwin")
    run = RecordingRun({"bootout": (3, "Boot-out failed: 3: No such process\n")})
    out = io.StringIO()
    assert service.install(ctx, dry_run=False, run=run, out=out) == 0
    path = tmp_path / "home/Library/LaunchAgents/dev.migwatch.agent.plist"
    assert run.calls == [
        ["launchctl", "bootout", "gui/1000/dev.migwatch.agent"],
        ["launchctl", "enable", "gui/1000/dev.migwatch.agent"],
        ["launchctl", "bootstrap", "gui/1000", str(path)],
    ]
    assert out.getvalue() == (
        f"wrote {path}\n"
        "$ launchctl bootout gui/1000/dev.migwatch.agent\n"
        "$ launchctl enable gui/1000/dev.migwatch.agent\n"
        f"$ launchctl bootstrap gui/1000 {path}\n"
        f"installed and started dev.migwatch.agent: {path}\n"
    )
    assert path.read_text(encoding="utf-8") == service.render_plist(ctx)
    assert ctx.log_dir.is_dir()  # launchd would not create it for StandardOutPath


def test_darwin_install_reports_a_failed_bootstrap(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, platform="darwin")
    run = RecordingRun({"bootstrap": (5, "Bootstrap failed: 5: Input/output error\n")})
    with pytest.raises(ServiceError) as raised:
        service.install(ctx, dry_run=False, run=run, out=io.StringIO())
    path = service.unit_path(ctx)
    assert str(raised.value) == (
        f"launchctl bootstrap gui/1000 {path} failed (exit 5): Bootstrap failed: 5: Input/output error; "
        f"the service file is {path}; see: launchctl print gui/1000/dev.migwatch.agent"
    )


def test_darwin_uninstall_and_dry_run(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, platform="darwin")
    path = service.unit_path(ctx)
    path.parent.mkdir(parents=True)
    path.write_text(service.render_plist(ctx), encoding="utf-8")
    out = io.StringIO()
    run = RecordingRun()
    assert service.uninstall(ctx, dry_run=True, run=run, out=out) == 0
    assert (
        out.getvalue() == f"would run: launchctl bootout gui/1000/dev.migwatch.agent\nwould remove {path}\n"
    )
    assert (run.calls, path.is_file()) == ([], True)
    out = io.StringIO()
    assert service.uninstall(ctx, dry_run=False, run=run, out=out) == 0
    assert out.getvalue() == f"$ launchctl bootout gui/1000/dev.migwatch.agent\nremoved {path}\n"
    assert run.calls == [["launchctl", "bootout", "gui/1000/dev.migwatch.agent"]]
    assert not path.exists()


def test_darwin_status_not_loaded(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, platform="darwin")
    run = RecordingRun(
        {"print": (113, 'Could not find service "dev.migwatch.agent" in domain for uid: 1000\n')}
    )
    out = io.StringIO()
    assert service.status(ctx, run=run, out=out, log_file=None) == 1
    assert out.getvalue() == (
        f"installed: no ({service.unit_path(ctx)} does not exist)\nrunning: no (not loaded)\n"
    )


# --- the service's command line, run for real -----------------------------------------------------------


def make_daemon_config(tmp_path: Path, env: Mapping[str, str]) -> Path:
    """A minimal valid config: one real git repo with a SQLite Prisma schema."""
    repo = tmp_path / "repo"
    (repo / "prisma").mkdir(parents=True)
    (repo / "prisma" / "schema.prisma").write_text(
        'datasource db {\n  provider = "sqlite"\n  url      = "file:./dev.db"\n}\n', encoding="utf-8"
    )
    run_git(tmp_path, "init", "-q", "-b", "main", str(repo), env=env)
    run_git(repo, "add", "-A", env=env)
    run_git(repo, "commit", "-q", "-m", "schema", env=env)
    config = tmp_path / "config dir" / "config.yaml"
    config.parent.mkdir()
    config.write_text(f'projects:\n  - repo: "{repo}"\n', encoding="utf-8")
    return config


def run_until_ready(argv: list[str], env: Mapping[str, str], tmp_path: Path) -> None:
    """Start argv with a NOTIFY_SOCKET we bind, wait for READY=1 (20 s), SIGTERM it, expect exit 0 in 3 s."""
    notify_path = tmp_path / "notify.sock"
    output = tmp_path / "service-output.txt"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, open(output, "wb") as sink:
        notify.bind(str(notify_path))
        process = subprocess.Popen(
            argv,
            env={**env, "NOTIFY_SOCKET": str(notify_path)},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            messages: list[str] = []
            while "READY=1" not in messages:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no READY=1 within 20 s; got {messages}; output: {output.read_text()}"
                readable, _, _ = select.select([notify], [], [], min(remaining, 0.5))
                if readable:
                    messages.extend(notify.recv(4096).decode("utf-8", "replace").splitlines())
                elif process.poll() is not None:
                    pytest.fail(f"exited {process.returncode} before READY=1; output: {output.read_text()}")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=3) == 0, output.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def service_test_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "daemon-home"
    env = isolated_environ(home)
    for name in ("MIGWATCH_CONFIG", "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "XDG_RUNTIME_DIR"):
        env.pop(name, None)
    env.update({"XDG_STATE_HOME": str(home / ".local/state"), "XDG_CACHE_HOME": str(home / ".cache")})
    return env


def test_execstart_reaches_ready(tmp_path: Path) -> None:
    env = service_test_env(tmp_path)
    ctx = make_context(tmp_path, config_path=make_daemon_config(tmp_path, env))
    unit = service.render_unit(ctx)
    argv = shlex.split(unit_setting(unit, "ExecStart")[0])
    assert argv == [str(MIGWATCH_SCRIPT), "--config", str(ctx.config_path), "run"]
    # The environment systemd would add from the unit's Environment= lines.
    for setting in unit_setting(unit, "Environment"):
        for assignment in shlex.split(setting):
            name, value = assignment.split("=", 1)
            env[name] = value
    run_until_ready(argv, env, tmp_path)


def test_plist_program_arguments_reach_ready(tmp_path: Path) -> None:
    # launchd has no NOTIFY_SOCKET; the socket is only how this test sees that the daemon is up.
    env = service_test_env(tmp_path)
    ctx = make_context(tmp_path, platform="darwin", config_path=make_daemon_config(tmp_path, env))
    parsed = plistlib.loads(service.render_plist(ctx).encode("utf-8"))
    env.update(parsed["EnvironmentVariables"])
    run_until_ready(parsed["ProgramArguments"], env, tmp_path)
