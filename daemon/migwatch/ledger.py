"""The alert ledger: what has been alerted and what is still owed, concluded from each check and kept
on disk so that no fault repeats or loses an alert (SPEC §8).

- Concluding a check: log one line per finding that appeared or went away, run the alert state machine
  (`alerts.update`), hand the alerts to the outbox.
- Persistence: the state is written atomically to two copies (the state folder and a second folder,
  the log folder by default). Loading takes the newest copy that reads; a corrupt, truncated,
  wrong-shaped or future-version copy is moved aside with a warning and the other one is used. When a
  folder becomes unwritable (read-only, full disk), the other copy still records every change; the
  error is logged once per outage, not once per check.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migwatch import alerts
from migwatch.alerts import Alert, AlertPolicy, AlertState, FindingKey
from migwatch.logsetup import key_values, quote_value, replace_private
from migwatch.model import Finding
from migwatch.notify.delivery import Outbox, alert_from_json, alert_to_json
from migwatch.scrub import scrub

log = logging.getLogger(__name__)

STATE_FILE = "alerts.json"
COPY_FILE = "alerts.copy.json"

Scope = Callable[[FindingKey], bool]


@dataclass(frozen=True)
class Loaded:
    """One copy of the ledger as read from disk."""

    state: AlertState
    owed: dict[str, list[Alert]]
    saved_at: float


class LedgerError(Exception):
    """No copy of the ledger can be written (start-up reports it; exit 2)."""


class AlertLedger:
    """The alert state of every project, its persistence, and what each notifier still owes."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.paths = tuple(dict.fromkeys(paths))  # the state file first, then the copy
        self.state = AlertState()
        self.outbox: Outbox | None = None
        self._clock = clock
        self._lock = threading.RLock()
        self._failing: dict[Path, str] = {}
        self._findings: dict[str, dict[FindingKey, Finding]] = {}  # per project: the last check's

    # -- persistence ---------------------------------------------------------------------------------------

    def load(self) -> dict[str, list[Alert]]:
        """Read the newest readable copy; returns what the notifiers still owed."""
        best: Loaded | None = None
        for path in self.paths:
            loaded = _read_copy(path, self._clock())
            if loaded is not None and (best is None or loaded.saved_at > best.saved_at):
                best = loaded
        if best is None:
            return {}
        with self._lock:
            self.state = best.state
        return best.owed

    def save(self, *, required: bool = False) -> None:
        """Write every copy. Never raises unless `required` and no copy could be written (LedgerError)."""
        with self._lock:
            owed = self.outbox.owed() if self.outbox is not None else {}
            document = self.state.to_json()
            document["saved_at"] = self._clock()
            document["owed"] = {name: [alert_to_json(a) for a in items] for name, items in owed.items()}
            # ASCII JSON: a name read with surrogate escapes (not UTF-8 on disk) round-trips exactly.
            payload = scrub(json.dumps(document, indent=1, ensure_ascii=True)) + "\n"
            written = 0
            problems: list[str] = []
            for path in self.paths:
                try:
                    replace_private(path, payload)
                except OSError as exc:
                    problem = f"{path.parent}: {exc.strerror or exc}"
                    problems.append(problem)
                    if self._failing.get(path) != problem:
                        self._failing[path] = problem
                        log.error(
                            "state save failed path=%s error=%s", path, quote_value(exc.strerror or exc)
                        )
                    continue
                written += 1
                if self._failing.pop(path, None) is not None:
                    log.info("state save recovered path=%s", path)
            if required and not written:
                raise LedgerError(f"cannot write the alert state ({'; '.join(problems)})")

    # -- concluding a check --------------------------------------------------------------------------------

    def conclude(self, project: str, found: Sequence[Finding], scope: Scope, policy: AlertPolicy) -> int:
        """Log what changed, update the alert state, owe the alerts, save; returns the alert count.

        `scope` says which keys this check could judge: a key outside it keeps its state (a database
        that is down, a folder that cannot be read: not knowing is not "resolved").
        """
        with self._lock:
            previous = self._findings.get(project, {})
            current = {f.key: f for f in found}
            for key, finding in current.items():
                if key not in previous:
                    log.info("finding new %s", finding_fields(finding, with_fix=True))
                elif finding.fix.lines() != previous[key].fix.lines():
                    # Same problem, new advice (the migration was committed, so now it is a merge): the
                    # log, which users read later, must not keep only the first fix.
                    log.info("finding fix-changed %s", finding_fields(finding, with_fix=True))
            for key, finding in previous.items():
                if key not in current and scope(key):
                    log.info("finding gone %s", finding_fields(finding, with_fix=False))
            self._findings[project] = {k: f for k, f in previous.items() if not scope(k)} | current
            new_state, to_send = alerts.update(
                self.state, found, self._clock(), policy, scope=lambda key: key[1] == project and scope(key)
            )
            changed = new_state.records != self.state.records
            self.state = new_state
            if self.outbox is not None:
                self.outbox.post(to_send)
            if changed or to_send:
                self.save()
        return len(to_send)

    def forget_project(self, project: str) -> None:
        """A project left the config: drop its open alerts without notifications."""
        with self._lock:
            self._findings.pop(project, None)
            records = {k: r for k, r in self.state.records.items() if k[1] != project}
            if len(records) != len(self.state.records):
                self.state = AlertState(records=records)
                self.save()


def finding_fields(finding: Finding, *, with_fix: bool) -> str:
    """A finding as `key=value` fields for one log line."""
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
    return key_values((key, None if value is None else alerts.printable(str(value))) for key, value in fields)


def _read_copy(path: Path, now: float) -> Loaded | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("state unreadable path=%s error=%s", path, quote_value(exc.strerror or exc))
        return None
    try:
        document: Any = json.loads(raw.decode("utf-8"))
        state = AlertState.from_json(document)
        owed_doc = document.get("owed") or {}
        if not isinstance(owed_doc, dict):
            raise ValueError("'owed' is not an object")
        owed = {str(name): [alert_from_json(item) for item in items] for name, items in owed_doc.items()}
        saved_at = document.get("saved_at", 0.0)
        if not isinstance(saved_at, (int, float)) or isinstance(saved_at, bool):
            raise ValueError("'saved_at' is not a number")
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError, RecursionError) as exc:
        aside = _move_aside(path, now)
        log.warning(
            "state unusable path=%s problem=%s moved_to=%s",
            path,
            quote_value(_problem(exc)),
            aside or "-",
        )
        return None
    return Loaded(state=state, owed=owed, saved_at=float(saved_at))


def _problem(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at line {exc.lineno})"
    return f"not a migwatch alert state ({' '.join(str(exc).split()) or type(exc).__name__})"


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
