"""Shared pieces of the benchmarks: timed child processes, statistics, results and the summary table."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = REPO_ROOT / ".venv" / "bin"
MIGWATCH = VENV_BIN / "migwatch"
# Beside the repository, as in CI (`<repo>/../shared`), like tests/differential/oracle.py.
PRISMA_ORACLE_DIR = Path(os.environ.get("PRISMA_ORACLE_DIR", REPO_ROOT.parent / "shared" / "prisma-oracle"))
PRISMA_ORACLE = PRISMA_ORACLE_DIR / "prisma-oracle"
PRISMA_ORACLE_INSTALL = PRISMA_ORACLE_DIR / "install"


class BenchError(RuntimeError):
    """A benchmark could not produce its figures (setup failed, the program under test misbehaved)."""


@dataclass(frozen=True)
class RunSample:
    """One child process: wall time, peak RSS (its own and its waited-for descendants'), exit code."""

    wall_s: float
    max_rss_mb: float
    exit_code: int
    stdout: bytes
    stderr: bytes


def timed_run(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> RunSample:
    """Run `argv` to completion; wall time from spawn to reap, peak RSS from `wait4` of that child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        # wait4 gives the rusage of exactly this child (RUSAGE_CHILDREN would be the max over all of them).
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return RunSample(
            wall_s=wall,
            max_rss_mb=usage.ru_maxrss / 1024.0,  # KiB on Linux
            exit_code=process.returncode,
            stdout=out.read(),
            stderr=err.read(),
        )


def last_line(text: bytes) -> str:
    """The last non-empty line of a program's output, for one-line error messages."""
    for line in reversed(text.decode("utf-8", "replace").splitlines()):
        if line.strip():
            return line.strip()
    return ""


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 50 samples is the 48th smallest)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def drop_page_cache() -> bool:
    """Write back and drop the OS page cache (root only); False when the kernel does not allow it."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as control:
            control.write("3\n")
    except OSError:
        return False
    return True


# -- results -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """`value <op> target`, e.g. wall time <= 3 s, speed-up >= 20."""

    op: str  # "<=" or ">="
    target: float

    def met(self, value: float) -> bool:
        return value <= self.target if self.op == "<=" else value >= self.target

    def text(self, unit: str) -> str:
        return f"{self.op} {self.target:g}{'' if unit in ('', 'x', '%') else ' '}{unit}"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    goal: Goal | None = None

    @property
    def passed(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.value)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "unit": self.unit,
            "goal": None if self.goal is None else {"op": self.goal.op, "target": self.goal.target},
            "pass": self.passed,
        }


@dataclass
class BenchResult:
    """One benchmark's outcome: figures with goals, or `skipped`/`error` with a reason."""

    name: str
    command: str = ""
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"  # ok, skipped, error
    reason: str | None = None
    elapsed_s: float = 0.0

    def add(self, name: str, value: float, unit: str, goal: Goal | None = None) -> Figure:
        figure = Figure(name, value, unit, goal)
        self.figures.append(figure)
        return figure

    @property
    def passed(self) -> bool | None:
        """False if any goal is missed, True if all goals are met, None when there are no goals."""
        if self.status != "ok":
            return None
        verdicts = [f.passed for f in self.figures if f.passed is not None]
        return None if not verdicts else all(verdicts)

    def to_json(self, machine: Mapping[str, Any], invocation: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": self.status,
            "reason": self.reason,
            "pass": self.passed,
            "command": self.command,
            "invocation": invocation,
            "machine": dict(machine),
            "figures": [f.to_json() for f in self.figures],
            "details": self.details,
            "elapsed_s": round(self.elapsed_s, 1),
        }

    def one_line(self) -> str:
        """The line printed when the benchmark ends."""
        if self.status != "ok":
            return f"{self.name}: {self.status}: {self.reason}"
        parts = []
        for figure in self.figures:
            verdict = "" if figure.passed is None else (" ok" if figure.passed else " MISSED")
            goal = "" if figure.goal is None else f" (goal {figure.goal.text(figure.unit)}{verdict})"
            parts.append(f"{figure.name}={_format_value(figure.value, figure.unit)}{goal}")
        return f"{self.name}: " + ", ".join(parts)


def _format_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "x":
        return f"{value:.1f}x"
    return f"{value:g}{(' ' + unit) if unit else ''}"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    memory_kib = 0
    cpu_model = platform.processor() or platform.machine()
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_kib = int(line.split()[1])
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": round(memory_kib / 1024 / 1024, 1),
        "cpu": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": _version_of(["git", "--version"]),
    }


def _version_of(argv: Sequence[str]) -> str | None:
    try:
        completed = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() or None


def merge_results(path: Path, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Write `results` into the JSON file at `path`, keeping entries of benchmarks not run this time."""
    document: dict[str, Any] = {"version": 1, "benchmarks": {}}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict) and isinstance(loaded.get("benchmarks"), dict):
                document = loaded
        except (OSError, ValueError):
            pass
    for result in results:
        document["benchmarks"][result["name"]] = dict(result)
    document["updated"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return document


def summary_table(results: Sequence[BenchResult]) -> str:
    """A plain-text table: benchmark, figure, value, goal, verdict."""
    rows: list[tuple[str, str, str, str, str]] = [("benchmark", "figure", "value", "goal", "result")]
    for result in results:
        if result.status != "ok":
            rows.append((result.name, "-", "-", "-", f"{result.status}: {result.reason}"))
            continue
        for figure in result.figures:
            verdict = "-" if figure.passed is None else ("pass" if figure.passed else "FAIL")
            goal = "-" if figure.goal is None else figure.goal.text(figure.unit)
            rows.append((result.name, figure.name, _format_value(figure.value, figure.unit), goal, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append("  ".join([*cells, row[4]]))
        if index == 0:
            lines.append("  ".join("-" * w for w in [*widths, 6]))
    return "\n".join(lines)


def log(message: str) -> None:
    """Progress lines of the bench run (stderr, so stdout keeps the results)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
