"""schema_conflict: migrations written apart that cannot both be applied, found before a merge or deploy.

Each worktree's migrations that its database or its base branch does not have yet are compared, on
what the SQL does (`migwatch.sqlschema`: PostgreSQL's own grammar, sqlglot for SQLite), with
- the database's migrations applied from another branch (its `behind` ones): "its deploy will fail";
- the base branch's migrations it lacks (merged there after this branch forked);
- other worktrees' unmerged migrations.
Different columns added to one table, or the same alteration made by both, are no conflict. One
finding per (worktree, migration), naming every clash. And name_collision: one folder name, two
different migrations. Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from migwatch.diagnose.context import Ctx, database_id, finding
from migwatch.diagnose.evidence import AppliedSql, differing_copies, migrations_rel, unmerged_migrations
from migwatch.diagnose.fixes import git, shell
from migwatch.diagnose.semantics import WorktreeSnapshot
from migwatch.model import Finding, Fix, LocalMigration, Step
from migwatch.sqlschema import MigrationChanges, parse_migration
from migwatch.sqlschema.conflicts import Clash, clashes, deploy_outcome, describe

_PARSED: dict[tuple[str, str], MigrationChanges | None] = {}
PARSED_KEPT = 4096


def _parsed(text: str, provider: str, where: str) -> MigrationChanges | None:
    """Parsed once per text (keyed by its digest, so no text is kept): the daemon re-checks the same files."""
    key = (hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(), provider)
    if key not in _PARSED:
        if len(_PARSED) >= PARSED_KEPT:
            _PARSED.pop(next(iter(_PARSED), key), None)
        _PARSED[key] = parse_migration(text, provider, where)
    return _PARSED.get(key)


@dataclass(frozen=True)
class _Other:
    """The migration a worktree's migration clashes with, and where it is."""

    against: str  # "database" | "base" | "worktree"
    name: str
    place: str  # "in Americano-epic5 (feature/epic-5)", "on main", "applied from feature/auth"
    branch: str | None
    clashes: tuple[Clash, ...]
    show: Step  # a read-only command that prints its SQL
    worktree: WorktreeSnapshot | None = None


def _changes(snapshot: WorktreeSnapshot, name: str, text: str | None) -> MigrationChanges | None:
    provider = snapshot.setup.provider
    if not text or provider not in ("postgresql", "sqlite"):
        return None
    return _parsed(text, provider, f"{name}/migration.sql")


def _own_sql(ctx: Ctx, snapshot: WorktreeSnapshot, name: str) -> str | None:
    folder = snapshot.setup.migrations_dir
    return ctx.evidence.unmerged_sql.get(folder / name) if folder else None


def schema_conflicts(ctx: Ctx) -> list[Finding]:
    """schema_conflict: one finding per worktree migration that clashes with migrations written elsewhere."""
    found: dict[tuple[Path, str], list[_Other]] = {}
    for snapshot, mine, other in _against_database(ctx):
        found.setdefault((snapshot.worktree.path, mine), []).append(other)
    for snapshot, mine, other in (*_against_base(ctx), *_against_worktrees(ctx)):
        seen = {o.name for o in found.get((snapshot.worktree.path, mine), [])}
        if other.name not in seen:
            found.setdefault((snapshot.worktree.path, mine), []).append(other)
    by_path = {s.worktree.path: s for s in ctx.project.worktrees}
    return [_conflict(ctx, by_path[path], mine, others) for (path, mine), others in found.items()]


def _against_database(ctx: Ctx) -> Iterator[tuple[WorktreeSnapshot, str, _Other]]:
    """Pending migrations against the migrations the database applied from another branch."""
    for verdict in ctx.verdicts:
        snapshot = verdict.snapshot
        for applied in verdict.behind:
            source = ctx.evidence.applied_sql.get(applied)
            if source is None:
                continue
            theirs = _changes(snapshot, applied, source.sql)
            for mine in verdict.pending:
                ours = _changes(snapshot, mine, _own_sql(ctx, snapshot, mine))
                found = tuple(clashes(ours, theirs)) if ours and theirs else ()
                if found:
                    place = f"applied from {source.origin}"
                    show = _show(snapshot, source)
                    yield snapshot, mine, _Other("database", applied, place, source.branch, found, show)


