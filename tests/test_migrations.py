"""Reading a migrations folder exactly as Prisma lists it (SPEC §5), on real files."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migwatch.checksum import checksum_variants
from migwatch.migrations import ChecksumCache, conflict_lines, read_folder, read_migration
from migwatch.ordering import collation_key
from tests.support.node import locale_sorted
from tests.support.prisma_rows import prisma_checksum


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_migration(folder: Path, name: str, sql: bytes | None = b"SELECT 1;\n") -> Path:
    path = folder / name
    path.mkdir(parents=True)
    if sql is not None:
        (path / "migration.sql").write_bytes(sql)
    return path


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "prisma" / "migrations"
    folder.mkdir(parents=True)
    return folder


# -- what is a migration ---------------------------------------------------------------------------------


def test_every_subdirectory_is_a_migration_hidden_ones_included(migrations: Path, tmp_path: Path) -> None:
    make_migration(migrations, "20251001000000_init")
    make_migration(migrations, ".20251002000000_hidden")
    make_migration(migrations, "not_a_timestamp")
    (migrations / "migration_lock.toml").write_text('provider = "postgresql"\n', encoding="utf-8")
    (migrations / "README.md").write_text("notes\n", encoding="utf-8")
    (migrations / "20251003000000_a_file").write_text("SELECT 1;\n", encoding="utf-8")
    outside = make_migration(tmp_path, "20251004000000_elsewhere")
    (migrations / "20251004000000_symlinked").symlink_to(outside, target_is_directory=True)
    (migrations / "20251005000000_dangling").symlink_to(tmp_path / "gone")

    folder = read_folder(migrations, ChecksumCache())

    assert folder.exists is True
    assert folder.error is None
    assert [m.name for m in folder.migrations] == [
        ".20251002000000_hidden",
        "20251001000000_init",
        "not_a_timestamp",
    ]
    assert folder.lock_provider == "postgresql"
    init = folder.get("20251001000000_init")
    assert init is not None
    assert init.path == migrations / "20251001000000_init"
    assert init.has_sql is True
    assert init.read_error is None
    assert init.checksum == sha(b"SELECT 1;\n")
    assert init.checksums == checksum_variants(b"SELECT 1;\n")
    assert folder.names == frozenset({".20251002000000_hidden", "20251001000000_init", "not_a_timestamp"})


def test_empty_folder_has_no_migrations_and_no_lock(migrations: Path) -> None:
    folder = read_folder(migrations, ChecksumCache())
    assert folder.exists is True
    assert folder.migrations == ()
    assert folder.lock_provider is None
    assert folder.error is None


def test_order_is_locale_compare(migrations: Path) -> None:
    names = [
        "20251001000000_x1",
        "20251001000000_B",
        "20251001000000_x_",
        "20251001000000_a",
        "20250930235959_late_september",
        "20251101000000_november",
        "20251001000000_A",
    ]
    for name in names:
        make_migration(migrations, name)
    folder = read_folder(migrations, ChecksumCache())
    assert [m.name for m in folder.migrations] == [
        "20250930235959_late_september",
        "20251001000000_a",
        "20251001000000_A",
        "20251001000000_B",
        "20251001000000_x_",
        "20251001000000_x1",
        "20251101000000_november",
    ]


def test_timestamp_prefixes_sort_by_time() -> None:
    names = [
        "20251016231054_b",
        "20251001000000_z",
        "20251016000000_c",
        "20240101000000_y",
        "20251015231031_a",
    ]
    assert sorted(names, key=collation_key) == sorted(names, key=lambda n: n[:14])


def test_collation_agrees_with_javascript_locale_compare() -> None:
    # The real thing: Node's String.prototype.localeCompare (ICU), as the Prisma CLI sorts.
    names = [
        "20250101000000_a", "20250101000000_B", "20250101000000_x_", "20250101000000_x1",
        "20250101000000_x-", "20250101000000_x.y", ".hidden", "_underscore", "-dash",
        "20241231235959_z", "2025_short", "20250101000000_A", "20250101000000_b", "20250101000000_é",
        "20250101000000_e", "20250101000000_E", "20250101000000_ab", "20250101000000_a_b",
        "20250101000000_a b", "20250101000000_aB", "20250101000000_Ab", "20250101000000_ß",
        "20250101000000_ss", "20250101000000_st", "10_x", "9_x", "1_x", "20250101000000_x~",
        "20250101000000_x$", "20250101000000_x+", "20250101000000_x=", "20250101000000_Z",
        "20250101000000_ä", "20250101000000_az", "20250101000000_ñ", "20250101000000_n",
        "20251016231054_add_story_5_1_behavioral_pattern_models", "20251016000000_create_vector_indexes",
    ]  # fmt: skip
    assert sorted(names, key=collation_key) == locale_sorted(names)


def test_sharp_s_in_a_name_does_not_crash_the_reader(migrations: Path) -> None:
    # casefold("ß") is two letters; the sort key once crashed on it.
    make_migration(migrations, "20251001000000_straße")
    make_migration(migrations, "20251001000000_strasse")
    folder = read_folder(migrations, ChecksumCache())
    assert [m.name for m in folder.migrations] == ["20251001000000_strasse", "20251001000000_straße"]


# -- migration.sql ---------------------------------------------------------------------------------------


def test_folder_without_migration_sql(migrations: Path) -> None:
    make_migration(migrations, "20251001000000_empty", sql=None)
    migration = read_folder(migrations, ChecksumCache()).migrations[0]
    assert migration.name == "20251001000000_empty"
    assert migration.has_sql is False
    assert migration.checksums == ()
    assert migration.checksum is None
    assert migration.read_error is None


def test_migration_sql_that_is_a_directory_is_a_read_error(migrations: Path) -> None:
    folder = make_migration(migrations, "20251001000000_odd", sql=None)
    (folder / "migration.sql").mkdir()
    migration = read_folder(migrations, ChecksumCache()).migrations[0]
    assert migration.has_sql is True
    assert migration.checksums == ()
    assert migration.read_error == f"{folder / 'migration.sql'} is not a file"


def test_migration_sql_symlink_to_a_file_is_read(migrations: Path, tmp_path: Path) -> None:
    target = tmp_path / "shared.sql"
    target.write_bytes(b"SELECT 42;\n")
    folder = make_migration(migrations, "20251001000000_linked", sql=None)
    (folder / "migration.sql").symlink_to(target)
    migration = read_folder(migrations, ChecksumCache()).migrations[0]
    assert migration.checksum == sha(b"SELECT 42;\n")


def test_ten_megabyte_migration(migrations: Path) -> None:
    line = b'INSERT INTO "Big" ("id", "payload") VALUES (1, \'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\');\n'
    raw = line * (10 * 1024 * 1024 // len(line) + 1)
    assert len(raw) >= 10 * 1024 * 1024
    make_migration(migrations, "20251001000000_big", raw)
    started = time.monotonic()
    migration = read_folder(migrations, ChecksumCache()).migrations[0]
    elapsed = time.monotonic() - started
    assert migration.checksum == sha(raw) == prisma_checksum(raw)
    assert migration.checksums == (sha(raw), sha(raw.replace(b"\n", b"\r\n")))
    assert migration.conflict_lines == ()
    assert elapsed < 5.0, f"reading 10 MB took {elapsed:.2f} s"


def test_non_utf8_sql_is_hashed_like_prisma(migrations: Path) -> None:
    raw = b'-- Kommentar: Gr\xf6\xdfe\nALTER TABLE "User" ADD COLUMN "name" TEXT;\n'
    make_migration(migrations, "20251001000000_latin1", raw)
    migration = read_folder(migrations, ChecksumCache()).migrations[0]
    assert migration.checksum == prisma_checksum(raw)
    assert migration.checksum == sha(
        '-- Kommentar: Gr\ufffd\ufffde\nALTER TABLE "User" ADD COLUMN "name" TEXT;\n'.encode()
    )
    assert migration.read_error is None


def test_bom_file_checksum_keeps_the_bom(migrations: Path) -> None:
    raw = b"\xef\xbb\xbfSELECT 1;\n"
    make_migration(migrations, "20251001000000_bom", raw)
    assert read_folder(migrations, ChecksumCache()).migrations[0].checksum == sha(raw)


def test_crlf_file_offers_its_lf_checksum(migrations: Path) -> None:
    make_migration(migrations, "20251001000000_crlf", b"SELECT 1;\r\nSELECT 2;\r\n")
    migration = read_folder(migrations, ChecksumCache()).migrations[0]
    assert migration.checksum == sha(b"SELECT 1;\r\nSELECT 2;\r\n")
    assert sha(b"SELECT 1;\nSELECT 2;\n") in migration.checksums


# -- conflict markers ------------------------------------------------------------------------------------


def test_conflict_marker_lines_are_found_with_1_based_numbers(migrations: Path) -> None:
    raw = (
        b"-- AlterTable\n"  # 1
        b"<<<<<<< HEAD\n"  # 2
        b'ALTER TABLE "Mission" ADD COLUMN "a" TEXT;\n'  # 3
        b"=======\n"  # 4
        b'ALTER TABLE "Mission" ADD COLUMN "b" TEXT;\n'  # 5
        b">>>>>>> feature/epic-5\n"  # 6
        b"SELECT '<<<<<<< not at the start';\n"  # 7
    )
    make_migration(migrations, "20251001000000_conflicted", raw)
    migration = read_folder(migrations, ChecksumCache()).migrations[0]
    assert migration.conflict_lines == (2, 6)


def test_conflict_markers_on_the_first_and_last_line_and_with_crlf() -> None:
    assert conflict_lines(b"<<<<<<< ours\r\nx\r\n=======\r\ny\r\n>>>>>>> theirs") == (1, 5)
    assert conflict_lines(b"SELECT 1;\n") == ()
    assert conflict_lines(b"  <<<<<<< indented\n") == ()


# -- migration_lock.toml ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "provider"),
    [
        (
            "# Please do not edit this file manually\n"
            "# It should be added in your version-control system (e.g., Git)\n"
            'provider = "postgresql"\n',
            "postgresql",
        ),
        ('provider = "sqlite"', "sqlite"),
        ('  provider   =   "mysql"  \r\n', "mysql"),
        ('# provider = "mysql"\nprovider = "sqlite"\n', "sqlite"),
        ("# no provider line\n", None),
    ],
)
def test_lock_file_provider(migrations: Path, text: str, provider: str | None) -> None:
    (migrations / "migration_lock.toml").write_text(text, encoding="utf-8")
    assert read_folder(migrations, ChecksumCache()).lock_provider == provider


# -- the folder itself -----------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    folder = read_folder(tmp_path / "nope", ChecksumCache())
    assert folder.exists is False
    assert folder.error is None
    assert folder.migrations == ()


def test_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    path = tmp_path / "migrations"
    path.write_text("oops\n", encoding="utf-8")
    folder = read_folder(path, ChecksumCache())
    assert folder.exists is False
    assert folder.error == f"{path} is not a folder"
    assert folder.migrations == ()


@pytest.fixture
def world_reachable_dir() -> Iterator[Path]:
    # pytest's tmp_path is private to root; the unprivileged reader must reach the folder.
    base = Path(tempfile.mkdtemp(prefix="migwatch-perm-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _read_as_nobody(path: Path) -> dict[str, object]:
    """Run read_folder in a forked child that dropped root for `nobody` (root ignores chmod 000).

    A fork rather than `runuser … python`: this interpreter lives under /root, which `nobody` cannot
    enter; the child runs the very same code with the same interpreter.
    """
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            folder = read_folder(path, ChecksumCache())
            report = {
                "uid": os.getuid(),
                "exists": folder.exists,
                "error": folder.error,
                "migrations": [[m.name, m.has_sql, m.read_error, m.checksum] for m in folder.migrations],
            }
            os.write(write_end, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: dict[str, object] = json.loads(b"".join(chunks))
    return result


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to `nobody` needs root; as a user chmod 000 suffices")
def test_unreadable_folder_as_an_unprivileged_user(world_reachable_dir: Path) -> None:
    migrations = world_reachable_dir / "migrations"
    migrations.mkdir()
    make_migration(migrations, "20251001000000_init")
    migrations.chmod(0o000)
    report = _read_as_nobody(migrations)
    assert report == {
        "uid": pwd.getpwnam("nobody").pw_uid,
        "exists": True,
        "error": f"cannot read {migrations}: Permission denied",
        "migrations": [],
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to `nobody` needs root; as a user chmod 000 suffices")
def test_unreadable_migration_sql_as_an_unprivileged_user(world_reachable_dir: Path) -> None:
    migrations = world_reachable_dir / "migrations"
    migrations.mkdir()
    migrations.chmod(0o755)
    make_migration(migrations, "20251001000000_init").chmod(0o755)
    secret = make_migration(migrations, "20251002000000_secret")
    secret.chmod(0o755)
    (secret / "migration.sql").chmod(0o000)
    report = _read_as_nobody(migrations)
    assert report["exists"] is True
    assert report["error"] is None
    assert report["migrations"] == [
        ["20251001000000_init", True, None, sha(b"SELECT 1;\n")],
        [
            "20251002000000_secret",
            True,
            f"cannot read {secret / 'migration.sql'}: Permission denied",
            None,
        ],
    ]


# -- the checksum cache ----------------------------------------------------------------------------------


def test_cache_sees_a_modified_file(migrations: Path) -> None:
    cache = ChecksumCache()
    folder = make_migration(migrations, "20251001000000_init", b"SELECT 1;\n")
    sql = folder / "migration.sql"
    assert read_migration(folder, "20251001000000_init", cache).checksum == sha(b"SELECT 1;\n")

    # Same size, new mtime.
    sql.write_bytes(b"SELECT 2;\n")
    stat = sql.stat()
    os.utime(sql, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert read_migration(folder, "20251001000000_init", cache).checksum == sha(b"SELECT 2;\n")

    # New size, mtime forced back to the old value.
    old_mtime = sql.stat().st_mtime_ns
    sql.write_bytes(b"SELECT 1234;\n")
    os.utime(sql, ns=(old_mtime, old_mtime))
    migration = read_migration(folder, "20251001000000_init", cache)
    assert migration.checksum == sha(b"SELECT 1234;\n")

    # Conflict markers follow the content too.
    sql.write_bytes(b"<<<<<<< HEAD\nSELECT 1;\n>>>>>>> other\n")
    assert read_migration(folder, "20251001000000_init", cache).conflict_lines == (1, 3)
    sql.write_bytes(b"SELECT 1;\n")
    assert read_migration(folder, "20251001000000_init", cache).conflict_lines == ()


def test_cache_sees_a_file_replaced_by_rename(migrations: Path) -> None:
    # Editors and `git checkout` replace files (new inode), possibly with the same size and mtime.
    cache = ChecksumCache()
    folder = make_migration(migrations, "20251001000000_init", b"SELECT 1;\n")
    sql = folder / "migration.sql"
    read_migration(folder, "20251001000000_init", cache)
    stat = sql.stat()
    replacement = folder / "migration.sql.tmp"
    replacement.write_bytes(b"SELECT 9;\n")
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, sql)
    assert read_migration(folder, "20251001000000_init", cache).checksum == sha(b"SELECT 9;\n")


def test_identical_content_in_two_worktrees_is_hashed_once(tmp_path: Path) -> None:
    cache = ChecksumCache()
    raw = b'CREATE TABLE "User" ("id" SERIAL PRIMARY KEY);\n'
    first = make_migration(tmp_path / "epic3" / "migrations", "20251001000000_init", raw)
    second = make_migration(tmp_path / "epic5" / "migrations", "20251001000000_init", raw)
    other = make_migration(tmp_path / "epic5" / "migrations", "20251002000000_more", b"SELECT 2;\n")

    a = read_folder(first.parent, cache).migrations[0]
    b = read_folder(second.parent, cache).migrations[0]
    assert a.checksums == b.checksums == checksum_variants(raw)
    # Two files (two stat entries) but one content entry, sharing one computed result.
    assert len(cache._by_stat) == 3
    assert len(cache._by_raw) == 2
    first_stat, second_stat = (os.stat(p / "migration.sql") for p in (first, second))
    facts_a = cache._by_stat[
        (first_stat.st_dev, first_stat.st_ino, first_stat.st_size, first_stat.st_mtime_ns, first_stat.st_mode)
    ]
    facts_b = cache._by_stat[
        (
            second_stat.st_dev,
            second_stat.st_ino,
            second_stat.st_size,
            second_stat.st_mtime_ns,
            second_stat.st_mode,
        )
    ]
    assert facts_a is facts_b
    assert other.exists()

    # A re-scan does not grow the cache.
    read_folder(first.parent, cache)
    read_folder(second.parent, cache)
    assert (len(cache._by_stat), len(cache._by_raw)) == (3, 2)
