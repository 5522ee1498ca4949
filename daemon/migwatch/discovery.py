"""Finds, per worktree, how its own Prisma version reads the project (SPEC §4). Reads files only."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from dotenv import dotenv_values

from migwatch.dburl import UrlError, database_ref, normalise_provider
from migwatch.model import PrismaSetup, PrismaVersion, Worktree

log = logging.getLogger(__name__)

CONFIG_EXTENSIONS = ("ts", "mts", "cts", "js", "mjs", "cjs")
NEWEST_RULES: PrismaVersion = (7, 10, 0)
SKIP_DIRS = frozenset({"node_modules", ".git", ".next", "dist", "build", ".turbo", ".cache", "coverage"})
MAX_DEPTH = 6
FROM_CONFIG_FILE = "config file sets datasource.url"


@dataclass(frozen=True)
class PrismaConfigFile:
    """The literal keys of a Prisma config file (prisma.config.ts & co.)."""

    path: Path
    schema: str | None = None
    migrations_path: str | None = None
    url_literal: str | None = None
    url_env: str | None = None
    has_datasource_url: bool = False
    loads_dotenv: bool = False
    computed: tuple[str, ...] = ()  # keys set by code migwatch cannot evaluate


def config_file_names(version: PrismaVersion | None) -> list[str]:
    """Names Prisma looks for in the package folder, in order (prisma7.config.* from 7.10)."""
    names: list[str] = []
    if version is None or version >= (7, 10, 0):
        names += [f"prisma7.config.{ext}" for ext in CONFIG_EXTENSIONS]
    names += [f"prisma.config.{ext}" for ext in CONFIG_EXTENSIONS]
    names += [f".config/prisma.{ext}" for ext in CONFIG_EXTENSIONS]
    return names


def find_config_file(package_dir: Path, version: PrismaVersion | None) -> Path | None:
    """The Prisma config file of a package folder, or None."""
    for name in config_file_names(version):
        candidate = package_dir / name
        if candidate.is_file():
            return candidate
    return None


_STRING = r"""(?:"(?P<dq>[^"\\\n]*)"|'(?P<sq>[^'\\\n]*)'|`(?P<bq>[^`$\\]*)`)"""
_ENV_CALL = r"""(?:env(?:<[^>]*>)?\(\s*["'](?P<env>\w+)["']\s*\)|process\.env(?:\.(?P<pe>\w+)|\[\s*["'](?P<pe2>\w+)["']\s*\]))"""
_VALUE = re.compile(rf"\s*(?:{_STRING}|{_ENV_CALL})\s*(?:,|\}}|$|\n)")


def _strip_comments(source: str) -> str:
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return re.sub(r"(?<![:\"'])//[^\n]*", "", source)


def _literal(source: str, pattern: str) -> tuple[str | None, str | None, bool]:
    """(string literal, env var name, is-present) for the first `pattern` key in source."""
    match = re.search(pattern, source, flags=re.S)
    if not match:
        return None, None, False
    value = _VALUE.match(source, match.end())
    if not value:
        return None, None, True
    literal = value.group("dq") if value.group("dq") is not None else value.group("sq")
    if literal is None:
        literal = value.group("bq")
    env = value.group("env") or value.group("pe") or value.group("pe2")
    return literal, env, True


