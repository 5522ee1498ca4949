"""One error base, one exit-code table, one handler in `cli.main`."""

from __future__ import annotations

import io
from pathlib import Path

from migwatch.cli import main
from migwatch.config import ConfigError
from migwatch.errors import ExitCode, UsageError, UserError
from migwatch.initcmd import InitError
from migwatch.service import ServiceError


def _subclasses(cls: type) -> set[type]:
    return {sub for direct in cls.__subclasses__() for sub in {direct, *_subclasses(direct)}}


def test_every_user_error_shares_the_base_and_the_table() -> None:
    assert {c.__name__ for c in _subclasses(UserError)} >= {
        "UsageError",
        "ConfigError",
        "InitError",
        "ServiceError",
    }
    assert all(c.exit_code in ExitCode for c in _subclasses(UserError))
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3, 130]


def test_lines_are_what_main_prints() -> None:
    assert UsageError("migwatch: bad").lines() == ["migwatch: bad"]
    assert ServiceError("systemctl failed").lines() == ["migwatch: systemctl failed"]
    assert InitError("no git repository at /x").lines() == ["no git repository at /x"]
    assert ConfigError(["a: wrong", "b: worse"], Path("/c.yaml")).lines() == [
        "/c.yaml: a: wrong",
        "/c.yaml: b: worse",
    ]


def test_main_prints_each_line_and_exits_with_the_errors_code(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("projects: 3\npoll_interval: soon\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()

    code = main(["--config", str(config), "check-config"], out=out, err=err)

    assert code == ExitCode.USAGE
    assert out.getvalue() == ""
    assert [line.split(": ", 1)[0] for line in err.getvalue().splitlines()] == [str(config), str(config)]
