#!/usr/bin/env python3
"""Writes the conflict zoo's migrations (tests/fixtures/conflict_zoo) as the real Prisma CLI writes them.

Each case is a base datamodel and two branches' datamodels; `prisma migrate diff --script` (Prisma 6.19.3
through ../shared/prisma-oracle) turns base, base→A and base→B into the migration.sql files Prisma would
create, for PostgreSQL and SQLite. Renames, which Prisma never writes by itself (users edit the
generated drop-and-add into a rename, as Prisma's docs say), are given as hand-edited SQL in Prisma's
layout. `cases.json` records what each case is meant to show; tests/test_conflict_zoo.py applies the
files to real databases in both orders and checks that outcome and migwatch's verdict against it.

    .venv/bin/python tools/gen-conflict-zoo.py          # ≈3 min (one Prisma run per file)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pg import PgServer  # noqa: E402

ORACLE = ROOT.parent / "shared" / "prisma-oracle" / "prisma-oracle"
OUT = ROOT / "tests" / "fixtures" / "conflict_zoo"
USER = """model User {
  id    Int     @id @default(autoincrement())
  email String  @unique
  nick  String?
  age   Int?
%s}
"""
POST = """model Post {
  id       Int    @id @default(autoincrement())
  title    String
%s}
"""
ROLE = "enum Role {\n  USER\n  ADMIN\n%s}\n"


@dataclass(frozen=True)
class Case:
    """A base datamodel and two branches'; `sql` replaces generated files: {(provider, "a"|"b"): text}."""

    name: str
    conflict: bool  # the two branches' migrations break (one order fails) or undo each other
    what: str
    base: str
    a: str
    b: str
    providers: tuple[str, ...] = ("postgresql", "sqlite")
    sql: dict[tuple[str, str], str] = field(default_factory=dict)
    conflict_on: dict[str, bool] = field(default_factory=dict)  # per-provider exceptions to `conflict`


def user(extra: str = "") -> str:
    return USER % extra


def post(extra: str = "") -> str:
    return POST % extra


RENAME_NICK = {
    "postgresql": '-- AlterTable\nALTER TABLE "User" RENAME COLUMN "nick" TO "{to}";\n',
    "sqlite": '-- AlterTable\nALTER TABLE "User" RENAME COLUMN "nick" TO "{to}";\n',
}
CASES = [
    Case(
        "different_columns",
        False,
        "different columns added to one table",
        user(),
        user("  bio String?\n"),
        user("  city String?\n"),
    ),
    Case(
        "same_column_added",
        True,
        "the same column added on both",
        user(),
        user("  bio String?\n"),
        user("  bio String?\n"),
    ),
    Case(
        "same_column_type",
        True,
        "the same column's type changed differently",
        user(),
        USER.replace("age   Int?", "age   String?") % "",
        USER.replace("age   Int?", "age   BigInt?") % "",
    ),
    Case(
        "same_column_default",
        True,
        "different defaults for one column",
        user(),
        USER.replace("nick  String?", 'nick  String? @default("a")') % "",
        USER.replace("nick  String?", 'nick  String? @default("b")') % "",
    ),
    Case(
        "same_change_twice",
        False,
        "the identical change on both",
        user(),
        USER.replace("nick  String?", "nick  String") % "",
        USER.replace("nick  String?", "nick  String") % "",
    ),
    Case(
        "same_column_dropped",
        True,
        "the same column dropped on both",
        user(),
        USER.replace("  nick  String?\n", "") % "",
        USER.replace("  nick  String?\n", "") % "",
        conflict_on={"sqlite": False},
    ),
    Case(
        "dropped_and_altered",
        True,
        "a column dropped on one, made required on the other",
        user(),
        USER.replace("  nick  String?\n", "") % "",
        USER.replace("nick  String?", "nick  String") % "",
    ),
    Case(
        "same_column_renamed",
        True,
        "the same column renamed on both",
        user(),
        user(),
        user(),
        sql={
            (p, b): RENAME_NICK[p].format(to=to)
            for p in ("postgresql", "sqlite")
            for b, to in (("a", "nickname"), ("b", "handle"))
        },
    ),
    Case(
        "table_dropped_column_added",
        True,
        "a table dropped on one, a column added to it on the other",
        user() + post(),
        user(),
        user() + post("  body String?\n"),
    ),
    Case(
        "table_renamed_index_added",
        True,
        "a table renamed on one, indexed on the other",
        user() + post(),
        user() + post(),
        user() + post("  @@index([title])\n"),
        sql={
            (p, "a"): '-- AlterTable\nALTER TABLE "Post" RENAME TO "Article";\n'
            for p in ("postgresql", "sqlite")
        },
    ),
    Case(
        "same_table_created",
        True,
        "the same table created on both",
        user(),
        user() + post(),
        user() + post("  body String?\n"),
    ),
    Case(
        "different_tables",
        False,
        "different tables created",
        user(),
        user() + post(),
        user() + "model Tag {\n  id Int @id\n  name String\n}\n",
    ),
    Case(
        "same_index",
        True,
        "the same index created on both",
        user(),
        user("  @@index([nick])\n"),
        user("  @@index([nick])\n"),
    ),
    Case(
        "index_on_dropped_column",
        True,
        "an index on a column the other drops",
        user(),
        user("  @@index([nick])\n"),
        USER.replace("  nick  String?\n", "") % "",
    ),
    Case(
        "relation_to_dropped_table",
        True,
        "a relation to a table the other drops",
        user() + post(),
        user()
        + post("  comments Comment[]\n")
        + "model Comment {\n  id Int @id\n  postId Int\n  post Post @relation(fields: [postId], references: [id])\n}\n",
        user(),
    ),
    Case(
        "same_enum_value",
        True,
        "the same enum value added on both",
        user() + ROLE % "",
        user() + ROLE % "  EDITOR\n",
        user() + ROLE % "  EDITOR\n",
        conflict_on={"sqlite": False},
    ),
    Case(
        "different_enum_values",
        False,
        "different enum values added",
        user() + ROLE % "",
        user() + ROLE % "  EDITOR\n",
        user() + ROLE % "  GUEST\n",
    ),
    Case(
        "enum_value_removed_and_added",
        True,
        "an enum value removed on one (Prisma recreates the type), added on the other",
        user("  role Role @default(USER)\n") + ROLE % "",
        user("  role Role @default(USER)\n") + "enum Role {\n  USER\n}\n",
        user("  role Role @default(USER)\n") + ROLE % "  EDITOR\n",
        conflict_on={"sqlite": False},
    ),
    Case(
        "same_enum_created",
        True,
        "the same enum created on both",
        user(),
        user("  tier Tier?\n") + "enum Tier {\n  FREE\n}\n",
        user("  tier Tier?\n") + "enum Tier {\n  FREE\n  PAID\n}\n",
    ),
    Case(
        "required_and_added",
        False,
        "a column made required on one, another column added on the other",
        user(),
        USER.replace("nick  String?", "nick  String") % "",
        user("  bio String?\n"),
        conflict_on={"sqlite": True},  # SQLite rewrites the whole table: the other branch's column is lost
    ),
]


