"""`migwatch service install|uninstall|status`: a systemd user unit (Linux) or a launchd LaunchAgent (macOS).

The unit and plist are the package's `templates/` files filled with `string.Template`; every value is
escaped for the place it lands in (systemd command-line quoting, XML text). Commands go through an
injected `run` callable so that a test can record the ones it cannot run (launchctl on Linux).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import TextIO
from xml.sax.saxutils import escape as xml_escape

from migwatch.display import COMMAND_LIMIT, visible
from migwatch.errors import UserError

logger = logging.getLogger(__name__)

LABEL = "dev.migwatch.agent"
UNIT_NAME = "migwatch.service"
LOG_TAIL_LINES = 10
# launchd does not create missing folders for StandardOutPath/StandardErrorPath; these names are in the plist.
LAUNCHD_STDOUT = "launchd.stdout.log"
LAUNCHD_STDERR = "launchd.stderr.log"

_COMMAND_TIMEOUT_S = 60.0
# Tried in this order after the folder of the `git` the installing shell finds.
_DEFAULT_PATH_DIRS = ("/usr/local/bin", "/usr/bin", "/bin")
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
# systemd refuses an executable path with these ("Executable name contains special characters").
_SYSTEMD_UNSAFE_EXECUTABLE = ('"', "'", "\\")
_SYSTEMD_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class ServiceError(UserError):
    """A service operation failed; the message is one line for the user (exit 2)."""

    prefix = "migwatch: "


@dataclass(frozen=True)
class ServiceContext:
    """Everything about the machine that service install/uninstall/status depends on."""

    platform: str  # "linux" | "darwin"
    home: Path
    config_path: Path  # absolute
    log_dir: Path
    argv0: list[str]  # [abs path of the `migwatch` script] or [sys.executable, "-m", "migwatch"]
    uid: int
    env: Mapping[str, str]


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


def default_argv0(executable: str = sys.executable) -> list[str]:
    """How to start this very installation of migwatch: its console script, else `python -m migwatch`."""
    if not executable:
        raise ServiceError("cannot tell which Python runs migwatch (sys.executable is empty)")
    # Not resolved: a venv's bin/python is a symlink, and resolving it would leave the venv.
    python = os.path.abspath(executable)
    script = os.path.join(os.path.dirname(python), "migwatch")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [python, "-m", "migwatch"]


def default_context(config_path: Path, log_dir: Path) -> ServiceContext:
    """The context of the running process: this platform, home, uid, environment and installation."""
    if sys.platform.startswith("linux"):
        platform = "linux"
    elif sys.platform == "darwin":
        platform = "darwin"
    else:
        raise ServiceError(
            f"migwatch service supports Linux (systemd) and macOS (launchd), not {sys.platform}; "
            "start 'migwatch run' with your own service manager"
        )
    return ServiceContext(
        platform=platform,
        home=Path.home(),
        config_path=Path(os.path.abspath(config_path.expanduser())),
        log_dir=Path(os.path.abspath(log_dir.expanduser())),
        argv0=default_argv0(),
        uid=os.getuid(),
        env=dict(os.environ),
    )


def exec_argv(ctx: ServiceContext) -> list[str]:
    """The exact argv the service starts: migwatch with this config, `run`."""
    return [*ctx.argv0, "--config", str(ctx.config_path), "run"]


def unit_path(ctx: ServiceContext) -> Path:
    """Where the unit (Linux, honouring XDG_CONFIG_HOME) or the LaunchAgent plist (macOS) is installed."""
    if ctx.platform == "darwin":
        return ctx.home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    config_home = ctx.env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(config_home) if os.path.isabs(config_home) else ctx.home / ".config"
    return base / "systemd" / "user" / UNIT_NAME


def service_path_env(ctx: ServiceContext) -> str:
    """PATH for the service: the folder of the `git` the installing environment finds, then the usual ones."""
    folders: list[str] = []
    git = shutil.which("git", path=ctx.env.get("PATH", os.defpath))
    if git is not None and os.path.isabs(git):
        folders.append(os.path.dirname(git))
    folders.extend(_DEFAULT_PATH_DIRS)
    return ":".join(dict.fromkeys(folders))


def render_unit(ctx: ServiceContext) -> str:
    """The systemd user unit text for this context."""
    argv = exec_argv(ctx)
    _check_values(ctx, argv)
    executable = argv[0]
    if any(char in executable for char in _SYSTEMD_UNSAFE_EXECUTABLE):
        raise ServiceError(
            f"systemd cannot start an executable whose path has quotes or backslashes: {executable}; "
            "install migwatch in another folder"
        )
    # systemd expands `$VAR` in arguments but not in the executable path, so only arguments double `$`.
    exec_start = " ".join(
        [_systemd_word(executable, in_argument=False), *(_systemd_word(arg) for arg in argv[1:])]
    )
    return _template("migwatch.service").substitute(
        exec_start=exec_start,
        config_path=str(ctx.config_path),
        log_dir=str(ctx.log_dir),
        label=LABEL,
        path_env=_systemd_quoted_body(service_path_env(ctx), in_argument=False),
    )


def render_plist(ctx: ServiceContext) -> str:
    """The launchd LaunchAgent plist text for this context."""
    argv = exec_argv(ctx)
    _check_values(ctx, argv)
    return _template(f"{LABEL}.plist").substitute(
        exec_start="\n".join(f"\t\t<string>{xml_escape(arg)}</string>" for arg in argv),
        config_path=xml_escape(str(ctx.config_path)),
        log_dir=xml_escape(str(ctx.log_dir)),
        label=xml_escape(LABEL),
        path_env=xml_escape(service_path_env(ctx)),
    )


def install(ctx: ServiceContext, *, dry_run: bool, run: Runner = subprocess_run, out: TextIO) -> int:
    """Write the unit/plist and start the service; with `dry_run`, print the file and commands only."""
    if not ctx.config_path.is_file():
        raise ServiceError(f"config file {ctx.config_path} does not exist; run 'migwatch init' first")
    path = unit_path(ctx)
    text = render_plist(ctx) if ctx.platform == "darwin" else render_unit(ctx)
    previous = _read_text(path)
    commands = _install_commands(ctx, path, changed=previous is not None and previous != text)
    absence = _user_manager_absence(ctx) if ctx.platform == "linux" else None

    if dry_run:
        out.write(f"would write {path}:\n{text}")
        for argv in commands:
            out.write(f"would run: {shlex.join(argv)}\n")
        if absence is not None:
            out.write(f"note: no systemd user manager here ({absence}); a real install stops after writing\n")
        return 0

    _write_atomically(path, text)
    out.write(f"wrote {path}\n")
    if ctx.platform == "darwin":
        # launchd does not create the folder of StandardOutPath; without it the agent cannot start.
        _mkdir(ctx.log_dir)
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
                _remove(target)
                out.write(f"removed {target}\n")
        return
    disable = _systemctl("disable", "--now", UNIT_NAME)
    reload = _systemctl("daemon-reload")
    if dry_run:
        out.write(f"would run: {shlex.join(disable)}\nwould remove {path}\nwould run: {shlex.join(reload)}\n")
        return
    _run_checked(ctx, run, disable, path, out)
    _remove(path)
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
    _remove(path)
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


def _check_values(ctx: ServiceContext, argv: list[str]) -> None:
    """Refuse values that no unit or plist can carry: control characters, undecodable file names."""
    for value in [*argv, str(ctx.log_dir)]:
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ServiceError(f"cannot write a service file for a path with control characters: {value!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ServiceError(
                f"cannot write a service file for a path that is not UTF-8: {value!r}"
            ) from None
    if not ctx.argv0 or not os.path.isabs(ctx.argv0[0]):
        raise ServiceError(f"the service needs an absolute path to start migwatch, not {ctx.argv0!r}")


def _systemd_quoted_body(value: str, *, in_argument: bool) -> str:
    """`value` escaped for the inside of a double-quoted systemd word (`%` specifiers, C escapes)."""
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return body.replace("$", "$$") if in_argument else body


def _systemd_word(value: str, *, in_argument: bool = True) -> str:
    """One word of a systemd command line, quoted only when it needs to be."""
    if _SYSTEMD_PLAIN_WORD.fullmatch(value):
        return value
    return f'"{_systemd_quoted_body(value, in_argument=in_argument)}"'


def _template(name: str) -> Template:
    return Template(
        resources.files("migwatch").joinpath("templates").joinpath(name).read_text(encoding="utf-8")
    )


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


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        logger.info("cannot read %s: %s", path, error)
        return ""


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ServiceError(f"cannot create {folder}: {error.strerror or error}") from None


def _write_atomically(path: Path, text: str) -> None:
    _mkdir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ServiceError(f"cannot write {path}: {error.strerror or error}") from None


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise ServiceError(f"cannot remove {path}: {error.strerror or error}") from None


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
