"""The configuration file (SPEC §3): YAML → JSON Schema validation reporting every error → frozen objects.

Reading the file with bounds is `configfile.py`, checking the document `configcheck.py`; this module
holds the frozen config objects, loads and builds them, and writes the commented config of `init`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import os
import textwrap
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migwatch.configcheck import (
    LOG_LEVELS,
    TOP_LEVEL,
    UnsetVariableError,
    absolute_path,
    document_problems,
    expand_path_text,
    expand_variables,
    parse_duration,
    shipped_schema,
)
from migwatch.configfile import ConfigInputError, load_yaml, read_config_text
from migwatch.dburl import redact
from migwatch.display import visible
from migwatch.errors import UserError

# jsonschema (~0.1 s to import) and platformdirs are imported where they are used: `migwatch guard`
# needs this module's types on every guarded command, and validation only when a config file exists.

# Re-exported: the checks and value rules moved to configcheck.py; their old import paths keep working.
__all__ = [
    "DEFAULT_COMMAND_TIMEOUT",
    "DEFAULT_DEBOUNCE",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_REMIND_AFTER",
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "LogConfig",
    "NotifiersConfig",
    "ProjectConfig",
    "UnsetVariableError",
    "alert_codes",
    "config_schema",
    "default_config_path",
    "expand_path_text",
    "expand_variables",
    "load_config",
    "parse_config",
    "parse_duration",
    "redact",
    "render_commented_config",
]

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_DEBOUNCE = 0.25
DEFAULT_REMIND_AFTER = 4 * 3600.0
DEFAULT_COMMAND_TIMEOUT = 10.0

_INIT_HINT = "run 'migwatch init' in your repository to create one"


class ConfigError(UserError):
    """Raised with every problem at once; .errors is a list of one-line strings 'path: message'."""

    def __init__(self, errors: Sequence[str], path: Path | None = None, *, names_file: bool = False) -> None:
        self.errors: list[str] = [redact(error) for error in errors]
        self.path: Path | None = path
        # Syntax and missing-file errors already start with the file; schema errors start with a YAML path.
        self._names_file = names_file
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """The errors as printed for the user: each one names the config file."""
        if self._names_file or self.path is None:
            return list(self.errors)
        return [f"{self.path}: {error}" for error in self.errors]


@dataclass(frozen=True)
class ProjectConfig:
    name: str
    repo: Path
    schema: str | None = None
    base_branch: str | None = None
    database_url: str | None = field(default=None, repr=False)
    ignore_worktrees: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()  # env files relative to each worktree, read before Prisma's own rules


@dataclass(frozen=True)
class NotifiersConfig:
    desktop: bool = True
    command_argv: tuple[str, ...] | None = None
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT


@dataclass(frozen=True)
class LogConfig:
    file: Path | None = None
    level: str = "info"


@dataclass(frozen=True)
class Config:
    projects: tuple[ProjectConfig, ...]
    poll_interval: float = DEFAULT_POLL_INTERVAL
    debounce: float = DEFAULT_DEBOUNCE
    remind_after: float = DEFAULT_REMIND_AFTER
    notify_resolved: bool = True
    notifiers: NotifiersConfig = field(default_factory=NotifiersConfig)
    log: LogConfig = field(default_factory=LogConfig)
    alert_codes: Mapping[str, bool] = field(default_factory=lambda: types.MappingProxyType({}))
    source: Path | None = None


def default_config_path(env: Mapping[str, str]) -> Path:
    """$MIGWATCH_CONFIG (with ~ and $VARS expanded), else `config.yaml` in the platform config folder."""
    configured = env.get("MIGWATCH_CONFIG")
    if configured:
        try:
            return Path(expand_path_text(configured, env)).absolute()
        except UnsetVariableError:
            return Path(configured).absolute()
    import platformdirs

    return platformdirs.user_config_path("migwatch") / "config.yaml"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, as shipped in the package."""
    return copy.deepcopy(shipped_schema())


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at `path`; ConfigError lists every problem.

    Only a regular file of at most configfile.MAX_CONFIG_BYTES is read (never a device or a FIFO).
    """
    env = os.environ if env is None else env
    path = Path(os.path.abspath(path))
    try:
        text = read_config_text(path)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no config file; {_INIT_HINT}"], path, names_file=True) from None
    except ConfigInputError as exc:
        raise ConfigError([str(exc)], path, names_file=True) from None
    return parse_config(text, source=path, env=env)


def parse_config(text: str, *, source: Path | None, env: Mapping[str, str]) -> Config:
    """Validate config text read from `source` (None: not from a file); ConfigError lists every problem."""
    try:
        document = load_yaml(text, source)
    except ConfigInputError as exc:
        raise ConfigError([str(exc)], source, names_file=exc.names_file) from None
    if document is None:
        raise ConfigError([f"{TOP_LEVEL}: the config is empty; {_INIT_HINT}"], source)
    base_dir = source.parent if source is not None else Path.cwd()
    digest = _document_digest(document)
    passed_before = digest is not None and digest in _schema_passes()
    problems = document_problems(document, env, base_dir, schema=not passed_before)
    if problems:
        raise ConfigError(problems, source)
    if digest is not None and not passed_before:
        _remember_schema_pass(digest)
    config = _build(document, env, base_dir, source)
    logger.debug("config %s: %d project(s)", source or "<config>", len(config.projects))
    return config


# --- documents that passed the schema before ------------------------------------------------------------
# Checking against the JSON Schema needs jsonschema, whose import is ~45 ms: a quarter of a whole `migwatch
# status`. The result depends only on the document and the schema, so the digests of the last documents
# that passed are kept in the user cache folder and their schema check is skipped; the checks of paths and
# $VARIABLES, which depend on the machine, always run. Only digests are stored, never the document.

SCHEMA_PASSES_KEPT = 16


def _schema_passes_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("migwatch")) / "config-schema-passed"


def _document_digest(document: Any) -> str | None:
    """A digest of the document and the shipped schema; None unless the document is plain JSON data.

    Plain: string keys only and JSON values only (no YAML dates, no integer keys), so that two documents
    with the same digest are the same document.
    """
    try:
        if not _plain_json(document):
            return None
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):  # a self-referencing alias, a NaN
        return None
    digest = hashlib.sha256(_schema_digest().encode())
    digest.update(canonical.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _schema_digest() -> str:
    """The shipped schema's digest, computed once per process."""
    return hashlib.sha256(json.dumps(shipped_schema(), sort_keys=True).encode()).hexdigest()


