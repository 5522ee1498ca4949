"""The daemon's heap (heap.py): freed pages go back to the system, measured in a real process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from migwatch import heap

# A check's garbage as glibc sees it: 90 MB of blocks too big for Python's small-object allocator,
# allocated in a worker thread, one in fifty kept (so the arena cannot shrink from its top).
_FRAGMENT_AND_TRIM = textwrap.dedent(
    """
    import threading
    from migwatch import heap

    heap.limit_arenas()

    def rss_mb():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    kept = []

    def check():
        blocks = [bytes(1500) + bytes([i % 256]) for i in range(60_000)]
        kept.extend(blocks[::50])

    worker = threading.Thread(target=check)
    worker.start()
    worker.join()
    before = rss_mb()
    trimmed = heap.release_free_memory()
    print(before, rss_mb(), trimmed)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim (elsewhere a no-op)")
def test_free_pages_of_a_check_go_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FRAGMENT_AND_TRIM], capture_output=True, text=True, check=True, timeout=60
    )
    before, after, trimmed = done.stdout.split()
    assert trimmed == "True"
    # Without the trim the resident size stays at its peak (≈100 MB); with it, the kept 2 MB remain.
    assert float(before) - float(after) > 50, done.stdout


def test_trims_are_rate_limited() -> None:
    start = time.monotonic() + 1_000_000.0  # after any trim this process made
    heap.release_free_memory(now=start)
    assert heap.release_free_memory(now=start + heap.TRIM_EVERY_S / 2) is False
    assert heap.release_free_memory(now=start + heap.TRIM_EVERY_S) is True
