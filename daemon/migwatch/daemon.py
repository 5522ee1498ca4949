"""`migwatch run` (SPEC §8): the daemon that wires the watcher, the database poller, one check worker,
the alert state machine and the notifiers.

Threads: watchdog's observer threads and the poller's APScheduler threads only queue check keys; one
worker thread runs the checks one at a time, so the alert state, the dispatcher and the per-project
bookkeeping are only ever touched by that worker (and by `reload`/`stop`, under the same lock).

Database histories come from the poller: a check first refreshes each database it uses with the cheap
fingerprint query (so it never judges fresh files against rows older than the files), and reads the
rows only when they changed. A failing database is not reported until `failures_to_report` polls in a
row failed; until then its worktrees keep the findings they had (nothing is resolved by an outage).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import TextIO

from watchdog.observers import Observer

from migwatch import __version__, alerts, alertstore
from migwatch import git as gitio
from migwatch.config import Config, ConfigError, load_config
from migwatch.diagnose import ProjectSnapshot, group_of, unlisted_project
from migwatch.logsetup import (
    add_file_log,
    configure_stderr,
    default_log_file,
    default_state_dir,
    key_values,
    one_line,
    quote_value,
)
from migwatch.migrations import ChecksumCache
from migwatch.model import Finding, Severity
from migwatch.notify.base import Notifier
from migwatch.notify.dispatch import Dispatcher, build_notifiers
from migwatch.pipeline import WORKERS, CheckOptions, diagnose_project, snapshot_project
from migwatch.scheduler import FAILURES_TO_REPORT, DatabaseView, Poller
from migwatch.sdnotify import SystemdNotifier, WatchdogPinger
from migwatch.watcher import (
    CheckWorker,
    Debouncer,
    ObserverFactory,
    Watcher,
    WatchTarget,
    repository_targets,
    worktree_targets,
)

log = logging.getLogger(__name__)

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
LOCK_FILE = "daemon.lock"
STOP_TIMEOUT = 2.0
PERIODIC_CHECK = 600.0  # a full check now and then: reminders, and anything no watch can see

# (project name, worktree path); worktree None = the whole project, worktrees re-listed.
CheckKey = tuple[str, str | None]
FindingKey = tuple[str, str, str | None, str | None, str | None]


class LockError(Exception):
    """Another `migwatch run` holds the state dir."""


class StateLock:
    """An exclusive `flock` on `<state dir>/daemon.lock`, holding this process's pid."""

    def __init__(self, state_dir: Path, fd: int) -> None:
        self.state_dir = state_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        """Take the lock or raise LockError naming the state dir and the holder's pid."""
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise LockError(f"another migwatch run is already using {state_dir} (pid {holder})") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return cls(state_dir, fd)

    def release(self) -> None:
        """Unlock (the file stays; the next holder overwrites the pid)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def state_dir_from(env: Mapping[str, str]) -> Path:
    """$MIGWATCH_STATE_DIR, else the platform state folder."""
    configured = env.get("MIGWATCH_STATE_DIR")
    return Path(configured).expanduser().absolute() if configured else default_state_dir()


@dataclass
class _ProjectState:
    """What the worker remembers about one project between checks."""

    groups: set[str] = field(default_factory=set)  # databases it uses (poller group keys)
    worktree_groups: dict[str, str] = field(default_factory=dict)  # worktree path → group
    findings: dict[FindingKey, Finding] = field(default_factory=dict)  # last check's, for the log
    checked: bool = False


class Daemon:
    """The running service. `start()` returns at once; `on_ready` is called after the first full check.

    Inject what varies: `notifiers` (default: from the config, the log notifier first), `env` (for
    discovery and git), `clock` (unix seconds, for the alert state), `observer_factory` (watchdog).
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
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        self._clock = clock
        self._on_ready = on_ready
        self._injected_notifiers = list(notifiers) if notifiers is not None else None
        self._check_lock = threading.RLock()
        self._projects: dict[str, _ProjectState] = {}
        self._common_dirs: dict[str, Path] = {}
        self._state = alerts.AlertState()
        self._dispatcher: Dispatcher | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._cache: ChecksumCache | None = None
        self._started_at = 0.0
        self.ready = threading.Event()
        self.poller = Poller(
            config.poll_interval, self._database_changed, failures_to_report=failures_to_report
        )
        self._debouncer: Debouncer[CheckKey] = Debouncer(config.debounce, max_delay=_max_delay(config))
        self.worker: CheckWorker[CheckKey] = CheckWorker(self._debouncer, self._run_checks)
        self.watcher: Watcher[CheckKey] | None = None
        self._observer_factory: ObserverFactory | None = observer_factory
        self._running = False

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the alert state, start watching and polling, and queue a full check of every project."""
        self._started_at = time.monotonic()
        self._running = True
        try:
            self._state = alertstore.load_state(self.state_dir)
            self._cache = ChecksumCache()
            self._dispatcher = self._build_dispatcher()
            self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="migwatch-read")
            self.watcher = Watcher(
                self.worker.push,
                poll_interval=self.config.poll_interval,
                observer_factory=self._observer_factory or Observer,
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
        deadline = time.monotonic() + timeout
        if self.watcher is not None:
            self.watcher.stop()
        if not self.worker.stop(max(0.1, deadline - time.monotonic() - 0.3)):
            log.warning("a check was still running at shutdown; leaving it behind")
        self.poller.shutdown()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._dispatcher is not None:
            self._dispatcher.close(timeout=max(0.1, deadline - time.monotonic()))

    def run_once(self) -> list[Finding]:
        """One full check of every project, alerts delivered and state saved, then everything closed."""
        self._state = alertstore.load_state(self.state_dir)
        self._cache = ChecksumCache()
        self._dispatcher = self._build_dispatcher()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="migwatch-read")
        found: list[Finding] = []
        try:
            for project in self.config.projects:
                try:
                    found.extend(self._check_project(project.name, "once"))
                except Exception as exc:  # reported like any finding: the other projects still run
                    log.error("check failed project=%s error=%s", project.name, quote_value(one_line(exc)))
                    log.debug("check failed project=%s", project.name, exc_info=True)
                    found.append(unlisted_project(project.name, project.repo, one_line(exc)))
        finally:
            self.poller.shutdown()
            self._pool.shutdown(wait=True)
            self._dispatcher.close()
        return found

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued check has run; False on timeout.

        A file change reaches the queue a few milliseconds after the write (inotify): after changing
        files, call `check_now()` first, or wait on a notifier, rather than on this alone.
        """
        return self.worker.wait_idle(timeout)

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
                if self._dispatcher is not None:
                    self._dispatcher.close(timeout=1.0)
                self._dispatcher = self._build_dispatcher()
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
            try:
                self._check_project(project, ",".join(names))
            except Exception as exc:  # one failing project must not stop the others
                log.error("check failed project=%s error=%s", project, quote_value(one_line(exc)))
                log.debug("check failed project=%s", project, exc_info=True)
            finally:
                self._mark_checked(project)

    def _check_project(self, name: str, trigger: str) -> list[Finding]:
        with self._check_lock:
            project = next((p for p in self.config.projects if p.name == name), None)
            if project is None:
                return []
            started = time.monotonic()
            state = self._projects.setdefault(name, _ProjectState())
            views: dict[str, DatabaseView] = {}
            for group in sorted(state.groups):
                view, changed = self.poller.poll(group, notify=False)
                if view is not None:
                    views[group] = view
                    if changed:
                        self._queue_users(group, skip=name)
            options = CheckOptions(env=self.env, read_history=self.poller.first_read, cache=self._cache)
            assert self._pool is not None
            try:
                snapshot = snapshot_project(
                    project, options, self._pool, histories={g: v.history for g, v in views.items()}
                )
            except gitio.GitError as exc:
                finding = unlisted_project(name, project.repo, str(exc))
                self._conclude(name, [finding], lambda key: key[0] == "discovery" and key[3] is None, False)
                return [finding]
            now = datetime.fromtimestamp(self._clock(), timezone.utc)
            verdicts, found = diagnose_project(snapshot, self.env, now)
            del verdicts
            database_ids: dict[str, str] = {}
            worktree_groups: dict[str, str] = {}
            for worktree in snapshot.worktrees:
                used = group_of(worktree)
                if used is not None and worktree.setup.database is not None:
                    database_ids[worktree.setup.database.id] = used
                    worktree_groups[str(worktree.worktree.path)] = used
            for used, history in snapshot.histories.items():
                database_ids[history.database.id] = used
            state.groups = set(snapshot.histories)
            state.worktree_groups = worktree_groups
            self.poller.retain({g for s in self._projects.values() for g in s.groups})
            for group in state.groups:
                view = self.poller.view(group)
                if view is not None:
                    views[group] = view
            found, scope = _outage_rules(
                name, found, {g: views[g] for g in state.groups if g in views}, database_ids
            )
            hold = any(views[g].lock_held for g in state.groups if g in views)
            alerted = self._conclude(name, found, scope, hold)
            self._update_watches(name, snapshot)
            log.debug(
                "check project=%s trigger=%s worktrees=%d findings=%d alerts=%d duration=%.3fs",
                name,
                trigger,
                len(snapshot.worktrees),
                len(found),
                alerted,
                time.monotonic() - started,
            )
        return found

    def _conclude(
        self, name: str, found: list[Finding], scope: Callable[[FindingKey], bool], hold: bool
    ) -> int:
        """Log what changed, run the alert state machine, deliver, persist; returns the alert count."""
        state = self._projects.setdefault(name, _ProjectState())
        current = {f.key: f for f in found}
        for key, finding in current.items():
            if key not in state.findings:
                log.info("finding new %s", _finding_fields(finding, with_fix=True))
        for key, finding in state.findings.items():
            if key not in current and scope(key):
                log.info("finding gone %s", _finding_fields(finding, with_fix=False))
        state.findings = {k: f for k, f in state.findings.items() if not scope(k)} | current
        policy = alerts.AlertPolicy(
            remind_after=self.config.remind_after,
            notify_resolved=self.config.notify_resolved,
            alert_codes=self.config.alert_codes,
            hold_transient=hold,
        )
        new_state, to_send = alerts.update(
            self._state,
            found,
            self._clock(),
            policy,
            scope=lambda key: key[1] == name and scope(key),
        )
        if to_send and self._dispatcher is not None:
            self._dispatcher.deliver(to_send)
        if new_state.records != self._state.records:
            try:
                alertstore.save_state(self.state_dir, new_state)
            except OSError as exc:
                log.error("cannot save the alert state in %s: %s", self.state_dir, exc.strerror or exc)
        self._state = new_state
        return len(to_send)

    def _mark_checked(self, name: str) -> None:
        """After the first check of every project: log `ready` and call `on_ready` (once)."""
        with self._check_lock:
            self._projects.setdefault(name, _ProjectState()).checked = True
        names = {p.name for p in self.config.projects}
        if self.ready.is_set() or not all(self._projects.get(n, _ProjectState()).checked for n in names):
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
        records = {k: r for k, r in self._state.records.items() if k[1] != name}
        if len(records) != len(self._state.records):
            self._state = alerts.AlertState(records=records)
            with contextlib.suppress(OSError):
                alertstore.save_state(self.state_dir, self._state)

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
            path = worktree.worktree.path
            setup = worktree.setup
            key: CheckKey = (name, str(path))
            targets = worktree_targets(
                key,
                worktree=path,
                package_dir=setup.package_dir,
                schema_path=setup.schema_path,
                migrations_dir=setup.migrations_dir,
                git_dir=_git_dir_of(path, self.env),
            )
            pairs += [(t, path if _inside(t.path, path) else t.path) for t in targets]
        common = self._common_dir(name, snapshot.repo)
        if common is not None:
            project_key: CheckKey = (name, None)
            pairs += [(t, common) for t in repository_targets(project_key, common)]
        gained = self.watcher.update(name, pairs)
        # A file may have changed between this check reading it and its watch starting (at start-up, or
        # when a folder reappears): look once more at every worktree whose watch is new.
        for key in gained:
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

    def _build_dispatcher(self) -> Dispatcher:
        if self._injected_notifiers is not None:
            return Dispatcher(self._injected_notifiers)
        settings = self.config.notifiers
        return Dispatcher(
            build_notifiers(
                desktop=settings.desktop,
                command_argv=settings.command_argv,
                command_timeout=settings.command_timeout,
            )
        )

    def _schedule_periodic(self) -> None:
        remind = self.config.remind_after
        every = min(PERIODIC_CHECK, remind) if remind > 0 else PERIODIC_CHECK
        self.poller.every("periodic-check", max(every, self.config.poll_interval), self.check_now)


