"""File watching (SPEC §8): watchdog observers that only enqueue, a per-key debouncer, and one check worker.

The pieces, from the file system inward:

- `WatchTarget`: what one worktree (or repository) wants watched, computed from what discovery found.
- `Watcher`: keeps watchdog watches in line with the targets; its handlers only push a key.
- `Debouncer`: pure deadline bookkeeping with an injected clock; every push moves the key's deadline.
- `CheckWorker`: one thread that waits for the earliest deadline and runs the due checks one at a time.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from migwatch.logsetup import quote_value
from migwatch.watchtargets import WatchTarget

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# Only changes: opening or reading a file (our own checks do that) must never queue a check. Attribute
# changes count: `chmod 000` makes a migration unreadable without touching its content.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileAttribEvent,
    DirAttribEvent,
    FileCreatedEvent,
    DirCreatedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileModifiedEvent,
    DirModifiedEvent,
    FileMovedEvent,
    DirMovedEvent,
]
_CHANGE_TYPES = frozenset({"created", "deleted", "modified", "moved", "attrib"})


# ------------------------------------------------------------------------------------------ debouncing


class Debouncer(Generic[K]):
    """Deadlines per key: `push` sets a key due `delay` seconds from now (later pushes move it back).

    `max_delay` bounds how long a never-ending stream of events can postpone a key. Not thread-safe:
    `CheckWorker` guards it with its condition.
    """

    def __init__(
        self, delay: float, *, max_delay: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.delay = delay
        self.max_delay = max_delay
        self.clock = clock
        self._due: dict[K, float] = {}
        self._first: dict[K, float] = {}

    def push(self, key: K, *, delay: float | None = None) -> None:
        """Make `key` due `delay` seconds (default: the debounce delay) from now.

        A key that is already due stays due: a late event cannot postpone a check about to run.
        """
        now = self.clock()
        first = self._first.setdefault(key, now)
        deadline = now + (self.delay if delay is None else delay)
        if self.max_delay is not None:
            deadline = min(deadline, first + self.max_delay)
        current = self._due.get(key)
        if current is None or current > now:
            self._due[key] = deadline

    def pop_due(self) -> list[K]:
        """The keys whose deadline has passed, earliest first; they are forgotten."""
        now = self.clock()
        due = sorted((deadline, index, key) for index, (key, deadline) in enumerate(self._due.items()))
        out = [key for deadline, _, key in due if deadline <= now]
        for key in out:
            del self._due[key]
            self._first.pop(key, None)
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline, or None when nothing is pending."""
        return min(self._due.values(), default=None)

    def pending(self) -> frozenset[K]:
        """Keys waiting for their deadline."""
        return frozenset(self._due)

    def __len__(self) -> int:
        return len(self._due)


class CheckWorker(Generic[K]):
    """One thread that runs the due keys of a `Debouncer`, one batch at a time, never concurrently.

    `run` receives the keys that became due together; an exception in it is logged and the worker goes on.
    """

    def __init__(
        self, debouncer: Debouncer[K], run: Callable[[list[K]], None], *, name: str = "migwatch-check"
    ) -> None:
        self._debouncer = debouncer
        self._run = run
        self._name = name
        self._cond = threading.Condition()
        self._running = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0  # batches run so far (for tests and the demo)

    def push(self, key: K, *, delay: float | None = None) -> None:
        """Queue `key` (debounced); safe from any thread, including watchdog's."""
        with self._cond:
            self._debouncer.push(key, delay=delay)
            self._cond.notify_all()

    def pending(self) -> frozenset[K]:
        """Keys queued and not yet due; safe from any thread."""
        with self._cond:
            return self._debouncer.pending()

    def poke(self) -> None:
        """Re-evaluate deadlines now (a test's fake clock moved)."""
        with self._cond:
            self._cond.notify_all()

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop after the running batch (if any); False when it did not finish within `timeout`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running or len(self._debouncer):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    return False
                self._cond.wait(remaining)
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                due: list[K] = []
                while not self._stopping:
                    due = self._debouncer.pop_due()
                    if due:
                        break
                    deadline = self._debouncer.next_deadline()
                    timeout = None if deadline is None else max(0.0, deadline - self._debouncer.clock())
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                self._running = True
            try:
                self._run(due)
            except Exception as exc:
                log.error("check failed: %s", " ".join(str(exc).split()) or type(exc).__name__)
                log.debug("check failed", exc_info=True)
            finally:
                with self._cond:
                    self._running = False
                    self.batches += 1
                    self._cond.notify_all()


