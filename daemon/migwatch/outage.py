"""What a check may conclude when part of what it looks at cannot be seen (pure; plain values in and out).

Not knowing is not "resolved": while a database is failing, or a folder or file cannot be read, the
alerts that depend on it keep their state; only the finding about the outage itself changes.

- A database is reported down after `FAILURES_TO_REPORT` failed polls in a row (a blip is not an
  alert); until then, and while it is down, the findings that depend on its rows are frozen.
- A database whose history table vanished (it existed, now it does not) is frozen the same way and
  gets its own alert instead of "everything resolved".
- A worktree whose migrations folder cannot be listed is frozen, except for the finding that says so;
  a migration that cannot be read freezes the findings about that migration.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from migwatch.catalogue import kind_of
from migwatch.model import Finding

FAILURES_TO_REPORT = 3
DbStatus = Literal["ok", "uncertain", "down"]
FindingKey = tuple[str, str, str | None, str | None, str | None]

UNREACHABLE_CODE = kind_of("database_unreachable").code
UNREADABLE_CODES = frozenset({kind_of("unreadable_path").code})  # the finding about the path itself
VANISHED_CODE = kind_of("history_vanished").code
DENIED_CODE = kind_of("history_denied").code


def status_after(failures: int, failures_to_report: int = FAILURES_TO_REPORT) -> DbStatus:
    """A database's status after `failures` failed polls in a row."""
    if failures <= 0:
        return "ok"
    return "down" if failures >= failures_to_report else "uncertain"


@dataclass(frozen=True)
class DatabaseState:
    """One database as the outage rule sees it."""

    status: DbStatus
    ever_read: bool = True  # a history was read at least once (else nothing is known about it)
    vanished: bool = False  # its history table existed and is gone
    denied: bool = False  # the role may not read its history table


@dataclass(frozen=True)
class Unknowns:
    """What a check could not see: databases by id, worktree paths, (worktree, migration) pairs."""

    databases: Mapping[str, DatabaseState] = field(default_factory=dict)
    worktrees: frozenset[str] = frozenset()
    migrations: frozenset[tuple[str, str]] = frozenset()


def conclude_scope(
    found: Sequence[Finding], unknowns: Unknowns
) -> tuple[list[Finding], Callable[[FindingKey], bool]]:
    """The findings to judge and the keys they may resolve.

    A failing database that was never read and is not yet reported down gets no `database_unreachable`
    yet; a database that is down has it in scope; every other key that depends on an unknown keeps its
    state (it is neither reported again nor resolved).
    """
    down = {db for db, s in unknowns.databases.items() if s.status == "down"}
    unseen = {db for db, s in unknowns.databases.items() if s.status == "uncertain" and not s.ever_read}
    vanished = {db for db, s in unknowns.databases.items() if s.vanished and s.status == "ok"}
    denied = {db for db, s in unknowns.databases.items() if s.denied and s.status == "ok"}
    # A failing database that was read before is judged on its last good rows until it is reported down.
    frozen = down | unseen | vanished | denied
    kept = [f for f in found if not (f.code == UNREACHABLE_CODE and f.database in unseen)]

    def scope(key: FindingKey) -> bool:
        code, _, database, worktree, migration = key
        if database in frozen:
            return (
                (code == UNREACHABLE_CODE and database in down)
                or (code == VANISHED_CODE and database in vanished)
                or (code == DENIED_CODE and database in denied)
            )
        if worktree is not None and worktree in unknowns.worktrees:
            return code in UNREADABLE_CODES
        if worktree is not None and migration is not None and (worktree, migration) in unknowns.migrations:
            return code in UNREADABLE_CODES
        return True

    return kept, scope


def database_states(
    statuses: Mapping[str, DatabaseState], database_ids: Mapping[str, str]
) -> dict[str, DatabaseState]:
    """Per database id: the state of the group (poller database) it belongs to."""
    return {db_id: statuses[group] for db_id, group in database_ids.items() if group in statuses}


def unreadable_paths(
    folders: Collection[tuple[str, bool, Collection[str]]],
) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """From (worktree, folder unreadable, unreadable migration names): the unknown worktrees and pairs."""
    worktrees = frozenset(path for path, unreadable, _ in folders if unreadable)
    pairs = frozenset((path, name) for path, unreadable, names in folders if not unreadable for name in names)
    return worktrees, pairs