def _max_delay(config: Config) -> float:
    # A never-ending stream of events (a long `git checkout`, a build) still gets checked now and then.
    return max(2.0, config.debounce * 10)


def _outage_rules(
    project: str,
    found: list[Finding],
    views: Mapping[str, DatabaseView],
    database_ids: Mapping[str, str],
) -> tuple[list[Finding], Callable[[FindingKey], bool]]:
    """Findings and scope while a database is failing (SPEC §8: unreachable after N failed polls).

    - never read and failing, not yet reported: no `database_unreachable` yet, and its keys are frozen;
    - reported down: `database_unreachable` is in scope, the worktree findings it hides stay open.
    """
    unread = {g for g, v in views.items() if v.status == "uncertain" and not v.history.reachable}
    down = {g for g, v in views.items() if v.status == "down"}
    frozen_ids = {db_id for db_id, g in database_ids.items() if g in unread | down}
    down_ids = {db_id for db_id, g in database_ids.items() if g in down}
    kept = [
        f for f in found if not (f.code == "database_unreachable" and f.database in frozen_ids - down_ids)
    ]

    def scope(key: FindingKey) -> bool:
        code, _, database, _, _ = key
        if database not in frozen_ids:
            return True
        return code == "database_unreachable" and database in down_ids

    del project
    return kept, scope


