"""The SQL readers and the clash rules on plain values: statements in, changes and clashes out."""

from __future__ import annotations

import logging

import pytest

from migwatch.sqlschema import Action, Change, Kind, MigrationChanges, Obj, parse_migration
from migwatch.sqlschema.conflicts import clashes, deploy_outcome, describe

WARNINGS = """/*
  Warnings:

  - You are about to drop the column `password` on the `Account` table. All the data in the column will be lost.

*/
-- AlterTable
ALTER TABLE "Account" DROP COLUMN "password";
"""


def changed(sql: str, provider: str = "postgresql") -> list[tuple[str, str]]:
    """(object, action) of every change that is not a mere use."""
    parsed = parse_migration(sql, provider)
    assert parsed is not None
    return [(str(c.obj), c.action.value) for c in parsed.changes if c.action is not Action.USE]


def test_prisma_warnings_header_does_not_hide_the_drop() -> None:
    assert changed(WARNINGS) == [("Account.password", "drop")]


def test_every_column_change_kind_is_told_apart() -> None:
    sql = (
        'ALTER TABLE "User" ADD COLUMN "bio" TEXT, DROP COLUMN "old", ALTER COLUMN "age" SET DATA TYPE BIGINT,\n'
        '  ALTER COLUMN "nick" SET DEFAULT \'x\', ALTER COLUMN "nick" SET NOT NULL, ALTER COLUMN "a" DROP NOT NULL,\n'
        '  ALTER COLUMN "b" DROP DEFAULT;\nALTER TABLE "User" RENAME COLUMN "c" TO "d";'
    )
    assert changed(sql) == [
        ("User.bio", "create"),
        ("User.old", "drop"),
        ("User.age", "alter type"),
        ("User.nick", "set default"),
        ("User.nick", "set not null"),
        ("User.a", "drop not null"),
        ("User.b", "drop default"),
        ("User.c", "rename"),
        ("User.d", "create"),
    ]


def test_tables_enums_indexes_constraints() -> None:
    sql = """-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');
ALTER TYPE "Role" ADD VALUE 'EDITOR';
-- CreateTable
CREATE TABLE "Post" ("id" SERIAL NOT NULL, "role" "Role" NOT NULL, CONSTRAINT "Post_pkey" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "Post_role_key" ON "Post"("role");
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "Post" RENAME TO "Article";
ALTER TABLE "Old" RENAME TO "New";
DROP INDEX "Old_idx";
DROP TABLE "Legacy";
"""
    assert changed(sql) == [
        ("enum Role", "create"),
        ("Role.'EDITOR'", "create"),
        ("table Article", "create"),  # created and renamed here: created under its final name
        ("index Post_role_key", "create"),
        ("constraint Post_authorId_fkey on Article", "create"),
        ("table Old", "rename"),
        ("table New", "create"),
        ("index Old_idx", "drop"),
        ("table Legacy", "drop"),
    ]


def test_extensions_do_blocks_and_data_changes_are_no_schema_changes() -> None:
    sql = """CREATE EXTENSION IF NOT EXISTS "pgcrypto";
DO $$ BEGIN CREATE TYPE "X" AS ENUM ('a'); EXCEPTION WHEN duplicate_object THEN null; END $$;
UPDATE "User" SET "nick" = 'x' WHERE "nick" IS NULL;
"""
    parsed = parse_migration(sql, "postgresql")
    assert parsed is not None
    assert parsed.skipped == 1  # the DO block: its body is PL/pgSQL text, not read
    assert [(str(c.obj), c.action.value, c.via) for c in parsed.changes] == [
        ("table User", "use", "writes rows"),
        ("User.nick", "use", "writes rows"),
    ]


def test_prisma_enum_rewrite_is_one_change_of_the_enum() -> None:
    sql = """-- AlterEnum
BEGIN;
CREATE TYPE "Role_new" AS ENUM ('USER');
ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new");
ALTER TYPE "Role" RENAME TO "Role_old";
ALTER TYPE "Role_new" RENAME TO "Role";
DROP TYPE "Role_old";
COMMIT;
"""
    assert changed(sql) == [("User.role", "alter type"), ("enum Role", "redefine")]


def test_sqlite_redefine_tables_is_a_change_of_the_table() -> None:
    sql = """-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_User" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "nick" TEXT NOT NULL
);
INSERT INTO "new_User" ("id", "nick") SELECT "id", "nick" FROM "User";
DROP TABLE "User";
ALTER TABLE "new_User" RENAME TO "User";
CREATE UNIQUE INDEX "User_nick_key" ON "User"("nick");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
"""
    parsed = parse_migration(sql, "sqlite")
    assert parsed is not None
    assert [(str(c.obj), c.action.value) for c in parsed.changes if c.action is not Action.USE] == [
        ("table User", "redefine")
    ]
    redefine = next(c for c in parsed.changes if c.action is Action.REDEFINE)
    assert redefine.detail == '"id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "nick" TEXT NOT NULL'


