"""PostgreSQL migrations read with PostgreSQL's own grammar (pglast wraps the server's parser)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pglast
from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType
from pglast.stream import RawStream
from pglast.visitors import Visitor

from migwatch.sqlschema.model import DATA_USE, Action, Change, Kind, Obj, Unparsable, attribute_uses

# Types that are PostgreSQL's own, as the grammar leaves them when a migration names them unqualified;
# any other type name in a column definition is taken as an enum (Prisma creates no other types).
_BUILTIN_TYPES = frozenset(
    [
        "text",
        "varchar",
        "char",
        "bpchar",
        "int",
        "int2",
        "int4",
        "int8",
        "integer",
        "smallint",
        "bigint",
        "serial",
        "bigserial",
        "smallserial",
        "bool",
        "boolean",
        "float4",
        "float8",
        "real",
        "numeric",
        "decimal",
        "money",
        "date",
        "time",
        "timetz",
        "timestamp",
        "timestamptz",
        "interval",
        "uuid",
        "json",
        "jsonb",
        "bytea",
        "xml",
        "inet",
        "cidr",
        "macaddr",
        "bit",
        "varbit",
        "citext",
        "tsvector",
        "oid",
    ]
)

_COLUMN_ACTIONS = {
    AlterTableType.AT_AlterColumnType: Action.ALTER_TYPE,
    AlterTableType.AT_SetNotNull: Action.SET_NOT_NULL,
    AlterTableType.AT_DropNotNull: Action.DROP_NOT_NULL,
}


def _sql(node: Any) -> str:
    return str(RawStream()(node))


def table_name(relation: ast.RangeVar | None) -> str:
    """`X` for public.X or unqualified X, `schema.X` otherwise (Prisma's multi-schema projects)."""
    if relation is None:
        return ""
    schema = relation.schemaname
    return f"{schema}.{relation.relname}" if schema and schema != "public" else str(relation.relname)


def _strings(names: Sequence[Any] | None) -> list[str]:
    return [str(n.sval) for n in names or () if isinstance(n, ast.String)]


def _dotted(names: Sequence[Any] | None) -> str:
    parts = _strings(names)
    if len(parts) > 1 and parts[0] == "public":
        parts = parts[1:]
    return ".".join(parts)


def _type_uses(type_name: ast.TypeName | None) -> Iterator[Change]:
    if type_name is None or not type_name.names:
        return
    parts = _strings(type_name.names)
    if parts and parts[0] != "pg_catalog" and parts[-1].lower() not in _BUILTIN_TYPES:
        yield Change(Obj(Kind.ENUM, _dotted(type_name.names)), Action.USE)


def _constraint_uses(table: str, constraint: ast.Constraint) -> Iterator[Change]:
    for key in (*(constraint.keys or ()), *(constraint.fk_attrs or ())):
        if isinstance(key, ast.String):
            yield Change(Obj(Kind.COLUMN, str(key.sval), table), Action.USE)
    if constraint.contype == ConstrType.CONSTR_FOREIGN and constraint.pktable is not None:
        target = table_name(constraint.pktable)
        yield Change(Obj(Kind.TABLE, target), Action.USE)
        for key in constraint.pk_attrs or ():
            if isinstance(key, ast.String):
                yield Change(Obj(Kind.COLUMN, str(key.sval), target), Action.USE)


def _column_def_uses(table: str, column: ast.ColumnDef) -> Iterator[Change]:
    yield from _type_uses(column.typeName)
    for constraint in column.constraints or ():
        if isinstance(constraint, ast.Constraint):
            yield from _constraint_uses(table, constraint)


def _create_table(stmt: ast.CreateStmt) -> Iterator[Change]:
    table = table_name(stmt.relation)
    elements = [_sql(e) for e in stmt.tableElts or ()]
    yield Change(
        Obj(Kind.TABLE, table), Action.CREATE, ", ".join(elements), idempotent=bool(stmt.if_not_exists)
    )
    for element in stmt.tableElts or ():
        if isinstance(element, ast.ColumnDef):
            yield from _column_def_uses(table, element)
        elif isinstance(element, ast.Constraint):
            yield from _constraint_uses(table, element)


def _alter_command(table: str, cmd: ast.AlterTableCmd) -> Iterator[Change]:
    subtype, definition = cmd.subtype, cmd.def_
    if subtype == AlterTableType.AT_AddColumn and isinstance(definition, ast.ColumnDef):
        column = Obj(Kind.COLUMN, str(definition.colname), table)
        yield Change(column, Action.CREATE, _sql(definition), idempotent=bool(cmd.missing_ok))
        yield from _column_def_uses(table, definition)
    elif subtype == AlterTableType.AT_DropColumn:
        yield Change(Obj(Kind.COLUMN, str(cmd.name), table), Action.DROP, idempotent=bool(cmd.missing_ok))
    elif subtype in _COLUMN_ACTIONS:
        detail = _sql(definition) if definition is not None else ""
        yield Change(Obj(Kind.COLUMN, str(cmd.name), table), _COLUMN_ACTIONS[subtype], detail)
        if isinstance(definition, ast.ColumnDef):
            yield from _type_uses(definition.typeName)
    elif subtype == AlterTableType.AT_ColumnDefault:
        column = Obj(Kind.COLUMN, str(cmd.name), table)
        if definition is None:
            yield Change(column, Action.DROP_DEFAULT)
        else:
            yield Change(column, Action.SET_DEFAULT, _sql(definition))
    elif subtype == AlterTableType.AT_AddConstraint and isinstance(definition, ast.Constraint):
        name = definition.conname or f"({_sql(definition)})"
        yield Change(Obj(Kind.CONSTRAINT, str(name), table), Action.CREATE, _sql(definition))
        yield from _constraint_uses(table, definition)
    elif subtype == AlterTableType.AT_DropConstraint:
        yield Change(Obj(Kind.CONSTRAINT, str(cmd.name), table), Action.DROP, idempotent=bool(cmd.missing_ok))
    else:
        yield Change(Obj(Kind.TABLE, table), Action.ALTER, _sql(cmd))


def _rename(stmt: ast.RenameStmt) -> Iterator[Change]:
    kind = stmt.renameType
    new = str(stmt.newname)
    if kind == ObjectType.OBJECT_TABLE and stmt.relation is not None:
        old = table_name(stmt.relation)
        schema = stmt.relation.schemaname
        new_full = f"{schema}.{new}" if schema and schema != "public" else new
        yield Change(Obj(Kind.TABLE, old), Action.RENAME, new_name=new_full)
        yield Change(Obj(Kind.TABLE, new_full), Action.CREATE, renamed_from=old)
    elif kind in (ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABCONSTRAINT) and stmt.relation is not None:
        table = table_name(stmt.relation)
        what = Kind.COLUMN if kind == ObjectType.OBJECT_COLUMN else Kind.CONSTRAINT
        yield Change(Obj(what, str(stmt.subname), table), Action.RENAME, new_name=new)
        yield Change(Obj(what, new, table), Action.CREATE, renamed_from=str(stmt.subname))
    elif kind == ObjectType.OBJECT_INDEX and stmt.relation is not None:
        old = table_name(stmt.relation)
        yield Change(Obj(Kind.INDEX, old), Action.RENAME, new_name=new)
        yield Change(Obj(Kind.INDEX, new), Action.CREATE, renamed_from=old)
    elif kind == ObjectType.OBJECT_TYPE and isinstance(stmt.object, tuple):
        old = _dotted(stmt.object)
        yield Change(Obj(Kind.ENUM, old), Action.RENAME, new_name=new)
        yield Change(Obj(Kind.ENUM, new), Action.CREATE, renamed_from=old)


def _drop(stmt: ast.DropStmt) -> Iterator[Change]:
    kinds = {
        ObjectType.OBJECT_TABLE: Kind.TABLE,
        ObjectType.OBJECT_INDEX: Kind.INDEX,
        ObjectType.OBJECT_TYPE: Kind.ENUM,
    }
    kind = kinds.get(stmt.removeType) if stmt.removeType is not None else None
    if kind is None:
        return
    for target in stmt.objects or ():
        names = target.names if isinstance(target, ast.TypeName) else target
        yield Change(Obj(kind, _dotted(names)), Action.DROP, idempotent=bool(stmt.missing_ok))


def _index(stmt: ast.IndexStmt) -> Iterator[Change]:
    table = table_name(stmt.relation)
    name = str(stmt.idxname) if stmt.idxname else f"({_sql(stmt)})"
    yield Change(
        Obj(Kind.INDEX, name), Action.CREATE, _sql(stmt), on=table, idempotent=bool(stmt.if_not_exists)
    )
    yield Change(Obj(Kind.TABLE, table), Action.USE)
    for element in stmt.indexParams or ():
        if isinstance(element, ast.IndexElem) and element.name:
            yield Change(Obj(Kind.COLUMN, str(element.name), table), Action.USE)


def _enum(stmt: ast.CreateEnumStmt | ast.AlterEnumStmt) -> Iterator[Change]:
    enum = _dotted(stmt.typeName)
    if isinstance(stmt, ast.CreateEnumStmt):
        values = _strings(stmt.vals)
        yield Change(Obj(Kind.ENUM, enum), Action.CREATE, ", ".join(values))
    elif stmt.oldVal:
        yield Change(Obj(Kind.ENUM_VALUE, str(stmt.oldVal), enum), Action.RENAME, new_name=str(stmt.newVal))
        yield Change(
            Obj(Kind.ENUM_VALUE, str(stmt.newVal), enum), Action.CREATE, renamed_from=str(stmt.oldVal)
        )
    else:
        value = Obj(Kind.ENUM_VALUE, str(stmt.newVal), enum)
        yield Change(value, Action.CREATE, idempotent=bool(stmt.skipIfNewValExists))


class _References(Visitor):
    """Every table and column reference in a data statement (FROM, WHERE, SELECT lists, SET values)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, str] = {}  # alias or name → table
        self.columns: list[tuple[str | None, str]] = []  # (qualifier, column)

    def visit_RangeVar(self, ancestors: object, node: ast.RangeVar) -> None:
        table = table_name(node)
        self.tables[str(node.relname)] = table
        if node.alias is not None:
            self.tables[str(node.alias.aliasname)] = table

    def visit_ColumnRef(self, ancestors: object, node: ast.ColumnRef) -> None:
        parts = _strings(node.fields)
        if parts:
            self.columns.append((parts[-2] if len(parts) > 1 else None, parts[-1]))


def _dml(stmt: ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt) -> Iterator[Change]:
    """A data migration uses the tables and columns it reads or writes (a drop on another branch breaks it)."""
    if stmt.relation is None:
        return
    table = table_name(stmt.relation)
    yield Change(Obj(Kind.TABLE, table), Action.USE)
    targets = stmt.cols if isinstance(stmt, ast.InsertStmt) else getattr(stmt, "targetList", None)
    for target in targets or ():
        if isinstance(target, ast.ResTarget) and target.name:
            yield Change(Obj(Kind.COLUMN, str(target.name), table), Action.USE)
    source = stmt.selectStmt if isinstance(stmt, ast.InsertStmt) else None
    if isinstance(source, ast.SelectStmt) and source.valuesLists:
        return  # INSERT … VALUES: constants only (and walking a large data load costs seconds)
    references = _References()
    references(stmt)
    in_scope = set(references.tables.values())
    for other in sorted(in_scope - {table}):
        yield Change(Obj(Kind.TABLE, other), Action.USE)
    for qualifier, column in references.columns:
        owners = [references.tables[qualifier]] if qualifier in references.tables else sorted(in_scope)
        for owner in owners:
            yield Change(Obj(Kind.COLUMN, column, owner), Action.USE)


# Statements that change no table, column, enum, index or constraint Prisma tracks.
_NEUTRAL = (
    ast.CreateExtensionStmt,
    ast.CommentStmt,
    ast.VariableSetStmt,
    ast.TransactionStmt,
    ast.SelectStmt,
    ast.CreateSchemaStmt,
    ast.GrantStmt,
)


def statement_changes(stmt: ast.Node) -> list[Change] | None:
    """The changes of one statement; None when it is not one this reader classifies."""
    if isinstance(stmt, ast.CreateStmt):
        return list(_create_table(stmt))
    if isinstance(stmt, ast.AlterTableStmt) and stmt.objtype == ObjectType.OBJECT_TABLE:
        table = table_name(stmt.relation)
        found = [
            attribute_uses(_alter_command(table, cmd), f"alters table {table}") for cmd in stmt.cmds or ()
        ]
        return [change for clause in found for change in clause]
    if isinstance(stmt, ast.RenameStmt):
        return list(_rename(stmt))
    if isinstance(stmt, ast.DropStmt):
        return list(_drop(stmt))
    if isinstance(stmt, ast.IndexStmt):
        return list(_index(stmt))
    if isinstance(stmt, (ast.CreateEnumStmt, ast.AlterEnumStmt)):
        return list(_enum(stmt))
    if isinstance(stmt, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)):
        return list(dict.fromkeys(_dml(stmt)))
    if isinstance(stmt, _NEUTRAL):
        return []
    return None


def read_statements(sql_text: str) -> tuple[list[Change], int]:
    """(changes in statement order, statements not classified); raises Unparsable."""
    try:
        statements = pglast.parse_sql(sql_text)
    except pglast.parser.ParseError as exc:
        raise Unparsable(str(exc)) from None
    changes: list[Change] = []
    skipped = 0
    for raw in statements:
        found = statement_changes(raw.stmt) if raw.stmt is not None else []
        if found is None:
            skipped += 1
        else:
            changes.extend(attribute_uses(found, DATA_USE))
    return changes, skipped
