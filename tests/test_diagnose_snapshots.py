"""Every message and fix line of every diagnose branch, pinned as plain values (tests/snapshots/).

Regenerate after an intended wording change with `MIGWATCH_UPDATE_SNAPSHOTS=1 pytest
tests/test_diagnose_snapshots.py` and review the diff of `tests/snapshots/findings.json`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.findingcases import CASES, rendered, rendered_text

SNAPSHOT = Path(__file__).parent / "snapshots" / "findings.json"


def _current() -> dict[str, Any]:
    return {name: {"json": rendered(name), "text": rendered_text(name)} for name in CASES}


def _stored() -> dict[str, Any]:
    if os.environ.get("MIGWATCH_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(_current(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    stored: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return stored


STORED = _stored()


@pytest.mark.parametrize("name", sorted(CASES))
def test_findings_match_the_snapshot(name: str) -> None:
    assert {"json": rendered(name), "text": rendered_text(name)} == STORED[name]


def test_every_snapshot_case_still_exists() -> None:
    assert sorted(STORED) == sorted(CASES)
