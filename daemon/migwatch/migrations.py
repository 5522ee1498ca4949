"""Reads a migrations folder exactly as Prisma lists it (SPEC §5). Never writes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from stat import S_ISREG

from migwatch.checksum import checksum_variants
from migwatch.model import LocalMigration, MigrationsFolder
from migwatch.ordering import collation_key

_LOCK_PROVIDER = re.compile(rb'^\s*provider\s*=\s*"([^"]*)"', re.M)
_MARKER = re.compile(rb"^(<<<<<<<|>>>>>>>)", re.M)


class ChecksumCache:
    """Avoids hashing the same content twice: keyed by file identity, then by content digest.

    Worktrees hold identical copies of most migrations; the file-identity key serves the daemon's
    re-scans, the content key serves identical copies across worktrees.
    """

    def __init__(self) -> None:
        # Plain dicts: single lookups and stores are atomic, and a lost race only costs a second hash.
        self._by_stat: dict[tuple[int, int, int, int, int], _SqlFacts] = {}
        self._by_raw: dict[bytes, _SqlFacts] = {}

    def facts(self, path: str, stat: os.stat_result) -> _SqlFacts:
        """Checksums and conflict-marker lines of one migration.sql (raises OSError)."""
        # The mode is part of the key: `chmod 000` changes neither content nor mtime, and must be seen.
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_mode)
        hit = self._by_stat.get(key)
        if hit is not None:
            return hit
        raw = _read_bytes(path, stat.st_size)
        digest = hashlib.sha256(raw).digest()
        found = self._by_raw.get(digest)
        if found is None:
            found = (checksum_variants(raw), conflict_lines(raw))
        if len(self._by_stat) > 500_000:  # bounded: a long-running daemon sees many versions
            self._by_stat.clear()
            self._by_raw.clear()
        self._by_stat[key] = found
        self._by_raw[digest] = found
        return found


def _read_bytes(path: str, size_hint: int) -> bytes:
    """The whole file, with raw descriptors (no buffered file object: this runs for every file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(fd, size_hint + 1)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 20))
    finally:
        os.close(fd)
    return b"".join(chunks)


_SqlFacts = tuple[tuple[str, ...], tuple[int, ...]]
_DEFAULT_CACHE = ChecksumCache()


def read_migration(folder: Path, name: str, cache: ChecksumCache = _DEFAULT_CACHE) -> LocalMigration:
    """One migration folder: its checksums, whether migration.sql exists, conflict markers."""
    return _read_migration(folder.parent, os.fspath(folder.parent), name, cache)


def _read_migration(parent: Path, parent_text: str, name: str, cache: ChecksumCache) -> LocalMigration:
    # Plain strings and one stat per file: this runs for every migration of every worktree.
    sql_path = f"{parent_text}/{name}/migration.sql"
    try:
        stat = os.stat(sql_path)
        if not S_ISREG(stat.st_mode):
            return LocalMigration(
                name=name, parent=parent, checksums=(), read_error=f"{sql_path} is not a file"
            )
        checksums, markers = cache.facts(sql_path, stat)
    except FileNotFoundError:
        return LocalMigration(name=name, parent=parent, checksums=(), has_sql=False)
    except OSError as exc:
        return LocalMigration(
            name=name, parent=parent, checksums=(), read_error=_os_message(exc, Path(sql_path))
        )
    return LocalMigration(name=name, parent=parent, checksums=checksums, conflict_lines=markers)


def conflict_lines(raw: bytes) -> tuple[int, ...]:
    """1-based numbers of lines that start with a git conflict marker."""
    if b"<<<<<<<" not in raw and b">>>>>>>" not in raw:
        return ()
    return tuple(raw.count(b"\n", 0, match.start()) + 1 for match in _MARKER.finditer(raw))


def read_folder(path: Path, cache: ChecksumCache = _DEFAULT_CACHE) -> MigrationsFolder:
    """List a migrations folder as Prisma does: every subdirectory (hidden too, not symlinks)."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return MigrationsFolder(path=path, exists=False)
    except NotADirectoryError:
        return MigrationsFolder(path=path, exists=False, error=f"{path} is not a folder")
    except OSError as exc:
        return MigrationsFolder(path=path, exists=True, error=_os_message(exc, path))
    lock_provider: str | None = None
    names: list[str] = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                names.append(entry.name)
            elif entry.name == "migration_lock.toml":
                lock_provider = read_lock_provider(Path(entry.path))
        except OSError:
            continue
    names.sort(key=collation_key)
    text = os.fspath(path)
    migrations = tuple(_read_migration(path, text, name, cache) for name in names)
    return MigrationsFolder(path=path, exists=True, migrations=migrations, lock_provider=lock_provider)


def read_lock_provider(path: Path) -> str | None:
    """`provider = "…"` of migration_lock.toml, or None if it has none or cannot be read."""
    try:
        match = _LOCK_PROVIDER.search(path.read_bytes())
    except OSError:
        return None
    return match.group(1).decode("utf-8", "replace") if match else None


def _os_message(exc: OSError, path: Path) -> str:
    return f"cannot read {path}: {exc.strerror or exc}"
