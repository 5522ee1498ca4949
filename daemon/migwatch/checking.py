"""One project's check in the daemon: refresh its databases, read its worktrees, diagnose, decide what
the check may conclude (`outage`: not knowing is not resolved), and hand the result to the ledger."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from migwatch import alerts
from migwatch import git as gitio
from migwatch.catalogue import kind_of
from migwatch.config import Config
from migwatch.diagnose import ProjectSnapshot, group_of, unlisted_project
from migwatch.ledger import AlertLedger
from migwatch.logsetup import quote_value
from migwatch.migrations import ChecksumCache
from migwatch.model import Finding, Fix, History, Note
from migwatch.outage import (
    VANISHED_CODE,
    DatabaseState,
    Unknowns,
    conclude_scope,
    database_states,
    unreadable_paths,
)
from migwatch.pipeline import CheckOptions, diagnose_project, snapshot_project
from migwatch.scheduler import DatabaseView, Poller

log = logging.getLogger(__name__)


@dataclass
class ProjectState:
    """What the worker remembers about one project between checks."""

    groups: set[str] = field(default_factory=set)  # databases it uses (poller group keys)
    worktree_groups: dict[str, str] = field(default_factory=dict)  # worktree path → group
    checked: bool = False


class ProjectChecker:
    """Checks projects one at a time (the daemon's worker calls it under its lock)."""

    def __init__(
        self,
        config: Callable[[], Config],
        *,
        env: Mapping[str, str],
        poller: Poller,
        ledger: AlertLedger,
        clock: Callable[[], float],
        pool: Callable[[], ThreadPoolExecutor | None],
        queue_users: Callable[[str, str | None], None],
        interrupted: Callable[[str, ProjectSnapshot], bool] | None = None,
    ) -> None:
        self.projects: dict[str, ProjectState] = {}
        self._config = config
        self.env = env
        self.poller = poller
        self.ledger = ledger
        self._clock = clock
        self._pool = pool
        self._queue_users = queue_users
        self._interrupted = interrupted  # files changed or git rewrote a worktree while the check read it
        self._cache = ChecksumCache()

    def check(self, name: str, trigger: str) -> tuple[list[Finding], ProjectSnapshot | None]:
        """One full check of a project; the snapshot (for the watches) unless git could not list it."""
        project = next((p for p in self._config().projects if p.name == name), None)
        if project is None:
            return [], None
        started = time.monotonic()
        state = self.projects.setdefault(name, ProjectState())
        histories = self._refresh_databases(name, state)
        options = CheckOptions(env=self.env, read_history=self.poller.first_read, cache=self._cache)
        pool = self._pool()
        assert pool is not None
        try:
            snapshot = snapshot_project(project, options, pool, histories=histories)
        except gitio.GitError as exc:
            finding = unlisted_project(name, project.repo, str(exc))
            self.conclude(name, [finding], lambda key: key[0] == "discovery" and key[3] is None, False)
            return [finding], None
        now = datetime.fromtimestamp(self._clock(), timezone.utc)
        _, found = diagnose_project(snapshot, self.env, now)
        if self._interrupted is not None and self._interrupted(name, snapshot):
            # What it read may be half a checkout (folders whose files are gone): concluding would alert
            # on a state that never was. The project is checked again once the files are quiet.
            log.debug("check discarded project=%s trigger=%s: files changed while it ran", name, trigger)
            return found, snapshot
        found, scope, hold = self._judge(name, state, snapshot, found)
        alerted = self.conclude(name, found, scope, hold)
        log.debug(
            "check project=%s trigger=%s worktrees=%d findings=%d alerts=%d duration=%.3fs",
            name,
            quote_value(alerts.printable(trigger)),
            len(snapshot.worktrees),
            len(found),
            alerted,
            time.monotonic() - started,
        )
        return found, snapshot

    def _refresh_databases(self, name: str, state: ProjectState) -> dict[str, History]:
        """Poll each database the project uses (fingerprint first); returns group → history."""
        histories: dict[str, History] = {}
        for group in sorted(state.groups):
            view, changed = self.poller.poll(group, notify=False)
            if view is not None:
                histories[group] = view.history
                if changed:
                    self._queue_users(group, name)
        return histories

    def _judge(
        self, name: str, state: ProjectState, snapshot: ProjectSnapshot, found: list[Finding]
    ) -> tuple[list[Finding], Callable[[alerts.FindingKey], bool], bool]:
        """What this check may conclude (outage rules), and whether a Prisma migrate command runs."""
        database_ids: dict[str, str] = {}
        state.worktree_groups = {}
        folders: list[tuple[str, bool, list[str]]] = []
        for worktree in snapshot.worktrees:
            used = group_of(worktree)
            if used is not None and worktree.setup.database is not None:
                database_ids[worktree.setup.database.id] = used
                state.worktree_groups[str(worktree.worktree.path)] = used
            folder = worktree.folder
            if folder is not None:
                broken = [m.name for m in folder.migrations if m.read_error]
                folders.append((str(worktree.worktree.path), folder.error is not None, broken))
        for used, history in snapshot.histories.items():
            database_ids[history.database.id] = used
        state.groups = set(snapshot.histories)
        self.poller.retain({g for s in self.projects.values() for g in s.groups})
        views = {g: v for g in state.groups if (v := self.poller.view(g)) is not None}
        statuses = {
            g: DatabaseState(v.status, ever_read=v.ever_read, vanished=self._vanished(v), denied=v.denied)
            for g, v in views.items()
        }
        found = found + [vanished_finding(name, g, v, state) for g, v in views.items() if self._vanished(v)]
        worktrees, pairs = unreadable_paths(folders)
        unknowns = Unknowns(database_states(statuses, database_ids), worktrees, pairs)
        kept, scope = conclude_scope(found, unknowns)
        return kept, scope, any(v.lock_held for v in views.values())

    def _vanished(self, view: DatabaseView) -> bool:
        """The history table is gone while alerts that depend on its rows are open (or it was seen)."""
        if view.status != "ok" or not view.history.reachable or view.history.has_table:
            return False
        if view.vanished:
            return True
        db = view.ref.id
        return any(
            k[2] == db and k[0] not in ("not_managed", VANISHED_CODE) for k in self.ledger.state.records
        )

    def conclude(
        self, name: str, found: list[Finding], scope: Callable[[alerts.FindingKey], bool], hold: bool
    ) -> int:
        config = self._config()
        policy = alerts.AlertPolicy(
            remind_after=config.remind_after,
            notify_resolved=config.notify_resolved,
            alert_codes=config.alert_codes,
            hold_transient=hold,
        )
        return self.ledger.conclude(name, found, scope, policy)


def vanished_finding(project: str, group: str, view: DatabaseView, state: ProjectState) -> Finding:
    db = view.ref.id
    users = sorted(Path(w).name for w, g in state.worktree_groups.items() if g == group)
    return Finding(
        code=VANISHED_CODE,
        severity=kind_of(VANISHED_CODE).severity,
        project=project,
        database=db,
        worktree=None,
        migration=None,
        message=(
            f"the _prisma_migrations table of {db} is gone (used by {', '.join(users) or project}): "
            "its migration history vanished; open alerts stay open until it is back"
        ),
        fix=Fix(
            steps=(Note("find out who dropped or reset the database before running any migrate command"),),
            why="without its history Prisma would treat every migration as new",
        ),
    )
