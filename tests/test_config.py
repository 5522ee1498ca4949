"""The config layer: YAML → schema validation with every error at once → frozen objects (SPEC §3)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import platformdirs
import pytest
import yaml

from migwatch.catalogue import CODES, KINDS
from migwatch.config import (
    Config,
    ConfigError,
    LogConfig,
    NotifiersConfig,
    ProjectConfig,
    alert_codes,
    config_schema,
    default_config_path,
    load_config,
    parse_config,
    parse_duration,
    redact,
    render_commented_config,
)
from migwatch.model import Severity

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PROJECT = {
    "name": "americano",
    "repo": "~/Projects/Americano",
    "schema": "apps/web/prisma/schema.prisma",
    "base_branch": "main",
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {"HOME": str(home)}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str, env: Mapping[str, str]) -> list[str]:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env)
    assert caught.value.path == path
    return caught.value.errors


# --- defaults -------------------------------------------------------------------------------------------


def test_minimal_config_gets_every_default(tmp_path: Path, env: dict[str, str], home: Path) -> None:
    path = write_config(tmp_path, "projects:\n  - repo: ~/Projects/Americano\n")

    config = load_config(path, env)

    assert config == Config(
        projects=(
            ProjectConfig(
                name="Americano",
                repo=home / "Projects" / "Americano",
                schema=None,
                base_branch=None,
                database_url=None,
                ignore_worktrees=(),
            ),
        ),
        poll_interval=2.0,
        debounce=0.25,
        remind_after=14400.0,
        notify_resolved=True,
        notifiers=NotifiersConfig(desktop=True, command_argv=None, command_timeout=10.0),
        log=LogConfig(file=None, level="info"),
        alert_codes={},
        source=path,
    )


def test_spec_example_config_parses(tmp_path: Path, env: dict[str, str], home: Path) -> None:
    path = write_config(
        tmp_path,
        """\
        projects:
          - name: americano
            repo: ~/Projects/Americano
            schema: apps/web/prisma/schema.prisma
            base_branch: main
            database_url: null
            ignore_worktrees: ["*/tmp-*"]
        poll_interval: 2s
        debounce: 250ms
        remind_after: 4h
        notify_resolved: true
        notifiers:
          desktop: {enabled: true}
          command: {enabled: false, argv: ["/usr/local/bin/my-hook"]}
        log: {file: default, level: info}
        """,
    )

    config = load_config(path, env)

    assert config.projects == (
        ProjectConfig(
            name="americano",
            repo=home / "Projects" / "Americano",
            schema="apps/web/prisma/schema.prisma",
            base_branch="main",
            database_url=None,
            ignore_worktrees=("*/tmp-*",),
        ),
    )
    assert config.notifiers == NotifiersConfig(desktop=True, command_argv=None, command_timeout=10.0)
    assert config.log == LogConfig(file=None, level="info")


def test_every_key_set(tmp_path: Path, env: dict[str, str], home: Path) -> None:
    env["PGPASSWORD"] = "s3cret"
    path = write_config(
        tmp_path,
        """\
        projects:
          - name: shop
            repo: ../repos/shop
            schema: prisma/schema
            base_branch: develop
            database_url: postgresql://me:${PGPASSWORD}@localhost:5432/shop?schema=public
            ignore_worktrees: ["*/tmp-*", "~/scratch/*"]
        poll_interval: 500ms
        debounce: 1s
        remind_after: 0
        notify_resolved: false
        notifiers:
          desktop: {enabled: false}
          command: {enabled: true, argv: ["~/bin/hook", "--channel", "~db"], timeout: 1m}
        log: {file: logs/migwatch.log, level: DEBUG}
        alerts: {behind_base: true, pending: false}
        """,
    )

    config = load_config(path, env)

    assert config.projects == (
        ProjectConfig(
            name="shop",
            repo=tmp_path / "repos" / "shop",
            schema="prisma/schema",
            base_branch="develop",
            database_url="postgresql://me:s3cret@localhost:5432/shop?schema=public",
            ignore_worktrees=("*/tmp-*", f"{home}/scratch/*"),
        ),
    )
    assert (config.poll_interval, config.debounce, config.remind_after) == (0.5, 1.0, 0.0)
    assert config.notify_resolved is False
    assert config.notifiers == NotifiersConfig(
        desktop=False, command_argv=(f"{home}/bin/hook", "--channel", "~db"), command_timeout=60.0
    )
    assert config.log == LogConfig(file=tmp_path / "conf" / "logs" / "migwatch.log", level="debug")
    assert dict(config.alert_codes) == {"behind_base": True, "pending": False}


def test_command_argv_is_ignored_while_disabled(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(
        tmp_path, "projects: [{repo: /r}]\nnotifiers: {command: {enabled: false, argv: [/bin/true]}}\n"
    )

    assert load_config(path, env).notifiers.command_argv is None


def test_log_file_null_means_default(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(tmp_path, "projects: [{repo: /r}]\nlog: {file: null}\n")

    assert load_config(path, env).log == LogConfig(file=None, level="info")


def test_schema_defaults_match_the_code_defaults(tmp_path: Path, env: dict[str, str]) -> None:
    schema = config_schema()
    explicit = {
        "projects": [
            {
                "repo": "/r",
                "ignore_worktrees": schema["$defs"]["project"]["properties"]["ignore_worktrees"]["default"],
            }
        ],
        "poll_interval": schema["properties"]["poll_interval"]["default"],
        "debounce": schema["properties"]["debounce"]["default"],
        "remind_after": schema["properties"]["remind_after"]["default"],
        "notify_resolved": schema["properties"]["notify_resolved"]["default"],
        "notifiers": {
            "desktop": {
                "enabled": schema["properties"]["notifiers"]["properties"]["desktop"]["properties"][
                    "enabled"
                ]["default"]
            },
            "command": {
                key: schema["properties"]["notifiers"]["properties"]["command"]["properties"][key]["default"]
                for key in ("enabled", "timeout")
            },
        },
        "log": {key: schema["properties"]["log"]["properties"][key]["default"] for key in ("file", "level")},
    }

    assert parse_config(yaml.safe_dump(explicit), source=None, env=env) == parse_config(
        "projects: [{repo: /r}]", source=None, env=env
    )


# --- the schema as documentation ----------------------------------------------------------------------------


def _properties(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key, subschema in schema.get("properties", {}).items():
        yield f"{path}{key}", subschema
        yield from _properties(subschema, f"{path}{key}.")


def test_schema_is_valid_and_documents_every_key() -> None:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    keys = [*_properties(schema, ""), *_properties(schema["$defs"]["project"], "projects[].")]

    undocumented = [
        key for key, subschema in keys if not (subschema.get("description") and subschema.get("examples"))
    ]

    assert len(keys) == 44
    assert undocumented == []


def test_schema_examples_are_valid_values() -> None:
    schema = config_schema()
    keys = [*_properties(schema, ""), *_properties(schema["$defs"]["project"], "projects[].")]
    for key, subschema in keys:
        # The subschema as a document of its own, with the root's $defs so that its $ref resolves.
        validator = jsonschema.Draft202012Validator({**subschema, "$defs": schema["$defs"]})
        for example in subschema["examples"]:
            assert list(validator.iter_errors(example)) == [], (key, example)


def test_config_schema_returns_a_copy() -> None:
    config_schema()["properties"].clear()

    assert "projects" in config_schema()["properties"]


# --- durations ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("5m", 300.0),
        ("4h", 14400.0),
        ("1.5h", 5400.0),
        ("0", 0.0),
        ("0ms", 0.0),
        ("30", 30.0),
        (" 2s ", 2.0),
        (0, 0.0),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "s", "-1s", "2 s", "1e3", "2S", "1h30m", ".5s", "4 hours"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)

    assert str(caught.value) == f"{text!r} is not a duration; use a duration like 500ms, 2s, 5m or 4h"


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan"), True])
def test_parse_duration_rejects_numbers(value: float) -> None:
    with pytest.raises(ValueError, match="is not a duration; use a duration like 500ms, 2s, 5m or 4h"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("key", "yaml_value", "seconds"),
    [
        ("debounce", "500ms", 0.5),
        ("debounce", "2s", 2.0),
        ("remind_after", "5m", 300.0),
        ("remind_after", "4h", 14400.0),
        ("debounce", "3", 3.0),
        ("debounce", "1.5", 1.5),
        ("debounce", "'7'", 7.0),
    ],
)
def test_durations_in_config(
    tmp_path: Path, env: dict[str, str], key: str, yaml_value: str, seconds: float
) -> None:
    path = write_config(tmp_path, f"projects: [{{repo: /r}}]\n{key}: {yaml_value}\n")

    assert getattr(load_config(path, env), key) == seconds


@pytest.mark.parametrize(
    "yaml_value", ["2x", "-1", "-1s", "true", "[2s]", ".inf", ".nan", "''", "null", "2 s"]
)
def test_bad_durations_in_config(tmp_path: Path, env: dict[str, str], yaml_value: str) -> None:
    errors = errors_of(tmp_path, f"projects: [{{repo: /r}}]\nremind_after: {yaml_value}\n", env)

    assert errors == ["remind_after: must be a duration like 500ms, 2s, 5m or 4h"]


def test_zero_poll_interval_and_command_timeout(tmp_path: Path, env: dict[str, str]) -> None:
    errors = errors_of(
        tmp_path,
        "projects: [{repo: /r}]\npoll_interval: 0s\nnotifiers: {command: {timeout: 0}}\ndebounce: 0\n",
        env,
    )

    assert errors == [
        "notifiers.command.timeout: must be from 100ms to 10m (got 0)",
        "poll_interval: must be from 100ms to 1h (got 0s)",
    ]


# --- all errors at once -------------------------------------------------------------------------------------


def test_three_mistakes_give_exactly_three_lines(tmp_path: Path, env: dict[str, str]) -> None:
    errors = errors_of(
        tmp_path,
        """\
        projects:
          - name: americano
            schema: apps/web/prisma/schema.prisma
        poll_intervall: 2s
        notify_resolved: maybe
        """,
        env,
    )

    assert errors == [
        "notify_resolved: must be true or false (got a string)",
        "poll_intervall: unknown key; did you mean 'poll_interval'?",
        "projects[0].repo: required key is missing: the path of the project's git repository, "
        "like ~/Projects/Americano",
    ]


def test_many_mistakes_sorted_by_path(tmp_path: Path, env: dict[str, str]) -> None:
    errors = errors_of(
        tmp_path,
        """\
        projects:
          - repo: ~/a
          - repo: ~/b
          - repo: ~/c
          - repo: ~/d
          - repo: ~/e
          - repo: ~/f
          - repo: ~/g
          - repo: ~/h
          - repo: ~/i
          - repo: ~/j
            base_branch: 3
          - repo: ~/k
            ignore_worktrees: "*/tmp-*"
          - repo: ~/l
            database_url: ""
            schema: /abs/schema.prisma
          - null
        debounce: fast
        notifiers:
          desktop: false
          command: {enabled: true, argv: []}
          email: {to: me}
        log: {level: verbose, file: 12}
        alerts: {behind_databse: true, pending: 3, something_else: false}
        """,
        env,
    )

    assert errors == [
        "alerts.behind_databse: unknown finding code; did you mean 'behind_database'?",
        "alerts.pending: must be true or false (got a number)",
        f"alerts.something_else: unknown finding code; expected one of: {', '.join(CODES)}",
        "debounce: must be a duration like 500ms, 2s, 5m or 4h",
        "log.file: must be a string or null (got a number)",
        "log.level: must be one of debug, info, warning, error (got 'verbose')",
        "notifiers.command.argv: must not be empty",
        "notifiers.command.argv: required when notifiers.command.enabled is true",
        "notifiers.desktop: must be a mapping (got true/false)",
        "notifiers.email: unknown key; expected one of: desktop, command",
        "projects[9].base_branch: must be a string or null (got a number)",
        "projects[10].ignore_worktrees: must be a list or null (got a string)",
        "projects[11].database_url: must not be empty",
        "projects[11].schema: must be relative to the worktree root, like apps/web/prisma/schema.prisma",
        "projects[12]: must be a mapping (got nothing)",
    ]


def test_top_level_problems(tmp_path: Path, env: dict[str, str]) -> None:
    assert errors_of(tmp_path, "- repo: /r\n", env) == ["(top level): must be a mapping (got a list)"]
    assert errors_of(tmp_path, "poll_interval: 2s\n", env) == [
        "projects: required key is missing: list the projects to watch, each with its repo"
    ]
    assert errors_of(tmp_path, "projects: []\n", env) == ["projects: must list at least one project"]
    assert errors_of(tmp_path, "projects:\n", env) == ["projects: must be a list (got nothing)"]


def test_unknown_key_without_close_match_lists_the_known_keys(tmp_path: Path, env: dict[str, str]) -> None:
    errors = errors_of(tmp_path, "projects: [{repo: /r, colour: blue}]\n", env)

    assert errors == [
        "projects[0].colour: unknown key; expected one of: name, repo, schema, base_branch, database_url, "
        "env_files, ignore_worktrees"
    ]


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("poll_intervall", "poll_interval"),
        ("pollinterval", "poll_interval"),
        ("remind-after", "remind_after"),
        ("notify_resolve", "notify_resolved"),
        ("notifier", "notifiers"),
        ("logs", "log"),
        ("project", "projects"),
    ],
)
def test_did_you_mean(tmp_path: Path, env: dict[str, str], key: str, suggestion: str) -> None:
    text = f"projects: [{{repo: /r}}]\n{key}: 1\n" if key != "project" else "project: [{repo: /r}]\n"
    errors = errors_of(tmp_path, text, env)

    assert f"{key}: unknown key; did you mean '{suggestion}'?" in errors


def test_duplicate_project_names(tmp_path: Path, env: dict[str, str]) -> None:
    errors = errors_of(
        tmp_path,
        """\
        projects:
          - repo: ~/one/shop
          - repo: ~/two/shop
          - {name: web, repo: /a}
          - {name: web, repo: /b}
          - {name: other, repo: /c}
        """,
        env,
    )

    assert errors == [
        "projects[1]: project name 'shop' (the repo folder's name) is already used by projects[0]; "
        "give one of them a distinct name",
        "projects[3].name: project name 'web' is already used by projects[2]",
    ]


def test_same_repo_twice_with_distinct_names_is_fine(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(
        tmp_path,
        """\
        projects:
          - {name: web, repo: /mono, schema: apps/web/prisma/schema.prisma}
          - {name: admin, repo: /mono, schema: apps/admin/prisma/schema.prisma}
        """,
    )

    assert [project.name for project in load_config(path, env).projects] == ["web", "admin"]


# --- files and YAML -----------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "nowhere" / "config.yaml"

    with pytest.raises(ConfigError) as caught:
        load_config(path, env)

    assert caught.value.errors == [
        f"{path}: no config file; run 'migwatch init' in your repository to create one"
    ]
    assert caught.value.lines() == caught.value.errors
    assert caught.value.path == path


def test_unreadable_file(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env)
    assert caught.value.errors == [
        f"{tmp_path}: cannot read the config file: it is a directory, not a regular file"
    ]

    binary = tmp_path / "config.yaml"
    binary.write_bytes(b"projects: \xff\n")
    with pytest.raises(ConfigError) as caught:
        load_config(binary, env)
    assert caught.value.errors == [f"{binary}: cannot read the config file: not UTF-8 text (byte 10)"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, env: dict[str, str], text: str) -> None:
    assert errors_of(tmp_path, text, env) == [
        "(top level): the config is empty; run 'migwatch init' in your repository to create one"
    ]


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(tmp_path, "projects:\n  - repo: /r\npoll_interval: 2s: 3\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, env)

    assert caught.value.errors == [f"{path}:3:18: invalid YAML: mapping values are not allowed here"]
    assert str(caught.value) == f"{path}:3:18: invalid YAML: mapping values are not allowed here"


def test_yaml_error_with_context(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(tmp_path, 'projects:\n  - repo: "/r\n')

    with pytest.raises(ConfigError) as caught:
        load_config(path, env)

    assert caught.value.errors == [
        f"{path}:3:1: invalid YAML: found unexpected end of stream "
        "(while scanning a quoted scalar at line 2, column 11)"
    ]


def test_yaml_forbidden_character(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(tmp_path, "projects:\n  - repo: /r\x07\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, env)

    assert caught.value.errors == [f"{path}:2:13: invalid YAML: character #x0007 is not allowed"]


def test_duplicate_yaml_key(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(
        tmp_path, "projects: [{repo: /r}]\npoll_interval: 2s\ndebounce: 1s\npoll_interval: 5s\n"
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, env)

    assert caught.value.errors == [
        f"{path}:4:1: invalid YAML: duplicate key 'poll_interval' (first at line 2)"
    ]


def test_yaml_python_tags_are_refused(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(tmp_path, "projects: !!python/object/apply:os.system ['true']\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, env)

    assert caught.value.errors == [
        f"{path}:1:11: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'"
    ]


def test_schema_errors_name_the_file_when_printed(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(tmp_path, "projects: [{repo: /r}]\nlogs: {}\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, env)

    assert caught.value.errors == ["logs: unknown key; did you mean 'log'?"]
    assert caught.value.lines() == [f"{path}: logs: unknown key; did you mean 'log'?"]


def test_parse_config_without_a_file() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("projects: [\n", source=None, env={})

    assert caught.value.path is None
    assert caught.value.errors == [
        "<config>:2:1: invalid YAML: expected the node content, but found '<stream end>' "
        "(while parsing a flow node at line 2, column 1)"
    ]


def test_utf8_bom_is_accepted(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xef\xbb\xbfprojects: [{repo: /r}]\n")

    assert load_config(path, env).projects[0].repo == Path("/r")


# --- expansion ----------------------------------------------------------------------------------------------


def test_tilde_and_variables_are_expanded_from_the_given_env(tmp_path: Path, home: Path) -> None:
    env = {"HOME": str(home), "WORK": "/srv/work", "PROJECTS": "~/Projects"}
    path = write_config(
        tmp_path,
        """\
        projects:
          - repo: ~/Projects/Americano
          - repo: $WORK/shop
          - repo: ${WORK}/blog
          - repo: $PROJECTS/notes
          - repo: "~"
          - repo: sub/../relative
        """,
    )

    repos = [project.repo for project in load_config(path, env).projects]

    assert repos == [
        home / "Projects" / "Americano",
        Path("/srv/work/shop"),
        Path("/srv/work/blog"),
        home / "Projects" / "notes",
        home,
        tmp_path / "conf" / "relative",
    ]


def test_repo_is_resolved_and_name_comes_from_the_resolved_folder(
    tmp_path: Path, env: dict[str, str]
) -> None:
    (tmp_path / "real-repo").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real-repo")
    path = write_config(tmp_path, "projects: [{repo: ../link/}]\n")

    project = load_config(path, env).projects[0]

    assert (project.repo, project.name) == (tmp_path / "real-repo", "real-repo")


def test_unset_variables_are_errors(tmp_path: Path, env: dict[str, str]) -> None:
    errors = errors_of(
        tmp_path,
        """\
        projects:
          - repo: $NOPE/app
            database_url: postgresql://me:${DB_PASSWORD}@localhost/app
            ignore_worktrees: ["$SCRATCH/*"]
        notifiers: {command: {enabled: true, argv: ["$HOOKS/notify", "$NOT_EXPANDED"]}}
        log: {file: "${LOGS}/migwatch.log"}
        """,
        env,
    )

    assert errors == [
        "log.file: environment variable LOGS is not set",
        "notifiers.command.argv[0]: environment variable HOOKS is not set",
        "projects[0].database_url: environment variable DB_PASSWORD is not set",
        "projects[0].ignore_worktrees[0]: environment variable SCRATCH is not set",
        "projects[0].repo: environment variable NOPE is not set",
    ]


def test_dollar_escapes_and_lone_dollars(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(
        tmp_path,
        "projects: [{repo: /r, database_url: 'postgresql://me:pa$$w$@host/db', ignore_worktrees: ['/x$']}]\n",
    )

    project = load_config(path, env).projects[0]

    assert project.database_url == "postgresql://me:pa$w$@host/db"
    assert project.ignore_worktrees == ("/x$",)


def test_default_env_is_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGWATCH_TEST_REPO", str(tmp_path / "from-environ"))
    path = write_config(tmp_path, "projects: [{repo: $MIGWATCH_TEST_REPO}]\n")

    assert load_config(path).projects[0].repo == tmp_path / "from-environ"


def test_default_config_path(tmp_path: Path, home: Path) -> None:
    assert default_config_path({"MIGWATCH_CONFIG": "~/cfg/migwatch.yaml", "HOME": str(home)}) == (
        home / "cfg" / "migwatch.yaml"
    )
    assert default_config_path({"MIGWATCH_CONFIG": str(tmp_path / "c.yaml")}) == tmp_path / "c.yaml"
    assert default_config_path({}) == platformdirs.user_config_path("migwatch") / "config.yaml"
    assert (
        default_config_path({"MIGWATCH_CONFIG": ""})
        == platformdirs.user_config_path("migwatch") / "config.yaml"
    )


# --- passwords ----------------------------------------------------------------------------------------------


def test_redact() -> None:
    assert redact("postgresql://me:s3cret@localhost:5432/db") == "postgresql://me:***@localhost:5432/db"
    assert redact("postgres://:s3cret@h/db and mysql://u:p@x") == "postgres://:***@h/db and mysql://u:***@x"
    assert redact("postgresql://me@localhost/db") == "postgresql://me@localhost/db"


def test_passwords_never_appear_in_errors(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(
        tmp_path,
        """\
        projects:
          - repo: /r
            database_url: postgresql://me:s3cret@localhost/app
            postgresql://me:s3cret@localhost/app: true
        log: {level: "postgresql://me:s3cret@localhost/app"}
        poll_interval: postgresql://me:s3cret@localhost/app
        """,
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, env)

    assert "s3cret" not in str(caught.value)
    assert caught.value.errors == [
        "log.level: must be one of debug, info, warning, error (got 'postgresql://me:***@localhost/app')",
        "poll_interval: must be a duration like 500ms, 2s, 5m or 4h",
        "projects[0].postgresql://me:***@localhost/app: unknown key; expected one of: name, repo, schema, "
        "base_branch, database_url, env_files, ignore_worktrees",
    ]


def test_password_not_in_yaml_errors(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(
        tmp_path,
        "projects:\n  - repo: /r\n    postgresql://me:s3cret@h/db: 1\n    postgresql://me:s3cret@h/db: 2\n",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, env)

    assert caught.value.errors == [
        f"{path}:4:5: invalid YAML: duplicate key 'postgresql://me:***@h/db' (first at line 3)"
    ]


def test_project_repr_hides_the_database_url(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(tmp_path, "projects: [{repo: /r, database_url: 'postgresql://me:s3cret@h/db'}]\n")

    config = load_config(path, env)

    assert "s3cret" not in repr(config)
    assert config.projects[0].database_url == "postgresql://me:s3cret@h/db"


# --- the commented config -----------------------------------------------------------------------------------


def test_example_config_is_the_generated_one() -> None:
    checked_in = (REPO_ROOT / "config" / "migwatch.example.yaml").read_text(encoding="utf-8")

    assert checked_in == render_commented_config([EXAMPLE_PROJECT])


@pytest.mark.parametrize(
    "projects",
    [
        [EXAMPLE_PROJECT],
        [{"repo": "/abs/repo"}],
        [
            {"name": "web", "repo": "/mono", "schema": "apps/web/prisma/schema.prisma"},
            {
                "name": "admin",
                "repo": "$WORK/mono",
                "database_url": "postgresql://me:${PGPASSWORD}@localhost:5432/admin?schema=public",
                "ignore_worktrees": ["*/tmp-*", "~/scratch"],
                "base_branch": "release/2.0",
            },
            {"repo": "~/Projects/it's: odd # name", "schema": None},
        ],
    ],
)
def test_commented_config_round_trip(tmp_path: Path, home: Path, projects: list[dict[str, Any]]) -> None:
    env = {"HOME": str(home), "WORK": "/srv/work", "PGPASSWORD": "pw"}
    source = tmp_path / "config.yaml"

    rendered = parse_config(render_commented_config(projects), source=source, env=env)
    plain = parse_config(
        yaml.safe_dump({"projects": [{k: v for k, v in p.items() if v is not None} for p in projects]}),
        source=source,
        env=env,
    )

    assert rendered == plain
    assert rendered == Config(
        projects=plain.projects,
        poll_interval=2.0,
        debounce=0.25,
        remind_after=14400.0,
        notify_resolved=True,
        notifiers=NotifiersConfig(desktop=True, command_argv=None, command_timeout=10.0),
        log=LogConfig(file=None, level="info"),
        alert_codes={},
        source=source,
    )


def test_commented_config_documents_every_key() -> None:
    rendered = render_commented_config([{"repo": "/r"}])
    schema = config_schema()

    for key, subschema in [*_properties(schema, ""), *_properties(schema["$defs"]["project"], "")]:
        first_words = " ".join(subschema["description"].split()[:4])
        assert first_words in " ".join(line.strip("# ") for line in rendered.splitlines()), key
        assert f"{key.rsplit('.', 1)[-1]}:" in rendered, key


def test_uncommenting_optional_keys_keeps_valid_yaml(tmp_path: Path, env: dict[str, str]) -> None:
    schema = config_schema()
    keys = [*_properties(schema, ""), *_properties(schema["$defs"]["project"], "")]
    setting = re.compile(rf"^(\s*)# ({'|'.join(key.rsplit('.', 1)[-1] for key, _ in keys)}): ")
    rendered = render_commented_config([{"repo": "/r"}])

    uncommented = "\n".join(setting.sub(r"\1\2: ", line) for line in rendered.splitlines())
    config = parse_config(uncommented, source=tmp_path / "c.yaml", env=env)

    assert config.projects[0] == ProjectConfig(
        name="americano",
        repo=Path("/r"),
        schema="apps/web/prisma/schema.prisma",
        base_branch="main",
        database_url="postgresql://me@localhost:5432/americano?schema=public",
        ignore_worktrees=("*/tmp-*",),
        env_files=(".env",),
    )
    assert config.notifiers.command_argv is None  # uncommented argv, still disabled
    # Each uncommented example flips the default: codes that (also) give info findings are switched on.
    info_codes = {kind.code for kind in KINDS if Severity.INFO in kind.severities}
    assert dict(config.alert_codes) == {code: code in info_codes for code in alert_codes()}


def test_render_refuses_unknown_project_keys_and_no_projects() -> None:
    with pytest.raises(ValueError, match="unknown project keys: colour"):
        render_commented_config([{"repo": "/r", "colour": "blue"}])
    with pytest.raises(ValueError, match="needs at least one project"):
        render_commented_config([])


def test_env_files_must_stay_inside_the_worktree(tmp_path: Path, env: dict[str, str]) -> None:
    errors = errors_of(
        tmp_path,
        'projects: [{repo: /r, env_files: ["/etc/passwd", "../../.env", "a/../../b", ".env"]}]\n',
        env,
    )
    assert errors == [
        f"projects[0].env_files[{index}]: must be a path inside the worktree (relative, without ..)"
        for index in (0, 1, 2)
    ]


# --- documents that passed the schema before (config-schema-passed) -------------------------------------

_PARSE_AND_REPORT = """
import json, os, sys
from pathlib import Path
from migwatch.config import ConfigError, load_config
try:
    load_config(Path(sys.argv[1]), dict(os.environ))
    outcome = "ok"
