"""The second line of defence for secrets: every password migwatch has seen is removed by value.

`dburl` remembers each password it parses or redacts (raw and percent-decoded); every output channel
(the terminal, `status --json`, log records at every level, notifications, the alert state file,
`internal-errors.log`) passes its text through `scrub()` before it leaves the process, so a password
that a URL parser could not find (a mangled URL, a driver message, a path) is still never shown.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from urllib.parse import quote, unquote

MIN_SECRET_CHARS = 3  # shorter "passwords" would scrub ordinary words; they are still redacted by parsing
MAX_SECRET_CHARS = 4096
MAX_SECRETS = 512  # a bound on the work per scrub (hostile text could hold any number of "passwords")
MASK = "***"

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def remember_secret(secret: str | None) -> None:
    """Add a password (and its percent-encoded and -decoded spellings) to the scrub list."""
    if not secret:
        return
    plain = {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}
    # As they appear inside JSON strings too (the state file, `status --json`, a command notifier's stdin).
    spellings = plain | {json.dumps(s, ensure_ascii=ascii)[1:-1] for s in plain for ascii in (True, False)}
    fresh = {s for s in spellings if MIN_SECRET_CHARS <= len(s) <= MAX_SECRET_CHARS and s != MASK}
    global _pattern
    with _lock:
        if fresh <= _secrets or len(_secrets) >= MAX_SECRETS:
            return
        _secrets.update(fresh)
        # Longest first, so that a secret containing another is removed whole.
        alternatives = sorted(_secrets, key=len, reverse=True)
        # Only where the secret stands alone: a password such as `postgres` must not turn every
        # `postgresql://` into `***ql://`. A password glued to letters or digits is not that password.
        _pattern = re.compile(
            "(?<![A-Za-z0-9])(?:" + "|".join(re.escape(s) for s in alternatives) + ")(?![A-Za-z0-9])"
        )


def scrub(text: str) -> str:
    """`text` with every remembered secret replaced by `***`."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def forget_all() -> None:
    """Empty the list (tests that assert what the list holds start from nothing)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs the formatted message (and the exception text) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True
