"""Database polling (SPEC §8): an APScheduler 3 interval job per database, a cheap fingerprint each time,
the full history only when the fingerprint changed, Prisma's advisory lock, backoff and recovery.

A database's view has a status:
- `ok`: the last poll worked; `history` is current.
- `uncertain`: polls are failing, but fewer than `failures_to_report` in a row; `history` is the last good
  one (or an unreachable placeholder when there never was one). Nothing is reported yet.
- `down`: `failures_to_report` polls in a row failed; `history` says unreachable, with the driver's message.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timezone
from typing import Any

import psycopg
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from migwatch.dburl import group_key
from migwatch.history import (
    HistoryDenied,
    HistoryError,
    ReadOptions,
    driver_message,
    fingerprint_sqlite,
    read_sqlite,
)
from migwatch.logsetup import quote_value
from migwatch.model import DatabaseRef, History
from migwatch.outage import FAILURES_TO_REPORT, DbStatus, status_after
from migwatch.pghistory import connect_postgres, poll_postgres, read_postgres

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
POLL_WORKERS = 4
# libpq's minimum; a daemon must not hang on a dead host for long.
DAEMON_READ_OPTIONS = ReadOptions(connect_timeout=2.0, statement_timeout_ms=10_000)

Connector = Callable[[DatabaseRef, ReadOptions], "psycopg.Connection[Any]"]


@dataclass(frozen=True)
class DatabaseView:
    """What the poller knows about one database right now."""

    ref: DatabaseRef
    history: History
    status: DbStatus
    lock_held: bool  # a Prisma migrate command holds the advisory lock
    failures: int = 0
    ever_read: bool = False  # a history was read at least once in this run
    vanished: bool = False  # the history table was there earlier in this run and is gone now
    denied: bool = False  # the role may not read the history table


class _Database:
    """Mutable poll state of one database; every field is guarded by `mutex`."""

    def __init__(self, ref: DatabaseRef) -> None:
        self.ref = ref
        self.mutex = threading.Lock()
        self.conn: psycopg.Connection[Any] | None = None
        self.fingerprint: str | None = None
        self.history: History | None = None
        self.lock_held = False
        self.failures = 0
        self.error: str | None = None
        self.next_attempt = 0.0
        self.polled = False
        self.ever_read = False
        self.had_table = False

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg.Error:
                log.debug("closing the connection to %s failed", self.ref.id, exc_info=True)
            self.conn = None


class Poller:
    """Polls every tracked database; `on_change(group)` is called (from a poll thread) when a database's
    rows, reachability status or advisory lock changed."""

    def __init__(
        self,
        interval: float,
        on_change: Callable[[str], None] | None = None,
        *,
        failures_to_report: int = FAILURES_TO_REPORT,
        max_backoff: float = MAX_BACKOFF,
        read_options: ReadOptions = DAEMON_READ_OPTIONS,
        connect: Connector = connect_postgres,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.failures_to_report = failures_to_report
        self.max_backoff = max_backoff
        self._on_change = on_change
        self._read_options = read_options
        self._connect = connect
        self._clock = clock
        self._lock = threading.Lock()  # guards _databases and _scheduler
        self._databases: dict[str, _Database] = {}
        self._scheduler: BackgroundScheduler | None = None
        self._periodic: dict[str, tuple[float, Callable[[], None]]] = {}

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler: one interval job per tracked database from now on."""
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(POLL_WORKERS)},
            job_defaults=self._job_defaults(),
            timezone=timezone.utc,
        )
        scheduler.start()
        with self._lock:
            self._scheduler = scheduler
            for group in self._databases:
                self._add_job(group)
            for job_id in self._periodic:
                self._add_periodic(job_id)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the scheduler and close every connection, within about `timeout` seconds.

        A poll blocked in the database (a locked table) is cancelled server-side first, so stopping
        never waits for a statement timeout.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            databases = list(self._databases.values())
        self.cancel_running()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
            _join_pool(scheduler, max(0.1, deadline - time.monotonic()))
        for database in databases:
            if database.mutex.acquire(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    database.close()
                finally:
                    database.mutex.release()

    def cancel_running(self) -> None:
        """Cancel every statement running on the poller's connections (from any thread)."""
        with self._lock:
            connections = [d.conn for d in self._databases.values() if d.conn is not None]
        for conn in connections:
            try:
                conn.cancel_safe(timeout=1.0)
            except (psycopg.Error, OSError):
                log.debug("cancelling a statement failed", exc_info=True)

    def set_interval(self, interval: float) -> None:
        """Change the poll interval (config reload)."""
        with self._lock:
            if interval == self.interval:
                return
            self.interval = interval
            if self._scheduler is not None:
                for group in self._databases:
                    self._add_job(group)

    def every(self, job_id: str, seconds: float, function: Callable[[], None]) -> None:
        """Run `function` every `seconds` on the scheduler (replacing a job of the same id)."""
        with self._lock:
            self._periodic[job_id] = (seconds, function)
            if self._scheduler is not None:
                self._add_periodic(job_id)

    def _add_periodic(self, job_id: str) -> None:
        assert self._scheduler is not None
        seconds, function = self._periodic[job_id]
        self._scheduler.add_job(
            function,
            "interval",
            seconds=seconds,
            id=f"every:{job_id}",
            name=job_id,
            replace_existing=True,
            **self._job_defaults(),
        )

    def _job_defaults(self) -> dict[str, Any]:
        # coalesce + a grace of about one interval: a laptop waking from sleep polls once, not a backlog.
        return {
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": max(1, math.ceil(self.interval)),
        }

    def _add_job(self, group: str) -> None:
        assert self._scheduler is not None
        self._scheduler.add_job(
            self._poll_job,
            "interval",
            seconds=self.interval,
            args=[group],
            id=group,
            name=f"poll {group}",
            replace_existing=True,
            **self._job_defaults(),
        )

    # -- what is polled ------------------------------------------------------------------------------------

    def track(self, ref: DatabaseRef) -> str:
        """Poll this database from now on (a new URL for a known database replaces the old connection)."""
        group = group_key(ref)
        with self._lock:
            database = self._databases.get(group)
            if database is None:
                self._databases[group] = _Database(ref)
                if self._scheduler is not None:
                    self._add_job(group)
                return group
        with database.mutex:
            if database.ref.url != ref.url:
                database.close()
                database.ref = ref
                database.fingerprint = None
        return group

    def retain(self, groups: Iterable[str]) -> None:
        """Stop polling every database not in `groups` (no worktree uses it any more)."""
        keep = set(groups)
        with self._lock:
            dropped = [(g, d) for g, d in self._databases.items() if g not in keep]
            for group, _ in dropped:
                del self._databases[group]
                if self._scheduler is not None and self._scheduler.get_job(group) is not None:
                    self._scheduler.remove_job(group)
        for _, database in dropped:
            with database.mutex:
                database.close()
            log.info("unwatch database=%s", database.ref.id)

    def groups(self) -> list[str]:
        """The tracked databases' group keys."""
        with self._lock:
            return list(self._databases)

    def view(self, group: str) -> DatabaseView | None:
        """The current view of a tracked database (None when untracked or never polled)."""
        database = self._get(group)
        if database is None:
            return None
        with database.mutex:
            return self._view(database) if database.polled else None

    def first_read(self, ref: DatabaseRef) -> History:
        """Track `ref` and return its history, polling it now unless it was polled already."""
        group = self.track(ref)
        view = self.view(group)
        if view is None:
            view, _ = self.poll(group, force=True, notify=False)
        return view.history if view is not None else _unreachable(ref, "no longer tracked")

    # -- polling -------------------------------------------------------------------------------------------

    def _poll_job(self, group: str) -> None:
        try:
            self.poll(group)
        except Exception as exc:  # an exception would only be logged by APScheduler, without context
            log.error("poll error group=%s error=%s", group, quote_value(driver_message(exc)))
            log.debug("poll error", exc_info=True)

    def poll_all(self) -> None:
        """Poll every tracked database now, in the caller's thread (ignoring backoff)."""
        for group in self.groups():
            self.poll(group, force=True)

    def poll(
        self, group: str, *, force: bool = False, notify: bool = True
    ) -> tuple[DatabaseView | None, bool]:
        """Poll one database (unless it is backing off and not `force`d): (view, whether it changed).

        `on_change` is called when it changed and `notify` is set.
        """
        database = self._get(group)
        if database is None:
            return None, False
        with database.mutex:
            now = self._clock()
            if database.polled and not force and now < database.next_attempt:
                return self._view(database), False
            before = self._view(database) if database.polled else None
            database.polled = True
            try:
                self._poll_once(database)
                database.ever_read = True
                database.had_table = database.had_table or bool(
                    database.history and database.history.has_table
                )
            except HistoryError as exc:
                self._failed(database, str(exc), now)
            else:
                if database.failures:
                    log.info("poll recovered database=%s failures=%d", database.ref.id, database.failures)
                database.failures = 0
                database.error = None
                database.next_attempt = 0.0
            after = self._view(database)
        changed = before is None or _differs(before, after)
        if changed and notify and self._on_change is not None:
            self._on_change(group)
        return after, changed

    def _poll_once(self, database: _Database) -> None:
        ref = database.ref
        if ref.provider == "sqlite":
            fingerprint = fingerprint_sqlite(ref)
            if fingerprint != database.fingerprint or database.history is None or database.failures:
                database.history = read_sqlite(ref)
                database.fingerprint = fingerprint
            return
        if ref.provider != "postgresql":
            raise HistoryError(f"provider {ref.provider} is not supported")
        if database.conn is None or database.conn.closed:
            database.conn = self._connect(ref, self._read_options)
            database.fingerprint = None  # a fresh session: read the rows again
        conn = database.conn
        try:
            fingerprint, running = poll_postgres(conn, ref)
        except HistoryDenied as exc:
            # Not an outage: the server answers every poll, and what it says will not change by itself.
            database.history = History(
                database=ref, reachable=False, has_table=False, error=str(exc), denied=True
            )
            database.fingerprint = "denied"
            return
        try:
            if fingerprint != database.fingerprint or database.history is None:
                history = read_postgres(conn, ref)
                database.fingerprint = fingerprint
                database.history = dataclasses.replace(history, migration_running=running)
            elif database.history.migration_running != running:
                database.history = dataclasses.replace(database.history, migration_running=running)
        except psycopg.Error as exc:
            raise HistoryError(f"lost connection to {ref.id}: {driver_message(exc)}") from None
        except HistoryError:
            raise
        database.lock_held = running

    def _failed(self, database: _Database, error: str, now: float) -> None:
        database.close()
        database.failures += 1
        database.error = error
        backoff = min(self.max_backoff, self.interval * 2 ** (database.failures - 1))
        database.next_attempt = now + backoff
        log.warning(
            "poll failed database=%s failures=%d retry_in=%gs error=%s",
            database.ref.id,
            database.failures,
            backoff,
            quote_value(error),
        )

    def _view(self, database: _Database) -> DatabaseView:
        failures = database.failures
        status: DbStatus = status_after(failures, self.failures_to_report)
        if status == "down":
            history = _unreachable(database.ref, database.error or "unreachable")
        elif status == "uncertain":
            history = database.history or _unreachable(database.ref, database.error or "unreachable")
        else:
            history = database.history or _unreachable(database.ref, "not polled yet")
        return DatabaseView(
            ref=database.ref,
            history=history,
            status=status,
            lock_held=database.lock_held and status == "ok",
            failures=failures,
            ever_read=database.ever_read,
            vanished=status == "ok" and database.had_table and history.reachable and not history.has_table,
            denied=status == "ok" and history.denied,
        )

    def _get(self, group: str) -> _Database | None:
        with self._lock:
            return self._databases.get(group)


def _differs(before: DatabaseView, after: DatabaseView) -> bool:
    """A change a check must see: rows, reported reachability, or the advisory lock."""
    reported = {"ok": "ok", "uncertain": "ok", "down": "down"}
    if reported[before.status] != reported[after.status] or before.lock_held != after.lock_held:
        return True
    # Recovering from a failure the poll never reported (`uncertain` → `ok`) changes nothing by itself.
    return (
        before.history.rows != after.history.rows
        or before.history.has_table != after.history.has_table
        or before.history.denied != after.history.denied
    )


def _join_pool(scheduler: BackgroundScheduler, timeout: float) -> None:
    """Wait for the poll threads to finish (they are cancelled; they do not wait for a timeout)."""
    executor = scheduler._executors.get("default")
    pool = getattr(executor, "_pool", None)
    threads = list(getattr(pool, "_threads", ()))
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _unreachable(ref: DatabaseRef, error: str) -> History:
    return History(database=ref, reachable=False, has_table=False, error=error)
