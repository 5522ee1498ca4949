"""A sandbox that executes printed shell lines as a person pasting them would, with nothing real behind.

`bash --noprofile --norc -c LINE` runs with a temp HOME and a PATH holding only recording stubs: every
program a fix line may name (npx, npm, pnpm, yarn, git, prisma, cp, …) writes its argv (as bytes) to
a file of its own and exits 0, and `pwned` — the program every hostile payload calls — leaves a
marker. After a line ran: no marker, no stray file, and each stub's argv is exactly the argv the fix
meant (so a hostile name arrived as one intact argument).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.hostile import MARKER_PROGRAM

STUBBED_PROGRAMS = (
    "npx",
    "npm",
    "pnpm",
    "yarn",
    "bunx",
    "bun",
    "git",
    "prisma",
    "dotenv",
    "env-cmd",
    "node",
    "cp",
    "mv",
    "rm",
    "rmdir",
    "ls",
    "mkdir",
    "psql",
    "sqlite3",
    "touch",
    "cat",
    "echo",
    "pg_isready",
    "migwatch",
)
_STUB = """#!/bin/bash
# Records its argv (NUL-separated bytes) in a file of its own; does nothing else.
printf '%s\\0' "${0##*/}" "$@" > "$MIGWATCH_SANDBOX_CALLS/${EPOCHREALTIME/[.,]/}-$$"
"""
_PWNED = """#!/bin/bash
# A payload ran: leave the marker.
printf '%s\\0' "$@" >> "$MIGWATCH_SANDBOX_MARKER"
"""
LINE_TIMEOUT = 10.0


@dataclass(frozen=True)
class LineRun:
    """What executing one printed line did."""

    line: str
    returncode: int
    stderr: str
    calls: tuple[tuple[bytes, ...], ...]  # each stub call's argv, program name first, in call order
    marker: bool  # a payload ran
    stray_files: tuple[str, ...]  # files the line created (a redirection payload)


class Sandbox:
    """A folder with `home/`, `bin/` (the stubs), `work/` (the cwd), `calls/` and the marker file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.bin = root / "bin"
        self.work = root / "work"
        self.calls_dir = root / "calls"
        self.marker = root / "PWNED"
        for folder in (self.home, self.bin, self.work, self.calls_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for program in STUBBED_PROGRAMS:
            self._write_program(program, _STUB)
        self._write_program(MARKER_PROGRAM, _PWNED)

    def provide(self, program: str) -> None:
        """A recording stub for `program` too (a template may name a program the list above lacks)."""
        if "/" not in program and not (self.bin / program).exists():
            self._write_program(program, _STUB)

    def _write_program(self, name: str, text: str) -> None:
        path = self.bin / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)

    def environ(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "PATH": str(self.bin),
            "LANG": "C.UTF-8",
            "MIGWATCH_SANDBOX_CALLS": str(self.calls_dir),
            "MIGWATCH_SANDBOX_MARKER": str(self.marker),
        }

    def run(self, line: str, *, cwd: Path | None = None) -> LineRun:
        """Execute `line` with bash exactly as printed (bytes of surrogate-escaped names restored)."""
        for old in self.calls_dir.iterdir():
            old.unlink()
        self.marker.unlink(missing_ok=True)
        before = self._files()
        completed = subprocess.run(
            [b"/bin/bash", b"--noprofile", b"--norc", b"-c", os.fsencode(line)],
            cwd=cwd or self.work,
            env=self.environ(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=LINE_TIMEOUT,
            check=False,
        )
        calls = tuple(tuple(path.read_bytes().split(b"\0")[:-1]) for path in sorted(self.calls_dir.iterdir()))
        created = self._files() - before
        stray = tuple(sorted(str(path) for path in created))
        for path in created:  # the next line starts from the same folder
            path.unlink()
        return LineRun(
            line=line,
            returncode=completed.returncode,
            stderr=completed.stderr.decode("utf-8", "replace"),
            calls=calls,
            marker=self.marker.exists(),
            stray_files=stray,
        )

    def _files(self) -> set[Path]:
        return {
            path
            for path in self.root.rglob("*")
            if self.calls_dir not in path.parents and path != self.marker and not path.is_dir()
        }


def argv_bytes(argv: tuple[str, ...] | list[str]) -> tuple[bytes, ...]:
    """An argv as the stubs record it: each argument's bytes (surrogate-escaped names restored)."""
    return tuple(os.fsencode(argument) for argument in argv)