def read_config_file(path: Path) -> PrismaConfigFile:
    """Read the plain-literal keys of a Prisma config file; note anything computed."""
    try:
        source = _strip_comments(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        return PrismaConfigFile(path=path, computed=(f"unreadable ({exc.strerror})",))
    computed: list[str] = []
    schema, _, present = _literal(source, r"(?<![\w.])schema\s*:")
    if present and schema is None:
        computed.append("schema")
    migrations, _, present = _literal(source, r"migrations\s*:\s*\{[^{}]*?\bpath\s*:")
    if present and migrations is None:
        computed.append("migrations.path")
    url, url_env, url_present = _literal(source, r"datasource\s*:\s*\{[^{}]*?\burl\s*:")
    if url_present and url is None and url_env is None:
        computed.append("datasource.url")
    loads_dotenv = bool(
        re.search(r"""(import|require\()\s*\(?\s*["']dotenv/config["']""", source)
        or (re.search(r"""["']dotenv["']""", source) and re.search(r"\bconfig\s*\(", source))
    )
    return PrismaConfigFile(
        path=path,
        schema=schema,
        migrations_path=migrations,
        url_literal=url,
        url_env=url_env,
        has_datasource_url=url_present,
        loads_dotenv=loads_dotenv,
        computed=tuple(computed),
    )


_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse_version(text: str) -> PrismaVersion | None:
    """The lower bound of an npm version or range (`^6.19.0` → 6.19.0); None if there is none."""
    match = _VERSION.search(text)
    if not match:
        return None
    return (int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0))


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _parents_within(start: Path, root: Path) -> list[Path]:
    """start, its parent, … up to and including root (or just start if it is not under root)."""
    chain = [start]
    current = start
    while current != root and root in current.parents:
        current = current.parent
        chain.append(current)
    return chain


def detect_version(
    package_dir: Path, root: Path, config: PrismaConfigFile | None
) -> tuple[PrismaVersion, str]:
    """The worktree's Prisma version and how it was found (SPEC §4)."""
    for folder in _parents_within(package_dir, root):
        installed = _read_json(folder / "node_modules" / "prisma" / "package.json")
        if installed and isinstance(installed.get("version"), str):
            version = parse_version(str(installed["version"]))
            if version:
                return version, f"installed {folder / 'node_modules/prisma'}"
    for folder in _parents_within(package_dir, root):
        manifest = _read_json(folder / "package.json")
        if not manifest:
            continue
        for section in ("dependencies", "devDependencies"):
            deps = manifest.get(section)
            if isinstance(deps, dict) and isinstance(deps.get("prisma"), str):
                version = parse_version(deps["prisma"])
                if version:
                    return version, f"package.json range {deps['prisma']!r}"
                log.debug("cannot read prisma range %r in %s; using the newest rules", deps["prisma"], folder)
                return NEWEST_RULES, f"unreadable range {deps['prisma']!r}"
    if config is not None and config.has_datasource_url:
        return (7, 0, 0), FROM_CONFIG_FILE
    return (6, 0, 0), "default"


def _walk_candidates(root: Path) -> tuple[list[Path], list[Path]]:
    """Prisma config files and `prisma/schema.prisma` files under root (skipping node_modules)."""
    config_files: list[Path] = []
    schemas: list[Path] = []
    config_names = {f"prisma.config.{ext}" for ext in CONFIG_EXTENSIONS} | {
        f"prisma7.config.{ext}" for ext in CONFIG_EXTENSIONS
    }
    root_depth = len(root.parts)
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).parts) - root_depth
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not (depth >= MAX_DEPTH))
        if config_names.intersection(files):
            config_files.append(Path(folder))
        if Path(folder).name == "prisma" and "schema.prisma" in files:
            schemas.append(Path(folder) / "schema.prisma")
    return config_files, schemas


def _package_dir_of(schema: Path, root: Path) -> Path:
    """The folder with the schema's package.json or Prisma config (else the worktree root)."""
    start = schema.parent if schema.is_file() or schema.suffix == ".prisma" else schema
    for folder in _parents_within(start, root):
        if (folder / "package.json").is_file() or find_config_file(folder, None):
            return folder
    return root


@dataclass
class _Locate:
    package_dir: Path
    schema: Path | None
    config: PrismaConfigFile | None
    notes: list[str] = field(default_factory=list)