# ------------------------------------------------------------------------------------------- watching


class ObserverFactory(Protocol):
    def __call__(self) -> BaseObserver: ...


@dataclass(frozen=True)
class _Route(Generic[K]):
    key: K
    names: frozenset[str] | None
    owner: Hashable  # the target owner (worktree key), for the fallback warning


class _Router(FileSystemEventHandler, Generic[K]):
    """The handler of one scheduled watch: turns events into keys. It only enqueues, and never raises."""

    def __init__(self, path: Path, recursive: bool, push: Callable[[K], None]) -> None:
        super().__init__()
        self.path = path
        self.recursive = recursive
        self.routes: tuple[_Route[K], ...] = ()
        self.dead = False  # the watched folder itself was deleted: watchdog stopped the watch
        self._push = push

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            if event.event_type not in _CHANGE_TYPES:
                return
            paths = [os.fsdecode(event.src_path)]
            if event.event_type == "moved" and event.dest_path:
                paths.append(os.fsdecode(event.dest_path))
            watched = str(self.path)
            if event.event_type == "deleted" and paths[0] == watched:
                self.dead = True
            for route in self.routes:
                if route.names is None or any(self._matches(p, watched, route.names) for p in paths):
                    self._push(route.key)
        except Exception:  # an exception here would silently kill watchdog's observer thread
            log.debug("watch event for %s could not be routed", self.path, exc_info=True)

    @staticmethod
    def _matches(path: str, watched: str, names: frozenset[str]) -> bool:
        parent, _, name = path.rpartition(os.sep)
        return parent == watched and any(fnmatch.fnmatchcase(name, pattern) for pattern in names)


_WatchId = tuple[Path, bool]


@dataclass
class _Scheduled(Generic[K]):
    router: _Router[K]
    watch: ObservedWatch
    observer: BaseObserver
    polling: bool