def _finding_fields(finding: Finding, *, with_fix: bool) -> str:
    fields: list[tuple[str, object]] = [
        ("code", finding.code),
        ("severity", finding.severity.value),
        ("project", finding.project),
        ("worktree", finding.worktree),
        ("database", finding.database),
        ("migration", finding.migration),
    ]
    if with_fix:
        fields += [("message", finding.message), ("fix", finding.fix.headline)]
    return key_values(fields)


def _git_dir_of(worktree: Path, env: Mapping[str, str]) -> Path | None:
    """The worktree's own git dir: `.git` itself, or where its `.git` file points (no git process)."""
    dotgit = worktree / ".git"
    try:
        if dotgit.is_dir():
            return dotgit
        text = dotgit.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if text.startswith("gitdir:"):
        target = Path(text.split(":", 1)[1].strip())
        return target if target.is_absolute() else (worktree / target).resolve()
    try:
        return gitio.git_dir(worktree, env=env)
    except gitio.GitError:
        return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


# ------------------------------------------------------------------------------------------ `migwatch run`


def run_command(config_path: Path, *, once: bool, verbose: bool, out: TextIO) -> int:
    """`migwatch run [--once]`: the daemon in the foreground (or one cycle); returns the exit code."""
    env = dict(os.environ)
    config = load_config(config_path, env)  # ConfigError: cli prints every line, exit 2
    state_dir = state_dir_from(env)
    try:
        lock = StateLock.acquire(state_dir)
    except LockError as exc:
        sys.stderr.write(f"migwatch: {exc}\n")
        return EXIT_USAGE
    handler = _configure_logging(config, verbose)
    try:
        log.info(
            "start version=%s pid=%d config=%s state_dir=%s projects=%d%s",
            __version__,
            os.getpid(),
            config.source or config_path,
            state_dir,
            len(config.projects),
            " once=true" if once else "",
        )
        if once:
            return _run_once(config, state_dir, env, out)
        return _run_forever(config, config_path, state_dir, env, handler, verbose)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        lock.release()


