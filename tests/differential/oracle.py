"""Runs the real Prisma engine (`../shared/prisma-oracle`, Prisma 6.19.3 CLI and the 7.10.0 engine) and
puts its verdict and migwatch's side by side in Prisma's own terms (`PrismaView`).

Each oracle call is a Node process (≈1.5 s CPU and ≈170 MB for 6.19, ≈0.3 s for 7.10): `run_many`
runs them in a thread pool, one subprocess per thread.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from migwatch.diagnose import WorktreeVerdict, counted_rows

PrismaLine = Literal["6.19", "7.10"]
PRISMA_LINES: tuple[PrismaLine, ...] = ("6.19", "7.10")
# The package.json version each line's project is laid out for (migwatch reads its rules from there).
PACKAGE_VERSIONS: dict[PrismaLine, str] = {"6.19": "6.19.3", "7.10": "7.10.0"}

ORACLE_DIR = Path(
    os.environ.get("PRISMA_ORACLE_DIR", Path(__file__).resolve().parents[3] / "shared" / "prisma-oracle")
)
ORACLE = ORACLE_DIR / "prisma-oracle"
CALL_TIMEOUT = 120.0
# Node is CPU-bound here: more workers than cores only adds contention (measured on 2 cores).
WORKERS = max(2, min(6, (os.cpu_count() or 2) + 1))
# Pinned at import (before any test moves HOME): the Prisma packages are installed once, in one place.
ORACLE_HOME = os.environ.get("PRISMA_ORACLE_HOME") or str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prisma-oracle"
)
_CREDENTIALS = re.compile(r"(://[^:/@\s]+):[^@\s]*@")
_ERROR_CODE = re.compile(r"\bP(30\d\d)\b")

T = TypeVar("T")
R = TypeVar("R")


class OracleError(RuntimeError):
    """The oracle could not be installed or run (not a Prisma verdict)."""


def redact(text: str) -> str:
    return _CREDENTIALS.sub(r"\1:***@", text)


def oracle_environ() -> dict[str, str]:
    """The environment of every oracle run: the pinned package folder, no DATABASE_URL of the caller's."""
    environ = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environ["PRISMA_ORACLE_HOME"] = ORACLE_HOME
    return environ


