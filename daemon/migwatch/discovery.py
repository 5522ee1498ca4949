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

from migwatch.dbsource import Datasource, choose_url, database_of, read_datasource, schema_files
from migwatch.dburl import normalise_provider
from migwatch.envfiles import EnvScope, prisma6_env_files, read_env_file
from migwatch.model import PrismaSetup, PrismaVersion, Worktree
from migwatch.prismaconfig import ConfigValues, read_prisma_config
from migwatch.scripts import PrismaScript, prisma_scripts

__all__ = ["Datasource", "discover_worktree", "is_ignored", "read_datasource", "schema_files"]

log = logging.getLogger(__name__)

CONFIG_EXTENSIONS = ("ts", "mts", "cts", "js", "mjs", "cjs")
NEWEST_RULES: PrismaVersion = (7, 10, 0)
SKIP_DIRS = frozenset({"node_modules", ".git", ".next", "dist", "build", ".turbo", ".cache", "coverage"})
MAX_DEPTH = 6
FROM_CONFIG_FILE = "config file sets datasource.url"


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


def detect_version(package_dir: Path, root: Path, config_sets_url: bool) -> tuple[PrismaVersion, str]:
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
    if config_sets_url:
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
    """Where Prisma is run for this schema: the nearest folder with a package.json or Prisma config;
    but a folder holding `prisma/` with neither is that folder (Prisma finds prisma/schema.prisma there)."""
    start = schema.parent if schema.is_file() or schema.suffix == ".prisma" else schema
    for folder in _parents_within(start, root):
        if (folder / "package.json").is_file() or find_config_file(folder, None):
            return folder
        if folder != start and (folder / "prisma") in (start, *start.parents):
            return folder
    return root


@dataclass
class _Locate:
    package_dir: Path
    schema: Path | None  # from the migwatch config, package.json or Prisma's default places
    config_path: Path | None
    notes: list[str] = field(default_factory=list)


def default_schema(folder: Path, version: PrismaVersion | None) -> Path | None:
    """The schema Prisma finds run in `folder` without a config file's `schema` (package.json, defaults)."""
    manifest = _read_json(folder / "package.json") or {}
    prisma_key = manifest.get("prisma")
    if isinstance(prisma_key, dict) and isinstance(prisma_key.get("schema"), str):
        return Path(os.path.normpath(folder / prisma_key["schema"]))
    for candidate in (folder / "schema.prisma", folder / "prisma" / "schema.prisma"):
        if candidate.is_file():
            return candidate
    # Prisma <= 6.5 also looked for a prisma/schema folder by default; later versions need it configured.
    folder_schema = folder / "prisma" / "schema"
    if (version is None or version < (6, 6, 0)) and folder_schema.is_dir():
        return folder_schema
    return None


def _locate(root: Path, configured_schema: str | None, version: PrismaVersion | None) -> _Locate:
    """Package folder, schema and config file of a worktree, in SPEC §4's order.

    `version` picks the config file names (None: the newest rules, prisma7.config.* first).
    """
    if configured_schema:
        chosen = Path(os.path.normpath(root / configured_schema))
        package_dir = _package_dir_of(chosen, root)
        return _Locate(package_dir, chosen, find_config_file(package_dir, version))
    config_path = find_config_file(root, version)
    schema = default_schema(root, version)
    if config_path is not None or schema is not None:
        return _Locate(root, schema, config_path)
    legacy = root / "prisma"
    if legacy.is_dir() and any(legacy.glob("*.prisma")):
        return _Locate(root, legacy, None)
    config_dirs, schemas = _walk_candidates(root)
    if len(config_dirs) == 1:
        package_dir = config_dirs[0]
        return _Locate(
            package_dir, default_schema(package_dir, version), find_config_file(package_dir, version)
        )
    if len(schemas) == 1:
        package_dir = _package_dir_of(schemas[0], root)
        config_path = find_config_file(package_dir, version)
        return _Locate(package_dir, default_schema(package_dir, version) or schemas[0], config_path)
    if len(schemas) > 1 or len(config_dirs) > 1:
        found = ", ".join(str(p.relative_to(root)) for p in (schemas or config_dirs))
        note = f"several Prisma schemas ({found}); set 'schema' for this project in the config"
        return _Locate(root, None, None, [note])
    return _Locate(root, None, None)


