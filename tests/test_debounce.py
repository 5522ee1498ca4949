"""The debouncer and the check worker, driven by a fake clock: no sleeps, no file system."""

from __future__ import annotations

import logging
import threading

import pytest

from migwatch.watcher import CheckWorker, Debouncer

pytestmark = pytest.mark.leakcheck


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_key_is_due_after_the_delay_and_only_once() -> None:
    clock = FakeClock()
    debouncer: Debouncer[str] = Debouncer(0.25, clock=clock)
    debouncer.push("epic-3")
    assert debouncer.pop_due() == []
    assert debouncer.next_deadline() == pytest.approx(1000.25)
    clock.advance(0.2499)
    assert debouncer.pop_due() == []
    clock.advance(0.0001)
    assert debouncer.pop_due() == ["epic-3"]
    assert debouncer.pop_due() == []
    assert debouncer.next_deadline() is None
    assert len(debouncer) == 0


def test_each_event_pushes_the_deadline_so_a_storm_collapses_into_one_check() -> None:
    clock = FakeClock()
    debouncer: Debouncer[str] = Debouncer(0.25, clock=clock)
    for _ in range(200):  # a `git checkout`: 200 events 1 ms apart
        debouncer.push("epic-3")
        clock.advance(0.001)
        assert debouncer.pop_due() == []
    assert debouncer.next_deadline() == pytest.approx(1000.0 + 0.199 + 0.25)
    clock.advance(0.25)
    assert debouncer.pop_due() == ["epic-3"]
    assert debouncer.pop_due() == []


def test_keys_are_independent_and_come_out_earliest_first() -> None:
    clock = FakeClock()
    debouncer: Debouncer[str] = Debouncer(0.1, clock=clock)
    debouncer.push("main")
    clock.advance(0.05)
    debouncer.push("epic-3")
    clock.advance(0.04)
    debouncer.push("main")  # main moves behind epic-3
    assert debouncer.pending() == frozenset({"main", "epic-3"})
    clock.advance(0.061)  # epic-3 was due at +0.15, main now at +0.19
    assert debouncer.pop_due() == ["epic-3"]
    clock.advance(1.0)
    debouncer.push("epic-5", delay=0.5)
    assert debouncer.pop_due() == ["main"]
    clock.advance(0.5)
    assert debouncer.pop_due() == ["epic-5"]


def test_max_delay_bounds_an_endless_stream_of_events() -> None:
    clock = FakeClock()
    debouncer: Debouncer[str] = Debouncer(0.25, max_delay=1.0, clock=clock)
    ran_at: list[float] = []
    for _ in range(30):  # an event every 100 ms for 3 s
        debouncer.push("epic-3")
        clock.advance(0.1)
        if debouncer.pop_due():
            ran_at.append(round(clock.now - 1000.0, 3))
    assert ran_at == [1.0, 2.0, 3.0]  # at most 1 s late, however long the stream goes on


def test_an_immediate_push_is_due_at_once_and_a_due_key_is_not_postponed() -> None:
    clock = FakeClock()
    debouncer: Debouncer[str] = Debouncer(0.25, clock=clock)
    debouncer.push("epic-3")
    debouncer.push("epic-3", delay=0)
    debouncer.push("epic-3")  # a late event cannot push back a check that is due
    assert debouncer.pop_due() == ["epic-3"]


def test_the_worker_runs_due_keys_one_batch_at_a_time() -> None:
    clock = FakeClock()
    batches: list[list[str]] = []
    ran = threading.Event()

    def run(keys: list[str]) -> None:
        batches.append(keys)
        ran.set()

    worker: CheckWorker[str] = CheckWorker(Debouncer(0.25, clock=clock), run)
    worker.start()
    try:
        worker.push("epic-3")
        worker.push("main")
        # Nothing is due on the fake clock, so the worker stays busy-waiting for the deadline.
        assert worker.wait_idle(0.05) is False
        assert batches == []
        clock.advance(0.25)
        worker.poke()
        assert ran.wait(5)
        assert worker.wait_idle(5)
        assert batches == [["epic-3", "main"]]
        assert worker.batches == 1
    finally:
        assert worker.stop(5)


def test_the_worker_logs_a_failing_check_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    seen: list[str] = []
    done = threading.Event()

    def run(keys: list[str]) -> None:
        if keys == ["broken"]:
            raise RuntimeError("git exploded\nsecond line")
        seen.extend(keys)
        done.set()

    worker: CheckWorker[str] = CheckWorker(Debouncer(0.1, clock=clock), run)
    worker.start()
    try:
        with caplog.at_level(logging.ERROR, logger="migwatch.watcher"):
            worker.push("broken", delay=0)
            assert worker.wait_idle(5)
            worker.push("epic-3", delay=0)
            assert done.wait(5)
        assert seen == ["epic-3"]
        assert [r.getMessage() for r in caplog.records] == ["check failed: git exploded second line"]
    finally:
        assert worker.stop(5)


def test_stop_wakes_a_waiting_worker_and_wait_idle_gives_up() -> None:
    clock = FakeClock()
    worker: CheckWorker[str] = CheckWorker(Debouncer(60.0, clock=clock), lambda keys: None)
    worker.start()
    worker.push("epic-3")
    assert worker.stop(5) is True  # did not wait for the 60 s deadline
    assert worker.wait_idle(1) is False  # stopped with a key still pending
