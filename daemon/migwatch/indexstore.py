"""The git history index on disk, so that each `migwatch status` process does not read git history again.

One JSON file per (repository, migrations folders) in the user cache folder, written atomically; it is
used only when its refs-state key is the current one, and anything unreadable is ignored (the index is
rebuilt from git). Folder listings shared by many tips are stored once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from migwatch.logsetup import replace_private
from migwatch.migindex import Commit, MigrationChange, MigrationIndex, RefTip

log = logging.getLogger(__name__)

VERSION = 1


def default_folder() -> Path:
    """`~/.cache/migwatch/gitindex` (the platform's user cache folder)."""
    from platformdirs import user_cache_dir  # only when the index is worth storing

    return Path(user_cache_dir("migwatch")) / "gitindex"


def store_path(folder: Path, repo: Path, migrations_dirs: Sequence[str]) -> Path:
    digest = hashlib.sha256("\0".join([str(repo), *migrations_dirs]).encode()).hexdigest()[:24]
    return folder / f"{digest}.json"


def _change(change: MigrationChange) -> list[Any]:
    c = change.commit
    return [c.sha, c.timestamp, c.author, c.subject, change.kind, change.migrations_dir, change.name,
            change.renamed_to, change.old_blob, change.new_blob, [list(pair) for pair in change.added_with]]  # fmt: skip


def _unchange(raw: Sequence[Any]) -> MigrationChange:
    sha, stamp, author, subject, kind, directory, name, renamed_to, old, new, added = raw
    return MigrationChange(
        Commit(sha, stamp, author, subject), kind, directory, name, renamed_to, old, new,
        tuple((n, b) for n, b in added),
    )  # fmt: skip


def save(path: Path, index: MigrationIndex) -> None:
    """Write the index (best effort: a cache that cannot be written is only slower)."""
    tables: list[Mapping[str, str]] = []
    seen: dict[int, int] = {}
    contents = []
    for (commit, directory), folders in index.contents.items():
        if id(folders) not in seen:
            seen[id(folders)] = len(tables)
            tables.append(folders)
        contents.append([commit, directory, seen[id(folders)]])
    document = {
        "version": VERSION,
        "key": index.key,
        "dirs": list(index.migrations_dirs),
        "tips": [[t.ref, t.name, t.kind, t.commit, t.timestamp] for t in index.tips],
        "tables": tables,
        "contents": contents,
        "changes": {name: [_change(c) for c in changes] for name, changes in index.changes.items()},
        "shallow": index.shallow,
        "notes": list(index.notes),
    }
    try:
        replace_private(path, json.dumps(document, separators=(",", ":")), durable=False)  # subjects, authors
    except OSError as exc:
        log.debug("git index not stored at %s: %s", path, exc)


def load(path: Path, key: str) -> MigrationIndex | None:
    """The stored index if it was built at refs state `key`, else None."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("version") != VERSION or document.get("key") != key:
            return None
        tables = document["tables"]
        return MigrationIndex(
            key=key,
            migrations_dirs=tuple(document["dirs"]),
            tips=tuple(RefTip(*tip) for tip in document["tips"]),
            contents={
                (commit, directory): tables[table] for commit, directory, table in document["contents"]
            },
            changes={
                name: tuple(_unchange(c) for c in changes) for name, changes in document["changes"].items()
            },
            shallow=bool(document["shallow"]),
            notes=tuple(document["notes"]),
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        log.debug("git index at %s not used: %s", path, exc)
        return None