def datasource(provider: str) -> str:
    url = "file:./dev.db" if provider == "sqlite" else "postgresql://unused@localhost/unused"
    return f'datasource db {{\n  provider = "{provider}"\n  url      = "{url}"\n}}\n\n'


def diff(schema_dir: Path, url: str, source: str | None, target: str) -> str:
    args = ["--from-empty"] if source is None else ["--from-schema-datamodel", source]
    to_script = ["--to-schema-datamodel", target, "--script"]
    completed = subprocess.run(
        [str(ORACLE), "--schema", target, "--url", url, "--", "migrate", "diff", *args, *to_script],
        capture_output=True,
        text=True,
        cwd=schema_dir,
        check=True,
    )
    return (
        completed.stdout[completed.stdout.index("\n\n") + 2 :]
        if "Loaded Prisma config" in completed.stdout
        else completed.stdout
    )


def write_case(case: Case, provider: str, url: str, work: Path) -> None:
    folder = work / case.name / provider
    folder.mkdir(parents=True)
    paths = {}
    for key, body in (("base", case.base), ("a", case.a), ("b", case.b)):
        paths[key] = folder / f"{key}.prisma"
        paths[key].write_text(datasource(provider) + body)
    out = OUT / provider / case.name
    out.mkdir(parents=True, exist_ok=True)
    texts = {"base": diff(folder, url, None, str(paths["base"]))}
    for side in ("a", "b"):
        texts[side] = case.sql.get((provider, side)) or diff(
            folder, url, str(paths["base"]), str(paths[side])
        )
    for key, text in texts.items():
        (out / f"{key}.sql").write_text(text)


def main() -> None:
    server = PgServer.start_new()
    try:
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(3) as pool:
            jobs = []
            for case in CASES:
                for provider in case.providers:
                    url = (
                        server.url(server.create_database())
                        if provider == "postgresql"
                        else f"file:{tmp}/{case.name}.db"
                    )
                    jobs.append(pool.submit(write_case, case, provider, url, Path(tmp)))
            for job in jobs:
                job.result()
    finally:
        server.cleanup()
    manifest = {
        case.name: {
            "what": case.what,
            "conflict": {p: case.conflict_on.get(p, case.conflict) for p in case.providers},
        }
        for case in CASES
    }
    (OUT / "cases.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {sum(len(c.providers) for c in CASES)} cases to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
