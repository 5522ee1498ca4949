"""What a migration does to the schema, as plain values: the objects each statement touches and how."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace


class Unparsable(Exception):
    """The file is not SQL the provider's grammar accepts."""


class Kind(str, enum.Enum):
    """The kinds of schema object a Prisma migration creates or changes."""

    TABLE = "table"
    COLUMN = "column"
    ENUM = "enum"
    ENUM_VALUE = "enum value"
    INDEX = "index"
    CONSTRAINT = "constraint"


class Action(str, enum.Enum):
    """What a statement does to one object."""

    CREATE = "create"  # CREATE TABLE/TYPE/INDEX, ADD COLUMN/CONSTRAINT, ADD VALUE, the new name of a rename
    DROP = "drop"
    RENAME = "rename"  # the old name of a rename (the new name is a CREATE with `renamed_from`)
    ALTER_TYPE = "alter type"
    SET_DEFAULT = "set default"
    DROP_DEFAULT = "drop default"
    SET_NOT_NULL = "set not null"
    DROP_NOT_NULL = "drop not null"
    ALTER = "alter"  # any other change of the object itself
    REDEFINE = "redefine"  # SQLite's copy-and-rename of a whole table (Prisma's "RedefineTables")
    USE = "use"  # read or referenced, not changed: a foreign key's target, an index's column, DML


DATA_USE = "writes rows"  # the `via` of tables and columns a data statement (INSERT, UPDATE, DELETE) uses

# Actions that only change an existing object: the same change on two branches is harmless when identical.
ALTERATIONS = frozenset(
    {
        Action.ALTER_TYPE,
        Action.SET_DEFAULT,
        Action.DROP_DEFAULT,
        Action.SET_NOT_NULL,
        Action.DROP_NOT_NULL,
        Action.ALTER,
        Action.REDEFINE,
    }
)


@dataclass(frozen=True, order=True)
class Obj:
    """A schema object by name. `owner` is the table of a column, index or constraint, the enum of a value."""

    kind: Kind
    name: str
    owner: str | None = None

    def __str__(self) -> str:
        if self.kind is Kind.COLUMN:
            return f"{self.owner}.{self.name}"
        if self.kind is Kind.ENUM_VALUE:
            return f"{self.owner}.'{self.name}'"
        if self.kind in (Kind.INDEX, Kind.CONSTRAINT) and self.owner:
            return f"{self.kind.value} {self.name} on {self.owner}"
        return f"{self.kind.value} {self.name}"

    @property
    def table(self) -> str | None:
        """The table this object lives in (itself for a table)."""
        if self.kind is Kind.TABLE:
            return self.name
        if self.kind in (Kind.COLUMN, Kind.INDEX, Kind.CONSTRAINT):
            return self.owner
        return None

    @property
    def enum(self) -> str | None:
        """The enum type this object is or belongs to."""
        if self.kind is Kind.ENUM:
            return self.name
        return self.owner if self.kind is Kind.ENUM_VALUE else None


@dataclass(frozen=True)
class Change:
    """One action on one object. `detail` is the normalised SQL of the clause (equal details = same change)."""

    obj: Obj
    action: Action
    detail: str = ""
    new_name: str | None = None  # for RENAME
    renamed_from: str | None = None  # for the CREATE side of a rename
    on: str | None = None  # the table an index is on (index names are per schema, not per table)
    idempotent: bool = False
    via: str | None = (
        None  # for USE: what uses it ("creates index X", "adds constraint Y", "writes rows")  # IF [NOT] EXISTS: running it twice is harmless
    )


@dataclass(frozen=True)
class MigrationChanges:
    """Every change one migration.sql makes, in statement order; `skipped` counts statements not classified."""

    changes: tuple[Change, ...] = ()
    skipped: int = 0

    def touching(self, table: str) -> list[Change]:
        """Changes of the table itself or of anything in it."""
        return [c for c in self.changes if c.obj.table == table]


_PHRASES = {
    Action.DROP: "drops {o}",
    Action.RENAME: "renames {o} to {new}",
    Action.ALTER_TYPE: "changes the type of {o}",
    Action.SET_DEFAULT: "changes the default of {o}",
    Action.DROP_DEFAULT: "drops the default of {o}",
    Action.SET_NOT_NULL: "makes {o} required",
    Action.DROP_NOT_NULL: "makes {o} optional",
    Action.ALTER: "alters {o}",
    Action.REDEFINE: "redefines {o}",
    Action.USE: "uses {o}",
}


def phrase(change: Change) -> str:
    """What a change does, for messages: "adds User.bio", "makes User.nick required", …"""
    if change.action is Action.CREATE:
        if change.renamed_from:
            return f"renames {change.renamed_from} to {change.obj}"
        kind = change.obj.kind
        return (
            f"{'adds' if kind in (Kind.COLUMN, Kind.ENUM_VALUE, Kind.CONSTRAINT) else 'creates'} {change.obj}"
        )
    if change.action is Action.USE and change.via:
        return f"{change.via}, which uses {change.obj}"
    return _PHRASES[change.action].format(o=change.obj, new=change.new_name)


def attribute_uses(changes: Iterable[Change], fallback: str) -> list[Change]:
    """The changes of one statement or clause, each USE naming what uses it (for messages)."""
    listed = list(changes)
    main = next((c for c in listed if c.action is not Action.USE), None)
    via = phrase(main) if main is not None else fallback
    return [replace(c, via=via) if c.action is Action.USE and c.via is None else c for c in listed]
