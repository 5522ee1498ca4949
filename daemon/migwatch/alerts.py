"""The alert state machine (SPEC §8): previous state + findings + now → new state + notifications. No I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any, Literal

from migwatch import catalogue
from migwatch.display import visible
from migwatch.model import Finding, Severity

FindingKey = tuple[str, str, str | None, str | None, str | None]
AlertKind = Literal["new", "reminder", "resolved"]
Urgency = Literal["low", "normal", "critical"]

STATE_VERSION = 1

# Findings that a running `prisma migrate` command makes and then removes again: while it holds the
# advisory lock they are held back, so nobody is alerted about a migration half way through.
TRANSIENT_CODES = catalogue.TRANSIENT_CODES

_URGENCY: Mapping[str, Urgency] = {"error": "critical", "warning": "normal", "info": "low"}


@dataclass(frozen=True)
class AlertRecord:
    """What the daemon remembers about one open finding."""

    key: FindingKey
    severity: str
    first_seen: float  # unix seconds
    last_notified: float | None
    message: str


@dataclass(frozen=True)
class AlertState:
    """Every finding currently open (alerted and not yet resolved), by key."""

    records: Mapping[FindingKey, AlertRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The state as a JSON-ready document (version 1)."""
        return {
            "version": STATE_VERSION,
            "records": [
                {
                    "key": list(record.key),
                    "severity": record.severity,
                    "first_seen": record.first_seen,
                    "last_notified": record.last_notified,
                    "message": record.message,
                }
                for record in self.records.values()
            ],
        }

    @classmethod
    def from_json(cls, document: Any) -> AlertState:
        """Rebuild a state from `to_json()` output; ValueError names what is wrong with the shape."""
        if not isinstance(document, dict):
            raise ValueError("alert state is not a JSON object")
        if document.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported alert state version {document.get('version')!r}")
        entries = document.get("records")
        if not isinstance(entries, list):
            raise ValueError("alert state has no 'records' list")
        records: dict[FindingKey, AlertRecord] = {}
        for index, entry in enumerate(entries):
            record = _record_from_json(entry, f"records[{index}]")
            records[record.key] = record
        return cls(records=records)


