"""`migwatch run` (SPEC §8): the `Daemon` wires the watcher, the database poller, one check worker, the
alert ledger and the notifiers' outbox, and owns their lifecycle.

Threads: watchdog's observer threads and the poller's APScheduler threads only queue check keys; one
worker thread runs the checks one at a time, so the ledger and the per-project bookkeeping are only
ever touched by that worker (and by `reload`/`stop`, under the same lock). Each notifier delivers in its
own lane (`notify.delivery`). Process set-up (signals, lock, logging, sd_notify) is in `process`.

Database histories come from the poller: a check first refreshes each database it uses with the cheap
fingerprint query (so it never judges fresh files against rows older than the files), and reads the
rows only when they changed. What a check could not see (a database that is failing, a history table
that vanished, a folder that cannot be read) never resolves an alert (`outage`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from watchdog.observers import Observer

from migwatch import alerts, heap
from migwatch import git as gitio
from migwatch.checking import ProjectChecker, ProjectState
from migwatch.config import Config
from migwatch.diagnose import ProjectSnapshot, unlisted_project
from migwatch.ledger import COPY_FILE, STATE_FILE, AlertLedger
from migwatch.logsetup import one_line, quote_value
from migwatch.model import Finding
from migwatch.notify.base import Notifier
from migwatch.notify.delivery import Outbox
from migwatch.notify.dispatch import build_notifiers
from migwatch.outage import (
    FAILURES_TO_REPORT,
)
from migwatch.pipeline import WORKERS
from migwatch.scheduler import Poller
from migwatch.watcher import CheckWorker, Debouncer, ObserverFactory, Watcher
from migwatch.watchtargets import WatchTarget, git_busy, repository_targets, setup_targets

log = logging.getLogger(__name__)

STOP_TIMEOUT = 1.5  # of the 2 s SPEC §8 allows; the rest is the interpreter exiting
GIT_BUSY_MAX = 10.0  # seconds a check waits for a git command that holds the index lock (a stale lock)
PERIODIC_CHECK = 600.0  # a full check now and then: reminders, and anything no watch can see

# (project name, worktree path); worktree None = the whole project, worktrees re-listed.
CheckKey = tuple[str, str | None]


class Daemon:
    """The running service. `start()` returns at once; `on_ready` is called after the first full check.

    Inject what varies: `notifiers` (default: from the config, the log notifier first), `env` (for
    discovery and git), `clock` (unix seconds, for the alert state), `observer_factory` (watchdog),
    `copy_dir` (where the ledger's second copy lives; default: the state dir).
    """

    def __init__(
        self,
        config: Config,
        *,
        state_dir: Path,
        notifiers: Sequence[Notifier] | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        on_ready: Callable[[], None] | None = None,
        observer_factory: ObserverFactory | None = None,
        failures_to_report: int = FAILURES_TO_REPORT,
        copy_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        self._clock = clock
        self._on_ready = on_ready
        self._injected_notifiers = list(notifiers) if notifiers is not None else None
        self._check_lock = threading.RLock()
        self._common_dirs: dict[str, Path] = {}
        self._busy_since: dict[str, float] = {}
        self.ledger = AlertLedger([state_dir / STATE_FILE, (copy_dir or state_dir) / COPY_FILE], clock=clock)
        self._pool: ThreadPoolExecutor | None = None
        self._started_at = 0.0
        self.ready = threading.Event()
        self.poller = Poller(
            config.poll_interval, self._database_changed, failures_to_report=failures_to_report
        )
        self.checker = ProjectChecker(
            lambda: self.config,
            env=self.env,
            poller=self.poller,
            ledger=self.ledger,
            clock=clock,
            pool=lambda: self._pool,
            queue_users=self._queue_users,
            interrupted=self._overtaken,
        )
        self._projects = self.checker.projects
        self._debouncer: Debouncer[CheckKey] = Debouncer(config.debounce, max_delay=_max_delay(config))
        self.worker: CheckWorker[CheckKey] = CheckWorker(self._debouncer, self._run_checks)
        self.watcher: Watcher[CheckKey] | None = None
        self._observer_factory: ObserverFactory = observer_factory or Observer
        self._running = False

    # -- lifecycle -----------------------------------------------------------------------------------------

    def open_ledger(self) -> None:
        """Load the alert ledger and prove it can be saved (LedgerError when no copy can be written)."""
        owed = self.ledger.load()
        self._set_outbox(owed)
        self.ledger.save(required=True)

    def start(self) -> None:
        """Start watching and polling, and queue a full check of every project (opens the ledger first
        unless `open_ledger` was called)."""
        self._started_at = time.monotonic()
        self._running = True
        try:
            if self.ledger.outbox is None:
                self.open_ledger()
            self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="migwatch-read")
            self.watcher = Watcher(
                self.worker.push,
                poll_interval=self.config.poll_interval,
                observer_factory=self._observer_factory,
            )
            self.watcher.start()
            self.worker.start()
            self.poller.start()
            self._schedule_periodic()
        except BaseException:
            self.stop()
            raise
        for project in self.config.projects:
            self.worker.push((project.name, None), delay=0)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop everything and join every thread, within about `timeout` seconds."""
        if not self._running:
            return
        self._running = False
        started = time.monotonic()
        deadline = started + timeout
        if self.watcher is not None:
            self.watcher.stop()
        self.poller.cancel_running()  # a check blocked in a query returns now
        if not self.worker.stop(max(0.1, deadline - time.monotonic() - 0.6)):
            log.warning("a check was still running at shutdown; leaving it behind")
        self.poller.shutdown(max(0.1, deadline - time.monotonic() - 0.4))
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        outbox = self.ledger.outbox
        if outbox is not None:
            outbox.close(timeout=max(0.1, deadline - time.monotonic()))
        self.ledger.save()
        log.debug("stop duration=%.3fs", time.monotonic() - started)

    def run_once(self, wait: float = 30.0) -> list[Finding]:
        """One full check of every project, alerts delivered (for at most `wait` s) and the ledger saved."""
        self.open_ledger()
        self._running = True
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="migwatch-read")
        found: list[Finding] = []
        try:
            for project in self.config.projects:
                found.extend(self._guarded_check(project.name, "once"))
            outbox = self.ledger.outbox
            deadline = time.monotonic() + wait
            while outbox is not None and not outbox.idle() and time.monotonic() < deadline:
                time.sleep(0.05)  # the lanes deliver in their own threads; retries back off
        finally:
            self._running = False
            self.poller.shutdown()
            self._pool.shutdown(wait=True)
            if self.ledger.outbox is not None:
                self.ledger.outbox.close(timeout=STOP_TIMEOUT)
            self.ledger.save()
        return found

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued check has run and every alert is delivered; False on timeout.

        A file change reaches the queue a few milliseconds after the write (inotify): after changing
        files, call `check_now()` first, or wait on a notifier, rather than on this alone.
        """
        deadline = time.monotonic() + timeout
        if not self.worker.wait_idle(timeout):
            return False
        outbox = self.ledger.outbox
        while outbox is not None and not outbox.idle():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def check_now(self, project: str | None = None) -> None:
        """Queue an immediate full check of one project (default: every project)."""
        for name in [p.name for p in self.config.projects if project is None or p.name == project]:
            self.worker.push((name, None), delay=0)

    def poll_now(self) -> None:
        """Poll every database now (in the caller's thread); changes queue checks as usual."""
        self.poller.poll_all()

    def reload(self, config: Config) -> None:
        """Use a new (valid) config: notifiers, intervals and projects; every project is checked again."""
        with self._check_lock:
            old, self.config = self.config, config
            self.poller.set_interval(config.poll_interval)
            self._debouncer.delay = config.debounce
            self._debouncer.max_delay = _max_delay(config)
            if self.watcher is not None:
                self.watcher.poll_interval = config.poll_interval
            if self._injected_notifiers is None and old.notifiers != config.notifiers and self._running:
                owed = self.ledger.outbox.owed() if self.ledger.outbox is not None else {}
                if self.ledger.outbox is not None:
                    self.ledger.outbox.close(timeout=1.0)
                self._set_outbox(owed)
            names = {p.name for p in config.projects}
            for name in [n for n in self._projects if n not in names]:
                self._forget_project(name)
            self.poller.retain({g for state in self._projects.values() for g in state.groups})
            if self._running:
                self._schedule_periodic()
        log.info("reload config=%s projects=%d", config.source, len(config.projects))
        self.check_now()

    # -- checks (worker thread) ----------------------------------------------------------------------------

    def _run_checks(self, keys: list[CheckKey]) -> None:
        """Run the due checks: one full check per project named by the keys, in order."""
        triggers: dict[str, list[str]] = {}
        for project, worktree in keys:
            triggers.setdefault(project, []).append(Path(worktree).name if worktree else "project")
        for project, names in triggers.items():
            if not self._running:
                return
            if self._git_busy(project, [k for k in keys if k[0] == project]):
                continue
            try:
                self._guarded_check(project, ",".join(names))
            finally:
                self._mark_checked(project)
        heap.release_free_memory()  # the check's garbage is freed now; give its pages back

    def _git_busy(self, project: str, keys: list[CheckKey]) -> bool:
        """A git command (a checkout of many files) is still writing a worktree: check once it is done,
        so a storm of file events becomes one check and one notification (within GIT_BUSY_MAX)."""
        state = self._projects.get(project)
        if state is None or not state.checked:
            return False
        named = [wt for _, wt in keys if wt is not None]
        paths = list(state.worktree_groups) if len(named) < len(keys) else named  # None: every worktree
        busy = [p for p in paths if git_busy(Path(p), self.env)]
        if not self._defer(project, bool(busy)):
            return False
        log.debug(
            "check postponed project=%s git_busy=%s",
            project,
            quote_value(",".join(Path(p).name for p in busy)),
        )
        for key in keys:
            self.worker.push(key)
        return True

    def _overtaken(self, name: str, snapshot: ProjectSnapshot) -> bool:
        """Whether what a check read may be half a change: files of the project changed while it ran, or
        git holds a worktree's index lock. Such a check is not concluded and the project is queued again,
        for GIT_BUSY_MAX at most: a never-ending stream of events still gets results."""
        queued = any(key[0] == name for key in self.worker.pending())
        busy = queued or any(git_busy(s.worktree.path, self.env) for s in snapshot.worktrees)
        if not self._defer(name, busy):
            return False
        self.worker.push((name, None))  # the whole project again, as this check would have been
        return True

    def _defer(self, project: str, busy: bool) -> bool:
        """Whether to put off the project's check or its conclusion: while `busy`, for GIT_BUSY_MAX at
        most since the first time (a stale index lock, a never-ending stream of events)."""
        now = time.monotonic()
        if not busy or now - self._busy_since.setdefault(project, now) > GIT_BUSY_MAX:
            self._busy_since.pop(project, None)
            return False
        return True

    def _guarded_check(self, name: str, trigger: str) -> list[Finding]:
        """A check that never raises: an unexpected error is logged and becomes a finding of its own."""
        try:
            with self._check_lock:
                found, snapshot = self.checker.check(name, trigger)
                if snapshot is not None:
                    self._update_watches(name, snapshot)
            return found
        except Exception as exc:  # one failing project must not stop the others
            log.error("check failed project=%s error=%s", name, quote_value(alerts.printable(one_line(exc))))
            log.debug("check failed project=%s", name, exc_info=True)
            project = next((p for p in self.config.projects if p.name == name), None)
            if project is None:
                return []
            finding = unlisted_project(name, project.repo, one_line(exc))
            with self._check_lock:
                self.checker.conclude(
                    name, [finding], lambda key: key[0] == "discovery" and key[3] is None, False
                )
            return [finding]

    def _mark_checked(self, name: str) -> None:
        """After the first check of every project: log `ready` and call `on_ready` (once)."""
        with self._check_lock:
            self._projects.setdefault(name, ProjectState()).checked = True
        names = {p.name for p in self.config.projects}
        if self.ready.is_set() or not all(self._projects.get(n, ProjectState()).checked for n in names):
            return
        worktrees = sum(len(s.worktree_groups) for s in self._projects.values())
        log.info(
            "ready projects=%d worktrees=%d databases=%d duration=%.3fs",
            len(names),
            worktrees,
            len(self.poller.groups()),
            time.monotonic() - self._started_at,
        )
        self.ready.set()
        if self._on_ready is not None:
            self._on_ready()

    def _forget_project(self, name: str) -> None:
        """A project left the config: stop watching it and drop its open alerts without notifications."""
        self._projects.pop(name, None)
        if self.watcher is not None:
            self.watcher.remove(name)
        self.ledger.forget_project(name)

    # -- events --------------------------------------------------------------------------------------------

    def _database_changed(self, group: str) -> None:
        """Poller callback: re-check every worktree that uses the database."""
        self._queue_users(group, skip=None)

    def _queue_users(self, group: str, skip: str | None) -> None:
        for name, state in list(self._projects.items()):
            if name == skip or group not in state.groups:
                continue
            keys: list[CheckKey] = [(name, wt) for wt, g in state.worktree_groups.items() if g == group]
            for key in keys or [(name, None)]:
                self.worker.push(key)

    def _update_watches(self, name: str, snapshot: ProjectSnapshot) -> None:
        if self.watcher is None:
            return
        pairs: list[tuple[WatchTarget[CheckKey], Path]] = []
        for worktree in snapshot.worktrees:
            pairs += setup_targets((name, str(worktree.worktree.path)), worktree.setup, self.env)
        common = self._common_dir(name, snapshot.repo)
        if common is not None:
            project_key: CheckKey = (name, None)
            pairs += [(t, common) for t in repository_targets(project_key, common)]
        # A file may have changed between this check reading it and its watch starting (at start-up, or
        # when a folder reappears): look once more at every worktree whose watch is new.
        for key in self.watcher.update(name, pairs):
            self.worker.push(key)

    def _common_dir(self, name: str, repo: Path) -> Path | None:
        if name not in self._common_dirs:
            try:
                self._common_dirs[name] = gitio.common_dir(repo, env=self.env)
            except gitio.GitError as exc:
                log.debug("no git common dir for %s: %s", repo, exc)
                return None
        return self._common_dirs[name]

    # -- helpers -------------------------------------------------------------------------------------------

    def _set_outbox(self, owed: Mapping[str, Sequence[alerts.Alert]]) -> None:
        if self._injected_notifiers is not None:
            notifiers: list[Notifier] = list(self._injected_notifiers)
        else:
            settings = self.config.notifiers
            notifiers = build_notifiers(
                desktop=settings.desktop,
                command_argv=settings.command_argv,
                command_timeout=settings.command_timeout,
            )
        outbox = Outbox(notifiers, on_change=self.ledger.save)
        outbox.restore(owed)
        self.ledger.outbox = outbox
        outbox.start()

    def _schedule_periodic(self) -> None:
        remind = self.config.remind_after
        every = min(PERIODIC_CHECK, remind) if remind > 0 else PERIODIC_CHECK
        self.poller.every("periodic-check", max(every, self.config.poll_interval), self.check_now)


def _max_delay(config: Config) -> float:
    # A never-ending stream of events (a long `git checkout`, a build) still gets checked now and then.
    return max(2.0, config.debounce * 10)
