"""Text shown to a person, made safe at the output edge: control characters visible, long fields clipped.

Names of migrations, branches and folders, history rows' `logs`, URLs and `.env` values come from
repositories, databases and environments that anyone may have written to. Printed raw, an ESC or OSC
sequence rewrites the terminal (OSC 52 even sets the clipboard), a CR or LF forges a line (a fake
`$ …` fix, a fake table row), a bidi override reorders what is read. `visible()` is the one function
every human renderer (status table, notifications, log lines, `init`, error messages) passes such
text through. JSON output needs none of this: JSON escaping already shows every control character.
"""

from __future__ import annotations

import unicodedata

from migwatch.scrub import MAX_SECRET_CHARS, scrub

# A field is clipped to this many characters (a history row's `logs` can be megabytes long).
FIELD_LIMIT = 1000
# A printed command is clipped only beyond this: real paths and names never come near it.
COMMAND_LIMIT = 10_000
ELLIPSIS = "…"

# Unicode categories shown as escapes: controls (C0, DEL, C1), format characters (bidi embeddings,
# overrides and isolates U+202A–202E/U+2066–2069, LRM/RLM, zero-width ones), surrogates (a lone one
# is how surrogateescape decodes a byte that is not UTF-8), and the line/paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# surrogateescape maps an undecodable byte 0xNN (0x80–0xFF) to U+DCNN: show the byte itself.
_ESCAPED_BYTES = range(0xDC80, 0xDD00)


def visible(text: object, limit: int | None = FIELD_LIMIT) -> str:
    """`text` with every control/format character shown as an escape (`\\x1b`, `\\n`, `\\u202e`) and,
    when longer than `limit` characters, cut to `limit` characters ending in "…".

    Linear in `limit`, not in the length of `text`: a 10 MB field costs the same as a short one. An
    escape is never cut in half.
    """
    # Every password migwatch has seen is removed first (scrub.py): the last line of defence for secrets.
    raw = scrub(str(text) if limit is None else str(text)[: limit + 1 + MAX_SECRET_CHARS])
    if limit is None:
        return "".join(_escape(character) for character in raw)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    # Each input character becomes at least one output character, so only this much can ever show.
    pieces: list[str] = []
    length = 0
    for character in raw[: limit + 1]:
        piece = _escape(character)
        pieces.append(piece)
        length += len(piece)
        if length > limit:
            break
    if length <= limit and len(raw) <= limit:
        return "".join(pieces)
    # Too long: keep whole pieces up to limit - 1 characters, then "…".
    kept: list[str] = []
    room = limit - len(ELLIPSIS)
    for piece in pieces:
        if len(piece) > room:
            break
        kept.append(piece)
        room -= len(piece)
    return "".join(kept) + ELLIPSIS


def _escape(character: str) -> str:
    if character.isprintable():
        return character
    category = unicodedata.category(character)
    if category not in _HIDDEN_CATEGORIES and category != "Cn":
        # Spaces such as U+00A0 and private-use characters: not "printable" to Python, harmless on screen.
        return character
    if character in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[character]
    code = ord(character)
    if code in _ESCAPED_BYTES:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
