"""Prisma's order of migration folders (JavaScript `localeCompare`, SPEC §5). Pure."""

from __future__ import annotations

import functools
import unicodedata

# ICU root collation (JavaScript's localeCompare) compares in three passes: base letters (punctuation
# before digits before letters, case ignored), then accents, then case (lower before upper). These
# tables cover the characters of real migration names; names made by `prisma migrate dev` are ASCII.
_PUNCTUATION = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"
# Accents in ICU's secondary order (acute < grave < breve < circumflex < caron < ring < diaeresis …).
_ACCENTS = "\u0301\u0300\u0306\u0302\u030c\u030a\u0308\u030b\u0303\u0307\u0327\u0328\u0304"
_STROKE = len(_ACCENTS) + 1
_LIGATURE = 100  # the accent-level mark ICU puts inside æ and œ, after every real accent
# Letters that do not decompose: (the letters ICU sorts them as, their accent-level elements).
_LETTER_BASE: dict[str, tuple[str, tuple[int, ...]]] = {
    "æ": ("ae", (0, _LIGATURE, 0)),
    "œ": ("oe", (0, _LIGATURE, 0)),
    "ø": ("o", (0, _STROKE)),
    "đ": ("d", (0, _STROKE)),
    "ð": ("d", (0, _STROKE)),
    "ł": ("l", (0, _STROKE)),
    "ħ": ("h", (0, _STROKE)),
}

Weights = tuple[tuple[int, int], ...]


@functools.lru_cache(maxsize=4096)
def _weights(char: str) -> tuple[Weights, tuple[int, ...], bool]:
    """(primary weights, accent-level elements, is an expansion) of one character (cached: names repeat them)."""
    if char.isspace():
        return ((0, ord(char)),), (0,), False
    position = _PUNCTUATION.find(char)
    if position >= 0:
        return ((1, position),), (0,), False
    if char.isdigit():
        return ((2, int(char) if char.isascii() else ord(char)),), (0,), False
    decomposed = unicodedata.normalize("NFD", char)
    base = decomposed[0].casefold()
    if base in _LETTER_BASE:
        letters, accents = _LETTER_BASE[base]
        return tuple((3, ord(letter)) for letter in letters), accents, True
    if base.isalpha():
        marks = tuple(_ACCENTS.index(m) + 1 if m in _ACCENTS else _STROKE + ord(m) for m in decomposed[1:])
        # casefold() can give several letters (ß → ss), as ICU's expansions do.
        return tuple((3, ord(letter)) for letter in base), (0,) * len(base) + marks, len(base) > 1
    return ((4, ord(char)),), (0,), False


@functools.lru_cache(maxsize=1 << 16)
def collation_key(name: str) -> bytes:
    """Sort key approximating `a.localeCompare(b)`: letters, then accents, then lower before upper.

    The three levels are packed into bytes (each level ends with a 0 byte, below every weight), so
    comparing keys is one C comparison. Cached: every worktree holds mostly the same names.
    """
    primary = bytearray()
    secondary = bytearray()
    tertiary = bytearray()
    for char in name:
        weights, accents, expansion = _weights(char)
        for group, value in weights:
            primary += bytes((group + 1, (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF))
        for accent in accents:
            secondary += (min(accent, 0xFFFE) + 1).to_bytes(2, "big")
        # An expansion (ß for ss, æ for ae) sorts after the letters it expands to, as in ICU.
        tertiary += bytes([(2 if expansion else 0) + (1 if char.isupper() else 0) + 1] * len(weights))
    return bytes(primary) + b"\0" + bytes(secondary) + b"\0\0" + bytes(tertiary)