def _locate(root: Path, configured_schema: str | None, version: PrismaVersion | None) -> _Locate:
    """Package folder, schema and config file of a worktree, in SPEC §4's order.

    `version` picks the config file names (None: the newest rules, prisma7.config.* first).
    """
    if configured_schema:
        chosen = (root / configured_schema).resolve()
        package_dir = _package_dir_of(chosen, root)
        config_path = find_config_file(package_dir, version)
        return _Locate(package_dir, chosen, read_config_file(config_path) if config_path else None)
    config_path = find_config_file(root, version)
    package_dir = root
    if config_path is None:
        root_manifest = _read_json(root / "package.json") or {}
        prisma_key = root_manifest.get("prisma")
        if isinstance(prisma_key, dict) and isinstance(prisma_key.get("schema"), str):
            return _Locate(root, (root / prisma_key["schema"]).resolve(), None)
        for candidate in (root / "prisma" / "schema.prisma", root / "schema.prisma", root / "prisma"):
            if candidate.is_file() or (candidate.is_dir() and any(candidate.glob("*.prisma"))):
                return _Locate(root, candidate, None)
        config_dirs, schemas = _walk_candidates(root)
        if len(config_dirs) == 1:
            package_dir = config_dirs[0]
            config_path = find_config_file(package_dir, version)
        elif len(schemas) == 1:
            package_dir = _package_dir_of(schemas[0], root)
            config_path = find_config_file(package_dir, version)
            if config_path is None:
                manifest = _read_json(package_dir / "package.json") or {}
                prisma_key = manifest.get("prisma")
                if isinstance(prisma_key, dict) and isinstance(prisma_key.get("schema"), str):
                    return _Locate(package_dir, (package_dir / prisma_key["schema"]).resolve(), None)
                return _Locate(package_dir, schemas[0], None)
        elif len(schemas) > 1 or len(config_dirs) > 1:
            found = ", ".join(str(p.relative_to(root)) for p in (schemas or config_dirs))
            locate = _Locate(root, None, None)
            locate.notes.append(
                f"several Prisma schemas ({found}); set 'schema' for this project in the config"
            )
            return locate
        else:
            return _Locate(root, None, None)
    config = read_config_file(config_path) if config_path else None
    notes: list[str] = []
    if config and config.computed:
        notes.append(
            f"{config.path.relative_to(root)} computes {', '.join(config.computed)}; "
            "migwatch cannot evaluate code and assumed Prisma's defaults"
        )
    schema: Path | None = None
    if config and config.schema:
        schema = (config.path.parent / config.schema).resolve()
    if schema is None:
        manifest = _read_json(package_dir / "package.json") or {}
        prisma_key = manifest.get("prisma")
        if isinstance(prisma_key, dict) and isinstance(prisma_key.get("schema"), str):
            schema = (package_dir / prisma_key["schema"]).resolve()
    if schema is None:
        for candidate in (package_dir / "prisma" / "schema.prisma", package_dir / "schema.prisma"):
            if candidate.is_file():
                schema = candidate
                break
    return _Locate(package_dir, schema, config, notes)


_DATASOURCE = re.compile(r"^\s*datasource\s+\w+\s*\{(?P<body>.*?)^\s*\}", re.S | re.M)
_PROVIDER = re.compile(r"""^\s*provider\s*=\s*["'](?P<p>[^"']+)["']""", re.M)
_URL = re.compile(r"""^\s*url\s*=\s*(?:["'](?P<lit>[^"']*)["']|env\(\s*["'](?P<env>[^"']+)["']\s*\))""", re.M)


@dataclass(frozen=True)
class Datasource:
    file: Path
    provider: str | None
    url_literal: str | None
    url_env: str | None


def schema_files(schema: Path) -> list[Path]:
    """The .prisma files of a schema file or schema folder (recursively, as Prisma reads them)."""
    if schema.is_dir():
        return sorted(p for p in schema.rglob("*.prisma") if "node_modules" not in p.parts)
    return [schema] if schema.is_file() else []


