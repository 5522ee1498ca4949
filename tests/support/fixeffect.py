"""Fix-effect harness: execute a finding's printed fix lines verbatim with bash, then prove the effect.

The test PATH holds the real tools a user would have: `npx`/`prisma` that run the REAL Prisma 6.19 CLI
of `../shared/prisma-oracle` (schema and URL found from the current folder as Prisma 6 finds them;
`tests/support/prisma_shim.py`), the real `npm` of the machine, and real `pnpm` and `dotenv-cli`
(installed once from the npm registry into a cache folder, like the oracle's Prisma). On SQLite,
`migrate deploy`, `migrate resolve` and `db execute` change the database for real.

After the lines ran: the finding is gone, no error or warning appeared that was not there before (in
any worktree), and Prisma's own diagnosis of the worktrees named is clean.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from migwatch import pipeline
from migwatch.config import ProjectConfig
from migwatch.model import Command, Finding, Fix, Note, Severity
from tests.differential.oracle import ORACLE, ORACLE_HOME, OracleCall, oracle_environ, run_many

TOOLS = ("pnpm@9.15.9", "dotenv-cli@8.0.0")
TOOLS_HOME = Path(ORACLE_HOME).parent / "migwatch-fix-tools"
LINE_TIMEOUT = 180.0
SHIM = Path(__file__).with_name("prisma_shim.py")


class FixEffectError(AssertionError):
    """A printed fix line failed, or did not have the effect it promised."""


def install_tools() -> Path:
    """Install pnpm and dotenv-cli once (idempotent, safe in parallel); returns their bin folder."""
    TOOLS_HOME.mkdir(parents=True, exist_ok=True)
    marker = TOOLS_HOME / ".installed"
    want = " ".join(TOOLS)
    script = (
        'exec 9>"$1/.lock"; flock 9; '
        '[ -f "$1/.installed" ] && [ "$(cat "$1/.installed")" = "$2" ] && exit 0; '
        'cd "$1"; [ -f package.json ] || echo \'{"name":"fix-tools","private":true}\' > package.json; '
        "npm install --no-audit --no-fund --ignore-scripts --loglevel=error $2 >&2 && "
        'echo "$2" > .installed'
    )
    completed = subprocess.run(
        ["bash", "-c", script, "install", str(TOOLS_HOME), want],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if completed.returncode != 0 or marker.read_text(encoding="utf-8").strip() != want:
        raise FixEffectError(f"installing {want} into {TOOLS_HOME} failed: {completed.stderr.strip()[-800:]}")
    return TOOLS_HOME / "node_modules" / ".bin"


def shim_folder(root: Path) -> Path:
    """A folder with `prisma` and `npx` that run the real Prisma CLI of the oracle."""
    folder = root / "fix-path"
    folder.mkdir(parents=True, exist_ok=True)
    prisma = folder / "prisma"
    prisma.write_text(
        f'#!/bin/sh\nPYTHONPATH={Path(__file__).resolve().parents[2]} exec {sys.executable} {SHIM} "$@"\n',
        encoding="utf-8",
    )
    npx = folder / "npx"
    npx.write_text(
        "#!/bin/sh\n"
        "# npx [--yes|-y|--no-install|--no] prisma …: the Prisma CLI of this PATH.\n"
        'while [ $# -gt 0 ]; do case "$1" in --yes|-y|--no-install|--no) shift;; *) break;; esac; done\n'
        f'[ "$1" = prisma ] || {{ echo "npx (fix-effect tests): only prisma is installed, not $1" >&2; exit 127; }}\n'
        f'shift; exec {prisma} "$@"\n',
        encoding="utf-8",
    )
    for script in (prisma, npx):
        script.chmod(0o755)
    return folder


def fix_environ(root: Path, base: Mapping[str, str]) -> dict[str, str]:
    """`base` (the test's isolated git environment) with the fix PATH first and no DATABASE_URL."""
    environ = {**oracle_environ(), **base}
    environ.pop("DATABASE_URL", None)
    system_path = os.pathsep.join(
        p for p in base.get("PATH", os.defpath).split(os.pathsep) if ".venv" not in p
    )
    environ["PATH"] = os.pathsep.join([str(shim_folder(root)), str(install_tools()), system_path])
    environ["MIGWATCH_TEST_PRISMA_ORACLE"] = str(ORACLE)
    environ["npm_config_update_notifier"] = "false"
    environ["COREPACK_ENABLE_STRICT"] = "0"
    return environ


def executable_lines(fix: Fix) -> list[str]:
    """The fix's shell commands, as printed (the lines a person pastes into a shell)."""
    return [step.render() for step in fix.steps if isinstance(step, Command)]


def note_sql(fix: Fix) -> list[str]:
    """The SQL statements the fix's notes ask a person to run in a database client."""
    return [step.sql.text for step in fix.steps if isinstance(step, Note) and step.sql is not None]


def execute(lines: Sequence[str], environ: Mapping[str, str], cwd: Path) -> list[str]:
    """Run each line verbatim with `bash -c` (stop at the first failure); returns their outputs."""
    outputs = []
    for line in lines:
        completed = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line],
            cwd=cwd,
            env=dict(environ),
            capture_output=True,
            text=True,
            timeout=LINE_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        output = (completed.stdout + completed.stderr).strip()
        if completed.returncode != 0:
            raise FixEffectError(f"fix line failed (exit {completed.returncode}): {line}\n{output[-2000:]}")
        outputs.append(output)
    return outputs


