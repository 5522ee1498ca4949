#!/usr/bin/env python3
"""Measures migwatch's schema-conflict verdicts against real databases on real projects' migrations.

For each fetched project (a bare git mirror, see `PROJECTS`):
- every migration.sql on the default branch and on every branch is parsed: parse failures per file,
  statements left unclassified;
- branch situations: every branch's unmerged migrations against the default branch's migrations it
  lacks (what `behind_base` lists), and every two branches' migrations that the other lacks; the
  migrations both have are applied first (the common state), then X then Y, and Y then X;
- neighbour situations (simulated branches, also for projects without branch data): migrations i and
  j (j = i+1, i+2) of the default branch as if written on two branches forked after i-1 — judged only
  when each applies alone on that state (otherwise j depends on i: no branch could have written it).

A situation is a real conflict when one order fails or the two orders leave different schemas
(tests/support/applyorder.py); migwatch flags it when `sqlschema.conflicts.clashes` finds any clash
between a migration of X and one of Y. Printed: real conflicts found / real conflicts, situations
flagged wrongly, and every miss and false alarm by name.

    .venv/bin/python tools/conflict-corpus.py [--project NAME] [--no-neighbours]

Mirrors are read from /work/.mirror/<owner>+<name>/repo (the `fetch` tool) or --mirrors DIR.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "daemon"))

from tests.support.applyorder import _PG_SNAPSHOT, Applied, apply_sqlite  # noqa: E402
from tests.support.pg import PgServer  # noqa: E402

from migwatch.sqlschema import MigrationChanges, parse_migration  # noqa: E402
from migwatch.sqlschema.conflicts import clashes  # noqa: E402


@dataclass(frozen=True)
class Project:
    repo: str  # owner/name on GitHub
    folder: str  # migrations folder in the repository
    provider: str


PROJECTS = [
    Project("documenso/documenso", "packages/prisma/migrations", "postgresql"),
    Project("mfts/papermark", "prisma/migrations", "postgresql"),
    Project("umami-software/umami", "prisma/migrations", "postgresql"),
    Project("ghostfolio/ghostfolio", "prisma/migrations", "postgresql"),
    Project("stonith404/pingvin-share", "backend/prisma/migrations", "sqlite"),
]
Migration = tuple[str, str]  # (name, sql)


class Mirror:
    """Reads trees and blobs of one bare mirror (blobs in one `git cat-file --batch` call)."""

    def __init__(self, gitdir: Path) -> None:
        self.gitdir = gitdir

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", f"--git-dir={self.gitdir}", *args], capture_output=True, text=True, check=True
        ).stdout

    def default_ref(self) -> str:
        return self.git("symbolic-ref", "HEAD").strip()

    def refs(self) -> list[str]:
        return self.git("for-each-ref", "--format=%(refname)", "refs/heads", "refs/remotes").split()

    def tree(self, ref: str, folder: str) -> dict[str, str]:
        """name → blob id of every <folder>/<name>/migration.sql at ref."""
        out = self.git("ls-tree", "-r", ref, "--", f"{folder}/")
        found = {}
        for line in out.splitlines():
            meta, path = line.split("\t", 1)
            parts = path[len(folder) + 1 :].split("/")
            if len(parts) == 2 and parts[1] == "migration.sql":
                found[parts[0]] = meta.split()[2]
        return found

    def blobs(self, ids: set[str]) -> dict[str, str]:
        wanted = sorted(ids)
        out = subprocess.run(
            ["git", f"--git-dir={self.gitdir}", "cat-file", "--batch"],
            input="".join(f"{i}\n" for i in wanted).encode(),
            capture_output=True,
            check=True,
        ).stdout
        texts, pos = {}, 0
        for blob in wanted:
            header_end = out.index(b"\n", pos)
            size = int(out[pos:header_end].split()[2])
            texts[blob] = out[header_end + 1 : header_end + 1 + size].decode("utf-8", "replace")
            pos = header_end + 1 + size + 1
        return texts


@dataclass(frozen=True)
class Situation:
    kind: str  # "branch/base", "branch/branch", "neighbours"
    label: str
    state: tuple[Migration, ...]
    x: tuple[Migration, ...]
    y: tuple[Migration, ...]


@dataclass
class Tally:
    judged: list[tuple[Situation, bool]] = field(default_factory=list)  # (situation, real conflict)
    count: int = 0
    real: int = 0
    found: int = 0
    wrong: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    not_replayable: int = 0
    failing: int = 0  # real conflicts where an order fails (the others leave different schemas)


def situations(mirror: Mirror, project: Project, neighbours: bool) -> tuple[list[Situation], dict[str, str]]:
    """Every situation of the project, and the text of every migration blob seen."""
    main_ref = mirror.default_ref()
    trees = {ref: mirror.tree(ref, project.folder) for ref in mirror.refs()}
    main = trees.get(main_ref) or mirror.tree(main_ref, project.folder)
    texts = mirror.blobs({blob for tree in trees.values() for blob in tree.values()} | set(main.values()))

    def ordered(tree: dict[str, str], names: set[str]) -> tuple[Migration, ...]:
        return tuple((n, texts[tree[n]]) for n in sorted(names))

    found: dict[tuple[object, ...], Situation] = {}
    branches = {ref: tree for ref, tree in trees.items() if ref != main_ref and set(tree) - set(main)}
    for ref, tree in branches.items():
        mine, lacks = set(tree) - set(main), set(main) - set(tree)
        if lacks:
            s = Situation(
                "branch/base",
                f"{short(ref)} vs {short(main_ref)}",
                ordered(main, set(tree) & set(main)),
                ordered(tree, mine),
                ordered(main, lacks),
            )
            found.setdefault((s.kind, s.state, s.x, s.y), s)
    refs = sorted(branches)
    for i, first in enumerate(refs):
        for second in refs[i + 1 :]:
            a, b = branches[first], branches[second]
            x, y = set(a) - set(b), set(b) - set(a)
            if not (x - set(main)) or not (y - set(main)):
                continue
            s = Situation(
                "branch/branch",
                f"{short(first)} vs {short(second)}",
                ordered(a, set(a) & set(b)),
                ordered(a, x),
                ordered(b, y),
            )
            key = (s.kind, s.state, s.x, s.y)
            if key not in found and (s.kind, s.state, s.y, s.x) not in found:
                found[key] = s
    if neighbours:
        history = ordered(main, set(main))
        for i in range(len(history)):
            for j in (i + 1, i + 2):
                if j < len(history):
                    s = Situation(
                        "neighbours",
                        f"{history[i][0]} | {history[j][0]}",
                        history[:i],
                        (history[i],),
                        (history[j],),
                    )
                    found[(s.kind, s.label)] = s
    return list(found.values()), texts


def short(ref: str) -> str:
    return ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")


# --- PostgreSQL: the common state is built once and kept; each run is a transaction rolled back --------

RETRY_CODES = {"55P04", "25001"}  # new enum value used in the same transaction; not allowed in one
# Prisma wraps enum rewrites in BEGIN; … COMMIT;: inside the run's own transaction they would end it.
TRANSACTION_LINE = re.compile(r"^\s*(BEGIN|COMMIT)\s*;\s*$", re.I | re.M)


class PgRunner:
    """One database at a time holds the common state; states built before are kept as template
    databases (the last `KEEP`), so a new state is cloned from its longest built prefix."""

    KEEP = 24

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.db = server.create_database()
        self.conn = server.admin_connect(self.db)
        self.state: tuple[str, ...] = ()
        self.templates: dict[tuple[str, ...], str] = {}
        self.failed: dict[tuple[str, ...], str] = {}
        self.retried = 0

    def _switch(self, names: tuple[str, ...]) -> None:
        """A new working database: a clone of the longest kept state that `names` extends, else empty."""
        self.conn.close()
        self.server.drop_database(self.db)
        best = max((k for k in self.templates if names[: len(k)] == k), key=len, default=())
        self.db = f"work_{len(self.templates)}_{abs(hash(names)) % 10**8}"
        with self.server.admin_connect() as admin:
            template = self.templates.get(best, "template0")
            admin.execute(f'CREATE DATABASE "{self.db}" TEMPLATE "{template}"'.encode())
        self.conn = self.server.admin_connect(self.db)
        self.state = best if best in self.templates else ()

    def _keep(self) -> None:
        """Keep the current state as a template database (dropping the oldest beyond KEEP)."""
        if self.state in self.templates or not self.state:
            return
        self.conn.close()
        name = f"tpl_{abs(hash(self.state)) % 10**12}"
        with self.server.admin_connect() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.db}"'.encode())
        self.templates[self.state] = name
        while len(self.templates) > self.KEEP:
            oldest = next(iter(self.templates))
            self.server.drop_database(self.templates.pop(oldest))
        self.conn = self.server.admin_connect(self.db)

    def reach(self, state: Sequence[Migration]) -> str | None:
        """Bring the working database to `state` (incrementally when it extends the current one)."""
        names = tuple(n for n, _ in state)
        for prefix, problem in self.failed.items():
            if names[: len(prefix)] == prefix:
                return problem
        if names[: len(self.state)] != self.state:
            self._switch(names)
        self.conn.autocommit = True
        grew = False
        for name, text in state[len(self.state) :]:
            try:
                self.conn.execute(text.encode())
            except psycopg.Error as exc:
                problem = f"{name}: {str(exc).splitlines()[0]}"
                self.failed[(*self.state, name)] = problem
                self._switch(())
                return problem
            self.state, grew = (*self.state, name), True
        if grew:
            self._keep()
        return None

    def run(self, steps: Sequence[tuple[str, str]]) -> Applied | None:
        """Steps in one transaction, rolled back; None when PostgreSQL needs them committed one by one."""
        self.conn.autocommit = False
        failed_at = error = None
        try:
            for label, text in steps:
                self.conn.execute("SAVEPOINT step")
                try:
                    self.conn.execute(TRANSACTION_LINE.sub("", text).encode())
                except psycopg.Error as exc:
                    if exc.sqlstate in RETRY_CODES:
                        return None
                    failed_at, error = label, str(exc).splitlines()[0]
                    self.conn.execute("ROLLBACK TO SAVEPOINT step")
                    break
            rows: set[tuple[object, ...]] = set()
            for query in _PG_SNAPSHOT:
                rows.update(tuple(r) for r in self.conn.execute(query, {"s": "public"}).fetchall())
            return Applied(failed_at, error, frozenset(rows))
        finally:
            self.conn.rollback()


def pg_apply(runner: PgRunner, state: Sequence[Migration], steps: Sequence[tuple[str, str]]) -> Applied:
    problem = runner.reach(state)
    if problem:
        return Applied("state", problem, frozenset())
    applied = runner.run(steps)
    if applied is None:  # commit step by step in a schema of its own
        runner.retried += 1
        runner._switch(())
        problem = runner.reach([*state, *steps])
        applied = runner.run([]) or Applied(None, None, frozenset())
        applied = Applied("run" if problem else None, problem, applied.schema)
        runner._switch(())
    return applied


def judge(
    situation: Situation, apply: Callable[[Sequence[Migration], Sequence[tuple[str, str]]], Applied]
) -> tuple[bool, bool] | None:
    """(real conflict, one order fails) — None when X or Y does not apply alone on the state."""
    x = [(f"x:{n}", t) for n, t in situation.x]
    y = [(f"y:{n}", t) for n, t in situation.y]
    alone_x, alone_y = apply(situation.state, x), apply(situation.state, y)
    if alone_x.failed_at or alone_y.failed_at:
        return None
    xy, yx = apply(situation.state, [*x, *y]), apply(situation.state, [*y, *x])
    fails = bool(xy.failed_at or yx.failed_at)
    return fails or xy.schema != yx.schema, fails


def flagged(situation: Situation, parsed: Callable[[str, str], MigrationChanges | None]) -> bool:
    for xn, xt in situation.x:
        for yn, yt in situation.y:
            a, b = parsed(xn, xt), parsed(yn, yt)
            if a is not None and b is not None and clashes(a, b):
                return True
    return False


def measure(project: Project, mirror: Mirror, server: PgServer | None, neighbours: bool) -> dict[str, Tally]:
    found, texts = situations(mirror, project, neighbours)
    cache: dict[str, MigrationChanges | None] = {}
    failures = [blob for blob, text in texts.items() if parse_migration(text, project.provider) is None]
    unclassified = sum(
        (p.skipped if (p := parse_migration(t, project.provider)) else 0) for t in texts.values()
    )
    print(
        f"\n## {project.repo} ({project.provider}): {len(texts)} migration.sql files, {len(failures)} parse failures, {unclassified} statements unclassified"
    )

    def parsed(name: str, text: str) -> MigrationChanges | None:
        if text not in cache:
            cache[text] = parse_migration(text, project.provider, where=name)
        return cache[text]

    if project.provider == "sqlite":

        def apply(state: Sequence[Migration], steps: Sequence[tuple[str, str]]) -> Applied:
            return apply_sqlite([*[("state", t) for _, t in state], *steps])
    else:
        assert server is not None
        runner = PgRunner(server)

        def apply(state: Sequence[Migration], steps: Sequence[tuple[str, str]]) -> Applied:
            return pg_apply(runner, state, steps)

    tallies: dict[str, Tally] = {}
    done = 0
    # Lexicographic order of the states' names puts every state right before its extensions: the kept
    # schema then grows by a few migrations instead of being rebuilt.
    for situation in sorted(found, key=lambda s: [n for n, _ in s.state]):
        tally = tallies.setdefault(situation.kind, Tally())
        done += 1
        if done % 50 == 0:
            print(f"  … {done}/{len(found)} situations", file=sys.stderr, flush=True)
        verdict = judge(situation, apply)
        if verdict is None:
            tally.not_replayable += 1
            continue
        real, fails = verdict
        says = flagged(situation, parsed)
        tally.failing += fails
        tally.count += 1
        tally.judged.append((situation, real))
        tally.real += real
        tally.found += real and says
        if says and not real:
            tally.wrong.append(situation.label)
        if real and not says:
            tally.missed.append(situation.label)
    for kind, t in tallies.items():
        print(
            f"- {kind}: {t.count} judged ({t.not_replayable} not replayable): real conflicts found {t.found}/{t.real} ({t.failing} fail in one order), flagged wrongly {len(t.wrong)}"
        )
        for label in t.missed:
            print(f"    missed: {label}")
        for label in t.wrong:
            print(f"    wrongly flagged: {label}")
    return tallies


def export(root: Path, project: Project, judged: Sequence[tuple[Situation, bool]]) -> None:
    """The 2 real conflicts and the clean situation with the least SQL, as fixture folders."""
    small = sorted(judged, key=lambda s: sum(len(t) for _, t in (*s[0].state, *s[0].x, *s[0].y)))
    chosen = [s for s in small if s[1]][:2] + [s for s in small if not s[1]][:1]
    for situation, real in chosen:
        x, y = situation.x[0][0], situation.y[0][0]
        folder = root / project.provider / project.repo.replace("/", "+") / f"{x[:14]}-{y[:14]}"
        for part, migrations in (("state", situation.state), ("x", situation.x), ("y", situation.y)):
            for name, text in migrations:
                (folder / part / name).mkdir(parents=True, exist_ok=True)
                (folder / part / name / "migration.sql").write_text(text)
        meta = {
            "project": f"https://github.com/{project.repo}",
            "situation": situation.label,
            "kind": situation.kind,
            "conflict": real,
        }
        (folder / "case.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--project", action="append", default=[], help="owner/name (repeatable; default all)")
    parser.add_argument("--no-neighbours", action="store_true")
    parser.add_argument("--export", type=Path, help="write a few judged situations there as test fixtures")
    args = parser.parse_args(argv)
    chosen = [p for p in PROJECTS if not args.project or p.repo in args.project]
    server = PgServer.start_new() if any(p.provider == "postgresql" for p in chosen) else None
    started = time.monotonic()
    totals: dict[str, Tally] = {}
    try:
        for project in chosen:
            gitdir = args.mirrors / project.repo.replace("/", "+") / "repo"
            if not gitdir.is_dir():
                print(f"\n## {project.repo}: no mirror at {gitdir} (fetch github:{project.repo})")
                continue
            for kind, t in measure(project, Mirror(gitdir), server, not args.no_neighbours).items():
                total = totals.setdefault(kind, Tally())
                total.count += t.count
                if args.export:
                    export(args.export, project, t.judged)
                total.real += t.real
                total.found += t.found
                total.wrong += t.wrong
                total.missed += t.missed
                total.not_replayable += t.not_replayable
                total.failing += t.failing
    finally:
        if server is not None:
            server.cleanup()
    print("\n## all projects")
    for kind, t in totals.items():
        print(
            f"- {kind}: {t.count} judged: real conflicts found {t.found}/{t.real} ({t.failing} fail in one order), flagged wrongly {len(t.wrong)}"
        )
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
