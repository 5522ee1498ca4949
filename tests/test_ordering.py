"""Prisma's folder order is JavaScript's localeCompare (ICU): migwatch's key against real Node, randomly."""

from __future__ import annotations

import json
import random
import shutil
import subprocess

import pytest

from migwatch.ordering import collation_key

ALPHABET = "abopsz_-.ABOZ019æøßÆØœłđþéèêüöäÅåñ"


@pytest.mark.parametrize("seed", range(8))
def test_random_names_sort_like_node(seed: int) -> None:
    rnd = random.Random(seed)
    names = list(
        dict.fromkeys(
            f"2025{rnd.randint(0, 9)}_" + "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 7)))
            for _ in range(250)
        )
    )
    node = shutil.which("node")
    assert node is not None, "node is installed by tools/system-deps.sh"
    script = (
        "const n = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(n.sort((a, b) => a.localeCompare(b))));"
    )
    completed = subprocess.run(
        [node, "-e", script], input=json.dumps(names), capture_output=True, text=True, check=True, timeout=60
    )
    assert sorted(names, key=collation_key) == json.loads(completed.stdout)
