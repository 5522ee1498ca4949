"""`migwatch service install|uninstall|status`: a systemd user unit (Linux) or a launchd LaunchAgent (macOS).

What the file says is `serviceunit.py`; this module writes it and drives `systemctl --user` or
`launchctl`. Commands go through an injected `run` callable so that a test can record the ones it
cannot run (launchctl on Linux).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from migwatch.display import COMMAND_LIMIT, visible
from migwatch.serviceunit import (
    LABEL,
    LAUNCHD_STDERR,
    LAUNCHD_STDOUT,
    UNIT_NAME,
    ServiceContext,
    ServiceError,
    default_argv0,
    default_context,
    exec_argv,
    make_folder,
    read_service_file,
    remove_service_file,
    render_plist,
    render_unit,
    service_path_env,
    unit_path,
    write_service_file,
)

# Re-exported: the old import paths (`migwatch.service.ServiceError`, `service.render_unit`, ...) keep working.
__all__ = [
    "LABEL",
    "LAUNCHD_STDERR",
    "LAUNCHD_STDOUT",
    "LOG_TAIL_LINES",
    "UNIT_NAME",
    "Runner",
    "ServiceContext",
    "ServiceError",
    "default_argv0",
    "default_context",
    "exec_argv",
    "install",
    "render_plist",
    "render_unit",
    "service_path_env",
    "status",
    "subprocess_run",
    "uninstall",
    "unit_path",
]

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 10

_COMMAND_TIMEOUT_S = 60.0
# What `systemctl --user` prints when there is no user manager to talk to.
_NO_BUS_MARKERS = (
    "Failed to connect to bus",
    "Failed to connect to user scope bus",
    "has not been booted with systemd",
    "No medium found",
)
# `launchctl bootout` of a service that is not loaded: "Boot-out failed: 3: No such process" or
# "Could not find specified service" (exit 113).
_NOT_LOADED_EXIT_CODES = (3, 113)
_NOT_LOADED_MARKERS = ("No such process", "Could not find specified service")

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def subprocess_run(argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its text output; never raises on a non-zero exit."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        stdin=subprocess.DEVNULL,
        env=None if env is None else dict(env),
        timeout=_COMMAND_TIMEOUT_S,
        check=False,
    )


def install(ctx: ServiceContext, *, dry_run: bool, run: Runner = subprocess_run, out: TextIO) -> int:
    """Write the unit/plist and start the service; with `dry_run`, print the file and commands only."""
    if not ctx.config_path.is_file():
        raise ServiceError(f"config file {ctx.config_path} does not exist; run 'migwatch init' first")
    path = unit_path(ctx)
    text = render_plist(ctx) if ctx.platform == "darwin" else render_unit(ctx)
    previous = read_service_file(path)
    commands = _install_commands(ctx, path, changed=previous is not None and previous != text)
    absence = _user_manager_absence(ctx) if ctx.platform == "linux" else None

    if dry_run:
        out.write(f"would write {path}:\n{text}")
        for argv in commands:
            out.write(f"would run: {shlex.join(argv)}\n")
        if absence is not None:
            out.write(f"note: no systemd user manager here ({absence}); a real install stops after writing\n")
        return 0

    write_service_file(path, text)
    out.write(f"wrote {path}\n")
    if ctx.platform == "darwin":
        # launchd does not create the folder of StandardOutPath; without it the agent cannot start.
        make_folder(ctx.log_dir)
    if absence is not None:
        raise _no_user_manager(ctx, path, absence)

    for argv in commands:
        out.write(f"$ {shlex.join(argv)}\n")
        result = _call(run, argv)
        if result.returncode == 0:
            continue
        if ctx.platform == "darwin" and argv[1] == "bootout" and _not_loaded(result):
            continue
        if ctx.platform == "linux" and _is_no_bus(result):
            raise _no_user_manager(ctx, path, f"{shlex.join(argv)}: {_first_line(result)}")
        raise _command_failed(ctx, argv, result, path)

    if ctx.platform == "darwin":
        out.write(f"installed and started {LABEL}: {path}\n")
    else:
        out.write(f"installed and started {UNIT_NAME}: {path}\n")
        if _linger_off(ctx, run):
            out.write(
                "note: lingering is off for this user, so migwatch stops when you log out; "
                "to keep it running: loginctl enable-linger\n"
            )
    return 0


def uninstall(ctx: ServiceContext, *, dry_run: bool, run: Runner = subprocess_run, out: TextIO) -> int:
    """Stop the service and remove its unit/plist; says so and returns 0 when it is not installed."""
    path = unit_path(ctx)
    if not path.exists():
        out.write(f"migwatch service is not installed ({path} does not exist)\n")
        return 0
    if ctx.platform == "darwin":
        _uninstall_darwin(ctx, path, dry_run=dry_run, run=run, out=out)
    else:
        _uninstall_linux(ctx, path, dry_run=dry_run, run=run, out=out)
    return 0


def status(ctx: ServiceContext, *, run: Runner = subprocess_run, out: TextIO, log_file: Path | None) -> int:
    """Print whether the service is installed and running, and the log's tail; 0 only if it runs."""
    path = unit_path(ctx)
    installed = path.is_file()
    out.write(f"installed: yes ({path})\n" if installed else f"installed: no ({path} does not exist)\n")
    running: bool | None
    if ctx.platform == "darwin":
        running, detail = _launchd_state(ctx, run)
    else:
        running, detail = _systemd_state(ctx, run)
    word = {True: "yes", False: "no", None: "unknown"}[running]
    out.write(f"running: {word} ({detail})\n")
    if log_file is not None:
        tail = _tail(log_file, LOG_TAIL_LINES)
        if tail is None:
            out.write(f"log: {log_file} (not written yet)\n")
        else:
            out.write(f"last {len(tail)} lines of {log_file}:\n")
            out.writelines(
                f"  {visible(line, COMMAND_LIMIT)}\n" for line in tail
            )  # a log file anyone may append to
    return 0 if installed and running else 1


