"""Prisma connection URLs: parsing, identity for grouping, and redaction. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from migwatch.model import DatabaseRef
from migwatch.scrub import remember_secret, scrub

MAX_URL_CHARS = 4096  # longer values are refused before any parsing (and never printed)

# A URL starts at each `scheme://`; its text runs to the next whitespace, quote or scheme. The scheme is
# bounded so that finding them stays linear in the length of the text.
# One or two slashes: a URL mangled into a path (`file:/…/postgresql:/user:pw@host`) still counts.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}:/{1,2}")
_FULL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}://")
_URL_END = re.compile(r"[\s'\"`<>]")
# `password=…` of a query string, a key/value DSN (quoted or not), or an env assignment (PGPASSWORD=).
_PASSWORD_VALUE = re.compile(r"""(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&#'"]+)""")
_KEY_VALUE_DSN = re.compile(r"^\s*[A-Za-z_]+\s*=")


class UrlError(ValueError):
    """A URL migwatch cannot use; the message never contains the password."""


def redact(text: str) -> str:
    """Every password in text replaced by `***`: in URLs of any scheme (the password runs from the first
    `:` of the user part to the last `@` of the URL, so unencoded `@ : / # ?` in it never leak), in
    `password=` values of query strings and key/value DSNs, and every password seen before. Linear."""
    pieces: list[str] = []
    position = 0
    starts = [m.start() for m in _SCHEME.finditer(text)]
    stop_at = -1  # the next whitespace or quote, found once per run of URLs (not once per URL: linear)
    for index, start in enumerate(starts):
        if start < position:
            continue
        if stop_at < start:
            stop = _URL_END.search(text, start)
            stop_at = stop.start() if stop else len(text)
        end = stop_at
        if index + 1 < len(starts) and starts[index + 1] < end:
            end = starts[index + 1]
        pieces.append(text[position:start])
        pieces.append(_redact_url(text[start:end]))
        position = end
    pieces.append(text[position:])
    redacted = _PASSWORD_VALUE.sub(_mask_value, "".join(pieces))
    return scrub(redacted)


def _redact_url(url: str) -> str:
    scheme = _SCHEME.match(url)
    scheme_end = scheme.end() if scheme else 0
    at = url.rfind("@", scheme_end)
    if at < 0:
        return url
    colon = url.find(":", scheme_end, at)
    if colon < 0:
        return url
    remember_secret(url[colon + 1 : at])
    return f"{url[: colon + 1]}***{url[at:]}"


def _mask_value(match: re.Match[str]) -> str:
    value = match.group(2)
    remember_secret(value[1:-1] if value[:1] in {"'", '"'} else value)
    return f"{match.group(1)}***"


@dataclass(frozen=True)
class UrlParts:
    """A URL split the way Prisma's (WHATWG) parser splits it; the user part ends at the last `@`."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: str
    path: str
    query: str


def split_url(url: str) -> UrlParts:
    """Split `scheme://user:password@host:port/path?query#fragment`; UrlError (password-free) if invalid."""
    if len(url) > MAX_URL_CHARS:
        raise UrlError(f"the database URL is longer than {MAX_URL_CHARS:,} characters: not a database URL")
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if not match:
        raise UrlError(f"not a URL: {redact(url)!r}")
    if _FULL_SCHEME.search(url, match.end()):
        raise UrlError(f"malformed database URL {redact(url)!r}: it holds a second '://' (pasted twice?)")
    rest = url[match.end() :]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    at = authority.rfind("@")
    userinfo, hostport = (authority[:at], authority[at + 1 :]) if at >= 0 else (None, authority)
    if userinfo is None and "@" in tail and ":" in authority:
        # `user:pa/ss@host`: Prisma's parser ends the host at the `/` and fails ("Invalid URL").
        raise UrlError(
            f"malformed PostgreSQL URL {redact(url)!r}: the user or password holds an unencoded '/', '?' "
            "or '#' (percent-encode them: %2F, %3F, %23); Prisma refuses this URL too"
        )
    user, password = None, None
    if userinfo is not None:
        user_text, colon, password_text = userinfo.partition(":")
        user, password = unquote(user_text) or None, (unquote(password_text) if colon else None)
        if colon:
            remember_secret(password_text)
            remember_secret(password)
    host, port = _host_port(hostport, url)
    path, _, query = tail.partition("#")[0].partition("?")
    return UrlParts(match.group(1).lower(), user, password, host, port, path, query)


def _host_port(hostport: str, url: str) -> tuple[str, str]:
    if hostport.startswith("["):
        close = hostport.find("]")
        host, port_text = hostport[1:close], hostport[close + 1 :].removeprefix(":")
    else:
        host, _, port_text = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise UrlError(f"malformed PostgreSQL URL {redact(url)!r}: the port is not a number from 1 to 65535")
    return unquote(host), port_text


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    dbname: str
    user: str | None
    password: str | None = field(repr=False)
    schema: str
    params: tuple[tuple[str, str], ...]  # libpq parameters carried over (sslmode, …)


# Prisma-only query parameters; everything else is not passed to libpq either unless known to it.
_LIBPQ_PARAMS = {
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "application_name",
    "options",
    "target_session_attrs",
}


def parse_postgres(url: str) -> PostgresTarget:
    """Split a `postgresql://` URL into libpq connection parameters (Prisma's `?schema=` kept apart)."""
    if _KEY_VALUE_DSN.match(url) and "://" not in url[:40]:
        raise UrlError(
            f"a postgresql datasource needs a postgresql:// URL, got a key/value connection string {redact(url)!r}"
        )
    parts = split_url(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "password" in query:
        remember_secret(query["password"])
    dbname = unquote(parts.path.lstrip("/"))
    params = tuple((key, value) for key, value in sorted(query.items()) if key in _LIBPQ_PARAMS)
    return PostgresTarget(
        host=parts.host or query.get("host", "") or "localhost",
        port=int(parts.port) if parts.port else 5432,
        dbname=dbname or parts.user or "postgres",
        user=parts.user,
        password=parts.password if parts.password is not None else query.get("password"),
        schema=query.get("schema") or "public",
        params=params,
    )


def normalise_provider(provider: str) -> str:
    """Prisma accepts `postgres` as a spelling of `postgresql`."""
    return "postgresql" if provider == "postgres" else provider


def database_ref(provider: str, url: str, *, relative_to: Path) -> DatabaseRef:
    """The DatabaseRef of a datasource; SQLite `file:` paths are made absolute from `relative_to`."""
    provider = normalise_provider(provider)
    if provider == "sqlite":
        if not re.match(r"^(file|sqlite):", url):
            # Prisma accepts only file: URLs for SQLite; anything else is a mistake (and may hold a password).
            raise UrlError(f"a sqlite datasource needs a file: URL, got {redact(url.split('?', 1)[0])!r}")
        return DatabaseRef(provider="sqlite", id=f"file:{sqlite_path(url, relative_to)}", url=url)
    if provider == "postgresql":
        if len(url) > MAX_URL_CHARS:
            raise UrlError(
                f"the database URL is longer than {MAX_URL_CHARS:,} characters: not a database URL"
            )
        if not re.match(r"^postgres(ql)?://", url):
            what = "a key/value connection string " if _KEY_VALUE_DSN.match(url) else ""
            raise UrlError(f"a postgresql datasource needs a postgresql:// URL, got {what}{redact(url)!r}")
        target = parse_postgres(url)
        user = f"{target.user}@" if target.user else ""
        identity = f"postgresql://{user}{target.host}:{target.port}/{target.dbname}?schema={target.schema}"
        return DatabaseRef(provider="postgresql", id=identity, url=url, schema=target.schema)
    return DatabaseRef(provider=provider, id=redact(url.split("?", 1)[0]), url=url)


def sqlite_path(url: str, relative_to: Path) -> Path:
    """The absolute file of a SQLite URL (`file:./dev.db`, `file:/abs.db`, `sqlite:…`)."""
    body = re.sub(r"^(file|sqlite):(//)?", "", url).split("?", 1)[0]
    if not body:
        raise UrlError(f"SQLite URL {redact(url)!r} names no file")
    path = Path(unquote(body))
    # Resolved either way, so that two spellings of one file (`..`, symlinks) group together.
    return (relative_to / path).resolve()


def group_key(ref: DatabaseRef) -> str:
    """Worktrees whose URLs give the same key share one history table (host, port, name, schema)."""
    if ref.provider == "postgresql":
        target = parse_postgres(ref.url)
        return f"postgresql://{target.host.lower()}:{target.port}/{target.dbname}?schema={target.schema}"
    return ref.id
