"""The newcomer's map stays true: CONTRIBUTING.md names every module, docs/spec.md has every section the
code cites as "SPEC §n"."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "daemon" / "migwatch"


def test_contributing_maps_every_module() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w*/]+\.py)`", text)) | {f"{d}/" for d in re.findall(r"`(\w+)/`", text)}
    missing = []
    for module in sorted(PACKAGE.rglob("*.py")):
        relative = module.relative_to(PACKAGE).as_posix()
        if module.name in ("__init__.py", "__main__.py") and module.parent == PACKAGE:
            continue
        candidates = {relative, module.name, f"{module.parent.name}/{module.name}"}
        if module.parent.name != "diagnose":  # finding modules are named one by one: that is the map
            candidates.add(f"{module.parent.name}/")
        if not any(fnmatch.fnmatch(c, pattern) for c in candidates for pattern in named):
            missing.append(relative)
    assert missing == []


def test_spec_has_every_section_the_code_cites() -> None:
    cited = set()
    for source in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        cited |= set(re.findall(r"SPEC §(\d+[a-z]?)", source.read_text(encoding="utf-8")))
    spec = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^##+ (\d+[a-z]?)\. ", spec, re.M))
    assert cited - sections == set()