except ConfigError as error:
    outcome = error.errors
print(json.dumps({"outcome": outcome, "jsonschema": "jsonschema" in sys.modules}))
"""


def _parse_in_fresh_process(path: Path, cache: Path, home: Path, **variables: str) -> dict[str, Any]:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "HOME": str(home), **variables}
    done = subprocess.run(
        [sys.executable, "-c", _PARSE_AND_REPORT, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_document_that_passed_the_schema_skips_jsonschema_next_time(tmp_path: Path, home: Path) -> None:
    (tmp_path / "repo").mkdir()
    path = write_config(tmp_path, f"projects:\n  - name: shop\n    repo: {tmp_path / 'repo'}\n")
    cache = tmp_path / "cache"
    first = _parse_in_fresh_process(path, cache, home)
    second = _parse_in_fresh_process(path, cache, home)
    assert first == {"outcome": "ok", "jsonschema": True}
    assert second == {"outcome": "ok", "jsonschema": False}
    memo = cache / "migwatch" / "config-schema-passed"
    assert memo.stat().st_mode & 0o777 == 0o600
    assert str(tmp_path) not in memo.read_text(encoding="ascii")  # digests only
    # The same document written differently (comments, key order, flow style) is the same document.
    path.write_text(f"# mine\nprojects: [{{repo: '{tmp_path / 'repo'}', name: shop}}]\n", encoding="utf-8")
    assert _parse_in_fresh_process(path, cache, home) == {"outcome": "ok", "jsonschema": False}
    # Checks that depend on the machine still run on a remembered document: a $VARIABLE left unset.
    path.write_text("projects:\n  - name: shop\n    repo: $SHOP_REPO\n", encoding="utf-8")
    assert _parse_in_fresh_process(path, cache, home, SHOP_REPO=str(tmp_path / "repo"))["jsonschema"] is True
    assert _parse_in_fresh_process(path, cache, home, SHOP_REPO=str(tmp_path / "repo")) == {
        "outcome": "ok",
        "jsonschema": False,
    }
    outcome = _parse_in_fresh_process(path, cache, home)["outcome"]
    assert outcome != "ok" and any("SHOP_REPO is not set" in line for line in outcome)


def test_a_document_with_schema_problems_is_checked_every_time(tmp_path: Path, home: Path) -> None:
    path = write_config(tmp_path, "projects:\n  - name: shop\n    repo: /srv/shop\n    colour: red\n")
    cache = tmp_path / "cache"
    for _ in range(2):
        report = _parse_in_fresh_process(path, cache, home)
        assert report["jsonschema"] is True
        assert any("colour: unknown key" in line for line in report["outcome"])
    assert not (cache / "migwatch" / "config-schema-passed").exists()


def test_a_corrupt_or_unwritable_memo_only_costs_the_check(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    memo = tmp_path / "cache" / "migwatch" / "config-schema-passed"
    memo.parent.mkdir(parents=True)
    memo.write_bytes(b"\xff\xfe garbage\n" + b"z" * 100_000)
    (tmp_path / "repo").mkdir()
    text = f"projects:\n  - name: shop\n    repo: {tmp_path / 'repo'}\n"
    assert load_config(write_config(tmp_path, text), env).projects[0].name == "shop"
    assert errors_of(tmp_path, text + "    colour: red\n", env)
    memo.unlink()
    memo.mkdir()  # cannot be written: a folder in the way
    assert load_config(write_config(tmp_path, text), env).projects[0].name == "shop"


def test_documents_that_are_not_plain_json_are_never_remembered() -> None:
    from datetime import date

    from migwatch.config import _document_digest

    assert _document_digest({"projects": [{"name": "a", "repo": "/r"}]}) is not None
    assert _document_digest({"projects": [{"name": date(2025, 1, 1), "repo": "/r"}]}) is None
    assert _document_digest({1: "x"}) is None  # would read as {"1": "x"}
    assert _document_digest({"poll_interval": float("nan")}) is None
    looped: list[Any] = []
    looped.append(looped)
    assert _document_digest({"projects": looped}) is None