def install() -> None:
    """Install both Prisma sets once (idempotent); raises OracleError when node/npm are missing."""
    missing = [program for program in ("node", "npm", "python3") if shutil.which(program) is None]
    if missing:
        raise OracleError(
            f"the Prisma oracle needs {', '.join(missing)}: run `bash tools/system-deps.sh` as root "
            "(installs nodejs and npm)"
        )
    if not ORACLE.is_file():
        raise OracleError(f"the Prisma oracle is not at {ORACLE} (set PRISMA_ORACLE_DIR)")
    for prisma_set in ("cli-6.19", "engine-7.10"):
        completed = subprocess.run(
            [str(ORACLE_DIR / "install"), prisma_set],
            env=oracle_environ(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if completed.returncode != 0:
            tail = " | ".join(completed.stderr.strip().splitlines()[-5:])
            raise OracleError(
                f"{ORACLE_DIR / 'install'} {prisma_set} failed (exit {completed.returncode}): {tail}"
            )


@dataclass(frozen=True)
class OracleCall:
    """One `prisma-oracle --diagnose` run: a schema, its database and the Prisma line."""

    schema: Path
    url: str = ""
    prisma: PrismaLine = "6.19"

    def argv(self) -> list[str]:
        extra = ["--prisma", self.prisma] if self.prisma != "6.19" else []
        return [str(ORACLE), "--diagnose", *extra, "--schema", str(self.schema), "--url", self.url]

    def shell_command(self) -> str:
        """The command that reproduces this call (password redacted)."""
        return redact(shlex.join(self.argv()))


@dataclass(frozen=True)
class OracleResult:
    """Prisma's answer: the parsed JSON document (or why there is none)."""

    call: OracleCall
    document: dict[str, Any] | None
    problem: str | None = None  # the oracle itself failed: no JSON

    @property
    def diagnose(self) -> dict[str, Any] | None:
        return self.document.get("diagnose") if self.document else None

    @property
    def error_text(self) -> str:
        """Prisma's error output when it stopped without a diagnosis."""
        if self.document is None:
            return self.problem or ""
        parts = [self.document.get(key) or "" for key in ("error", "stderr", "stdout")]
        return "\n".join(str(part) for part in parts if part)


def run_diagnose(call: OracleCall) -> OracleResult:
    """Run one oracle call; never raises for Prisma's own errors (they are part of the verdict)."""
    try:
        completed = subprocess.run(
            call.argv(),
            env=oracle_environ(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return OracleResult(call, None, f"timed out after {CALL_TIMEOUT} s")
    try:
        document = json.loads(completed.stdout)
    except json.JSONDecodeError:
        tail = redact((completed.stderr or completed.stdout).strip())[-1500:]
        return OracleResult(call, None, f"exit {completed.returncode}, no JSON: {tail}")
    return OracleResult(call, document if isinstance(document, dict) else None)


def parallel(function: Callable[[T], R], items: Iterable[T], workers: int = WORKERS) -> list[R]:
    """`function` over `items` in a thread pool, results in input order."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prisma-oracle") as pool:
        return list(pool.map(function, items))


def run_many(calls: Sequence[OracleCall], workers: int = WORKERS) -> list[OracleResult]:
    """All calls in parallel, results in call order."""
    return parallel(run_diagnose, calls, workers)


def migrate_status(schema: Path, url: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real `prisma migrate status` (6.19 CLI): its exit code and output, as a user sees them."""
    return subprocess.run(
        [str(ORACLE), "--schema", str(schema), "--url", url, "--", "migrate", "status"],
        env=oracle_environ(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=False,
        cwd=cwd,
    )


# ------------------------------------------------------------------------------------ the comparison


@dataclass(frozen=True)
class PrismaView:
    """A verdict in the terms of Prisma's `diagnoseMigrationHistory` (sets where Prisma's lists repeat)."""

    directories: tuple[str, ...] | None  # the migrations in Prisma's (localeCompare) order; None: not listed
    has_table: bool = True
    edited: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()
    unapplied: tuple[str, ...] = ()  # in folder order
    unpersisted: frozenset[str] = frozenset()
    error: str | None = None  # Prisma's error code when it stops without a verdict (P3015)

    def lines(self) -> list[str]:
        fields = {
            "directories": None if self.directories is None else list(self.directories),
            "has_table": self.has_table,
            "edited": sorted(self.edited),
            "failed": sorted(self.failed),
            "unapplied": list(self.unapplied),
            "unpersisted": sorted(self.unpersisted),
            "error": self.error,
        }
        return [f"{key}: {value}" for key, value in fields.items()]

    def differences(self, other: PrismaView) -> list[str]:
        """`field: migwatch … != prisma …` for each field that differs (self = migwatch)."""
        mine, theirs = self.lines(), other.lines()
        return [
            f"{a}  !=  prisma {b.split(': ', 1)[1]}"
            for a, b in zip(mine, theirs, strict=True)
            # The 6.19 CLI does not log its listing when it stops with an error: nothing to compare then.
            if a != b and not (b == "directories: None" or a == "directories: None")
        ]


def error_code(text: str) -> str:
    """`P3015` & co. from Prisma's output; the 7.10 engine's bare messages mapped to their codes."""
    match = _ERROR_CODE.search(text)
    if match:
        return "P" + match.group(1)
    if "Could not find the migration file" in text:
        return "P3015"
    if "provider" in text and "migration_lock.toml" in text:
        return "P3019"
    return "unknown: " + text.strip().splitlines()[0][:200] if text.strip() else "unknown"


def oracle_view(result: OracleResult) -> PrismaView:
    """Prisma's verdict from the oracle's JSON."""
    document = result.document or {}
    listed = document.get("migration_directories")
    directories = tuple(listed) if isinstance(listed, list) else None
    diagnose = result.diagnose
    if diagnose is None:
        return PrismaView(directories=directories, error=error_code(result.error_text))
    if not diagnose.get("hasMigrationsTable"):
        # Prisma then lists every folder as unapplied; migwatch says not_managed (the README's mapping).
        return PrismaView(directories=directories, has_table=False)
    history = diagnose.get("history") or {}
    return PrismaView(
        directories=directories,
        has_table=bool(diagnose.get("hasMigrationsTable")),
        edited=frozenset(diagnose.get("editedMigrationNames") or ()),
        failed=frozenset(diagnose.get("failedMigrationNames") or ()),
        unapplied=tuple(history.get("unappliedMigrationNames") or ()),
        unpersisted=frozenset(history.get("unpersistedMigrationNames") or ()),
    )


def migwatch_view(verdict: WorktreeVerdict) -> PrismaView:
    """migwatch's verdict mapped onto Prisma's terms (README of the oracle; SPEC §5).

    `pending` + `missing_sql` without a counted row = Prisma's unapplied; `missing_sql` with a counted row
    = Prisma's P3015; failed rows are read from the history (every version: a rolled-back row is not
    failed); `behind` (failed and counted rolled-back rows included) = unpersisted.
    """
    folder = verdict.snapshot.folder
    directories = tuple(m.name for m in folder.migrations) if folder is not None else ()
    history = verdict.history
    if history is None or not history.has_table:
        return PrismaView(directories=directories, has_table=False)
    counted = {row.migration_name for row in counted_rows(history.rows, verdict.snapshot.setup)}
    if any(name in counted for name in verdict.missing_sql):
        return PrismaView(directories=directories, error="P3015")
    unapplied = set(verdict.pending) | set(verdict.missing_sql)
    return PrismaView(
        directories=directories,
        has_table=True,
        edited=frozenset(name for name, _ in verdict.edited),
        failed=frozenset(row.migration_name for row in history.rows if row.failed),
        unapplied=tuple(name for name in directories if name in unapplied),
        unpersisted=frozenset(verdict.behind),
    )
