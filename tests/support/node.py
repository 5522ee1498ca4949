"""Ask real Node.js how JavaScript sorts: `localeCompare` (ICU) is Prisma's order of migration folders."""

from __future__ import annotations

import json
import shutil
import subprocess

_SORT = (
    "const n = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
    "console.log(JSON.stringify(n.sort((a, b) => a.localeCompare(b))));"
)


def locale_sorted(names: list[str]) -> list[str]:
    """`names.sort((a, b) => a.localeCompare(b))` in Node; node is installed by tools/system-deps.sh."""
    node = shutil.which("node")
    assert node is not None, "node is missing: run tools/system-deps.sh"
    completed = subprocess.run(
        [node, "-e", _SORT], input=json.dumps(names), capture_output=True, text=True, check=True, timeout=60
    )
    result: list[str] = json.loads(completed.stdout)
    return result
