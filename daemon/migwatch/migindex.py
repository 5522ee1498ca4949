"""The migration history of a repository as git knows it: plain data and the parsers that build it.

No I/O here (`gitindex` runs git). For every migration folder name the index knows the commits that
added, modified, deleted or renamed it, and which refs' tip trees contain it. Origins of a migration
that a worktree lacks are read from it (`migwatch.whereabouts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Literal

ChangeKind = Literal["added", "modified", "deleted", "renamed"]
RefKind = Literal["branch", "remote", "tag", "worktree"]
SQL_FILE = "migration.sql"
NULL_SHA = "0" * 40
# Record and field separators of the `git log --format` the index reads (not valid in names or subjects).
RECORD = "\x1e"
UNIT = "\x1f"
LOG_FORMAT = f"{RECORD}%H{UNIT}%ct{UNIT}%an{UNIT}%s"
# Only fields for-each-ref knows without reading the object: a ref to a missing object must not fail it.
REF_FORMAT = "%(objectname)%00%(refname)"
_KIND_OF_PREFIX: tuple[tuple[str, RefKind], ...] = (
    ("refs/heads/", "branch"),
    ("refs/remotes/", "remote"),
    ("refs/tags/", "tag"),
)
_STATUS_KINDS: Mapping[str, ChangeKind] = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed"}


@dataclass(frozen=True)
class Commit:
    """One commit as the index shows it to people."""

    sha: str
    timestamp: int  # committer date, seconds since the epoch
    author: str
    subject: str

    @property
    def date(self) -> str:
        """The commit date as YYYY-MM-DD (UTC)."""
        return datetime.fromtimestamp(self.timestamp, tz=timezone.utc).strftime("%Y-%m-%d")

    @property
    def short(self) -> str:
        return self.sha[:10]


@dataclass(frozen=True)
class MigrationChange:
    """A commit that added, modified, deleted or renamed one migration's migration.sql."""

    commit: Commit
    kind: ChangeKind
    migrations_dir: str  # repo-relative folder that held the migration
    name: str  # the migration folder name (for a rename: the old name)
    renamed_to: str | None = None  # for a rename: the new folder name
    old_blob: str | None = None  # migration.sql before the commit
    new_blob: str | None = None  # migration.sql after it
    # For a removal (deleted, or renamed away): (name, blob) of every migration the same commit added or
    # changed — where its SQL may have gone (a rename, a squash, a merge into an existing migration).
    added_with: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RefTip:
    """The tip of a ref (or a worktree's HEAD) whose tree the index has read."""

    ref: str  # refs/heads/main, refs/remotes/origin/x, refs/tags/v1, or the worktree path for a HEAD
    name: str  # main, origin/x, v1, or the worktree path
    kind: RefKind
    commit: str
    timestamp: int


@dataclass(frozen=True)
class MigrationIndex:
    """What git knows about every migration folder of a project, at one state of its refs."""

    key: str  # the refs state this was built at
    migrations_dirs: tuple[str, ...]
    tips: tuple[RefTip, ...] = ()
    # (commit, migrations dir) → {migration folder name → its tree sha}; no entry: the folder is not there
    contents: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)
    changes: Mapping[str, tuple[MigrationChange, ...]] = field(default_factory=dict)  # newest first
    shallow: bool = False
    problem: str | None = None  # why the index is empty or partial: origins are not known then
    notes: tuple[str, ...] = ()  # refs that could not be read, and similar

    def names_at(self, commit: str, migrations_dir: str) -> Mapping[str, str]:
        """Migration folders at `commit` (name → tree sha); empty when the folder is not there."""
        return self.contents.get((commit, migrations_dir), {})

    def tips_with(self, migrations_dir: str, name: str) -> list[RefTip]:
        """Refs (and worktree HEADs) whose tip tree contains the migration folder."""
        commits = self._commits_with.get((migrations_dir, name), frozenset())
        return [tip for tip in self.tips if tip.commit in commits]

    @cached_property
    def _commits_with(self) -> dict[tuple[str, str], frozenset[str]]:
        """(migrations dir, name) → the tip commits whose tree has it (built once per index)."""
        found: dict[tuple[str, str], set[str]] = {}
        for (commit, directory), folders in self.contents.items():
            for name in folders:
                found.setdefault((directory, name), set()).add(commit)
        return {key: frozenset(commits) for key, commits in found.items()}

    def removed_by(self, commit: str) -> list[MigrationChange]:
        """Every migration the commit deleted or renamed away."""
        return self._removals.get(commit, [])

    @cached_property
    def _removals(self) -> dict[str, list[MigrationChange]]:
        found: dict[str, list[MigrationChange]] = {}
        for changes in self.changes.values():
            for change in changes:
                if change.kind == "deleted" or (
                    change.kind == "renamed" and change.renamed_to != change.name
                ):
                    found.setdefault(change.commit.sha, []).append(change)
        return found

    def history_of(self, name: str) -> tuple[MigrationChange, ...]:
        """Every change of the migration (as old or as new name), newest first."""
        return self.changes.get(name, ())


def ref_kind(refname: str) -> RefKind | None:
    """The kind of a full ref name, or None for refs the index does not follow (stash, notes, …)."""
    for prefix, kind in _KIND_OF_PREFIX:
        if refname.startswith(prefix):
            return kind
    return None


