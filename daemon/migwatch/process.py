"""Process set-up of `migwatch run`: signals, the state-dir lock, logging, sd_notify, and the main loop.

Signal handlers are installed before anything slow, so SIGTERM in the first second is still a clean
exit 0. Every start-up failure that is the user's to fix (a log or state folder that cannot be
written, another `run` holding the state dir) is one line and exit 2: systemd's unit stops
restarting on exit 2 only.
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
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TextIO

from migwatch import __version__, heap
from migwatch.config import Config, ConfigError, load_config
from migwatch.daemon import Daemon
from migwatch.entry import EARLY_EVENTS, early_handlers_installed
from migwatch.ledger import LedgerError
from migwatch.logsetup import (
    add_file_log,
    configure_stderr,
    default_log_file,
    default_state_dir,
    open_private,
    private_dir,
)
from migwatch.model import Severity
from migwatch.sdnotify import SystemdNotifier, WatchdogPinger

log = logging.getLogger(__name__)

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
LOCK_FILE = "daemon.lock"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Events = queue.SimpleQueue[str | int]  # put() is safe in a signal handler
# The kernel may deliver SIGTERM to any thread. Python runs its handler in the main thread, but only once
# that thread runs bytecode again: an untimed get() blocked in sem_wait is not woken when another thread
# took the signal, and the daemon would never stop. A timed wait returns, the handler runs, the event
# arrives. Once a second: each wake-up costs an idle laptop power (and this wait is only the fallback
# for a signal that landed on another thread; the main thread's own signals wake it at once).
SIGNAL_POLL_S = 1.0


class StartupError(Exception):
    """A start-up problem the user fixes (one line, exit 2)."""


class LockError(StartupError):
    """Another `migwatch run` holds the state dir."""


class StateLock:
    """An exclusive `flock` on `<state dir>/daemon.lock` (0600), holding this process's pid."""

    def __init__(self, state_dir: Path, fd: int) -> None:
        self.state_dir = state_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        """Take the lock or raise LockError naming the state dir and the holder's pid."""
        try:
            fd = open_private(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StartupError(f"cannot use the state folder {state_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise LockError(f"another migwatch run is already using {state_dir} (pid {holder})") from None
            raise StartupError(f"cannot lock {state_dir / LOCK_FILE}: {exc.strerror or exc}") from None
        with contextlib.suppress(OSError):  # a read-only state folder is reported by the ledger's check
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


@contextlib.contextmanager
def signals_queued() -> Iterator[Events]:
    """SIGTERM, SIGINT and SIGHUP become events on the returned queue (the previous handlers come back
    after). The queue is the entry point's when it installed its handlers already (signals that
    arrived during start-up are kept)."""
    if early_handlers_installed():
        yield EARLY_EVENTS
        return
    events: Events = queue.SimpleQueue()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        events.put(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (*STOP_SIGNALS, signal.SIGHUP)}
    try:
        yield events
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)


def run_command(config_path: Path, *, once: bool, verbose: bool, out: TextIO) -> int:
    """`migwatch run [--once]`: the daemon in the foreground (or one cycle); returns the exit code."""
    del out
    heap.limit_arenas()  # before any thread starts
    with signals_queued() as events:
        env = dict(os.environ)
        config = load_config(config_path, env)  # ConfigError: cli prints every line, exit 2
        state_dir = state_dir_from(env)
        try:
            private_dir(state_dir)
        except OSError as exc:
            return _startup_failed(f"cannot create the state folder {state_dir}: {exc.strerror or exc}")
        try:
            lock = StateLock.acquire(state_dir)
        except StartupError as exc:
            return _startup_failed(str(exc))
        try:
            return _run_locked(config, config_path, state_dir, env, events, once=once, verbose=verbose)
        except StartupError as exc:
            return _startup_failed(str(exc))
        finally:
            lock.release()


def _startup_failed(line: str) -> int:
    sys.stderr.write(f"migwatch: {line}\n")
    return EXIT_USAGE


def _run_locked(
    config: Config,
    config_path: Path,
    state_dir: Path,
    env: Mapping[str, str],
    events: Events,
    *,
    once: bool,
    verbose: bool,
) -> int:
    log_file = config.log.file or default_log_file()
    handler = _configure_logging(log_file, config.log.level, verbose)
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
        daemon = Daemon(
            config,
            state_dir=state_dir,
            env=env,
            copy_dir=log_file.parent,
            failures_to_report=1 if once else 3,
            on_ready=lambda: events.put("ready"),
        )
        try:
            daemon.open_ledger()
        except LedgerError as exc:
            daemon.stop()
            raise StartupError(str(exc)) from None
        if once:
            return _run_once(daemon)
        return _run_forever(daemon, config_path, env, events, handler, verbose)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _run_once(daemon: Daemon) -> int:
    found = daemon.run_once()
    problems = [f for f in found if f.severity in (Severity.ERROR, Severity.WARNING)]
    log.info("once findings=%d problems=%d", len(found), len(problems))
    return EXIT_PROBLEMS if problems else EXIT_OK


def _run_forever(
    daemon: Daemon,
    config_path: Path,
    env: Mapping[str, str],
    events: Events,
    handler: logging.Handler,
    verbose: bool,
) -> int:
    systemd = SystemdNotifier(env)
    interval = systemd.watchdog_interval()
    pinger = WatchdogPinger(systemd, interval) if interval else None
    try:
        daemon.start()
        if pinger is not None:
            pinger.start()
        while True:
            try:
                event = events.get(timeout=SIGNAL_POLL_S)
            except queue.Empty:
                continue
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
        level = "debug" if verbose else config.log.level
        try:
            new_handler = add_file_log(config.log.file or default_log_file(), level)
        except OSError as exc:
            log.error(
                "reload: cannot write the log file %s (%s); keeping the current log",
                config.log.file or default_log_file(),
                exc.strerror or exc,
            )
        else:
            logging.getLogger().removeHandler(handler)
            handler.close()
            handler = new_handler
    daemon.reload(config)
    return handler


def _configure_logging(log_file: Path, level: str, verbose: bool) -> logging.Handler:
    """stderr: warnings (everything with -v); the log file: the configured level (debug with -v)."""
    configure_stderr(verbose)
    for existing in logging.getLogger().handlers:
        existing.setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        return add_file_log(log_file, "debug" if verbose else level)
    except OSError as exc:
        raise StartupError(f"cannot write the log file {log_file}: {exc.strerror or exc}") from None
