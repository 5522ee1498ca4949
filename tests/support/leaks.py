"""Detect threads and child processes that a test started and left running."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_GRACE = 2.0
_PROCESS_POLL_INTERVAL = 0.02

# Long-lived helpers owned by session fixtures (the notification server's processes, say): a test that
# happens to start them first has not leaked them.
_ignored_pids: set[int] = set()
_ignored_threads: set[threading.Thread] = set()


def ignore_process(pid: int) -> None:
    """Never report this child process (it belongs to a session-scoped fixture)."""
    _ignored_pids.add(pid)


def unignore_process(pid: int) -> None:
    _ignored_pids.discard(pid)


def ignore_thread(thread: threading.Thread) -> None:
    """Never report this thread (it belongs to a session-scoped fixture)."""
    _ignored_threads.add(thread)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # the process or thread ended while we looked
        return None


def child_pids(pid: int | None = None) -> set[int]:
    """Direct children of `pid` (default: this process), from /proc, zombies included."""
    parent = os.getpid() if pid is None else pid
    children: set[int] = set()
    task_dir = Path(f"/proc/{parent}/task")
    listed = False
    for task in task_dir.glob("*"):
        text = _read(task / "children")
        if text is not None:
            listed = True
            children.update(int(child) for child in text.split())
    if listed:
        return children
    # Kernels without CONFIG_PROC_CHILDREN: scan every process's parent pid.
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        stat = _read(stat_file)
        if stat is not None and int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            children.add(int(stat_file.parent.name))
    return children


def describe_process(pid: int) -> str:
    """`pid 123 (git cat-file --batch), state S` for messages."""
    cmdline = _read(Path(f"/proc/{pid}/cmdline"))
    stat = _read(Path(f"/proc/{pid}/stat"))
    command = cmdline.replace("\0", " ").strip() if cmdline else ""
    state = stat.rsplit(")", 1)[1].split()[0] if stat else "gone"
    if not command and stat:
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
    if state == "Z":
        return f"pid {pid} ({command}), a zombie: it exited and was never waited for"
    return f"pid {pid} ({command}), state {state}"


def _process_state(pid: int) -> str | None:
    stat = _read(Path(f"/proc/{pid}/stat"))
    return stat.rsplit(")", 1)[1].split()[0] if stat else None


@dataclass(frozen=True)
class Snapshot:
    """The threads and child processes alive at one moment."""

    threads: frozenset[threading.Thread]  # the objects, not idents: the OS reuses idents
    children: frozenset[int]


def snapshot() -> Snapshot:
    """Record the live threads and child processes of this process."""
    return Snapshot(
        threads=frozenset(threading.enumerate()),
        children=frozenset(child_pids()),
    )


def _new_threads(before: Snapshot) -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread not in before.threads
        and thread not in _ignored_threads
        # Threads started outside the threading module (C libraries) cannot be joined or told apart.
        and not isinstance(thread, threading._DummyThread)
    ]


def _new_children(before: Snapshot) -> set[int]:
    return {pid for pid in child_pids() if pid not in before.children and pid not in _ignored_pids}


def _wait_for_exits(pids: set[int], deadline: float) -> None:
    """Wait (bounded) until the processes have exited, on pidfds where the kernel has them."""
    pidfds: dict[int, int] = {}
    try:
        for pid in pids:
            # Gone already, or no pidfd support: the polling below covers both.
            with contextlib.suppress(OSError, AttributeError):
                pidfds[os.pidfd_open(pid)] = pid
        if len(pidfds) == len(pids):
            poller = select.poll()
            for fd in pidfds:
                poller.register(fd, select.POLLIN)
            pending = set(pidfds)
            while pending and (remaining := deadline - time.monotonic()) > 0:
                for fd, _ in poller.poll(remaining * 1000):
                    poller.unregister(fd)
                    pending.discard(fd)
            return
    finally:
        for fd in pidfds:
            os.close(fd)
    while time.monotonic() < deadline and any(_process_state(pid) not in (None, "Z") for pid in pids):
        time.sleep(_PROCESS_POLL_INTERVAL)


def find_leaks(before: Snapshot, grace: float | None = None) -> list[str]:
    """What was started since `before` and is still alive after up to `grace` seconds, one line each.

    `grace` defaults to DEFAULT_GRACE (2 s).

    Threads get a bounded join; processes a bounded wait for their exit. A zombie child (exited, never
    waited for) counts as leaked.
    """
    deadline = time.monotonic() + (DEFAULT_GRACE if grace is None else grace)
    for thread in _new_threads(before):
        thread.join(max(0.0, deadline - time.monotonic()))
    children = _new_children(before)
    if children:
        _wait_for_exits(children, deadline)
    problems = [
        f"thread {thread.name!r} (daemon={thread.daemon}, target={_thread_target(thread)}) is still running"
        for thread in _new_threads(before)
        if thread.is_alive()
    ]
    problems.extend(
        f"child process {describe_process(pid)} is still there"
        for pid in sorted(_new_children(before))
        if _process_state(pid) is not None
    )
    return problems


def _thread_target(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    if target is None:
        return type(thread).__qualname__
    return getattr(target, "__qualname__", repr(target))
