"""Prisma connection URLs: parsing, identity for grouping, and redaction. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from migwatch.model import DatabaseRef

# The password runs to the last `@` of the authority: an unencoded `@` in it must not leak the rest.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*:/{1,2})(?P<user>[^:/?#@\s]*):(?P<pw>[^/?#\s]*)@")
_PASSWORD_PARAM = re.compile(r"(?i)(?P<key>[?&]password=)[^&#\s'\"]*")


class UrlError(ValueError):
    """A URL migwatch cannot use; the message never contains the password."""


def redact(text: str) -> str:
    """Replace every `user:password@` (and `?password=…`) in text by `user:***@`."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['key']}***", text)


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    dbname: str
    user: str | None
    password: str | None
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
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError as exc:
        raise UrlError(f"malformed PostgreSQL URL {redact(url)!r}: {exc}") from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    host = unquote(parts.hostname or "") or query.get("host", "") or "localhost"
    dbname = unquote(parts.path.lstrip("/")) or (unquote(parts.username) if parts.username else "postgres")
    params = tuple((key, value) for key, value in sorted(query.items()) if key in _LIBPQ_PARAMS)
    return PostgresTarget(
        host=host,
        port=port,
        dbname=dbname,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
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
        if not re.match(r"^postgres(ql)?://", url):
            raise UrlError(f"a postgresql datasource needs a postgresql:// URL, got {redact(url)!r}")
        target = parse_postgres(url)
        user = f"{target.user}@" if target.user else ""
        identity = f"postgresql://{user}{target.host}:{target.port}/{target.dbname}?schema={target.schema}"
        return DatabaseRef(provider="postgresql", id=identity, url=url, schema=target.schema)
    return DatabaseRef(provider=provider, id=redact(url.split("?", 1)[0]), url=url)


def sqlite_path(url: str, relative_to: Path) -> Path:
    """The absolute file of a SQLite URL (`file:./dev.db`, `file:/abs.db`, `sqlite:…`)."""
    body = re.sub(r"^(file|sqlite):(//)?", "", url).split("?", 1)[0]
    if not body:
        raise UrlError(f"SQLite URL {url!r} names no file")
    path = Path(unquote(body))
    # Resolved either way, so that two spellings of one file (`..`, symlinks) group together.
    return (relative_to / path).resolve()


def group_key(ref: DatabaseRef) -> str:
    """Worktrees whose URLs give the same key share one history table (host, port, name, schema)."""
    if ref.provider == "postgresql":
        target = parse_postgres(ref.url)
        return f"postgresql://{target.host.lower()}:{target.port}/{target.dbname}?schema={target.schema}"
    return ref.id
