"""Prisma's order of migration folders (JavaScript `localeCompare`, SPEC §5). Pure."""

from __future__ import annotations

import unicodedata

# ICU root collation (JavaScript's localeCompare) puts punctuation before digits before letters, and
# compares letters without case first. This table covers the characters of real migration names.
_PUNCTUATION = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"


def _primary(char: str) -> tuple[tuple[int, int], ...]:
    if char.isspace():
        return ((0, ord(char)),)
    position = _PUNCTUATION.find(char)
    if position >= 0:
        return ((1, position),)
    if char.isdigit():
        return ((2, int(char) if char.isascii() else ord(char)),)
    # casefold() can give several letters (ß → ss), as ICU's primary weights do.
    base = unicodedata.normalize("NFD", char)[0].casefold()
    if base.isalpha():
        return tuple((3, ord(letter)) for letter in base)
    return ((4, ord(char)),)


def collation_key(name: str) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...], tuple[int, ...]]:
    """Sort key approximating `a.localeCompare(b)`: letters, then accents, then lower before upper."""
    primary: list[tuple[int, int]] = []
    secondary: list[int] = []
    tertiary: list[int] = []
    for char in name:
        weights = _primary(char)
        primary.extend(weights)
        secondary.extend([len(unicodedata.normalize("NFD", char))] * len(weights))
        # An expansion (ß for ss) sorts after the letters it expands to, as in ICU.
        tertiary.extend([1 if char.isupper() else 2 if len(weights) > 1 else 0] * len(weights))
    return (tuple(primary), tuple(secondary), tuple(tertiary))