def migrations_dir_for(schema: Path, version: PrismaVersion) -> Path:
    """Prisma's default migrations folder for a schema file or folder, per version.

    A file: its folder's `migrations`. A folder: Prisma <= 6.5 took the folder's parent, 6.6 to 6.19
    the folder of the file holding the datasource block, 7.x the schema folder itself.
    """
    if not schema.is_dir():
        return schema.parent / "migrations"
    if version < (6, 6, 0):
        return schema.parent / "migrations"
    if version < (7, 0, 0):
        datasource = read_datasource(schema)
        if datasource is not None:
            return datasource.file.parent / "migrations"
    return schema / "migrations"


def is_ignored(worktree: Worktree, globs: Sequence[str]) -> bool:
    """Whether a worktree path matches one of the project's ignore_worktrees globs."""
    text = str(worktree.path)
    return any(fnmatch.fnmatch(text, pattern) for pattern in globs)


# Which script's env to follow: the one a person runs to migrate, else any that runs Prisma here.
_SUBCOMMAND_PRIORITY = ("migrate deploy", "migrate dev", "migrate status", "migrate resolve", "migrate reset")


def script_env(root: Path, package_dir: Path) -> PrismaScript | None:
    """The package.json script whose env wrapper this worktree's Prisma runs under (None: no wrapper)."""
    here = [s for s in prisma_scripts(root, package_dir) if s.prisma_cwd == package_dir]
    wrapped = [s for s in here if s.env_files or s.env_vars]
    if not wrapped:
        return None

    def rank(script: PrismaScript) -> int:
        if script.subcommand in _SUBCOMMAND_PRIORITY:
            return _SUBCOMMAND_PRIORITY.index(script.subcommand)
        return len(_SUBCOMMAND_PRIORITY) + (0 if script.subcommand.startswith(("migrate", "db")) else 1)

    return min(wrapped, key=rank)


@dataclass
class _Read:
    """What was read for one worktree so far (the parts discover_worktree assembles)."""

    located: _Locate
    scope: EnvScope
    config: ConfigValues | None
    version: PrismaVersion
    script: PrismaScript | None


def _read(
    root: Path, configured_schema: str | None, env: Mapping[str, str], env_files: Sequence[str]
) -> _Read:
    """Locate, load the env the project's wrappers load, evaluate the config file, detect the version."""
    located = _locate(root, configured_schema, None)
    scope = EnvScope.from_environment(env)
    for relative in env_files:  # the project's own list comes first (an outer wrapper, in effect)
        scope.load(root / relative)
    script = script_env(root, located.package_dir)
    if script is not None:
        for file in script.env_files:
            scope.load(file)
        scope.set_inline(script.env_vars, f"package.json script {script.name}")
    config = _evaluate(located.config_path, located.package_dir, scope)
    version, how = detect_version(located.package_dir, root, bool(config and config.has_datasource_url))
    # The first pass looked for prisma7.config.* too, which only Prisma >= 7.10 reads: look again with
    # the version's own file names (unless the version was only guessed from that very file).
    if how != FROM_CONFIG_FILE and find_config_file(located.package_dir, version) != located.config_path:
        located = _locate(root, configured_schema, version)
        config = _evaluate(located.config_path, located.package_dir, scope)
    elif located.schema is None or located.schema.name == "schema":
        located = replace(located, schema=_relocated_schema(root, configured_schema, located, version))
    log.debug("worktree %s: prisma %s (%s)", root, version, how)
    if config is not None:
        for file in config.env_files:
            scope.load(file)
    return _Read(located, scope, config, version, script)


