"""A migration's net effect: temporary objects vanish, drop-and-recreate becomes one redefinition.

Prisma rewrites objects it cannot alter in place: SQLite tables through `new_X` (create, copy, drop X,
rename `new_X` to X) and PostgreSQL enums through `X_old` (rename X to `X_old`, create X, convert the
columns, drop `X_old`). Read statement by statement these look like a drop and a create; what they do
to the schema is change X, and that is what conflicts are judged on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from migwatch.sqlschema.model import Action, Change, Kind, Obj

_GONE = (Action.DROP, Action.RENAME)


def _moved(changes: Sequence[Change]) -> dict[Obj, Obj]:
    """Objects created here and then renamed to a name nothing here had before: created under that name."""
    moved: dict[Obj, Obj] = {}
    for i, change in enumerate(changes):
        if change.action is not Action.RENAME or change.new_name is None:
            continue
        new = Obj(change.obj.kind, change.new_name, change.obj.owner)
        created_before = any(c.obj == change.obj and c.action is Action.CREATE for c in changes[:i])
        new_existed = any(c.obj == new and c.action in _GONE for c in changes[:i])
        if created_before and not new_existed:
            moved[change.obj] = new
    return moved


def _rename_moved(changes: Sequence[Change], moved: dict[Obj, Obj]) -> list[Change]:
    """The changes with every moved object under its final name, its rename itself left out."""
    tables = {old.name: new.name for old, new in moved.items() if old.kind is Kind.TABLE}
    out = []
    for change in changes:
        if change.obj in moved and change.action is Action.RENAME:
            continue
        if change.action is Action.CREATE and change.renamed_from and change.obj in moved.values():
            continue
        obj = moved.get(change.obj, change.obj)
        if obj.owner in tables and obj.kind is not Kind.ENUM_VALUE:
            obj = Obj(obj.kind, obj.name, tables[obj.owner])
        on = tables.get(change.on, change.on) if change.on else None
        out.append(replace(change, obj=obj, on=on))
    return out


def _temporary(changes: Sequence[Change]) -> set[Obj]:
    """Objects this migration creates and later drops or renames away."""
    temporary: set[Obj] = set()
    for i, change in enumerate(changes):
        if change.action is Action.CREATE and any(
            later.obj == change.obj and later.action in _GONE for later in changes[i + 1 :]
        ):
            temporary.add(change.obj)
    return temporary


def _redefined(changes: Sequence[Change]) -> dict[Obj, str]:
    """Objects dropped or renamed away and then created again here, with the new definition."""
    created_detail = {c.obj: c.detail for c in changes if c.action is Action.CREATE}
    redefined: dict[Obj, str] = {}
    for i, change in enumerate(changes):
        if change.action not in _GONE or change.obj in redefined:
            continue
        for later in changes[i + 1 :]:
            if later.obj == change.obj and later.action is Action.CREATE:
                source = (
                    Obj(later.obj.kind, later.renamed_from, later.obj.owner) if later.renamed_from else None
                )
                redefined[change.obj] = created_detail.get(source, later.detail) if source else later.detail
                break
    return redefined


def _owned_by(obj: Obj, holders: set[Obj]) -> bool:
    if obj.owner is None:
        return False
    kind = Kind.ENUM if obj.kind is Kind.ENUM_VALUE else Kind.TABLE
    return Obj(kind, obj.owner) in holders


def net_changes(changes: Sequence[Change]) -> tuple[Change, ...]:
    """The changes as the schema sees them once the whole migration has run."""
    changes = _rename_moved(changes, _moved(changes))
    temporary = _temporary(changes)
    redefined = _redefined(changes)
    out: list[Change] = []
    emitted: set[Obj] = set()
    for change in changes:
        obj = change.obj
        if obj in temporary and obj not in redefined:
            continue
        if _owned_by(obj, temporary) or (change.on is not None and Obj(Kind.TABLE, change.on) in temporary):
            continue
        if obj in redefined:
            if obj not in emitted:
                emitted.add(obj)
                out.append(Change(obj, Action.REDEFINE, detail=redefined[obj]))
            continue
        rebuilt = _owned_by(obj, emitted) or (change.on is not None and Obj(Kind.TABLE, change.on) in emitted)
        if rebuilt and change.action is Action.CREATE:
            continue  # an index or constraint re-created as part of its table's redefinition
        out.append(change)
    return tuple(out)
