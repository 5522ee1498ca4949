"""The finding catalogue is the one list of codes: every place that names a code agrees with it.

When one of these fails, change `daemon/migwatch/catalogue.py` first, then the place the test names
(CONTRIBUTING.md, "Add a finding").
"""

from __future__ import annotations

import ast
import io
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from migwatch import alerts, catalogue
from migwatch.catalogue import CATALOGUE, CODES, KINDS, readme_table, severity_label
from migwatch.cli import main
from migwatch.config import alert_codes, config_schema
from migwatch.diagnose import unlisted_project
from migwatch.initcmd import render_commented_config
from migwatch.model import Finding, Severity
from tests.support.findingcases import CASES, rendered

ROOT = Path(__file__).resolve().parent.parent
DIAGNOSE = ROOT / "daemon" / "migwatch" / "diagnose"


def _all_findings() -> list[dict[str, Any]]:
    return [finding for name in CASES for finding in rendered(name)]


def test_every_code_is_reached_by_a_snapshot_case_with_a_catalogue_severity() -> None:
    found = _all_findings()
    assert {f["code"] for f in found} == {k.code for k in KINDS if not k.daemon_only}
    wrong = {
        (f["code"], f["severity"])
        for f in found
        if Severity(f["severity"]) not in CATALOGUE[f["code"]].severities
    }
    assert wrong == set()


def test_only_discovery_has_a_remark_severity_and_it_is_info() -> None:
    assert {k.code: k.remark_severity for k in KINDS if k.remark_severity} == {"discovery": Severity.INFO}
    assert severity_label(CATALOGUE["discovery"]) == "info/warning"


def test_a_project_git_cannot_list_is_a_discovery_warning() -> None:
    finding = unlisted_project("Americano", Path("/home/dev/my repo"), "not a git repository")
    assert (finding.code, finding.severity, finding.fix.lines()) == (
        "discovery",
        Severity.WARNING,
        ["git -C '/home/dev/my repo' worktree list", "why: migwatch finds the worktrees with git"],
    )


def test_diagnose_names_no_severity_itself() -> None:
    """Severities come from the catalogue through `context.finding`, never inline in a finding module."""
    offenders = []
    for module in sorted(DIAGNOSE.glob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        if {"Severity", "ERROR", "WARNING", "INFO"} & names:
            offenders.append(module.name)
    assert offenders == []


def test_alert_titles_and_transient_codes_are_the_catalogues() -> None:
    assert alerts.TRANSIENT_CODES == catalogue.TRANSIENT_CODES
    assert {
        "behind_database",
        "pending",
        "out_of_order",
        "failed",
        "checksum_mismatch",
    } == catalogue.TRANSIENT_CODES
    for kind in KINDS:
        subject = Finding(kind.code, kind.severity, "p", None, "/w/Americano-epic3", None, "m")
        expected = "behind the base branch" if kind.code == "behind_base" else kind.title
        assert alerts.alert_title("new", subject) == f"Americano-epic3: {expected}"


def test_status_schema_lists_exactly_the_catalogue_codes() -> None:
    text = resources.files("migwatch").joinpath("status_schema.json").read_text(encoding="utf-8")
    finding_schema = json.loads(text)["properties"]["findings"]["items"]
    assert finding_schema["properties"]["code"] == {"enum": list(CODES)}


@pytest.mark.parametrize("code", CODES)
def test_config_schema_alert_key_describes_the_code_like_the_catalogue(code: str) -> None:
    kind = CATALOGUE[code]
    entry = config_schema()["properties"]["alerts"]["properties"][code]
    assert entry["description"].startswith(f"({severity_label(kind)}) ")
    # The example flips the default: switch on what does not alert by default, off what does.
    assert entry["examples"] == [Severity.INFO in kind.severities]


def test_config_schema_and_init_list_every_code_in_catalogue_order() -> None:
    assert alert_codes() == CODES
    rendered_config = render_commented_config([{"repo": "/r"}])
    listed = [
        line.strip()[2:].split(":")[0] for line in rendered_config.splitlines() if line.startswith("  # ")
    ]
    assert [name for name in listed if name in CATALOGUE] == list(CODES)


def test_readme_finding_table_is_generated_from_the_catalogue() -> None:
    assert readme_table() in (ROOT / "README.md").read_text(encoding="utf-8")


def test_migwatch_codes_lists_the_catalogue() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["codes"], out=out, err=err) == 0
    lines = out.getvalue().splitlines()
    assert (len(lines), err.getvalue()) == (2 * len(KINDS), "")
    assert lines[0] == "behind_database       error        behind the database (held while a migration runs)"
    assert lines[-2] == "discovery             info/warning cannot be checked"
    assert [line.split()[0] for line in lines[::2]] == list(CODES)