def _relocated_schema(
    root: Path, configured_schema: str | None, located: _Locate, version: PrismaVersion
) -> Path | None:
    """The default schema again once the version is known (the prisma/schema folder rule is per version)."""
    if configured_schema or located.config_path is not None:
        return located.schema
    return _locate(root, None, version).schema


def _evaluate(config_path: Path | None, package_dir: Path, scope: EnvScope) -> ConfigValues | None:
    if config_path is None:
        return None
    return read_prisma_config(config_path, cwd=package_dir, env=scope.values, read_env=read_env_file)


def discover_worktree(
    worktree: Worktree,
    *,
    configured_schema: str | None,
    database_url: str | None,
    env: Mapping[str, str],
    env_files: Sequence[str] = (),
) -> PrismaSetup:
    """How this worktree's own Prisma version finds its schema, migrations and database."""
    root = worktree.path
    read = _read(root, configured_schema, env, env_files)
    located, config, version = read.located, read.config, read.version
    notes = list(located.notes) + _config_notes(config, root, version)
    schema = located.schema if configured_schema else (config.schema if config and config.schema else None)
    schema = schema or located.schema or _script_schema(read.script)
    base = PrismaSetup(
        worktree=worktree,
        prisma_version=version,
        package_dir=located.package_dir,
        schema_path=schema,
        migrations_dir=None,
        config_file=located.config_path,
        notes=tuple(notes),
        env_files=tuple(read.scope.tried),
    )
    if schema is None or not schema.exists():
        return replace(base, problem=f"no Prisma schema found{f' ({schema})' if schema else ''}")
    migrations = config.migrations_path if config and config.migrations_path else None
    migrations = migrations or migrations_dir_for(schema, version)
    outside = _outside_worktree(migrations, root)
    if outside:
        return replace(base, problem=outside)
    base = replace(base, migrations_dir=migrations)
    datasource = read_datasource(schema)
    if datasource is None or not datasource.provider:
        return replace(base, problem=f"no datasource block with a provider in {schema}")
    provider = normalise_provider(datasource.provider)
    if version < (7, 0, 0) and config is None:  # Prisma 6 without a config file loads .env files itself
        schema_dir = schema if schema.is_dir() else schema.parent
        for file in prisma6_env_files(located.package_dir, root, schema_dir):
            read.scope.load(file, expand=True)
    base = replace(base, provider=provider, env_files=tuple(read.scope.tried))
    choice = choose_url(
        prisma7=version >= (7, 0, 0),
        datasource=datasource,
        config=config,
        scope=read.scope,
        override=database_url,
    )
    database, problem = database_of(provider, choice)
    return replace(
        base,
        database=database,
        problem=problem,
        url_from=choice.read_from or None,
        missing_variables=choice.missing,
    )


def _script_schema(script: PrismaScript | None) -> Path | None:
    return script.schema if script is not None else None


def _outside_worktree(migrations: Path, root: Path) -> str | None:
    """Why a migrations folder outside the worktree is refused (it is neither watched nor read)."""
    resolved, top = Path(os.path.realpath(migrations)), Path(os.path.realpath(root))
    if resolved == top or top in resolved.parents:
        return None
    return f"the migrations path {migrations} is outside the worktree {root}; migwatch reads only folders inside it"


def _config_notes(config: ConfigValues | None, root: Path, version: PrismaVersion) -> list[str]:
    if config is None:
        return []
    notes: list[str] = []
    try:
        name = config.path.relative_to(root).as_posix()
    except ValueError:
        name = str(config.path)
    others = [c for c in config.computed if not c.startswith("datasource.url")]
    if others:
        notes.append(
            f"{name}: migwatch could not evaluate {', '.join(others)}; it assumed Prisma's defaults there"
        )
    if version >= (7, 0, 0) and "datasource.directUrl" in config.unexpected_keys:
        notes.append(
            f"{name} sets datasource.directUrl, which Prisma 7 does not read: its migrate commands use "
            "datasource.url, and so does migwatch"
        )
    return notes