class Watcher(Generic[K]):
    """Keeps watchdog watches equal to the wanted targets; events push keys through `on_event`.

    A target whose folder is missing is watched through its nearest existing ancestor (inside `root`),
    so a deleted and recreated folder is seen again. When the native observer cannot schedule a watch
    (inotify limit, permissions), that folder is polled every `poll_interval` instead, with one warning.
    """

    def __init__(
        self,
        on_event: Callable[[K], None],
        *,
        poll_interval: float,
        observer_factory: ObserverFactory = Observer,
        fallback_factory: Callable[[float], BaseObserver] | None = None,
    ) -> None:
        self._on_event = on_event
        self.poll_interval = poll_interval
        self._observer_factory = observer_factory
        self._fallback_factory = fallback_factory or (lambda interval: PollingObserver(timeout=interval))
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None
        self._fallback: BaseObserver | None = None
        self._targets: dict[Hashable, list[tuple[WatchTarget[K], Path]]] = {}  # group → (target, root)
        self._scheduled: dict[_WatchId, _Scheduled[K]] = {}
        self._warned: set[Hashable] = set()
        self._started = False

    def start(self) -> None:
        """Start the native observer (watches are added by `update`)."""
        with self._lock:
            self._observer = self._observer_factory()
            self._observer.start()
            self._started = True

    def stop(self) -> None:
        """Stop and join every observer thread."""
        with self._lock:
            self._started = False
            observers = [o for o in (self._observer, self._fallback) if o is not None]
            self._observer = self._fallback = None
            self._scheduled.clear()
        for observer in observers:
            observer.stop()
        for observer in observers:
            observer.join()

    def update(self, group: Hashable, targets: Sequence[tuple[WatchTarget[K], Path]]) -> set[K]:
        """Replace the targets of `group` (each with the root no fallback watch may climb above);
        returns the keys that gained a watch they did not have (the caller re-checks those)."""
        with self._lock:
            self._targets[group] = list(targets)
            return self._reconcile()

    def refresh(self) -> set[K]:
        """Re-resolve every target (folders may have appeared or gone); returns keys that gained a watch."""
        with self._lock:
            return self._reconcile()

    def remove(self, group: Hashable) -> None:
        """Forget the targets of `group`."""
        with self._lock:
            self._targets.pop(group, None)
            self._reconcile()

    def watched_paths(self) -> dict[Path, bool]:
        """Currently scheduled folders → recursive (for tests and `status`)."""
        with self._lock:
            return {path: recursive for path, recursive in self._scheduled}

    def polling_paths(self) -> set[Path]:
        """Folders that fell back to polling."""
        with self._lock:
            return {path for (path, _), entry in self._scheduled.items() if entry.polling}

    # -- internals (called with the lock held) -------------------------------------------------------------

    def _reconcile(self) -> set[K]:
        if not self._started:
            return set()
        wanted: dict[_WatchId, list[_Route[K]]] = {}
        for owner, pairs in self._targets.items():
            for target, root in pairs:
                resolved = _resolve(target, root)
                if resolved is None:
                    continue
                path, recursive, names = resolved
                wanted.setdefault((path, recursive), []).append(_Route(target.key, names, owner))
        gained: set[K] = set()
        for watch_id in [w for w in self._scheduled if w not in wanted or self._scheduled[w].router.dead]:
            self._unschedule(watch_id)
        for watch_id, routes in wanted.items():
            entry = self._scheduled.get(watch_id)
            if entry is None:
                entry = self._schedule(watch_id, routes)
                if entry is None:
                    continue
                self._scheduled[watch_id] = entry
                old_keys: set[K] = set()
            else:
                old_keys = {route.key for route in entry.router.routes}
            entry.router.routes = tuple(routes)
            gained |= {route.key for route in routes} - old_keys
        return gained

    def _schedule(self, watch_id: _WatchId, routes: list[_Route[K]]) -> _Scheduled[K] | None:
        path, recursive = watch_id
        router: _Router[K] = _Router(path, recursive, self._on_event)
        assert self._observer is not None
        try:
            watch = self._observer.schedule(router, str(path), recursive=recursive, event_filter=EVENT_FILTER)
            return _Scheduled(router, watch, self._observer, polling=False)
        except OSError as exc:
            reason = exc.strerror or str(exc)
        if not path.is_dir():
            return None  # it vanished between the check and now; the next reconcile sees its parent
        owners = {route.owner for route in routes}
        for owner in owners - self._warned:
            self._warned.add(owner)
            log.warning(
                "watch failed path=%s error=%s; polling every %gs instead",
                path,
                quote_value(reason),
                self.poll_interval,
            )
        if self._fallback is None:
            self._fallback = self._fallback_factory(self.poll_interval)
            self._fallback.start()
        try:
            watch = self._fallback.schedule(router, str(path), recursive=recursive, event_filter=EVENT_FILTER)
        except OSError as exc:
            log.warning("polling failed path=%s error=%s", path, quote_value(exc.strerror or str(exc)))
            return None
        return _Scheduled(router, watch, self._fallback, polling=True)

    def _unschedule(self, watch_id: _WatchId) -> None:
        entry = self._scheduled.pop(watch_id)
        entry.router.routes = ()
        try:
            entry.observer.unschedule(entry.watch)
        except (KeyError, OSError):
            log.debug("watch on %s was already gone", watch_id[0])


def _resolve(target: WatchTarget[K], root: Path) -> tuple[Path, bool, frozenset[str] | None] | None:
    """The folder to watch for `target`: itself if it exists, else its nearest existing ancestor inside
    `root` (non-recursive, seeing only the next missing component appear)."""
    path = target.path
    if path.is_dir():
        return path, target.recursive, target.names
    child = path
    parent = path.parent
    while True:
        if not _within(parent, root):
            return None
        if parent.is_dir():
            return parent, False, frozenset({child.name})
        if parent == parent.parent:
            return None
        child, parent = parent, parent.parent


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
