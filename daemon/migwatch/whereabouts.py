"""Where a migration that a worktree lacks lives, read from the migration-history index (pure).

The order of the questions matters (SPEC §6a): a folder this worktree's HEAD still has was only deleted
from the working tree; one that this branch's history or the base branch removed is deleted or
renamed upstream even when an old branch still has it (merging that branch would not bring it back);
then a branch whose tip tree has it; then a worktree where it is not committed yet; then a removal
elsewhere; else it lives in no ref at all.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from migwatch.migindex import MigrationChange, MigrationIndex, RefTip
from migwatch.model import Worktree

WhereKind = Literal["restore", "removed_here", "branch", "uncommitted", "removed", "gone", "unknown"]
_KIND_RANK = {"branch": 0, "remote": 1, "tag": 2, "worktree": 3}
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


@dataclass(frozen=True)
class Holder:
    """Another worktree whose migrations folder (working tree) has the migration."""

    worktree: Worktree
    migrations_dir: str  # repo-relative


@dataclass(frozen=True)
class Whereabouts:
    """The answer for one (worktree, migration): what kind of place, and what the fix needs."""

    kind: WhereKind
    merge_ref: str | None = None  # branch: what `git merge` takes (a short ref name, or a commit)
    refs: tuple[RefTip, ...] = ()  # branch: every tip that has it, best first
    holder: Holder | None = None  # uncommitted: where it is
    removal: MigrationChange | None = None  # removed / removed_here: the commit that removed it
    successors: tuple[str, ...] = ()  # renamed or squashed into these (their SQL holds this one's)
    successor_ref: str | None = None  # a ref whose tip has the successors (to merge when this lacks them)
    note: str | None = None  # why the origin is not (fully) known


def normalised_sql(text: str) -> str:
    """SQL without comments, with whitespace collapsed: the text that runs."""
    return " ".join(_COMMENT.sub(" ", text).split())


def sql_contains(successor: str, removed: str) -> bool:
    """Whether the successor's SQL holds all of the removed migration's SQL (a rename or a squash)."""
    needle = normalised_sql(removed)
    return bool(needle) and needle in normalised_sql(successor)


def statements(text: str) -> set[str]:
    """The SQL statements of a migration, comments and layout removed."""
    return {part.strip() for part in normalised_sql(text).split(";") if part.strip()}


def successors_of(
    removal: MigrationChange, blobs: Mapping[str, str], siblings: Sequence[MigrationChange] = ()
) -> tuple[str, ...]:
    """The migrations the removing commit added or changed whose SQL holds the removed SQL — and holds
    nothing else than what the migrations it replaced ran (`siblings`: every removal of that commit).

    A rename that also added statements (rallly's "Fix migration" #1574) is not a successor: recording
    it as applied would skip what it added.
    """
    old = blobs.get(removal.old_blob or "")
    if old is None:
        return ()
    ran: set[str] = set()
    for sibling in (removal, *siblings):
        ran |= statements(blobs.get(sibling.old_blob or "", ""))
    return tuple(
        name
        for name, blob in removal.added_with
        if sql_contains(text := blobs.get(blob, ""), old) and statements(text) <= ran
    )


def _ranked(tips: Sequence[RefTip], base_branch: str | None, preferred: Collection[str]) -> list[RefTip]:
    """Base branch first, then branches of worktrees that have it, then the most recent; local first."""
    return sorted(
        tips,
        key=lambda t: (
            not (t.kind == "branch" and t.name == base_branch),
            not (t.kind == "branch" and t.name in preferred),
            _KIND_RANK[t.kind],
            -t.timestamp,
            t.name,
        ),
    )


def _removal(
    kind: WhereKind,
    index: MigrationIndex,
    removal: MigrationChange,
    migrations_dir: str,
    base_branch: str | None,
    blobs: Mapping[str, str] | None,
) -> Whereabouts:
    successors = successors_of(removal, blobs or {}, index.removed_by(removal.commit.sha))
    having = (
        [t for t in index.tips_with(migrations_dir, successors[0]) if t.kind != "worktree"]
        if successors
        else []
    )
    ranked = _ranked(having, base_branch, ())
    return Whereabouts(
        kind, removal=removal, successors=successors, successor_ref=ranked[0].name if ranked else None
    )


def locate(
    index: MigrationIndex,
    name: str,
    worktree: Worktree,
    migrations_dir: str,
    *,
    holders: Sequence[Holder] = (),
    base_branch: str | None = None,
    removed_upstream: MigrationChange | None = None,
    blobs: Mapping[str, str] | None = None,
) -> Whereabouts:
    """Where `name` (missing from `worktree`'s folder) lives.

    `removed_upstream`: a removal of `name` that this HEAD or the base branch contains (the pipeline asks
    git for the ancestry); `blobs`: migration.sql texts by blob id, for the rename/squash check.
    """
    if index.problem is not None:
        return Whereabouts("unknown", note=f"git history not read: {index.problem}")
    if worktree.head and name in index.names_at(worktree.head, migrations_dir):
        return Whereabouts("restore")
    if removed_upstream is not None:
        return _removal("removed_here", index, removed_upstream, migrations_dir, base_branch, blobs)
    own = {str(worktree.path)}
    tips = [t for t in index.tips_with(migrations_dir, name) if t.ref not in own]
    if tips:
        preferred = {h.worktree.branch for h in holders if h.worktree.branch}
        ranked = _ranked(tips, base_branch, preferred)
        best = ranked[0]
        return Whereabouts(
            "branch", merge_ref=best.name if best.kind != "worktree" else best.commit, refs=tuple(ranked)
        )
    if holders:
        return Whereabouts("uncommitted", holder=holders[0])
    removals = [
        c for c in index.history_of(name) if c.kind in ("deleted", "renamed") and c.renamed_to != name
    ]
    if removals:
        return _removal("removed", index, removals[0], migrations_dir, base_branch, blobs)
    note = "the clone is shallow: history before its cut-off was not searched" if index.shallow else None
    return Whereabouts("gone", note=note)