def read_datasource(schema: Path) -> Datasource | None:
    """The datasource block of a schema file or folder."""
    for file in schema_files(schema):
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        block = _DATASOURCE.search(re.sub(r"//[^\n]*", "", text))
        if block:
            provider = _PROVIDER.search(block.group("body"))
            url = _URL.search(block.group("body"))
            return Datasource(
                file=file,
                provider=provider.group("p") if provider else None,
                url_literal=url.group("lit") if url else None,
                url_env=url.group("env") if url else None,
            )
    return None


def _dotenv(path: Path) -> dict[str, str]:
    """A .env file's values as written (npm dotenv, which `dotenv/config` is, expands nothing)."""
    if not path.is_file():
        return {}
    try:
        return {k: v for k, v in dotenv_values(path, interpolate=False).items() if v is not None}
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return {}


_REFERENCE = re.compile(r"(.?)\$\{([a-zA-Z0-9_]+)?\}")


def _expand(value: str, scope: Mapping[str, str], depth: int = 0) -> str:
    """Prisma 6's dotenvExpand: `${VAR}` from the environment as loaded so far, `\\${VAR}` kept literally."""
    if depth > 20:  # a cycle (A=${A}); Prisma itself would recurse until the stack overflows
        return value

    def substitute(match: re.Match[str]) -> str:
        prefix, name = match.group(1), match.group(2) or ""
        if prefix == "\\":
            return match.group(0)[1:]
        return prefix + _expand(scope.get(name, ""), scope, depth + 1)

    return _REFERENCE.sub(substitute, value)


def _load_prisma6(path: Path, merged: dict[str, str]) -> bool:
    """Load one .env into `merged` as Prisma 6 does: set variables win, then `${VAR}` is expanded."""
    values = _dotenv(path)
    fresh = [key for key in values if key not in merged]
    for key in fresh:
        merged[key] = values[key]
    for key in fresh:
        merged[key] = _expand(merged[key], merged)
    return bool(values)


def prisma6_env(
    package_dir: Path, root: Path, schema_dir: Path, env: Mapping[str, str]
) -> tuple[dict[str, str], list[Path]]:
    """Prisma 6 without a config file: the root .env, then the schema's .env (SPEC §4)."""
    merged = dict(env)
    loaded: list[Path] = []
    root_env: Path | None = None
    for folder in _parents_within(package_dir, root):
        if (folder / "package.json").is_file():
            root_env = folder / ".env"
            break
    if root_env is None:
        root_env = package_dir / ".env"
    if _load_prisma6(root_env, merged):
        loaded.append(root_env)
    second_path: Path | None = None
    for candidate in (schema_dir / ".env", package_dir / "prisma" / ".env", package_dir / ".env"):
        if candidate.is_file():
            second_path = candidate
            break
    if second_path and second_path != root_env and _load_prisma6(second_path, merged):
        loaded.append(second_path)
    return merged, loaded