# ------------------------------------------------------------------------------------------- checking


def project_findings(
    repo: Path, env: Mapping[str, str], name: str = "zoo", base_branch: str | None = "main"
) -> list[Finding]:
    """migwatch's findings for the project, as `status` computes them (real git, files, database)."""
    project = ProjectConfig(name=name, repo=repo, base_branch=base_branch)
    options = pipeline.CheckOptions(env={k: v for k, v in env.items() if k != "DATABASE_URL"})
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="migwatch-read") as pool:
        report = pipeline.check_project(project, options, pool, datetime.now(timezone.utc))
    return list(report.findings)


def alarming(findings: Iterable[Finding]) -> set[tuple[str, str | None, str | None]]:
    """(code, worktree, migration) of every error and warning."""
    return {
        (f.code, f.worktree, f.migration)
        for f in findings
        if f.severity in (Severity.ERROR, Severity.WARNING)
    }


@dataclass(frozen=True)
class Situation:
    """A project in a real repository on a SQLite database, and what the fix-effect check needs."""

    repo: Path  # the main checkout
    environ: Mapping[str, str]  # what the fix lines and migwatch run with
    url: str  # the shared database (absolute file: URL)
    schemas: Mapping[Path, Path]  # worktree → its schema file (for Prisma's diagnosis)


def prisma_verdicts(situation: Situation, worktrees: Iterable[Path]) -> dict[Path, dict[str, object] | None]:
    """Prisma's own `diagnose` of each worktree (in parallel)."""
    paths = list(worktrees)
    results = run_many([OracleCall(schema=situation.schemas[p], url=situation.url) for p in paths])
    return {path: result.diagnose for path, result in zip(paths, results, strict=True)}


def prisma_clean(verdict: Mapping[str, object] | None) -> bool:
    """Prisma sees nothing to do: a table, no edited or failed migration, nothing unapplied or DB-only."""
    return bool(
        verdict
        and verdict.get("hasMigrationsTable")
        and not verdict.get("editedMigrationNames")
        and not verdict.get("failedMigrationNames")
        and verdict.get("history") is None
    )


def apply_fix(
    situation: Situation,
    finding: Finding,
    before: Sequence[Finding],
    expected_new: Collection[tuple[str, str | None, str | None]] = (),
) -> list[Finding]:
    """Execute the finding's fix commands, then check migwatch's effect (Prisma's is `assert_prisma_clean`).

    `expected_new`: (code, worktree, migration) the fix says it leaves (a renamed migration still pending).
    Returns the findings after the fix.
    """
    lines = executable_lines(finding.fix)
    if not lines:
        raise FixEffectError(
            f"{finding.code} {finding.migration}: no executable fix line in {finding.fix.lines()}"
        )
    execute(lines, situation.environ, situation.repo.parent)
    after = project_findings(situation.repo, situation.environ)
    still = [f for f in after if f.key == finding.key]
    if still:
        raise FixEffectError(f"the finding is still there after {lines}: {still[0].message}")
    new = alarming(after) - alarming(before) - set(expected_new)
    if new:
        shown = [
            f"{f.code} {f.worktree} {f.migration}: {f.message}"
            for f in after
            if (f.code, f.worktree, f.migration) in new
        ]
        raise FixEffectError(f"new problems after {lines}:\n" + "\n".join(shown))
    return after


def assert_prisma_clean(situation: Situation, worktrees: Iterable[Path]) -> None:
    """Prisma's own diagnosis of every given worktree is clean."""
    for path, verdict in prisma_verdicts(situation, worktrees).items():
        if not prisma_clean(verdict):
            raise FixEffectError(f"Prisma is not clean in {path}: {verdict}")
