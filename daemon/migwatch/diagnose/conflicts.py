"""schema_conflict: unmerged migrations of two worktrees that change the same table or column.

Holds the SQL tokenizer (`sql_touches`) as it was in diagnose.py; the "sql" work replaces it with
real parsers (issue 13). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from migwatch.diagnose.context import Ctx, database_id, finding
from migwatch.diagnose.evidence import migrations_rel, unmerged_migrations
from migwatch.diagnose.fixes import git
from migwatch.diagnose.semantics import WorktreeSnapshot
from migwatch.model import Finding, Fix

_STATEMENT_SPLIT = re.compile(r";\s*(?:\n|$)")
_IDENT = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[\w$]+)'
_QUALIFIED = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_ALTER_TABLE = re.compile(
    rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<table>{_QUALIFIED})\s+(?P<rest>.*)$",
    re.I | re.S,
)
_DROP_TABLE = re.compile(
    rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<tables>{_QUALIFIED}(?:\s*,\s*{_QUALIFIED})*)", re.I
)
_ACTION = re.compile(
    rf"(?:^|,)\s*(?P<verb>ADD|DROP|ALTER|RENAME)\s+(?:COLUMN\s+)?(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?P<column>{_IDENT})",
    re.I,
)
_NOT_COLUMNS = frozenset({"constraint", "primary", "foreign", "unique", "check", "index", "to", "exclude"})
WHOLE_TABLE = "*"


def _unquote(identifier: str) -> str:
    identifier = identifier.strip()
    if identifier[:1] in '"`[':
        identifier = identifier[1:-1].replace('""', '"')
    return identifier


def _table_name(qualified: str) -> str:
    return _unquote(re.split(r"\s*\.\s*(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", qualified)[-1])


def sql_touches(sql_text: str) -> set[tuple[str, str]]:
    """(table, column) pairs a migration alters, adds, drops or renames; (table, "*") for whole tables."""
    touches: set[tuple[str, str]] = set()
    text = re.sub(r"--[^\n]*", "", sql_text)
    for statement in _STATEMENT_SPLIT.split(text):
        drop = _DROP_TABLE.match(statement)
        if drop:
            for table in re.split(r"\s*,\s*", drop.group("tables")):
                touches.add((_table_name(table), WHOLE_TABLE))
            continue
        alter = _ALTER_TABLE.match(statement)
        if not alter:
            continue
        table = _table_name(alter.group("table"))
        rest = alter.group("rest")
        if re.match(r"RENAME\s+TO\b", rest, re.I):
            # SQLite's table redefinition renames "new_X" to X: the whole of X is rewritten.
            target = (
                _unquote(rest.split(None, 2)[2].strip().rstrip(";"))
                if len(rest.split(None, 2)) > 2
                else table
            )
            touches.add((table.removeprefix("new_"), WHOLE_TABLE))
            touches.add((target, WHOLE_TABLE))
            continue
        for action in _ACTION.finditer(rest):
            column = _unquote(action.group("column"))
            if column.lower() in _NOT_COLUMNS:
                continue
            touches.add((table, column))
    return touches


def _overlap(a: set[tuple[str, str]], b: set[tuple[str, str]]) -> list[tuple[str, str]]:
    shared = a & b
    for table, column in a:
        if (table, WHOLE_TABLE) in b or (column == WHOLE_TABLE and any(t == table for t, _ in b)):
            shared.add((table, column))
    return sorted(shared)


def schema_conflicts(ctx: Ctx) -> list[Finding]:
    """schema_conflict: pairs of unmerged migrations of two worktrees that change the same column or table."""
    if not ctx.evidence.base_names:
        return []
    unmerged = unmerged_migrations(ctx.project, ctx.evidence)
    by_path = {s.worktree.path: s for s in ctx.project.worktrees}
    touches: dict[tuple[Path, str], set[tuple[str, str]]] = {}
    for path, names in unmerged.items():
        folder_dir = by_path[path].setup.migrations_dir
        for name in names:
            text = ctx.evidence.unmerged_sql.get(folder_dir / name) if folder_dir else None
            if text:
                touches[(path, name)] = sql_touches(text)
    local = {p: s.folder.names if s.folder else frozenset() for p, s in by_path.items()}
    out: list[Finding] = []
    paths = list(unmerged)
    for i, first in enumerate(paths):
        for second in paths[i + 1 :]:
            for name_a in unmerged[first]:
                for name_b in unmerged[second]:
                    if name_a == name_b or name_a in local[second] or name_b in local[first]:
                        continue
                    shared = _overlap(
                        touches.get((first, name_a), set()), touches.get((second, name_b), set())
                    )
                    if not shared:
                        continue
                    for here, mine, there, theirs in (
                        (first, name_a, second, name_b),
                        (second, name_b, first, name_a),
                    ):
                        out.append(_conflict(ctx, by_path[here], mine, by_path[there], theirs, shared))
    return out


def _conflict(
    ctx: Ctx,
    here: WorktreeSnapshot,
    mine: str,
    there: WorktreeSnapshot,
    theirs: str,
    shared: Sequence[tuple[str, str]],
) -> Finding:
    what = ", ".join(f"{t}.{c}" if c != WHOLE_TABLE else f"table {t}" for t, c in shared[:5])
    theirs_ref = there.worktree.branch or there.worktree.head or "HEAD"
    compared = f"{ctx.project.base_branch or 'HEAD'}...{theirs_ref}"
    return finding(
        ctx,
        "schema_conflict",
        database=database_id(here),
        worktree=here.worktree.path,
        migration=mine,
        message=(
            f"{here.worktree.label}: {mine} and {theirs} in {there.worktree.label} both change {what}; "
            "coordinate before either is merged"
        ),
        fix=Fix(
            steps=(git(here.worktree.path, "diff", compared, "--", str(migrations_rel(here) or ".")),),
            why=f"the second of these to be merged will fail or undo the first; agree who changes {what}",
        ),
        other_worktree=str(there.worktree.path),
        other_branch=there.worktree.branch,
        other_migration=theirs,
        columns=[f"{t}.{c}" for t, c in shared],
    )
