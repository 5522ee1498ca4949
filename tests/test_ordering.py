"""Prisma's folder order is JavaScript's localeCompare (ICU): migwatch's key against real Node, randomly."""

from __future__ import annotations

import random

import pytest

from migwatch.ordering import collation_key
from tests.support.node import locale_sorted

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
    assert sorted(names, key=collation_key) == locale_sorted(names)
