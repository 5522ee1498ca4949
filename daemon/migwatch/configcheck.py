"""Checking a config document (SPEC §3): every problem at once, each with its YAML path.

The shipped JSON Schema first, then what a schema cannot express: durations and their ranges, `$VARIABLES`
that must be set, a relative schema path, unique project names. Also the value rules loading shares
with the checks: `parse_duration`, `expand_variables`, `expand_path_text`. Pure but for reading the schema
from the package; jsonschema (~0.1 s to import) is imported only when a document is checked.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from migwatch.dburl import redact
from migwatch.display import visible

LOG_LEVELS = ("debug", "info", "warning", "error")

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_DURATION_HINT = "must be a duration like 500ms, 2s, 5m or 4h"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
TOP_LEVEL = "(top level)"  # the YAML path of the document itself, in messages

# `$$` is a literal `$`; `${NAME}` and `$NAME` are variables; any other `$` stays as it is.
_VARIABLE_RE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

YamlPath = tuple[str | int, ...]
Problem = tuple[YamlPath, str]


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


@functools.lru_cache(maxsize=1)
def shipped_schema() -> dict[str, Any]:
    """The package's config_schema.json, read once (callers must not change it: `config_schema` copies)."""
    text = importlib.resources.files("migwatch").joinpath("config_schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


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


def absolute_path(text: str, base_dir: Path) -> Path:
    """An expanded path from the config, relative to the config file's folder, resolved."""
    path = Path(text)
    if not path.is_absolute():
        path = base_dir / path
    return path.resolve()


def format_path(path: YamlPath) -> str:
    """A YAML path as messages show it: `projects[0].repo`, or TOP_LEVEL."""
    if not path:
        return TOP_LEVEL
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def path_sort_key(path: YamlPath) -> tuple[tuple[int, int, str], ...]:
    """Document order for YAML paths: list indexes by number, keys by name."""
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

    validator = jsonschema.Draft202012Validator(shipped_schema())
    duration_schema = shipped_schema()["$defs"]["duration"]
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


def document_problems(
    document: Any, env: Mapping[str, str], base_dir: Path, *, schema: bool = True
) -> list[str]:
    """Every problem of a parsed config document as `path: message` lines, in document order.

    `schema=False` skips the JSON Schema check, for a document known to have passed it (config.py).
    """
    problems = _schema_problems(document) if schema else set()
    problems |= _semantic_problems(document, env, base_dir)
    ordered = sorted(problems, key=lambda problem: (path_sort_key(problem[0]), problem[1]))
    return [f"{format_path(path)}: {message}" for path, message in ordered]


def _semantic_problems(document: Any, env: Mapping[str, str], base_dir: Path) -> set[Problem]:
    """Checks a schema cannot express; each looks only at values of the right type, so all run at once."""
    if not isinstance(document, dict):
        return set()
    problems = _project_problems(document.get("projects"), env, base_dir)
    for key in ("poll_interval", "debounce", "remind_after"):
        problems |= _duration_problems((key,), document.get(key))
    problems |= _notifier_problems(document.get("notifiers"), env)
    problems |= _log_problems(document.get("log"), env)
    return problems


def _expansion_problems(
    path: YamlPath, value: Any, expand: Callable[[str, Mapping[str, str]], str], env: Mapping[str, str]
) -> set[Problem]:
    """A `$VARIABLE` in a string value that `env` does not set."""
    if isinstance(value, str):
        try:
            expand(value, env)
        except UnsetVariableError as exc:
            return {(path, f"environment variable {exc.name} is not set")}
    return set()


def _project_problems(projects: Any, env: Mapping[str, str], base_dir: Path) -> set[Problem]:
    """Per project: its `$VARIABLES` set, a schema path relative to the worktree, a name no earlier one has."""
    problems: set[Problem] = set()
    first_with_name: dict[str, int] = {}
    for index, project in enumerate(projects if isinstance(projects, list) else []):
        if not isinstance(project, dict):
            continue
        here: YamlPath = ("projects", index)
        problems |= _expansion_problems((*here, "repo"), project.get("repo"), expand_path_text, env)
        problems |= _expansion_problems(
            (*here, "database_url"), project.get("database_url"), expand_variables, env
        )
        globs = project.get("ignore_worktrees")
        for glob_index, glob in enumerate(globs if isinstance(globs, list) else []):
            problems |= _expansion_problems(
                (*here, "ignore_worktrees", glob_index), glob, expand_path_text, env
            )
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
        problems |= _name_problems(index, project, first_with_name, env, base_dir)
    return problems


def _name_problems(
    index: int,
    project: dict[str, Any],
    first_with_name: dict[str, int],
    env: Mapping[str, str],
    base_dir: Path,
) -> set[Problem]:
    """Project `index`'s name (given, or its repo folder's) if an earlier project has it; else remember it."""
    here: YamlPath = ("projects", index)
    name = project.get("name")
    from_repo = False
    if not (isinstance(name, str) and name):
        name = _default_name(project.get("repo"), env, base_dir)
        from_repo = True
    if name is None:
        return set()
    if name not in first_with_name:
        first_with_name[name] = index
        return set()
    other = format_path(("projects", first_with_name[name]))
    if from_repo:
        return {
            (
                here,
                f"project name {name!r} (the repo folder's name) is already used by {other}; "
                "give one of them a distinct name",
            )
        }
    return {((*here, "name"), f"project name {name!r} is already used by {other}")}


def _notifier_problems(notifiers: Any, env: Mapping[str, str]) -> set[Problem]:
    """notifiers.command: an argv when enabled, its timeout's range, its program's `$VARIABLES` set."""
    command = notifiers.get("command") if isinstance(notifiers, dict) else None
    if not isinstance(command, dict):
        return set()
    problems: set[Problem] = set()
    if command.get("enabled") is True and not command.get("argv"):
        problems.add((("notifiers", "command", "argv"), "required when notifiers.command.enabled is true"))
    timeout = command.get("timeout")
    problems |= _duration_problems(("notifiers", "command", "timeout"), timeout)
    argv = command.get("argv")
    if isinstance(argv, list) and argv:
        problems |= _expansion_problems(("notifiers", "command", "argv", 0), argv[0], expand_path_text, env)
    return problems


def _log_problems(log: Any, env: Mapping[str, str]) -> set[Problem]:
    """log.level one of LOG_LEVELS (any case), log.file's `$VARIABLES` set."""
    if not isinstance(log, dict):
        return set()
    problems: set[Problem] = set()
    level = log.get("level")
    if isinstance(level, str) and level.lower() not in LOG_LEVELS:
        problems.add(
            (("log", "level"), f"must be one of {', '.join(LOG_LEVELS)} (got {redact(repr(level))})")
        )
    log_file = log.get("file")
    if log_file != "default":
        problems |= _expansion_problems(("log", "file"), log_file, expand_path_text, env)
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
    node: Mapping[str, Any] = shipped_schema()
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
        return absolute_path(expand_path_text(repo, env), base_dir).name
    except UnsetVariableError:
        return None