# --- Linux / systemd ------------------------------------------------------------------------------------


def _systemctl(*args: str) -> list[str]:
    return ["systemctl", "--user", *args]


def _user_manager_absence(ctx: ServiceContext) -> str | None:
    """Why `systemctl --user` cannot work here, or None when a user manager looks reachable."""
    if shutil.which("systemctl", path=ctx.env.get("PATH", os.defpath)) is None:
        return "systemctl is not installed"
    runtime_dir = ctx.env.get("XDG_RUNTIME_DIR", "")
    if not runtime_dir:
        standard = Path(f"/run/user/{ctx.uid}")
        if (standard / "systemd").is_dir():
            return (
                f"XDG_RUNTIME_DIR is not set; {standard} has one: export XDG_RUNTIME_DIR={standard} and retry"
            )
        return "XDG_RUNTIME_DIR is not set"
    if not (Path(runtime_dir) / "systemd").is_dir():
        return f"{runtime_dir}/systemd does not exist"
    return None


def _is_no_bus(result: subprocess.CompletedProcess[str]) -> bool:
    text = f"{result.stderr}\n{result.stdout}"
    return any(marker in text for marker in _NO_BUS_MARKERS)


def _no_user_manager(ctx: ServiceContext, path: Path, reason: str) -> ServiceError:
    return ServiceError(
        f"no systemd user manager here ({reason}); the unit is at {path}; "
        f"start it by hand with: {shlex.join(exec_argv(ctx))}"
    )


def _wants_link(path: Path) -> Path:
    return path.parent / "default.target.wants" / UNIT_NAME


def _uninstall_linux(ctx: ServiceContext, path: Path, *, dry_run: bool, run: Runner, out: TextIO) -> None:
    absence = _user_manager_absence(ctx)
    if absence is not None:
        # Nothing can be stopped; remove what `systemctl --user disable` would have removed.
        link = _wants_link(path)
        targets = [link, path] if link.is_symlink() else [path]
        out.write(f"note: no systemd user manager here ({absence}); nothing to stop\n")
        for target in targets:
            if dry_run:
                out.write(f"would remove {target}\n")
            else:
                remove_service_file(target)
                out.write(f"removed {target}\n")
        return
    disable = _systemctl("disable", "--now", UNIT_NAME)
    reload = _systemctl("daemon-reload")
    if dry_run:
        out.write(f"would run: {shlex.join(disable)}\nwould remove {path}\nwould run: {shlex.join(reload)}\n")
        return
    _run_checked(ctx, run, disable, path, out)
    remove_service_file(path)
    out.write(f"removed {path}\n")
    _run_checked(ctx, run, reload, path, out)


def _systemd_state(ctx: ServiceContext, run: Runner) -> tuple[bool | None, str]:
    if _user_manager_absence(ctx) is not None:
        return None, "no systemd user manager"
    result = _query(run, _systemctl("is-active", UNIT_NAME))
    if result is None or _is_no_bus(result):
        return None, "no systemd user manager"
    state = result.stdout.strip() or _first_line(result)
    return state == "active", state


def _linger_off(ctx: ServiceContext, run: Runner) -> bool:
    result = _query(run, ["loginctl", "show-user", str(ctx.uid), "--property=Linger", "--value"])
    return result is not None and result.returncode == 0 and result.stdout.strip() == "no"


# --- macOS / launchd ------------------------------------------------------------------------------------


def _launchd_target(ctx: ServiceContext) -> str:
    return f"gui/{ctx.uid}/{LABEL}"