def discover_worktree(
    worktree: Worktree,
    *,
    configured_schema: str | None,
    database_url: str | None,
    env: Mapping[str, str],
) -> PrismaSetup:
    """How this worktree's own Prisma version finds its schema, migrations and database."""
    root = worktree.path
    located = _locate(root, configured_schema, None)
    version, how = detect_version(located.package_dir, root, located.config)
    # The first pass looked for prisma7.config.* too, which only Prisma >= 7.10 reads: look again with
    # the version's own file names (unless the version was only guessed from that very file).
    if how != FROM_CONFIG_FILE:
        current = located.config.path if located.config else None
        if find_config_file(located.package_dir, version) != current:
            located = _locate(root, configured_schema, version)
    notes = list(located.notes)
    config = located.config
    base = PrismaSetup(
        worktree=worktree,
        prisma_version=version,
        package_dir=located.package_dir,
        schema_path=located.schema,
        migrations_dir=None,
        config_file=config.path if config else None,
        notes=tuple(notes),
    )
    if located.schema is None or not (located.schema.exists()):
        where = f" ({located.schema})" if located.schema else ""
        return replace(base, problem=f"no Prisma schema found{where}")
    if config and config.migrations_path:
        migrations_dir = (config.path.parent / config.migrations_path).resolve()
    else:
        schema_dir = located.schema if located.schema.is_dir() else located.schema.parent
        migrations_dir = schema_dir / "migrations"
    datasource = read_datasource(located.schema)
    base = replace(base, migrations_dir=migrations_dir)
    if datasource is None or not datasource.provider:
        return replace(base, problem=f"no datasource block with a provider in {located.schema}")
    provider = normalise_provider(datasource.provider)
    base = replace(base, provider=provider)
    url, source, relative_to = _resolve_url(base, located, config, datasource, database_url, env)
    if url is None:
        return replace(base, problem=source)
    try:
        ref = database_ref(provider, url, relative_to=relative_to)
    except UrlError as exc:
        return replace(base, problem=f"{exc} (from {source})")
    log.debug("worktree %s: prisma %s (%s), url from %s", root, version, how, source)
    return replace(base, database=ref)


def _resolve_url(
    setup: PrismaSetup,
    located: _Locate,
    config: PrismaConfigFile | None,
    datasource: Datasource,
    override: str | None,
    env: Mapping[str, str],
) -> tuple[str | None, str, Path]:
    """(url, where it came from or why it is missing, folder relative SQLite paths start from)."""
    schema_dir = datasource.file.parent
    if override:
        return override, "the migwatch config", schema_dir
    prisma7 = setup.prisma_version >= (7, 0, 0)
    if config is not None:
        config_dir = config.path.parent
        # With a config file no .env is loaded by Prisma, only by the file's own dotenv import.
        scope = dict(env)
        if config.loads_dotenv:
            for key, value in _dotenv(config_dir / ".env").items():
                scope.setdefault(key, value)
        if config.url_literal is not None:
            return config.url_literal, f"{config.path.name}", config_dir
        if config.url_env:
            env_value = scope.get(config.url_env)
            if env_value:
                return env_value, f"env {config.url_env} ({config.path.name})", config_dir
            return None, _missing(config.url_env, config.path, config.loads_dotenv), config_dir
        if prisma7:
            return (
                None,
                f"{config.path} sets no datasource.url (Prisma 7 takes the URL from there)",
                config_dir,
            )
        return _schema_url(datasource, scope, schema_dir, [])
    if prisma7:
        return None, "Prisma 7 needs a prisma.config.ts with datasource.url; none was found", schema_dir
    scope, loaded = prisma6_env(located.package_dir, setup.worktree.path, schema_dir, env)
    return _schema_url(datasource, scope, schema_dir, loaded)


def _schema_url(
    datasource: Datasource, scope: Mapping[str, str], schema_dir: Path, loaded: Sequence[Path]
) -> tuple[str | None, str, Path]:
    if datasource.url_literal is not None:
        return datasource.url_literal, f"{datasource.file.name}", schema_dir
    if datasource.url_env:
        value = scope.get(datasource.url_env)
        if value:
            return value, f"env {datasource.url_env}", schema_dir
        looked = ", ".join(str(p) for p in loaded) or "no .env file found"
        return None, f"{datasource.url_env} is not set (environment; {looked})", schema_dir
    return None, f"the datasource in {datasource.file} has no url", schema_dir


def _missing(name: str, config_path: Path, loads_dotenv: bool) -> str:
    where = f"environment, {config_path.parent / '.env'}" if loads_dotenv else "environment only"
    return f"{name} is not set ({where}; {config_path.name} reads it with env())"


def is_ignored(worktree: Worktree, globs: Sequence[str]) -> bool:
    """Whether a worktree path matches one of the project's ignore_worktrees globs."""
    text = str(worktree.path)
    return any(fnmatch.fnmatch(text, pattern) for pattern in globs)
