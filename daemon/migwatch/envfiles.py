""".env files as the tools that load them read them, bounded; and the scope of variables a worktree's
Prisma sees, with where each one came from (for "not set" messages that say where migwatch looked).

Values are bounded before any use: a file larger than MAX_ENV_FILE_BYTES is not read, a value longer
than MAX_ENV_VALUE_CHARS is cut there (a URL parser then refuses it in one line), and Prisma 6's
`${VAR}` expansion is memoised and bounded the same way, so a doubling bomb finishes at once.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dotenv import dotenv_values

log = logging.getLogger(__name__)

MAX_ENV_FILE_BYTES = 4_000_000
MAX_ENV_VALUE_CHARS = 16_384  # far above any database URL (those are refused above 4,096)


def read_env_file(path: Path) -> dict[str, str]:
    """A .env file's values as written, bounded (npm dotenv, which `dotenv/config` is, expands nothing)."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    return dict(_read_cached(path, stat.st_mtime_ns, stat.st_size, stat.st_ino))


@lru_cache(maxsize=256)
def _read_cached(path: Path, mtime_ns: int, size: int, inode: int) -> tuple[tuple[str, str], ...]:
    del mtime_ns, inode  # parts of the cache key only: a changed file is read again
    if not path.is_file():
        return ()
    if size > MAX_ENV_FILE_BYTES:
        log.warning("%s is %d bytes (more than %d): not read", path, size, MAX_ENV_FILE_BYTES)
        return ()
    try:
        values = dotenv_values(path, interpolate=False)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, type(exc).__name__)
        return ()
    return tuple((k, v[: MAX_ENV_VALUE_CHARS + 1]) for k, v in values.items() if v is not None)


_REFERENCE = re.compile(r"(.?)\$\{([a-zA-Z0-9_]+)?\}")


def expand_prisma6(value: str, scope: Mapping[str, str], memo: dict[str, str] | None = None) -> str:
    """Prisma 6's dotenvExpand: `${VAR}` from the variables loaded so far, `\\${VAR}` kept literally.

    Each variable is expanded once (memo) and every result is cut at MAX_ENV_VALUE_CHARS + 1, so a
    `${A}${A}` doubling chain or a cycle ends at once (Prisma itself would run out of memory or stack).
    """
    memo = {} if memo is None else memo
    active: set[str] = set()

    def expand(text: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            prefix, name = match.group(1), match.group(2) or ""
            if prefix == "\\":
                return match.group(0)[1:]
            return prefix + variable(name)

        return _REFERENCE.sub(substitute, text)[: MAX_ENV_VALUE_CHARS + 1]

    def variable(name: str) -> str:
        if name in memo:
            return memo[name]
        if name in active:  # a cycle: Prisma would recurse until its stack overflows; kept as written
            return "${" + name + "}"
        active.add(name)
        memo[name] = expand(scope.get(name, ""))
        active.discard(name)
        return memo[name]

    return expand(value)


@dataclass
class EnvScope:
    """The variables a worktree's Prisma sees, built in precedence order (the first source wins)."""

    values: dict[str, str]
    origins: dict[str, str] = field(default_factory=dict)  # variable → "environment" or the file
    tried: list[Path] = field(default_factory=list)  # every env file looked at, in order

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> EnvScope:
        return cls(dict(env), dict.fromkeys(env, "environment"))

    def load(self, path: Path, *, expand: bool = False) -> bool:
        """Add a file's variables that are not set yet; True if the file exists and sets anything."""
        path = Path(os.path.normpath(path))
        if path not in self.tried:
            self.tried.append(path)
        values = read_env_file(path)
        fresh = [key for key in values if key not in self.values]
        for key in fresh:
            self.values[key] = values[key]
            self.origins[key] = str(path)
        if expand:
            memo: dict[str, str] = {}
            for key in fresh:
                self.values[key] = expand_prisma6(self.values[key], self.values, memo)
        return bool(values)

    def set_inline(self, pairs: Sequence[tuple[str, str]], where: str) -> None:
        """Variables a script sets itself (`cross-env A=1`); values with shell expansions are not known."""
        for key, value in pairs:
            if key not in self.values and "$" not in value and "`" not in value:
                self.values[key] = value
                self.origins[key] = where

    def absorb(self, values: Mapping[str, str], files: Sequence[Path]) -> None:
        """Take the variables a Prisma config file loaded itself (from `files`, in order)."""
        for path in files:
            if path not in self.tried:
                self.tried.append(path)
        for key, value in values.items():
            if key not in self.values:
                self.values[key] = value
                self.origins[key] = next(
                    (str(f) for f in files if key in read_env_file(f)), "the config file"
                )

    def tried_text(self) -> str:
        """`the environment, /wt/.env, /wt/apps/web/.env (missing)`: where migwatch looked, for messages."""
        shown = [f"{path}{'' if path.is_file() else ' (missing)'}" for path in self.tried]
        if not shown:
            return "the environment only (no env file is loaded here)"
        return ", ".join(["the environment", *shown])


def prisma6_env_files(package_dir: Path, root: Path, schema_dir: Path) -> list[Path]:
    """The .env files Prisma 6 loads without a config file, in order (SPEC §4)."""
    root_env: Path | None = None
    folder = package_dir
    while True:
        if (folder / "package.json").is_file():
            root_env = folder / ".env"
            break
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    files = [root_env or package_dir / ".env"]
    for candidate in (schema_dir / ".env", package_dir / "prisma" / ".env", package_dir / ".env"):
        if candidate.is_file():
            if candidate != files[0]:
                files.append(candidate)
            break
    return files


ENV_FILE_SKIP = re.compile(r"\.(example|sample|template|dist|defaults?|schema|vault)$|\.enc$", re.I)


def env_files_defining(name: str, folders: Sequence[Path]) -> list[Path]:
    """The `.env*` files (not examples or templates) in these folders that set `name` to something."""
    found: list[Path] = []
    for folder in dict.fromkeys(folders):
        try:
            entries = sorted(p for p in folder.iterdir() if p.name.startswith(".env") and p.is_file())
        except OSError:
            continue
        preferred = sorted(entries, key=lambda p: (p.name != ".env", p.name != ".env.local", p.name))
        found += [p for p in preferred if not ENV_FILE_SKIP.search(p.name) and read_env_file(p).get(name)]
    return found
