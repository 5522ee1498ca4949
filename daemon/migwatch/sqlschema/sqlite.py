"""SQLite migrations read with sqlglot's SQLite dialect.

Prisma's SQLite output is plain DDL plus the "RedefineTables" pattern (`PRAGMA foreign_keys=OFF`,
`CREATE TABLE "new_X"`, `INSERT INTO "new_X" … SELECT … FROM "X"`, `DROP TABLE "X"`,
`ALTER TABLE "new_X" RENAME TO "X"`, the indexes again, `PRAGMA foreign_key_check`); this module
reports each statement as it reads, and `netchange` turns that sequence into one change of X.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from migwatch.sqlschema.model import DATA_USE, Action, Change, Kind, Obj, Unparsable, attribute_uses

DIALECT = "sqlite"


def _name(node: exp.Expression | None) -> str:
    if isinstance(node, exp.Table):
        return str(node.name)
    if isinstance(node, (exp.Identifier, exp.Column)):
        return str(node.name)
    return "" if node is None else node.sql(DIALECT)


def _foreign_key_uses(table: str, constraint: exp.Expression) -> Iterator[Change]:
    for key in constraint.find_all(exp.ForeignKey):
        for column in key.expressions:
            yield Change(Obj(Kind.COLUMN, _name(column), table), Action.USE)
        reference = key.args.get("reference")
        target = reference.this if isinstance(reference, exp.Reference) else None
        if isinstance(target, exp.Schema):
            other = _name(target.this)
            yield Change(Obj(Kind.TABLE, other), Action.USE)
            for column in target.expressions:
                yield Change(Obj(Kind.COLUMN, _name(column), other), Action.USE)


def _create(stmt: exp.Create) -> Iterator[Change]:
    kind = str(stmt.args.get("kind") or "").upper()
    idempotent = bool(stmt.args.get("exists"))
    target = stmt.this
    if kind == "TABLE" and isinstance(target, exp.Schema):
        table = _name(target.this)
        elements = [e.sql(DIALECT) for e in target.expressions]
        yield Change(Obj(Kind.TABLE, table), Action.CREATE, ", ".join(elements), idempotent=idempotent)
        for element in target.expressions:
            yield from _foreign_key_uses(table, element)
    elif kind == "INDEX" and isinstance(target, exp.Index):
        table = _name(target.args.get("table"))
        detail = stmt.sql(DIALECT)
        yield Change(
            Obj(Kind.INDEX, _name(target.this)), Action.CREATE, detail, on=table, idempotent=idempotent
        )
        yield Change(Obj(Kind.TABLE, table), Action.USE)
        for column in target.find_all(exp.Column):
            yield Change(Obj(Kind.COLUMN, column.name, table), Action.USE)


def _alter(stmt: exp.Alter) -> Iterator[Change]:
    table = _name(stmt.this)
    for action in stmt.args.get("actions") or ():
        yield from attribute_uses(_alter_action(table, action), f"alters table {table}")


def _alter_action(table: str, action: exp.Expression) -> Iterator[Change]:
    if isinstance(action, exp.ColumnDef):
        column = Obj(Kind.COLUMN, _name(action.this), table)
        yield Change(column, Action.CREATE, action.sql(DIALECT))
        yield from _foreign_key_uses(table, action)
    elif isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN":
        for column in action.expressions or action.args.get("tables") or ():
            yield Change(Obj(Kind.COLUMN, _name(column), table), Action.DROP)
    elif isinstance(action, exp.RenameColumn):
        old, new = _name(action.this), _name(action.args.get("to"))
        yield Change(Obj(Kind.COLUMN, old, table), Action.RENAME, new_name=new)
        yield Change(Obj(Kind.COLUMN, new, table), Action.CREATE, renamed_from=old)
    elif isinstance(action, exp.AlterRename):
        new = _name(action.this)
        yield Change(Obj(Kind.TABLE, table), Action.RENAME, new_name=new)
        yield Change(Obj(Kind.TABLE, new), Action.CREATE, renamed_from=table)
    else:
        yield Change(Obj(Kind.TABLE, table), Action.ALTER, action.sql(DIALECT))


def _drop(stmt: exp.Drop) -> Iterator[Change]:
    kinds = {"TABLE": Kind.TABLE, "INDEX": Kind.INDEX}
    kind = kinds.get(str(stmt.args.get("kind") or "").upper())
    if kind is None:
        return
    for target in stmt.args.get("tables") or [stmt.this]:
        yield Change(Obj(kind, _name(target)), Action.DROP, idempotent=bool(stmt.args.get("exists")))


def _dml(stmt: exp.Insert | exp.Update | exp.Delete) -> Iterator[Change]:
    """A data migration uses the tables and columns it reads or writes (a drop on another branch breaks it)."""
    target = stmt.this
    table = _name(target.this if isinstance(target, exp.Schema) else target)
    yield Change(Obj(Kind.TABLE, table), Action.USE)
    if isinstance(target, exp.Schema):
        for column in target.expressions:
            yield Change(Obj(Kind.COLUMN, _name(column), table), Action.USE)
    scope: dict[str, str] = {}
    for node in stmt.find_all(exp.Table):
        scope[node.name] = node.name
        if node.alias:
            scope[node.alias] = node.name
    tables = sorted(set(scope.values()))
    for other in tables:
        if other != table:
            yield Change(Obj(Kind.TABLE, other), Action.USE)
    for column in stmt.find_all(exp.Column):
        owners = [scope[column.table]] if column.table in scope else tables
        for owner in owners:
            yield Change(Obj(Kind.COLUMN, column.name, owner), Action.USE)


def statement_changes(stmt: exp.Expression) -> list[Change] | None:
    """The changes of one statement; None when it is not one this reader classifies."""
    if isinstance(stmt, exp.Create):
        return list(_create(stmt))
    if isinstance(stmt, exp.Alter):
        return list(_alter(stmt))
    if isinstance(stmt, exp.Drop):
        return list(_drop(stmt))
    if isinstance(stmt, (exp.Insert, exp.Update, exp.Delete)):
        return list(dict.fromkeys(_dml(stmt)))
    if isinstance(stmt, (exp.Pragma, exp.Select, exp.Transaction, exp.Commit)):
        return []
    return None


def read_statements(sql_text: str) -> tuple[list[Change], int]:
    """(changes in statement order, statements not classified); raises Unparsable."""
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # sqlglot warns about every statement it keeps as a raw command
    try:
        statements = sqlglot.parse(sql_text, read=DIALECT)
    except SqlglotError as exc:
        raise Unparsable(str(exc).splitlines()[0]) from None
    finally:
        quiet.setLevel(level)
    changes: list[Change] = []
    skipped = 0
    for stmt in statements:
        if not isinstance(stmt, exp.Expression):
            continue
        found = statement_changes(stmt)
        if found is None:
            skipped += 1
        else:
            changes.extend(attribute_uses(found, DATA_USE))
    return changes, skipped