def parse_refs(output: str) -> list[RefTip]:
    """Branches, remote-tracking branches and tags from `git for-each-ref --format=REF_FORMAT`.

    `commit` is the ref's object as listed (an annotated tag is peeled later) and `timestamp` 0;
    `<remote>/HEAD` and refs outside heads/remotes/tags are left out.
    """
    tips: list[RefTip] = []
    for line in output.splitlines():
        sha, _, refname = line.partition("\0")
        kind = ref_kind(refname)
        if kind is None or not sha or (kind == "remote" and refname.endswith("/HEAD")):
            continue
        tips.append(RefTip(ref=refname, name=refname.split("/", 2)[2], kind=kind, commit=sha, timestamp=0))
    return tips


def _split_path(path: str, migrations_dirs: Sequence[str]) -> tuple[str, str] | None:
    """(migrations dir, folder name) of `<dir>/<name>/migration.sql`, else None."""
    for directory in migrations_dirs:
        prefix = f"{directory}/" if directory else ""
        if path.startswith(prefix):
            rest = path[len(prefix) :].split("/")
            if len(rest) == 2 and rest[1] == SQL_FILE:
                return directory, rest[0]
    return None


def _raw_entries(body: str) -> Iterable[tuple[str, str, str, str, str | None]]:
    """(status letter, old blob, new blob, path, second path) of each `--raw -z` entry of one commit."""
    tokens = body.lstrip("\n\0").split("\0")
    index = 0
    while index < len(tokens):
        meta = tokens[index].lstrip("\n")
        if not meta.startswith(":"):
            index += 1
            continue
        fields = meta[1:].split(" ")
        if len(fields) < 5:
            return
        status = fields[4][:1]
        if status in ("R", "C"):
            if index + 2 >= len(tokens):
                return
            yield status, fields[2], fields[3], tokens[index + 1], tokens[index + 2]
            index += 3
        else:
            if index + 1 >= len(tokens):
                return
            yield status, fields[2], fields[3], tokens[index + 1], None
            index += 2


def _blob(sha: str) -> str | None:
    return None if sha == NULL_SHA else sha


def parse_log(output: str, migrations_dirs: Sequence[str]) -> dict[str, tuple[MigrationChange, ...]]:
    """Changes per migration name from `git log --format=LOG_FORMAT --raw --no-abbrev -M -z -- <dirs>`.

    Log order (newest first) is kept. A rename is listed under the old name (kind `renamed`, with the
    target) and under the new name (kind `added`).
    """
    changes: dict[str, list[MigrationChange]] = {}
    for record in output.split(RECORD):
        header, _, body = record.partition("\0")
        fields = header.split(UNIT)
        if len(fields) != 4:
            continue
        sha, stamp, author, subject = fields
        commit = Commit(
            sha=sha, timestamp=int(stamp) if stamp.isdigit() else 0, author=author, subject=subject
        )
        found: list[MigrationChange] = []
        for status, old, new, path, second in _raw_entries(body):
            kind = _STATUS_KINDS.get(status)
            source = _split_path(path, migrations_dirs)
            if status == "R" and second is not None:
                target = _split_path(second, migrations_dirs)
                if source and target:
                    found.append(
                        MigrationChange(
                            commit, "renamed", source[0], source[1], target[1], _blob(old), _blob(new)
                        )
                    )
                    found.append(
                        MigrationChange(commit, "added", target[0], target[1], None, None, _blob(new))
                    )
                elif source:  # moved out of every migrations folder: gone from Prisma's view
                    found.append(MigrationChange(commit, "deleted", source[0], source[1], None, _blob(old)))
                elif target:
                    found.append(
                        MigrationChange(commit, "added", target[0], target[1], None, None, _blob(new))
                    )
                continue
            if kind is None or source is None:
                continue
            found.append(MigrationChange(commit, kind, source[0], source[1], None, _blob(old), _blob(new)))
        landed = tuple(
            (c.name, c.new_blob) for c in found if c.kind in ("added", "modified") and c.new_blob is not None
        )
        for change in found:
            removal = change.kind == "deleted" or (
                change.kind == "renamed" and change.renamed_to != change.name
            )
            if removal and landed:
                change = replace(change, added_with=tuple(item for item in landed if item[0] != change.name))
            changes.setdefault(change.name, []).append(change)
    return {name: tuple(items) for name, items in changes.items()}


def parse_tree(raw: bytes) -> dict[str, str]:
    """Subfolders (name → tree sha) of a raw tree object (`git cat-file --batch` content)."""
    folders: dict[str, str] = {}
    position = 0
    while position < len(raw):
        space = raw.find(b" ", position)
        nul = raw.find(b"\0", space + 1)
        if space < 0 or nul < 0 or nul + 21 > len(raw):
            break
        mode = raw[position:space]
        sha = raw[nul + 1 : nul + 21].hex()
        if mode == b"40000":
            folders[raw[space + 1 : nul].decode("utf-8", "surrogateescape")] = sha
        position = nul + 21
    return folders


def parse_batch(output: bytes) -> list[tuple[str, str, bytes | None]]:
    """(object sha, type, content) per answer of `git cat-file --batch`; ("", "missing", None) for a miss."""
    answers: list[tuple[str, str, bytes | None]] = []
    position = 0
    while position < len(output):
        newline = output.find(b"\n", position)
        if newline < 0:
            break
        header = output[position:newline].decode("utf-8", "replace").split(" ")
        position = newline + 1
        if len(header) == 3 and header[2].isdigit():
            size = int(header[2])
            answers.append((header[0], header[1], output[position : position + size]))
            position += size + 1  # the content is followed by a newline
        else:
            answers.append(("", "missing", None))
    return answers