def test_multi_schema_names_keep_their_schema() -> None:
    sql = 'ALTER TABLE "public"."User" ADD COLUMN "a" TEXT;\nALTER TABLE "audit"."Log" ADD COLUMN "a" TEXT;'
    assert changed(sql) == [("User.a", "create"), ("audit.Log.a", "create")]


@pytest.mark.parametrize(
    ("provider", "sql"),
    [
        ("postgresql", "CREATE TABLE (\n"),
        ("postgresql", 'ALTER TABLE "A" ADD COLUMN;'),
        ("sqlite", 'CREATE TABLE "x" ('),
    ],
)
def test_unparsable_file_is_a_debug_line_and_no_result(
    provider: str, sql: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="migwatch.sqlschema"):
        assert parse_migration(sql, provider, where="m1/migration.sql") is None
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"cannot parse m1/migration.sql as {provider} SQL"
    ]


def _m(*changes: Change) -> MigrationChanges:
    return MigrationChanges(changes)


BIO = Obj(Kind.COLUMN, "bio", "User")
CITY = Obj(Kind.COLUMN, "city", "User")
USER = Obj(Kind.TABLE, "User")


def test_different_columns_of_one_table_do_not_clash() -> None:
    assert (
        clashes(_m(Change(BIO, Action.CREATE, "bio text")), _m(Change(CITY, Action.CREATE, "city text")))
        == []
    )


def test_identical_alterations_do_not_clash_but_different_ones_do() -> None:
    same = Change(BIO, Action.ALTER_TYPE, "bigint")
    assert clashes(_m(same), _m(same)) == []
    other = Change(BIO, Action.ALTER_TYPE, "text")
    assert [describe(c, "a1", "b1") for c in clashes(_m(same), _m(other))] == [
        "a1 and b1 both change the type of User.bio"
    ]


def test_idempotent_creates_do_not_clash() -> None:
    index = Obj(Kind.INDEX, "User_bio_idx")
    guarded = Change(index, Action.CREATE, on="User", idempotent=True)
    assert clashes(_m(guarded), _m(guarded)) == []
    assert len(clashes(_m(guarded), _m(Change(index, Action.CREATE, on="User")))) == 1


def test_dropped_table_clashes_with_anything_in_it() -> None:
    dropped = _m(Change(USER, Action.DROP))
    used = _m(
        Change(Obj(Kind.COLUMN, "id", "User"), Action.USE, via="adds constraint Post_userId_fkey on Post")
    )
    [clash] = clashes(used, dropped)
    assert describe(clash, "20240102_posts", "20240103_drop_users") == (
        "20240102_posts adds constraint Post_userId_fkey on Post, which uses User.id and "
        "20240103_drop_users drops table User"
    )
    assert deploy_outcome(clash, "20240103_drop_users", "main") == (
        "its deploy will fail: table User no longer exists, dropped by 20240103_drop_users (applied from main)"
    )


def test_deploy_outcome_of_a_column_added_twice() -> None:
    added = _m(Change(Obj(Kind.COLUMN, "password", "Account"), Action.CREATE, "password text"))
    [clash] = clashes(added, added)
    assert deploy_outcome(clash, "20240101_add_password", "feature/auth") == (
        "its deploy will fail: Account.password already exists, added by 20240101_add_password "
        "(applied from feature/auth)"
    )


def test_redefined_sqlite_table_clashes_with_a_column_added_elsewhere() -> None:
    redefined = _m(Change(USER, Action.REDEFINE, '"id" INTEGER'))
    [clash] = clashes(_m(Change(BIO, Action.CREATE, "bio text")), redefined)
    assert describe(clash, "a", "b") == "a adds User.bio and b redefines table User"
    assert clashes(_m(Change(BIO, Action.USE)), redefined) == []


def test_a_column_replaced_by_renames_clashes_with_a_foreign_key_to_it() -> None:
    # documenso's branch "what if user ids were strings": id renamed away, another column renamed to id.
    replaced = parse_migration(
        'ALTER TABLE "User" RENAME COLUMN "id" TO "id_old";\n'
        'ALTER TABLE "User" RENAME COLUMN "secondaryId" TO "id";\n'
        'ALTER TABLE "User" DROP COLUMN "id_old";\n',
        "postgresql",
    )
    referencing = parse_migration(
        'CREATE TABLE "Note" ("id" SERIAL NOT NULL, "userId" INTEGER NOT NULL, CONSTRAINT "Note_pkey" PRIMARY KEY ("id"));\n'
        'ALTER TABLE "Note" ADD CONSTRAINT "Note_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id");\n',
        "postgresql",
    )
    assert replaced is not None and referencing is not None
    assert [describe(c, "a", "b") for c in clashes(referencing, replaced)] == [
        "a adds constraint Note_userId_fkey on Note, which uses User.id and b redefines User.id"
    ]
