"""The configuration file (SPEC §3): YAML → JSON Schema validation reporting every error → frozen objects."""

from __future__ import annotations

import copy
import difflib
import functools
import importlib.resources
import json
import logging
import math
import os
import re
import textwrap
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migwatch.configfile import ConfigInputError, load_yaml, read_config_text
from migwatch.dburl import redact
from migwatch.display import visible
from migwatch.errors import UserError

# jsonschema (~0.1 s to import) and platformdirs are imported where they are used: `migwatch guard`
# needs this module's types on every guarded command, and validation only when a config file exists.

logger = logging.getLogger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_DEBOUNCE = 0.25
DEFAULT_REMIND_AFTER = 4 * 3600.0
DEFAULT_COMMAND_TIMEOUT = 10.0

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_DURATION_HINT = "must be a duration like 500ms, 2s, 5m or 4h"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_INIT_HINT = "run 'migwatch init' in your repository to create one"
_TOP_LEVEL = "(top level)"
# `$$` is a literal `$`; `${NAME}` and `$NAME` are variables; any other `$` stays as it is.
_VARIABLE_RE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
# `user:password@` in anything that looks like a URL or a libpq-style authority.

YamlPath = tuple[str | int, ...]


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


def parse_duration(text: str | int | float) -> float:
    """Seconds from `500ms`, `2s`, `5m`, `4h`, `0` or a bare number of seconds; ValueError otherwise."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"{text!r} is not a duration; use a duration like 500ms, 2s, 5m or 4h")
    if isinstance(text, (int, float)):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"{text!r} is not a duration; use a duration like 500ms, 2s, 5m or 4h")
        return float(text)
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; use a duration like 500ms, 2s, 5m or 4h")
    number, unit = match.groups()
    return float(number) * _UNIT_SECONDS[unit or "s"]


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
    return copy.deepcopy(_schema())


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    text = importlib.resources.files("migwatch").joinpath("config_schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


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
        raise ConfigError([f"{_TOP_LEVEL}: the config is empty; {_INIT_HINT}"], source)
    base_dir = source.parent if source is not None else Path.cwd()
    problems = _schema_problems(document)
    problems |= _semantic_problems(document, env, base_dir)
    if problems:
        ordered = sorted(problems, key=lambda problem: (_path_sort_key(problem[0]), problem[1]))
        raise ConfigError([f"{_format_path(path)}: {message}" for path, message in ordered], source)
    config = _build(document, env, base_dir, source)
    logger.debug("config %s: %d project(s)", source or "<config>", len(config.projects))
    return config


# --- validation -------------------------------------------------------------------------------------------

Problem = tuple[YamlPath, str]


def _format_path(path: YamlPath) -> str:
    if not path:
        return _TOP_LEVEL
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _path_sort_key(path: YamlPath) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in path)


def _kind(value: Any) -> str:
    """How a YAML value's type is named in messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "boolean": "true or false",
    "number": "a number",
    "integer": "a whole number",
    "null": "null",
}


def _schema_problems(document: Any) -> set[Problem]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    duration_schema = _schema()["$defs"]["duration"]
    problems: set[Problem] = set()
    for error in validator.iter_errors(document):
        path: YamlPath = tuple(error.absolute_path)
        if error.schema == duration_schema:
            problems.add((path, _DURATION_HINT))
        elif error.validator == "additionalProperties":
            problems.update(_unknown_key_problems(path, error.instance, error.schema))
        elif error.validator == "required":
            for key in error.validator_value:
                if key not in error.instance:
                    problems.add(((*path, key), _required_message(path, key)))
        elif error.validator == "type":
            expected: list[str] = (
                error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            )
            names = " or ".join(_TYPE_NAMES.get(name, name) for name in expected)
            problems.add((path, f"must be {names} (got {_kind(error.instance)})"))
        elif error.validator == "minItems":
            problems.add((path, _empty_list_message(path)))
        elif error.validator == "minLength":
            problems.add((path, "must not be empty"))
        elif error.validator == "pattern" and "x-pattern-message" in error.schema:
            problems.add((path, str(error.schema["x-pattern-message"])))
        elif error.validator == "enum":
            choices = ", ".join(str(choice) for choice in error.validator_value)
            problems.add((path, f"must be one of {choices} (got {redact(repr(error.instance))})"))
        else:
            # Keywords this schema does not use today; jsonschema's text, without echoing the value.
            problems.add((path, f"does not satisfy '{error.validator}': {error.validator_value!r}"))
    return problems