def _show(here: WorktreeSnapshot, source: AppliedSql) -> Step:
    """A read-only command printing the applied migration's SQL where migwatch found it."""
    if source.file is not None:
        return shell("cat", str(source.file))
    return git(here.worktree.path, "show", source.spec or "")


def _against_base(ctx: Ctx) -> Iterator[tuple[WorktreeSnapshot, str, _Other]]:
    """Unmerged migrations against the base branch's migrations this branch lacks."""
    base = ctx.project.base_branch
    if not base:
        return
    by_path = {s.worktree.path: s for s in ctx.project.worktrees}
    for path, names in unmerged_migrations(ctx.project, ctx.evidence).items():
        snapshot = by_path[path]
        rel = migrations_rel(snapshot)
        if rel is None or snapshot.folder is None:
            continue
        lacking = sorted(ctx.evidence.base_names.get(rel, frozenset()) - snapshot.folder.names)
        for mine in names:
            ours = _changes(snapshot, mine, _own_sql(ctx, snapshot, mine))
            for theirs_name in lacking if ours else ():
                theirs = _changes(snapshot, theirs_name, ctx.evidence.base_sql.get((rel, theirs_name)))
                found = tuple(clashes(ours, theirs)) if ours and theirs else ()
                if found:
                    show = git(path, "show", f"{base}:{rel}/{theirs_name}/migration.sql")
                    yield snapshot, mine, _Other("base", theirs_name, f"on {base}", base, found, show)


def _against_worktrees(ctx: Ctx) -> Iterator[tuple[WorktreeSnapshot, str, _Other]]:
    """Unmerged migrations of two worktrees (a name both have is the same migration, merged)."""
    unmerged = unmerged_migrations(ctx.project, ctx.evidence)
    by_path = {s.worktree.path: s for s in ctx.project.worktrees}
    local = {p: s.folder.names if s.folder else frozenset() for p, s in by_path.items()}
    paths = list(unmerged)
    for i, first in enumerate(paths):
        for second in paths[i + 1 :]:
            here, there = by_path[first], by_path[second]
            for name_a in unmerged[first]:
                for name_b in unmerged[second]:
                    if name_a == name_b or name_a in local[second] or name_b in local[first]:
                        continue
                    a = _changes(here, name_a, _own_sql(ctx, here, name_a))
                    b = _changes(there, name_b, _own_sql(ctx, there, name_b))
                    if a is None or b is None:
                        continue
                    if found := tuple(clashes(a, b)):
                        yield here, name_a, _worktree_other(there, name_b, found)
                        yield there, name_b, _worktree_other(here, name_a, tuple(_swap(c) for c in found))


def _swap(clash: Clash) -> Clash:
    return Clash(clash.obj, clash.theirs, clash.ours)


def _worktree_other(there: WorktreeSnapshot, name: str, found: tuple[Clash, ...]) -> _Other:
    folder = there.setup.migrations_dir or there.worktree.path
    show = shell("cat", str(folder / name / "migration.sql"))
    branch = there.worktree.branch
    return _Other("worktree", name, f"in {there.worktree.label}", branch, found, show, there)


def _conflict(ctx: Ctx, here: WorktreeSnapshot, mine: str, others: Sequence[_Other]) -> Finding:
    first = others[0]
    clash = first.clashes[0]
    objects = list(dict.fromkeys(str(c.obj) for o in others for c in o.clashes))  # first clash first
    if first.against == "database":
        what = f"{mine} is not applied yet; {deploy_outcome(clash, first.name, first.place.removeprefix('applied from '))}"
        advice = f"change {mine} so it builds on {first.name} before deploying it"
    else:
        what = f"{describe(clash, mine, f'{first.name} {first.place}')}; coordinate before either is merged"
        advice = f"the second of these to be merged will fail or undo the first; agree who changes {', '.join(objects[:5])}"
    rest = [f"{c.obj} with {o.name}" for o in others for c in o.clashes][1:]
    if rest:
        what += f" (and {len(rest)} more: {', '.join(rest[:3])}{', …' if len(rest) > 3 else ''})"
    return finding(
        ctx,
        "schema_conflict",
        database=database_id(here),
        worktree=here.worktree.path,
        migration=mine,
        message=f"{here.worktree.label}: {what}",
        fix=Fix(steps=tuple(dict.fromkeys(o.show for o in others)), why=advice),
        against=first.against,
        other_worktree=str(first.worktree.worktree.path) if first.worktree else None,
        other_branch=first.branch,
        other_migration=first.name,
        objects=objects,
        conflicts=[
            {"migration": o.name, "against": o.against, "branch": o.branch, "what": describe(c, mine, o.name)}
            for o in others
            for c in o.clashes
        ],
    )


