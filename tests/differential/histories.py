"""Seeded generator of migration histories: local folders + `_prisma_migrations` rows, as plain data.

`generate(seed)` always returns the same `History` for the same seed (it uses only `random.Random(seed)`),
so a disagreement found by the differential suite is reproduced with `python -m
tests.differential.histories SEED`. `write_folder` and `write_rows` put a history on disk and in a
database; they decide nothing, so both sides (migwatch and Prisma) judge exactly the same bytes and rows.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from tests.support.prisma_rows import (
    HistoryConnection,
    TimestampStyle,
    apply_like_prisma,
    create_history_table,
)

RowState = Literal["applied", "failed", "rolled_back"]

BASE_TIME = datetime(2025, 3, 1, 9, 0, 0, tzinfo=timezone.utc)
# Descriptions that exercise localeCompare: case, underscores, digits after a prefix (`x_` before `x1`).
DESCRIPTIONS = (
    "init",
    "add_user",
    "Add_Mission",
    "add_mission",
    "add_mission_",
    "add_mission1",
    "a",
    "B",
    "x_",
    "x1",
    "AddIndex",
    "story_2_5_mission_orchestration_fields",
    "drop-column",
    "create_vector_indexes",
    "Z_last",
    "_leading",
)


@dataclass(frozen=True)
class FolderSpec:
    """One entry of the migrations folder as written (in both worktrees)."""

    name: str
    sql: bytes | None  # migration.sql byte for byte; None: a folder without migration.sql
    symlink: bool = False  # a symlink to a folder elsewhere (Prisma ignores it)
    note: str = ""


@dataclass(frozen=True)
class RowSpec:
    """One `_prisma_migrations` row; `applied_sql` is the text that was run when it was recorded."""

    name: str
    state: RowState
    checksum: str
    applied_sql: bytes
    note: str = ""


@dataclass(frozen=True)
class History:
    """A local migrations folder and a database history; rows are in started_at order."""

    seed: int
    folders: tuple[FolderSpec, ...]
    rows: tuple[RowSpec, ...]
    stray_files: tuple[str, ...] = ()  # plain files in the migrations folder (not migrations)
    timestamp_style: TimestampStyle = "unix_ms"
    has_table: bool = True  # False: the database has no _prisma_migrations table (rows are then empty)
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """A readable, complete listing of the history (for failure messages)."""
        lines = [
            f"History seed={self.seed} timestamp_style={self.timestamp_style} has_table={self.has_table}"
        ]
        lines.append("  folders (on disk, unsorted as generated):")
        for folder in self.folders:
            kind = "symlink → folder" if folder.symlink else "folder"
            sql = "no migration.sql" if folder.sql is None else f"migration.sql {folder.sql!r}"
            lines.append(f"    {folder.name!r} [{kind}] {folder.note}: {sql}")
        for stray in self.stray_files:
            lines.append(f"    {stray!r} [plain file]")
        lines.append("  rows (ORDER BY started_at):")
        for index, row in enumerate(self.rows):
            lines.append(
                f"    {index}: {row.name!r} {row.state} checksum={row.checksum!r} {row.note}; "
                f"applied text {row.applied_sql!r}"
            )
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- checksums


def prisma_checksum(raw: bytes) -> str:
    """SHA-256 hex of the file read as UTF-8 (invalid bytes replaced, BOM kept) — what Prisma stores."""
    return hashlib.sha256(raw.decode("utf-8", "replace").encode("utf-8")).hexdigest()


def text_checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def unpadded(hex_checksum: str) -> str:
    """How Prisma before 2.x stored checksums: each byte in hex without zero padding."""
    return "".join(f"{byte:x}" for byte in bytes.fromhex(hex_checksum))


def stored_checksum(applied: bytes, form: str) -> str:
    """The checksum column for a migration applied with `applied`, written in one of several forms."""
    text = applied.decode("utf-8", "replace")
    lf_text = text.replace("\r\n", "\n")
    if form == "exact":
        return prisma_checksum(applied)
    if form == "lf_form":
        return text_checksum(lf_text)
    if form == "crlf_form":
        return text_checksum(lf_text.replace("\n", "\r\n"))
    if form == "old_format":
        return unpadded(prisma_checksum(applied))
    if form == "old_lf_form":
        return unpadded(text_checksum(lf_text))
    if form == "old_crlf_form":
        return unpadded(text_checksum(lf_text.replace("\n", "\r\n")))
    if form == "upper":
        return prisma_checksum(applied).upper()
    if form == "wrong":
        return text_checksum("-- some other text\n" + text)
    raise ValueError(f"unknown checksum form {form!r}")


# ------------------------------------------------------------------------------------------- contents


def sql_lines(name: str, index: int) -> list[str]:
    return [
        f"-- Migration {name}",
        f'CREATE TABLE IF NOT EXISTS "t{index}" (',
        '    "id" INTEGER NOT NULL',
        ");",
        "",
    ]


def encode(lines: list[str], ending: str, encoding: str, rng: random.Random) -> bytes:
    """Join lines with LF, CRLF or a mix, then add a BOM or invalid UTF-8 bytes (in the comment)."""
    if ending == "lf":
        text = "\n".join(lines)
    elif ending == "crlf":
        text = "\r\n".join(lines)
    else:
        # Mixed: at least one of each, in random places.
        separators = [rng.choice(["\n", "\r\n"]) for _ in lines[:-1]]
        separators[0], separators[-1] = "\n", "\r\n"
        text = "".join(line + sep for line, sep in zip(lines[:-1], separators, strict=True)) + lines[-1]
    raw = text.encode("utf-8")
    if encoding == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif encoding == "invalid_utf8":
        bad = rng.choice([b"\xff\xfe", b"\xc3(", b"\xe2\x82", b"\x80"])
        raw = raw.replace(b"-- Migration ", b"-- Migration " + bad + b" ", 1)
    return raw


# ------------------------------------------------------------------------------------------- generator


def _names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    stamp = BASE_TIME.replace(year=rng.choice([2024, 2025]), month=rng.randint(1, 12), day=rng.randint(1, 28))
    while len(names) < count:
        # Often the next migration shares the timestamp: then only localeCompare on the description orders them.
        if not names or rng.random() < 0.65:
            stamp += timedelta(seconds=rng.choice([1, 59, 3600, 86400, 86400 * 9]))
        name = f"{stamp:%Y%m%d%H%M%S}_{rng.choice(DESCRIPTIONS)}"
        if name not in names:
            names.append(name)
    if rng.random() < 0.1:
        names[rng.randrange(len(names))] = "." + names[0][:14] + "_hidden"
    return names


_LOCAL = (("present", 60), ("missing", 12), ("edited", 10), ("no_sql", 3), ("symlink", 3))
_ROWS = (
    ("none", 20),
    ("applied", 50),
    ("failed", 6),
    ("rolled_back", 7),
    ("rolled_back_reapplied", 7),
    ("duplicate_wrong_later", 6),
    ("duplicate_wrong_first", 3),
)
_FORMS = (
    ("exact", 60),
    ("lf_form", 8),
    ("crlf_form", 8),
    ("old_format", 10),
    ("old_lf_form", 4),
    ("old_crlf_form", 4),
    ("upper", 4),
    ("wrong", 3),
)


def _pick(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([key for key, _ in table], weights=[weight for _, weight in table])[0]


def generate(seed: int, *, allow_no_table: bool = False) -> History:
    """The history of this seed: 2–7 migrations with random folder fates, rows and row order.

    `allow_no_table`: every tenth seed (ending in 9) then has no history table at all (PostgreSQL only: the
    oracle's SQLite engine cannot read a database without one).
    """
    rng = random.Random(seed)
    names = _names(rng, rng.randint(2, 7))
    folders: list[FolderSpec] = []
    first_rows: list[RowSpec] = []
    later_rows: list[tuple[str, RowSpec]] = []  # (name of the row it must come after, row)
    notes: list[str] = []
    for index, name in enumerate(names):
        ending = rng.choices(["lf", "crlf", "mixed"], weights=[6, 2, 2])[0]
        encoding = rng.choices(["plain", "bom", "invalid_utf8"], weights=[8, 1, 1])[0]
        applied = encode(sql_lines(name, index), ending, encoding, rng)
        local = _pick(rng, _LOCAL)
        rows = _pick(rng, _ROWS)
        if local in ("missing", "symlink") and rows == "none":
            rows = "applied"
        if local == "no_sql" and rows != "none" and rng.random() < 0.6:
            rows = "none"  # a row makes Prisma stop with P3015: keep those rare, they hide the rest
        description = f"{ending}/{encoding}, local {local}, rows {rows}"
        on_disk = applied
        if local == "edited":
            on_disk = encode(
                [*sql_lines(name, index)[:-1], "-- edited after it was applied", ""], ending, encoding, rng
            )
        if local in ("present", "edited"):
            folders.append(FolderSpec(name, on_disk, note=description))
        elif local == "no_sql":
            folders.append(FolderSpec(name, None, note=description))
        elif local == "symlink":
            folders.append(FolderSpec(name, on_disk, symlink=True, note=description))
        form = _pick(rng, _FORMS)
        exact = prisma_checksum(applied)
        if rows == "applied":
            first_rows.append(RowSpec(name, "applied", stored_checksum(applied, form), applied, note=form))
        elif rows == "failed":
            first_rows.append(RowSpec(name, "failed", exact, applied, note="failed"))
        elif rows == "rolled_back":
            first_rows.append(RowSpec(name, "rolled_back", exact, applied, note="rolled back"))
        elif rows == "rolled_back_reapplied":
            # The failed attempt often ran an earlier text (fixed, then re-applied).
            earlier = applied if rng.random() < 0.5 else applied + b"-- first attempt\n"
            first_rows.append(RowSpec(name, "rolled_back", prisma_checksum(earlier), earlier, "rolled back"))
            later_rows.append(
                (
                    name,
                    RowSpec(name, "applied", stored_checksum(applied, form), applied, f"re-applied, {form}"),
                )
            )
        elif rows == "duplicate_wrong_later":
            first_rows.append(RowSpec(name, "applied", stored_checksum(applied, form), applied, note=form))
            later_rows.append(
                (
                    name,
                    RowSpec(name, "applied", stored_checksum(applied, "wrong"), applied, "duplicate, wrong"),
                )
            )
        elif rows == "duplicate_wrong_first":
            first_rows.append(
                RowSpec(name, "applied", stored_checksum(applied, "wrong"), applied, "first, wrong")
            )
            later_rows.append((name, RowSpec(name, "applied", exact, applied, "duplicate, exact")))
        notes.append(f"{name}: {description}, checksum form {form}")
    if rng.random() < 0.5:
        rng.shuffle(first_rows)  # applied out of name order
        notes.append("rows applied out of name order")
    ordered = list(first_rows)
    for after, row in later_rows:
        position = next(i for i, r in enumerate(ordered) if r.name == after)
        ordered.insert(rng.randint(position + 1, len(ordered)), row)
    rng.shuffle(folders)
    stray = ("README.md",) if rng.random() < 0.15 else ()
    style: TimestampStyle = "unix_ms" if rng.random() < 0.5 else "rfc3339"
    if allow_no_table and seed % 10 == 9:
        return History(seed, tuple(folders), (), stray, style, has_table=False, notes=("no history table",))
    return History(
        seed=seed,
        folders=tuple(folders),
        rows=tuple(ordered),
        stray_files=stray,
        timestamp_style=style,
        notes=tuple(notes),
    )


# ------------------------------------------------------------------------------------------- writers


def write_folder(history: History, migrations_dir: Path, elsewhere: Path) -> None:
    """Create the history's migration folders in `migrations_dir` (symlink targets under `elsewhere`)."""
    migrations_dir.mkdir(parents=True, exist_ok=True)
    for folder in history.folders:
        target = elsewhere / folder.name if folder.symlink else migrations_dir / folder.name
        target.mkdir(parents=True, exist_ok=True)
        if folder.sql is not None:
            (target / "migration.sql").write_bytes(folder.sql)
        if folder.symlink:
            (migrations_dir / folder.name).symlink_to(target, target_is_directory=True)
    for stray in history.stray_files:
        (migrations_dir / stray).write_text("Not a migration.\n", encoding="utf-8")


def write_rows(history: History, conn: HistoryConnection, provider: str, scratch: Path) -> None:
    """Create `_prisma_migrations` and record the rows as Prisma would (started_at one second apart)."""
    create_history_table(conn, provider)
    for index, row in enumerate(history.rows):
        applied_dir = scratch / f"row{index}" / row.name
        applied_dir.mkdir(parents=True, exist_ok=True)
        (applied_dir / "migration.sql").write_bytes(row.applied_sql)
        apply_like_prisma(
            conn,
            applied_dir,
            provider=provider,
            state=row.state,
            checksum=row.checksum,
            started_at=BASE_TIME + timedelta(seconds=index, milliseconds=17 * index),
            timestamp_style=history.timestamp_style,
        )


def write_sqlite(history: History, database: Path, scratch: Path) -> None:
    """A SQLite database file holding the history's rows."""
    conn = sqlite3.connect(database)
    try:
        write_rows(history, conn, "sqlite", scratch)
    finally:
        conn.close()


if __name__ == "__main__":
    for argument in sys.argv[1:] or ["0"]:
        sys.stdout.write(generate(int(argument)).describe() + "\n")
