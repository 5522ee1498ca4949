"""Which changes of two migrations written apart cannot both be applied, or not in either order.

A clash is judged on the objects: the same object created, dropped, renamed or changed differently by
both; a table or enum dropped or renamed by one and touched by the other; a table SQLite rewrites
whole (Prisma's redefinition) while the other changes its columns. Different columns added to one
table, or the same alteration made identically by both, are no clash.
"""

from __future__ import annotations

from dataclasses import dataclass

from migwatch.sqlschema.model import (
    ALTERATIONS,
    DATA_USE,
    Action,
    Change,
    Kind,
    MigrationChanges,
    Obj,
    phrase,
)

_GONE = (Action.DROP, Action.RENAME)


@dataclass(frozen=True)
class Clash:
    """`ours` (a change of the first migration) and `theirs` (of the second) that do not combine."""

    obj: Obj  # the object the clash is about (a dropped table, the shared column, …)
    ours: Change
    theirs: Change


def _same_object(a: Change, b: Change) -> bool:
    """Whether two changes of one object clash."""
    if a.action is Action.USE and b.action is Action.USE:
        return False
    if Action.USE in (a.action, b.action):
        use, other = (a, b) if a.action is Action.USE else (b, a)
        if other.action in _GONE:
            return True
        if other.action is Action.REDEFINE and other.obj.kind is not Kind.TABLE:
            return True  # a column or enum replaced whole: what uses it was built on the old one
        # Rows written by a data migration must fit the column's type (an enum rewrite changes it too).
        return use.via == DATA_USE and other.action is Action.ALTER_TYPE
    if a.action is b.action and a.action in (Action.CREATE, Action.DROP):
        return not (a.idempotent and b.idempotent)
    if a.action in ALTERATIONS and b.action in ALTERATIONS:
        return _alterations_clash(a, b)
    return True


# Aspects of one column that separate ALTER COLUMN clauses change. Nullability commutes with the others
# (either order leaves the same column); a type change and a default do not (the default must fit the type).
_NULLABILITY = frozenset({Action.SET_NOT_NULL, Action.DROP_NOT_NULL})


def _alterations_clash(a: Change, b: Change) -> bool:
    if (a.action in _NULLABILITY) != (b.action in _NULLABILITY):
        return False
    return (a.action, a.detail) != (b.action, b.detail)


def _inside(container: Change, other: Change) -> bool:
    """Whether `container` (a change of a whole table or enum) clashes with `other` on something in it."""
    obj = container.obj
    if obj.kind is Kind.TABLE:
        holds = other.obj.table == obj.name or other.on == obj.name
    elif obj.kind is Kind.ENUM:
        holds = other.obj.enum == obj.name and other.obj != obj
    else:
        return False
    if not holds or other.obj == obj:
        return False
    if container.action in _GONE:
        return True
    return container.action is Action.REDEFINE and other.action is not Action.USE


def _clash_of(a: Change, b: Change) -> Obj | None:
    if a.obj == b.obj:
        return a.obj if _same_object(a, b) else None
    if _inside(a, b):
        return a.obj
    if _inside(b, a):
        return b.obj
    return None


def clashes(ours: MigrationChanges, theirs: MigrationChanges) -> list[Clash]:
    """Every object on which the two migrations clash (one clash per object, in `ours` order)."""
    found: dict[Obj, Clash] = {}
    for a in ours.changes:
        for b in theirs.changes:
            obj = _clash_of(a, b)
            if obj is not None and obj not in found:
                found[obj] = Clash(obj, a, b)
    return list(found.values())


def _plural(text: str) -> str:
    first, _, rest = text.partition(" ")
    return f"{first.removesuffix('s')} {rest}".strip()


def describe(clash: Clash, ours: str, theirs: str) -> str:
    """One clause naming both migrations and the object: "A and B both add User.bio", …"""
    a, b = phrase(clash.ours), phrase(clash.theirs)
    if a == b:
        return f"{ours} and {theirs} both {_plural(a)}"
    return f"{ours} {a} and {theirs} {b}"


def deploy_outcome(clash: Clash, applied: str, origin: str) -> str:
    """What deploying the pending side (`ours`) does once `applied` (`theirs`) is in the database."""
    pending, done = clash.ours, clash.theirs
    source = f"{applied} (applied from {origin})"
    if done.action in _GONE:
        gone = "renamed" if done.action is Action.RENAME else "dropped"
        return f"its deploy will fail: {done.obj} no longer exists, {gone} by {source}"
    if pending.action is Action.CREATE and pending.obj == done.obj:
        how = "added" if done.action is Action.CREATE else "changed"
        return f"its deploy will fail: {done.obj} already exists, {how} by {source}"
    if done.action is Action.USE:
        return (
            f"its deploy {phrase(pending)}, which {source} still uses: it {phrase(done).split(', which')[0]}"
        )
    return f"its deploy {phrase(pending)} after {source}, which {phrase(done)}"
