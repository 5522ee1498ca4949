"""Quoting of printed shell commands: pasting the line gives back exactly the argv, and the line shows
exactly what it runs.

`shlex.quote` is right for every argument except those holding characters that display.visible must
escape (newlines, ESC, bidi overrides, bytes that are not UTF-8): printed raw they would forge or
hide text, printed escaped they would no longer be the command. Those arguments are written in ANSI-C
quoting, `$'m\\npwned'`, which bash, zsh, ksh and POSIX.1-2024 `sh` read back byte for byte.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from migwatch.display import visible

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", "'": "\\'"}


def quote(argument: str) -> str:
    """One argument for a POSIX shell: `shlex.quote`, or `$'…'` when it holds invisible characters."""
    if visible(argument, None) == argument:
        return shlex.quote(argument)
    return "$'" + "".join(_ansi_c(character) for character in argument) + "'"


def join(argv: Iterable[str]) -> str:
    """A command line from its argv (`shlex.join`, with `quote` for each argument)."""
    return " ".join(quote(argument) for argument in argv)


def _ansi_c(character: str) -> str:
    if character in _SHORT:
        return _SHORT[character]
    if visible(character, None) == character:
        return character
    try:  # a byte that is not UTF-8, decoded with surrogateescape, goes back as that byte
        raw = character.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = character.encode("utf-8", "surrogatepass")
    return "".join(f"\\x{byte:02x}" for byte in raw)
