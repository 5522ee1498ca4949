"""The service file of `migwatch service`: the platform, its context, the unit or plist text, writing it.

The unit and plist are the package's `templates/` files filled with `string.Template`; every value is
escaped for the place it lands in (systemd command-line quoting, XML text). Pure but for reading the
running process's context (`default_context`), the templates, and the file helpers at the end.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from xml.sax.saxutils import escape as xml_escape

from migwatch.errors import UserError

logger = logging.getLogger(__name__)

LABEL = "dev.migwatch.agent"
UNIT_NAME = "migwatch.service"
# launchd does not create missing folders for StandardOutPath/StandardErrorPath; these names are in the plist.
LAUNCHD_STDOUT = "launchd.stdout.log"
LAUNCHD_STDERR = "launchd.stderr.log"

# Tried in this order after the folder of the `git` the installing shell finds.
_DEFAULT_PATH_DIRS = ("/usr/local/bin", "/usr/bin", "/bin")
# systemd refuses an executable path with these ("Executable name contains special characters").
_SYSTEMD_UNSAFE_EXECUTABLE = ('"', "'", "\\")
_SYSTEMD_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


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


# --- the file on disk ----------------------------------------------------------------------------------


def read_service_file(path: Path) -> str | None:
    """The installed file's text; None when there is none, "" when it cannot be read (so it is rewritten)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        logger.info("cannot read %s: %s", path, error)
        return ""


def make_folder(folder: Path) -> None:
    """Create `folder` and its parents, or fail with a one-line ServiceError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ServiceError(f"cannot create {folder}: {error.strerror or error}") from None


def write_service_file(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (temporary file, fsync, rename), mode 0644."""
    make_folder(path.parent)
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


def remove_service_file(path: Path) -> None:
    """Remove `path` if it exists, or fail with a one-line ServiceError."""
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise ServiceError(f"cannot remove {path}: {error.strerror or error}") from None