def _not_loaded(result: subprocess.CompletedProcess[str]) -> bool:
    text = f"{result.stderr}\n{result.stdout}"
    return result.returncode in _NOT_LOADED_EXIT_CODES or any(m in text for m in _NOT_LOADED_MARKERS)


def _uninstall_darwin(ctx: ServiceContext, path: Path, *, dry_run: bool, run: Runner, out: TextIO) -> None:
    bootout = ["launchctl", "bootout", _launchd_target(ctx)]
    if dry_run:
        out.write(f"would run: {shlex.join(bootout)}\nwould remove {path}\n")
        return
    out.write(f"$ {shlex.join(bootout)}\n")
    result = _call(run, bootout)
    if result.returncode != 0 and not _not_loaded(result):
        raise _command_failed(ctx, bootout, result, path)
    remove_service_file(path)
    out.write(f"removed {path}\n")


def _launchd_state(ctx: ServiceContext, run: Runner) -> tuple[bool | None, str]:
    result = _query(run, ["launchctl", "print", _launchd_target(ctx)])
    if result is None:
        return None, "launchctl could not be run"
    if result.returncode != 0:
        return False, "not loaded"
    # `launchctl print` lists the service's own properties at one tab of indentation.
    state = re.search(r"^\tstate = (.+)$", result.stdout, re.MULTILINE)
    pid = re.search(r"^\tpid = (\d+)$", result.stdout, re.MULTILINE)
    last_exit = re.search(r"^\tlast exit code = (.+)$", result.stdout, re.MULTILINE)
    if pid is not None:
        return True, f"pid {pid.group(1)}"
    parts = [f"state = {state.group(1)}" if state else "loaded, not running"]
    if last_exit is not None:
        parts.append(f"last exit code = {last_exit.group(1)}")
    return False, ", ".join(parts)


# --- shared helpers -------------------------------------------------------------------------------------


def _install_commands(ctx: ServiceContext, path: Path, *, changed: bool) -> list[list[str]]:
    if ctx.platform == "darwin":
        target = _launchd_target(ctx)
        return [
            # Unload an older copy first (a "not loaded" failure is expected and ignored): bootstrap of a
            # loaded label fails, and the new plist would not take effect.
            ["launchctl", "bootout", target],
            # A `launchctl disable` from earlier would make bootstrap fail and outlive this install.
            ["launchctl", "enable", target],
            ["launchctl", "bootstrap", f"gui/{ctx.uid}", str(path)],
        ]
    commands = [_systemctl("daemon-reload"), _systemctl("enable", "--now", UNIT_NAME)]
    if changed:
        # `enable --now` leaves an already running service on the old unit.
        commands.append(_systemctl("restart", UNIT_NAME))
    return commands


def _call(run: Runner, argv: list[str]) -> subprocess.CompletedProcess[str]:
    logger.info("running %s", shlex.join(argv))
    try:
        return run(argv)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{shlex.join(argv)} did not finish within {_COMMAND_TIMEOUT_S:.0f} s") from None
    except OSError as error:
        raise ServiceError(f"cannot run {argv[0]}: {error.strerror or error}") from None


def _query(run: Runner, argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    """Run a read-only query; None when the command cannot be run at all."""
    try:
        return _call(run, argv)
    except ServiceError as error:
        logger.info("%s", error)
        return None


def _run_checked(ctx: ServiceContext, run: Runner, argv: list[str], path: Path, out: TextIO) -> None:
    out.write(f"$ {shlex.join(argv)}\n")
    result = _call(run, argv)
    if result.returncode != 0:
        raise _command_failed(ctx, argv, result, path)


def _command_failed(
    ctx: ServiceContext, argv: list[str], result: subprocess.CompletedProcess[str], path: Path
) -> ServiceError:
    hint = (
        f"launchctl print {_launchd_target(ctx)}"
        if ctx.platform == "darwin"
        else f"journalctl --user -u {UNIT_NAME}"
    )
    return ServiceError(
        f"{shlex.join(argv)} failed (exit {result.returncode}): {_first_line(result)}; "
        f"the service file is {path}; see: {hint}"
    )


def _first_line(result: subprocess.CompletedProcess[str]) -> str:
    for text in (result.stderr, result.stdout):
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return "no output"


def _tail(path: Path, count: int) -> list[str] | None:
    """The last `count` lines of a text file, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            # Log lines are short; 64 KiB holds far more than ten of them.
            handle.seek(max(0, size - 65536))
            chunk = handle.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ServiceError(f"cannot read {path}: {error.strerror or error}") from None
    lines = chunk.decode("utf-8", errors="replace").splitlines()
    if size > 65536 and lines:
        lines = lines[1:]  # the first line of the chunk is probably cut
    return lines[-count:]