def _run_once(config: Config, state_dir: Path, env: Mapping[str, str], out: TextIO) -> int:
    daemon = Daemon(config, state_dir=state_dir, env=env, failures_to_report=1)
    found = daemon.run_once()
    problems = [f for f in found if f.severity in (Severity.ERROR, Severity.WARNING)]
    log.info("once findings=%d problems=%d", len(found), len(problems))
    del out
    return EXIT_PROBLEMS if problems else EXIT_OK


def _run_forever(
    config: Config,
    config_path: Path,
    state_dir: Path,
    env: Mapping[str, str],
    handler: logging.Handler,
    verbose: bool,
) -> int:
    events: queue.SimpleQueue[str | int] = queue.SimpleQueue()  # put() is safe in a signal handler

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        events.put(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    systemd = SystemdNotifier(env)
    interval = systemd.watchdog_interval()
    pinger = WatchdogPinger(systemd, interval) if interval else None
    daemon = Daemon(config, state_dir=state_dir, env=env, on_ready=lambda: events.put("ready"))
    try:
        daemon.start()
        if pinger is not None:
            pinger.start()
        while True:
            event = events.get()
            if event == "ready":
                systemd.ready(f"watching {len(daemon.config.projects)} project(s)")
            elif event == signal.SIGHUP:
                handler = _reload(daemon, config_path, env, handler, verbose)
            else:
                log.info("stop signal=%s", signal.Signals(int(event)).name)
                break
    finally:
        systemd.stopping()
        if pinger is not None:
            pinger.stop()
        daemon.stop()
        for sig, action in previous.items():
            signal.signal(sig, action)
        log.info("stopped")
    return EXIT_OK


def _reload(
    daemon: Daemon, config_path: Path, env: Mapping[str, str], handler: logging.Handler, verbose: bool
) -> logging.Handler:
    """SIGHUP: load the config again; an invalid one keeps the running config and logs every error."""
    try:
        config = load_config(config_path, env)
    except ConfigError as exc:
        for line in exc.lines():
            log.error("reload failed: %s", line)
        log.error("reload failed: keeping the running config")
        return handler
    if config.log != daemon.config.log:
        logging.getLogger().removeHandler(handler)
        handler.close()
        handler = add_file_log(
            config.log.file or default_log_file(), "debug" if verbose else config.log.level
        )
    daemon.reload(config)
    return handler


def _configure_logging(config: Config, verbose: bool) -> logging.Handler:
    """stderr: warnings (everything with -v); the log file: the configured level (debug with -v)."""
    configure_stderr(verbose)
    for existing in logging.getLogger().handlers:
        existing.setLevel(logging.DEBUG if verbose else logging.WARNING)
    return add_file_log(config.log.file or default_log_file(), "debug" if verbose else config.log.level)