def _plain_json(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain_json(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain_json(item) for item in value)
    return value is None or isinstance(value, (str, bool, int, float))


def _schema_passes() -> list[str]:
    try:
        with open(_schema_passes_file(), encoding="ascii") as handle:
            text = handle.read(SCHEMA_PASSES_KEPT * 65)
    except (OSError, ValueError):
        return []
    return [line for line in text.splitlines() if len(line) == 64]


def _remember_schema_pass(digest: str) -> None:
    """Best effort: a cache that cannot be written only means the next run imports jsonschema again."""
    from migwatch.logsetup import replace_private  # not on the guard's path

    path = _schema_passes_file()
    kept = [digest, *(known for known in _schema_passes() if known != digest)][:SCHEMA_PASSES_KEPT]
    try:
        replace_private(path, "".join(f"{known}\n" for known in kept), durable=False)
    except OSError as exc:
        logger.debug("config schema result not stored at %s: %s", path, exc)


# --- building the objects ---------------------------------------------------------------------------------


def _build(document: dict[str, Any], env: Mapping[str, str], base_dir: Path, source: Path | None) -> Config:
    projects = tuple(_build_project(project, env, base_dir) for project in document["projects"])
    notifiers = document.get("notifiers") or {}
    desktop = notifiers.get("desktop") or {}
    command = notifiers.get("command") or {}
    argv: tuple[str, ...] | None = None
    if command.get("enabled", False):
        program, *arguments = command["argv"]
        argv = (expand_path_text(program, env), *arguments)
    log = document.get("log") or {}
    log_file = log.get("file")
    return Config(
        projects=projects,
        poll_interval=parse_duration(document.get("poll_interval", DEFAULT_POLL_INTERVAL)),
        debounce=parse_duration(document.get("debounce", DEFAULT_DEBOUNCE)),
        remind_after=parse_duration(document.get("remind_after", DEFAULT_REMIND_AFTER)),
        notify_resolved=document.get("notify_resolved", True),
        notifiers=NotifiersConfig(
            desktop=desktop.get("enabled", True),
            command_argv=argv,
            command_timeout=parse_duration(command.get("timeout", DEFAULT_COMMAND_TIMEOUT)),
        ),
        log=LogConfig(
            file=None
            if log_file in (None, "default")
            else absolute_path(expand_path_text(log_file, env), base_dir),
            level=log.get("level", "info").lower(),
        ),
        alert_codes=types.MappingProxyType(dict(document.get("alerts") or {})),
        source=source,
    )


def _build_project(project: dict[str, Any], env: Mapping[str, str], base_dir: Path) -> ProjectConfig:
    repo = absolute_path(expand_path_text(project["repo"], env), base_dir)
    database_url = project.get("database_url")
    return ProjectConfig(
        name=project.get("name") or repo.name,
        repo=repo,
        schema=project.get("schema"),
        base_branch=project.get("base_branch"),
        database_url=expand_variables(database_url, env) if database_url is not None else None,
        ignore_worktrees=tuple(expand_path_text(glob, env) for glob in project.get("ignore_worktrees") or ()),
        env_files=tuple(project.get("env_files") or ()),
    )


# --- the commented config written by `migwatch init` -----------------------------------------------------

_HEADER = """\
# migwatch configuration, written by `migwatch init`.
#
# Every key is described below; the JSON Schema shipped with migwatch (migwatch/config_schema.json)
# is the reference. Durations are seconds or a number with a unit: 500ms, 2s, 5m or 4h.
# Lines starting with `# key:` are optional settings: remove the `# ` to use them.
# After editing, run `migwatch check-config`; a running daemon picks changes up on SIGHUP or restart.
"""

_WIDTH = 100


def render_commented_config(projects: Sequence[Mapping[str, Any]]) -> str:
    """A full config for `migwatch init`: the given projects, every other key at its default, commented."""
    if not projects:
        raise ValueError("render_commented_config needs at least one project")
    schema = shipped_schema()
    project_schema = schema["$defs"]["project"]
    lines = [_HEADER]
    lines += _comment(schema["properties"]["projects"]["description"], 0)
    lines.append("projects:")
    for index, project in enumerate(projects):
        unknown = set(project) - set(project_schema["properties"])
        if unknown:
            raise ValueError(f"unknown project keys: {', '.join(sorted(unknown))}")
        lines += _render_project(project, project_schema, describe=index == 0)
    for key, subschema in schema["properties"].items():
        if key == "projects":
            continue
        lines.append("")
        lines += _render_key(key, subschema, 0)
    return "\n".join(lines) + "\n"


def _render_project(
    project: Mapping[str, Any], project_schema: Mapping[str, Any], *, describe: bool
) -> list[str]:
    # A project given without a name starts with a bare `-` so that uncommenting `# name:` keeps valid YAML.
    given = {key: value for key, value in project.items() if value is not None}
    lines: list[str] = []
    dash_written = "name" not in given
    if dash_written:
        lines.append("  -")
    for key, subschema in project_schema["properties"].items():
        if describe:
            lines += _comment(subschema["description"], 4)
        if key in given:
            prefix = "    " if dash_written else "  - "
            dash_written = True
            lines.append(f"{prefix}{key}: {_yaml_value(given[key])}")
        elif describe:
            lines.append(f"    # {key}: {_yaml_value(subschema['examples'][0])}")
    return lines


def _render_key(key: str, subschema: Mapping[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines = _comment(subschema["description"], indent)
    if "properties" in subschema:
        lines.append(f"{pad}{key}:")
        for child_key, child_schema in subschema["properties"].items():
            lines += _render_key(child_key, child_schema, indent + 2)
    elif "default" in subschema:
        lines.append(f"{pad}{key}: {_yaml_value(subschema['default'])}")
    else:
        lines.append(f"{pad}# {key}: {_yaml_value(subschema['examples'][0])}")
    return lines


def _comment(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return [
        f"{pad}# {line}" for line in textwrap.wrap(text, width=_WIDTH - indent - 2, break_on_hyphens=False)
    ]


def _yaml_value(value: Any) -> str:
    """One value as YAML on one line: plain scalars where YAML allows, JSON-style flow for lists."""
    # A value holding characters display.visible would escape (bidi overrides, U+2028, …) is written in
    # escaped form (\u202e): `init --print` shows it on a terminal and the YAML still reads back the same.
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, ensure_ascii=False)
        return text if visible(text, None) == text else json.dumps(value)
    plain = visible(str(value), None) == str(value)
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=plain, width=math.inf)
    dumped = dumped.removesuffix("\n").removesuffix("\n...")
    return dumped


def alert_codes() -> tuple[str, ...]:
    """The finding codes `alerts:` accepts, in schema order."""
    return tuple(shipped_schema()["properties"]["alerts"]["properties"])
