"""Which database URL a worktree's Prisma migrate commands use, and where it comes from (SPEC §4).

Prisma 6 reads the schema's datasource and connects through `directUrl` when it is set (poolers).
Prisma 7 reads `datasource.url` of its config file: its config shape (packages/config/src/
PrismaConfig.ts, 7.0 to 7.9) has only `url` and `shadowDatabaseUrl`, and its migrate commands use
`config.datasource.url` (packages/migrate/src/utils/ensureDatabaseExists.ts); a `directUrl` there is
not read. Every "not set" message names the variables and files that were tried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from migwatch.dburl import UrlError, database_ref
from migwatch.envfiles import EnvScope
from migwatch.model import DatabaseRef
from migwatch.prismaconfig import ConfigValues

MAX_SCHEMA_BYTES = 5_000_000

_DATASOURCE = re.compile(r"^\s*datasource\s+\w+\s*\{(?P<body>.*?)^\s*\}", re.S | re.M)
_PROVIDER = re.compile(r"""^\s*provider\s*=\s*["'](?P<p>[^"']+)["']""", re.M)


def _setting(body: str, key: str) -> tuple[str | None, str | None, bool]:
    """(literal, env variable, present) of `key = "…"` or `key = env("…")` in a datasource block."""
    match = re.search(
        rf"""^\s*{key}\s*=\s*(?:["'](?P<lit>[^"'\n]*)["']|env\(\s*["'](?P<env>[^"'\n]+)["']\s*\))?""",
        body,
        re.M,
    )
    if not match:
        return None, None, False
    return match.group("lit"), match.group("env"), True


@dataclass(frozen=True)
class Datasource:
    """The datasource block of a schema: provider, and the `url` and `directUrl` settings."""

    file: Path
    provider: str | None
    url_literal: str | None
    url_env: str | None
    direct_literal: str | None = None
    direct_env: str | None = None
    has_direct: bool = False


def schema_files(schema: Path) -> list[Path]:
    """The .prisma files of a schema file or folder (all of them, recursively, as Prisma reads them)."""
    if schema.is_dir():
        return sorted(p for p in schema.rglob("*.prisma") if "node_modules" not in p.parts and p.is_file())
    return [schema] if schema.is_file() else []


def read_datasource(schema: Path) -> Datasource | None:
    """The datasource block of a schema file or folder."""
    for file in schema_files(schema):
        try:
            if file.stat().st_size > MAX_SCHEMA_BYTES:
                continue
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        block = _DATASOURCE.search(re.sub(r"//[^\n]*", "", text))
        if block:
            body = block.group("body")
            provider = _PROVIDER.search(body)
            url, url_env, _ = _setting(body, "url")
            direct, direct_env, has_direct = _setting(body, "directUrl")
            return Datasource(
                file=file,
                provider=provider.group("p") if provider else None,
                url_literal=url,
                url_env=url_env,
                direct_literal=direct,
                direct_env=direct_env,
                has_direct=has_direct,
            )
    return None


@dataclass(frozen=True)
class UrlChoice:
    """The URL migrate uses (or why there is none), and what migwatch says about where it came from."""

    url: str | None
    read_from: str  # "directUrl = env(\"DIRECT_URL\") of schema.prisma, DIRECT_URL from /wt/.env"
    relative_to: Path  # where a SQLite `file:` path starts
    missing: tuple[str, ...] = ()  # variables tried and not set
    problem: str | None = None


def choose_url(
    *,
    prisma7: bool,
    datasource: Datasource,
    config: ConfigValues | None,
    scope: EnvScope,
    override: str | None,
) -> UrlChoice:
    """The URL this worktree's Prisma migrate commands connect through."""
    schema_dir = datasource.file.parent
    if override:
        return UrlChoice(override, "database_url of the migwatch config", schema_dir)
    if prisma7:
        if config is None:
            problem = "Prisma 7 needs a prisma.config.ts with datasource.url; none was found"
            return UrlChoice(None, "", schema_dir, problem=problem)
        return _prisma7_url(config, scope)
    if datasource.has_direct:
        return _schema_value(datasource, "directUrl", datasource.direct_literal, datasource.direct_env, scope)
    if datasource.url_literal is None and datasource.url_env is None:
        return UrlChoice(None, "", schema_dir, problem=f"the datasource in {datasource.file} has no url")
    return _schema_value(datasource, "url", datasource.url_literal, datasource.url_env, scope)


def _schema_value(
    datasource: Datasource, key: str, literal: str | None, variable: str | None, scope: EnvScope
) -> UrlChoice:
    schema_dir, name = datasource.file.parent, datasource.file.name
    if literal is not None:
        return UrlChoice(literal, f"{key} of {name}", schema_dir)
    if variable is None:
        return UrlChoice(None, "", schema_dir, problem=f"{key} in {datasource.file} is not a string or env()")
    value = scope.values.get(variable)
    read_from = f'{key} = env("{variable}") of {name}'
    if value:
        return UrlChoice(
            value, f"{read_from}, {variable} from {scope.origins.get(variable, '?')}", schema_dir
        )
    problem = f"{variable} is not set (looked in: {scope.tried_text()}; {read_from} reads it)"
    return UrlChoice(None, read_from, schema_dir, missing=(variable,), problem=problem)


def _prisma7_url(config: ConfigValues, scope: EnvScope) -> UrlChoice:
    config_dir, name = config.path.parent, config.path.name
    expression = config.url_expression or ""
    read_from = f"datasource.url = {expression} of {name}" if expression else f"datasource.url of {name}"
    if config.url:
        origins = [f"{v} from {scope.origins[v]}" for v in config.url_variables if scope.values.get(v)]
        return UrlChoice(config.url, ", ".join([read_from, *origins[:1]]), config_dir)
    computed = next((c for c in config.computed if c.startswith(("datasource.url", "the export"))), None)
    if config.error or computed:
        why = config.error or computed
        problem = (
            f"{name}: migwatch cannot evaluate {why}; set env_files or database_url for this project "
            "in the migwatch config"
        )
        return UrlChoice(None, read_from, config_dir, problem=problem)
    if not config.has_datasource_url:
        problem = f"{config.path} sets no datasource.url (Prisma 7 takes the URL from there)"
        return UrlChoice(None, "", config_dir, problem=problem)
    missing = tuple(v for v in config.url_variables if not scope.values.get(v)) or (config.missing_env or "",)
    names = " and ".join(missing) if len(missing) <= 2 else ", ".join(missing)
    verb = "is" if len(missing) == 1 else "are"
    problem = f"{names} {verb} not set (looked in: {scope.tried_text()}; {read_from} reads it)"
    return UrlChoice(None, read_from, config_dir, missing=missing, problem=problem)


def database_of(provider: str, choice: UrlChoice) -> tuple[DatabaseRef | None, str | None]:
    """(the database, or the one-line reason the URL cannot be used)."""
    if choice.url is None:
        return None, choice.problem
    try:
        return database_ref(provider, choice.url, relative_to=choice.relative_to), None
    except UrlError as exc:
        return None, f"{exc} (from {choice.read_from})"
