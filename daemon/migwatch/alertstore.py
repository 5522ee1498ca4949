"""Loads and saves the alert state (`alerts.json` in the state dir), atomically and versioned."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from migwatch.alerts import AlertState
from migwatch.scrub import scrub

logger = logging.getLogger(__name__)

STATE_FILE = "alerts.json"


def state_path(state_dir: Path) -> Path:
    """Where the alert state lives inside `state_dir`."""
    return state_dir / STATE_FILE


def load_state(state_dir: Path, *, clock: Callable[[], float] = time.time) -> AlertState:
    """The saved alert state; empty when there is none, or when it is unreadable (then moved aside)."""
    path = state_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AlertState()
    except OSError as exc:
        # Unreadable (permissions, I/O): leave it where it is, the next save replaces it.
        logger.warning("alert state %s could not be read (%s); starting with no open alerts", path, exc)
        return AlertState()
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    else:
        try:
            return AlertState.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            problem = f"is not valid JSON ({exc.msg} at line {exc.lineno})"
        except ValueError as exc:
            problem = f"is not a migwatch alert state ({exc})"
    aside = _move_aside(path, clock())
    where = f"moved to {aside}" if aside else "could not be moved aside"
    logger.warning("alert state %s %s; %s; starting with no open alerts", path, problem, where)
    return AlertState()


def _move_aside(path: Path, now: float) -> Path | None:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
        counter += 1
    try:
        os.replace(path, aside)
    except OSError:
        return None
    return aside


def save_state(state_dir: Path, state: AlertState) -> None:
    """Write the state atomically: a temp file in the same dir, fsync, then os.replace."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(state_dir)
    payload = scrub(json.dumps(state.to_json(), indent=1, ensure_ascii=False)) + "\n"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".tmp", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(state_dir)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened for this.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