def _record_from_json(entry: Any, where: str) -> AlertRecord:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not an object")
    raw_key = entry.get("key")
    if not isinstance(raw_key, list) or len(raw_key) != 5:
        raise ValueError(f"{where}.key is not a list of 5 items")
    code, project, database, worktree, migration = raw_key
    if not isinstance(code, str) or not isinstance(project, str):
        raise ValueError(f"{where}.key: code and project must be strings")
    for part in (database, worktree, migration):
        if part is not None and not isinstance(part, str):
            raise ValueError(f"{where}.key: database, worktree and migration must be strings or null")
    severity = entry.get("severity")
    if severity not in {s.value for s in Severity}:
        raise ValueError(f"{where}.severity is not one of error, warning, info")
    first_seen: Any = entry.get("first_seen")
    last_notified: Any = entry.get("last_notified")
    if not _is_number(first_seen):
        raise ValueError(f"{where}.first_seen is not a number")
    if last_notified is not None and not _is_number(last_notified):
        raise ValueError(f"{where}.last_notified is not a number or null")
    message = entry.get("message")
    if not isinstance(message, str):
        raise ValueError(f"{where}.message is not a string")
    return AlertRecord(
        key=(code, project, database, worktree, migration),
        severity=severity,
        first_seen=float(first_seen),
        last_notified=None if last_notified is None else float(last_notified),
        message=message,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Alert:
    """One notification to send."""

    kind: AlertKind
    finding: Finding  # for "resolved": the last known finding, rebuilt from its record
    title: str
    body: str
    urgency: Urgency
    count: int = 1  # a grouped alert stands for this many findings (same worktree, code and kind)
    migrations: tuple[str, ...] = ()  # a grouped alert's migrations, in order


GROUP_NAMES_SHOWN = 3  # a grouped notification names this many migrations, then "… and N more"


@dataclass(frozen=True)
class AlertPolicy:
    """What alerts and when: from the config, plus whether a Prisma migrate command is running."""

    remind_after: float  # seconds; 0 = never remind
    notify_resolved: bool
    alert_codes: Mapping[str, bool] = field(default_factory=dict)  # per-code override of the default
    hold_transient: bool = False  # a Prisma migrate command holds the advisory lock

    def alerts_for(self, code: str, severity: Severity | str) -> bool:
        """Whether findings with this code alert: the per-code override, else error/warning do."""
        override = self.alert_codes.get(code)
        if override is not None:
            return override
        return Severity(severity) in (Severity.ERROR, Severity.WARNING)


def update(
    state: AlertState,
    findings: Sequence[Finding],
    now: float,
    policy: AlertPolicy,
    *,
    scope: Callable[[FindingKey], bool] | None = None,
) -> tuple[AlertState, list[Alert]]:
    """Compare a check's findings with what was already alerted; return the new state and the alerts.

    `scope` limits resolution to the keys the check covered (keys outside it are left alone).
    """
    records: dict[FindingKey, AlertRecord] = dict(state.records)
    alerts: list[Alert] = []
    seen: set[FindingKey] = set()

    for finding in findings:
        if finding.key in seen:
            continue
        seen.add(finding.key)
        alert = _note_finding(records, finding, now, policy)
        if alert is not None:
            alerts.append(alert)

    alerts += _resolve_unseen(state, records, seen, policy, scope)
    return AlertState(records=records), alerts


def _note_finding(
    records: dict[FindingKey, AlertRecord], finding: Finding, now: float, policy: AlertPolicy
) -> Alert | None:
    """Record one finding of this check in `records`; the alert it causes now (new, reminder) or None."""
    key = finding.key
    held = policy.hold_transient and finding.code in TRANSIENT_CODES
    record = records.get(key)
    if not policy.alerts_for(finding.code, finding.severity):
        # Alerting was switched off for this code (config reload): forget it without a "resolved".
        if record is not None and not held:
            del records[key]
        return None
    if held:
        return None
    if record is None:
        records[key] = AlertRecord(
            key=key,
            severity=finding.severity.value,
            first_seen=now,
            last_notified=now,
            message=finding.message,
        )
        return _alert("new", finding)
    due = policy.remind_after > 0 and (
        record.last_notified is None or now - record.last_notified >= policy.remind_after
    )
    records[key] = replace(
        record,
        severity=finding.severity.value,
        message=finding.message,
        last_notified=now if due else record.last_notified,
    )
    return _alert("reminder", finding) if due else None


def _resolve_unseen(
    state: AlertState,
    records: dict[FindingKey, AlertRecord],
    seen: set[FindingKey],
    policy: AlertPolicy,
    scope: Callable[[FindingKey], bool] | None,
) -> list[Alert]:
    """Drop the alerted keys this check covered but no longer found; their "resolved" alerts."""
    alerts: list[Alert] = []
    for key, record in state.records.items():
        if key in seen or (scope is not None and not scope(key)):
            continue
        if policy.hold_transient and key[0] in TRANSIENT_CODES:
            continue
        del records[key]
        if policy.notify_resolved:
            alerts.append(_alert("resolved", finding_from_record(record)))
    return alerts


def finding_from_record(record: AlertRecord) -> Finding:
    """The minimal Finding a record still describes (for "resolved" alerts)."""
    code, project, database, worktree, migration = record.key
    return Finding(
        code=code,
        severity=Severity(record.severity),
        project=project,
        database=database,
        worktree=worktree,
        migration=migration,
        message=record.message,
    )


def short_problem(finding: Finding) -> str:
    """`behind the database`: the few words a notification title uses for a finding's code."""
    if finding.code == "behind_base":
        base = finding.details.get("base_branch") or finding.details.get("base")
        return f"behind {base}" if isinstance(base, str) and base else "behind the base branch"
    kind = catalogue.CATALOGUE.get(finding.code)
    return kind.title if kind else finding.code.replace("_", " ")


def title_prefix(finding: Finding) -> str:
    """The worktree folder, else the database's last path segment, else the project name."""
    if finding.worktree:
        return _last_segment(finding.worktree) or finding.project
    if finding.database:
        return _last_segment(finding.database.split("?", 1)[0]) or finding.project
    return finding.project


def _last_segment(path: str) -> str:
    if "://" in path:
        path = path.split("://", 1)[1].partition("/")[2]
    elif path.startswith("file:"):
        path = path[len("file:") :]
    return PurePosixPath(path.rstrip("/\\").replace("\\", "/")).name


def alert_title(kind: AlertKind, finding: Finding) -> str:
    """`Americano-epic3: behind the database`, or `…: resolved — behind the database`."""
    problem = visible(short_problem(finding))
    prefix = visible(title_prefix(finding))
    if kind == "resolved":
        return f"{prefix}: resolved — {problem}"
    return f"{prefix}: {problem}"


def alert_body(kind: AlertKind, finding: Finding) -> str:
    """Migration, origin and the fix's headline, one per line.

    Each field is made visible and clipped on its own (display.FIELD_LIMIT), so the body stays a few
    lines long whatever a row or a folder holds.
    """
    lines: list[str] = []
    if finding.migration:
        lines.append(f"Migration: {visible(finding.migration)}")
    if finding.origin:
        lines.append(f"From: {visible(finding.origin.describe())}")
    headline = finding.fix.headline
    if kind != "resolved" and headline:
        lines.append(visible(headline))
    if not lines:
        lines.append(visible(finding.message))
    return "\n".join(lines)


def _alert(kind: AlertKind, finding: Finding) -> Alert:
    # A resolved problem is good news: visible, but never sticky like a critical one.
    urgency: Urgency = "normal" if kind == "resolved" else _URGENCY[finding.severity.value]
    return Alert(
        kind=kind,
        finding=finding,
        title=printable(alert_title(kind, finding)),
        body=printable(alert_body(kind, finding)),
        urgency=urgency,
    )


def printable(text: str) -> str:
    """Text any channel can carry: a name that is not valid UTF-8 (read losslessly, with surrogate
    escapes) shows its bytes as `\\xff` instead of making the notification or log line fail."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


GroupKey = tuple[str, str | None, str | None, str, AlertKind]
_URGENCY_RANK: Mapping[Urgency, int] = {"critical": 0, "normal": 1, "low": 2}


def group_key(alert: Alert) -> GroupKey:
    """Alerts with the same key become one notification: one per worktree (or database), code, kind."""
    finding = alert.finding
    return (finding.project, finding.worktree, finding.database, finding.code, alert.kind)


def group_alerts(alerts: Sequence[Alert]) -> list[tuple[Alert, list[Alert]]]:
    """A burst as notifications: (the notification, the alerts it stands for), in first-seen order.

    A group of one is the alert itself; a larger group says how many and names the first few
    migrations ("41 × unapplied migration" / "20251001_a, 20251002_b, 20251003_c … and 38 more").
    """
    groups: dict[GroupKey, list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(group_key(alert), []).append(alert)
    return [(members[0] if len(members) == 1 else _grouped(members), members) for members in groups.values()]


def _grouped(members: Sequence[Alert]) -> Alert:
    first = members[0]
    count = len(members)
    # The fix most of them share speaks for the group (documenso-old: 26 × "merge main" and one
    # migration deleted upstream); the others are counted and left to `migwatch status`.
    headlines = Counter(m.finding.fix.headline for m in members if m.finding.fix.headline)
    headline, sharing = headlines.most_common(1)[0] if headlines else (None, 0)
    finding = next((m.finding for m in members if m.finding.fix.headline == headline), first.finding)
    names = tuple(m.finding.migration for m in members if m.finding.migration)
    problem = short_problem(finding)
    prefix = visible(title_prefix(finding))
    if first.kind == "resolved":
        title = f"{prefix}: resolved — {count} × {problem}"
    else:
        title = f"{prefix}: {count} × {problem}"
    shown = ", ".join(visible(name) for name in names[:GROUP_NAMES_SHOWN])
    more = f" … and {len(names) - GROUP_NAMES_SHOWN} more" if len(names) > GROUP_NAMES_SHOWN else ""
    lines = [f"{count} migrations in {prefix}: {shown}{more}" if names else f"{count} findings in {prefix}"]
    if first.kind != "resolved" and headline:
        lines.append(visible(headline))
        if sharing < count:
            others = count - sharing
            lines.append(
                f"{others} of them {'needs' if others == 1 else 'need'} another fix: see `migwatch status`"
            )
    urgency = min((m.urgency for m in members), key=_URGENCY_RANK.__getitem__)
    return Alert(
        kind=first.kind,
        finding=finding,
        title=printable(title),
        body=printable("\n".join(lines)),
        urgency=urgency,
        count=count,
        migrations=names,
    )