# --- name_collision: one folder name, two different migrations --------------------------------------


def name_collisions(ctx: Ctx) -> list[Finding]:
    """name_collision: a folder name whose migration.sql differs between worktrees, applied in neither's database.

    When git shows the two copies are one migration in two versions (the other branch edited it after
    this one forked), only the worktree with the older copy is told, and its fix is to merge.
    """
    out = []
    for here, mine, copies in differing_copies(ctx.project, ctx.verdicts):
        versions = {
            s.worktree.path: ctx.evidence.versions.get((here.worktree.path, mine.name, s.worktree.path))
            for s, _ in copies
        }
        others = [s for s, _ in copies if versions[s.worktree.path] != "newer"]
        if not others:
            continue  # this copy is the later edit; the worktrees with the older one are told to merge
        if all(versions[s.worktree.path] == "older" for s in others):
            out.append(_older_copy(ctx, here, mine, others))
        else:
            out.append(
                _collision(ctx, here, mine, [s for s in others if versions[s.worktree.path] != "older"])
            )
    return out


def _older_copy(
    ctx: Ctx, here: WorktreeSnapshot, mine: LocalMigration, newer: Sequence[WorktreeSnapshot]
) -> Finding:
    base = ctx.project.base_branch
    source = next((s for s in newer if s.worktree.branch == base), None) or next(
        (s for s in newer if s.worktree.branch), newer[0]
    )
    branch = source.worktree.branch
    steps: tuple[Step, ...] = (git(here.worktree.path, "merge", branch),) if branch else ()
    return finding(
        ctx,
        "name_collision",
        database=database_id(here),
        worktree=here.worktree.path,
        migration=mine.name,
        message=(
            f"{here.worktree.label}: {mine.name} is an older version of the {mine.name} in "
            f"{source.worktree.label}: {branch or 'that worktree'} edited it after this branch forked; applied "
            "from here first, the old SQL would run and the edit never would"
        ),
        fix=Fix(
            steps=steps,
            why=f"merging {branch} brings the edited SQL (this branch never changed the file)"
            if branch
            else "check out the edited version before applying it",
        ),
        other_worktrees=[str(s.worktree.path) for s in newer],
        other_branches=[s.worktree.branch for s in newer],
        edited_on=branch,
    )


def _collision(
    ctx: Ctx, here: WorktreeSnapshot, mine: LocalMigration, others: Sequence[WorktreeSnapshot]
) -> Finding:
    labels = ", ".join(s.worktree.label for s in others)
    theirs = [(s.setup.migrations_dir or s.worktree.path) / mine.name / "migration.sql" for s in others]
    return finding(
        ctx,
        "name_collision",
        database=database_id(here),
        worktree=here.worktree.path,
        migration=mine.name,
        message=(
            f"{here.worktree.label}: {mine.name} differs from the {mine.name} in {labels} (same folder name, "
            "different SQL); merged, one replaces the other or git stops with a conflict, and Prisma sees one "
            "migration"
        ),
        fix=Fix(
            steps=tuple(shell("diff", "-u", str(mine.path / "migration.sql"), str(path)) for path in theirs),
            why="give the one that is not shared yet a new timestamp (rename its folder) before either is "
            "merged or applied",
        ),
        other_worktrees=[str(s.worktree.path) for s in others],
        other_branches=[s.worktree.branch for s in others],
    )