def _unknown_key_problems(
    path: YamlPath, instance: Mapping[Any, Any], schema: Mapping[str, Any]
) -> set[Problem]:
    known = list(schema.get("properties", {}))
    what = "unknown finding code" if path == ("alerts",) else "unknown key"
    problems: set[Problem] = set()
    for key in instance:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if close:
            problems.add(((*path, key), f"{what}; did you mean '{close[0]}'?"))
        else:
            problems.add(((*path, key), f"{what}; expected one of: {', '.join(known)}"))
    return problems


def _required_message(path: YamlPath, key: str) -> str:
    if key == "repo":
        return "required key is missing: the path of the project's git repository, like ~/Projects/Americano"
    if key == "projects":
        return "required key is missing: list the projects to watch, each with its repo"
    return "required key is missing"


def _empty_list_message(path: YamlPath) -> str:
    if path == ("projects",):
        return "must list at least one project"
    return "must not be empty"


def _semantic_problems(document: Any, env: Mapping[str, str], base_dir: Path) -> set[Problem]:
    """Checks a schema cannot express; each looks only at values of the right type, so all run at once."""
    problems: set[Problem] = set()
    if not isinstance(document, dict):
        return problems

    def check_expansion(path: YamlPath, value: Any, expand: Callable[[str, Mapping[str, str]], str]) -> None:
        if isinstance(value, str):
            try:
                expand(value, env)
            except UnsetVariableError as exc:
                problems.add((path, f"environment variable {exc.name} is not set"))

    projects = document.get("projects")
    first_with_name: dict[str, int] = {}
    for index, project in enumerate(projects if isinstance(projects, list) else []):
        if not isinstance(project, dict):
            continue
        here: YamlPath = ("projects", index)
        check_expansion((*here, "repo"), project.get("repo"), expand_path_text)
        check_expansion((*here, "database_url"), project.get("database_url"), expand_variables)
        globs = project.get("ignore_worktrees")
        for glob_index, glob in enumerate(globs if isinstance(globs, list) else []):
            check_expansion((*here, "ignore_worktrees", glob_index), glob, expand_path_text)
        schema_path = project.get("schema")
        if isinstance(schema_path, str) and (
            schema_path.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", schema_path)
        ):
            problems.add(
                (
                    (*here, "schema"),
                    "must be relative to the worktree root, like apps/web/prisma/schema.prisma",
                )
            )
        name = project.get("name")
        from_repo = False
        if not (isinstance(name, str) and name):
            name = _default_name(project.get("repo"), env, base_dir)
            from_repo = True
        if name is None:
            continue
        if name in first_with_name:
            other = _format_path(("projects", first_with_name[name]))
            if from_repo:
                problems.add(
                    (
                        here,
                        f"project name {name!r} (the repo folder's name) is already used by {other}; "
                        "give one of them a distinct name",
                    )
                )
            else:
                problems.add(((*here, "name"), f"project name {name!r} is already used by {other}"))
        else:
            first_with_name[name] = index

    for key in ("poll_interval", "debounce", "remind_after"):
        problems |= _duration_problems((key,), document.get(key))

    notifiers = document.get("notifiers")
    command = notifiers.get("command") if isinstance(notifiers, dict) else None
    if isinstance(command, dict):
        if command.get("enabled") is True and not command.get("argv"):
            problems.add(
                (("notifiers", "command", "argv"), "required when notifiers.command.enabled is true")
            )
        timeout = command.get("timeout")
        problems |= _duration_problems(("notifiers", "command", "timeout"), timeout)
        argv = command.get("argv")
        if isinstance(argv, list) and argv:
            check_expansion(("notifiers", "command", "argv", 0), argv[0], expand_path_text)

    log = document.get("log")
    if isinstance(log, dict):
        level = log.get("level")
        if isinstance(level, str) and level.lower() not in LOG_LEVELS:
            problems.add(
                (("log", "level"), f"must be one of {', '.join(LOG_LEVELS)} (got {redact(repr(level))})")
            )
        log_file = log.get("file")
        if log_file != "default":
            check_expansion(("log", "file"), log_file, expand_path_text)
    return problems


