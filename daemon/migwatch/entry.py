"""The console script's entry point: for `migwatch run`, stop signals are queued before anything slow is
imported, so a SIGTERM in the first second is a clean exit 0 instead of death by the signal."""

from __future__ import annotations

import os
import queue
import signal
import sys
from types import FrameType

EARLY_EVENTS: queue.SimpleQueue[str | int] = queue.SimpleQueue()
_installed = False


def _queue_signal(signum: int, frame: FrameType | None) -> None:
    del frame
    EARLY_EVENTS.put(signum)


def install_early_handlers() -> bool:
    """Queue SIGTERM, SIGINT and SIGHUP on EARLY_EVENTS from now on; True once installed."""
    global _installed
    if not _installed:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, _queue_signal)
        _installed = True
    return _installed


def early_handlers_installed() -> bool:
    """Whether `install_early_handlers` ran in this process."""
    return _installed


def main() -> int:
    """`migwatch …`: the command line (imported after the early signal handlers for `run`)."""
    if "run" in sys.argv[1:]:
        install_early_handlers()
    if os.environ.get("MIGWATCH_DEBUG_THREADS"):  # developers: SIGUSR1 prints every thread's stack
        import faulthandler

        faulthandler.register(signal.SIGUSR1, all_threads=True)
    from migwatch.cli import main as cli_main

    return cli_main()