def _duration_problems(path: YamlPath, value: Any) -> set[Problem]:
    """What the schema cannot check: .inf and .nan, and the key's range (`x-range`, `x-zero` in the schema)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return set()  # missing, or the schema's type error
    try:
        seconds = parse_duration(value)
    except ValueError:
        return {(path, _DURATION_HINT)}
    low_text, high_text = _duration_range(path)
    zero = _duration_schema(path).get("x-zero")
    if zero is not None and seconds == 0:
        return set()
    if parse_duration(low_text) <= seconds <= parse_duration(high_text):
        return set()
    shown = visible(str(value).strip(), 24)
    if zero is not None:
        return {(path, f"must be 0 ({zero}) or from {low_text} to {high_text} (got {shown})")}
    return {(path, f"must be from {low_text} to {high_text} (got {shown})")}


def _duration_schema(path: YamlPath) -> Mapping[str, Any]:
    """The schema of the duration key at `path` (a top-level key, or notifiers.command.timeout)."""
    node: Mapping[str, Any] = _schema()
    for part in path:
        node = node["properties"][part]
    return node


def _duration_range(path: YamlPath) -> tuple[str, str]:
    low, high = _duration_schema(path)["x-range"]
    return str(low), str(high)


def _default_name(repo: Any, env: Mapping[str, str], base_dir: Path) -> str | None:
    if not isinstance(repo, str) or not repo:
        return None
    try:
        return _absolute(expand_path_text(repo, env), base_dir).name
    except UnsetVariableError:
        return None


# --- expansion --------------------------------------------------------------------------------------------


class UnsetVariableError(ValueError):
    """A $VARIABLE in a config value is not set in the environment."""

    def __init__(self, name: str) -> None:
        super().__init__(f"environment variable {name} is not set")
        self.name = name


def expand_variables(text: str, env: Mapping[str, str]) -> str:
    """Replace `$NAME` and `${NAME}` from `env`, `$$` by `$`; UnsetVariableError if one is not set."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group(2) or match.group(3)
        if name not in env:
            raise UnsetVariableError(name)
        return env[name]

    return _VARIABLE_RE.sub(replace, text)


def expand_path_text(text: str, env: Mapping[str, str]) -> str:
    """Expand $VARIABLES, then a leading `~` (from env's HOME, else the account's home folder)."""
    text = expand_variables(text, env)
    if text == "~" or text.startswith(("~/", "~" + os.sep)):
        home = env.get("HOME") or env.get("USERPROFILE") or os.path.expanduser("~")
        return home + text[1:]
    if text.startswith("~"):
        return os.path.expanduser(text)  # ~otheruser/…: the password database decides
    return text


def _absolute(text: str, base_dir: Path) -> Path:
    path = Path(text)
    if not path.is_absolute():
        path = base_dir / path
    return path.resolve()


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
            else _absolute(expand_path_text(log_file, env), base_dir),
            level=log.get("level", "info").lower(),
        ),
        alert_codes=types.MappingProxyType(dict(document.get("alerts") or {})),
        source=source,
    )


def _build_project(project: dict[str, Any], env: Mapping[str, str], base_dir: Path) -> ProjectConfig:
    repo = _absolute(expand_path_text(project["repo"], env), base_dir)
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
    schema = _schema()
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
    return tuple(_schema()["properties"]["alerts"]["properties"])
