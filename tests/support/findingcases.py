"""Plain-value projects that reach every branch of `diagnose.findings` (message and fix text).

Each case is a `ProjectSnapshot` + `Evidence` built from model objects only (no git, no database):
`tests/test_diagnose_snapshots.py` renders the findings of every case and compares them with
`tests/snapshots/findings.json`, so moving the diagnose code cannot change a single character of a
message or a fix line without the diff showing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from migwatch import diagnose
from migwatch.diagnose import AppliedSql, Evidence, ProjectSnapshot, Restore, WorktreeSnapshot
from migwatch.migindex import Commit, MigrationChange, RefTip
from migwatch.model import (
    DatabaseRef,
    History,
    HistoryRow,
    LocalMigration,
    MigrationsFolder,
    PrismaSetup,
    Worktree,
)
from migwatch.report import ProjectReport, StatusReport, render_text
from migwatch.whereabouts import Holder, Whereabouts, WhereKind

NOW = datetime(2026, 11, 29, 6, 0, 0, tzinfo=timezone.utc)
ROOT = Path("/home/dev/Americano")
PG = DatabaseRef(
    provider="postgresql",
    id="postgresql://dev@localhost:5432/americano?schema=public",
    url="postgresql://dev:secret@localhost:5432/americano?schema=public",
)
SQLITE = DatabaseRef(provider="sqlite", id="file:/home/dev/Americano/prisma/dev.db", url="file:./dev.db")
INIT = "20251001000000_init"
SECOND = "20251002000000_add_users"
THIRD = "20251003000000_add_posts"
LATE = "20251004000000_add_tags"
EARLY = "20250930000000_early_idea"


def checksum_of(name: str) -> str:
    """A stable fake sha256 per migration name (the checksum rules are tested elsewhere)."""
    return (name.encode().hex() * 4)[:64].ljust(64, "0")


def worktree(folder: str, branch: str | None, *, is_main: bool = False) -> Worktree:
    path = ROOT if folder == "" else ROOT.parent / folder
    return Worktree(path=path, head="0123456789abcdef0123", branch=branch, is_main=is_main)


def folder_of(
    where: Path, names: Iterable[str], *, edited: Iterable[str] = (), no_sql: Iterable[str] = (), **kw: Any
) -> MigrationsFolder:
    parent = where / "prisma" / "migrations"
    migrations = tuple(
        LocalMigration(
            name=name,
            parent=parent,
            checksums=() if name in no_sql else (checksum_of(name + ("!" if name in edited else "")),),
            has_sql=name not in no_sql,
        )
        for name in names
    )
    return MigrationsFolder(path=parent, exists=True, migrations=migrations, lock_provider=kw.get("lock"))


def member(
    tree: Worktree,
    names: Iterable[str] = (),
    *,
    database: DatabaseRef = PG,
    folder: MigrationsFolder | None = None,
    **setup: Any,
) -> WorktreeSnapshot:
    """A worktree using `database` with the given migrations in prisma/migrations."""
    prisma = PrismaSetup(
        worktree=tree,
        prisma_version=setup.pop("version", (6, 19, 0)),
        package_dir=tree.path,
        schema_path=tree.path / "prisma" / "schema.prisma",
        migrations_dir=tree.path / "prisma" / "migrations",
        provider=setup.pop("provider", database.provider),
        database=database,
        **setup,
    )
    return WorktreeSnapshot(setup=prisma, folder=folder or folder_of(tree.path, names))


def row(
    name: str, *, failed: bool = False, rolled_back: bool = False, checksum: str | None = ""
) -> HistoryRow:
    started = datetime(2025, 10, 5, 12, 0, 0, tzinfo=timezone.utc)
    return HistoryRow(
        id=name,
        migration_name=name,
        checksum=checksum_of(name) if checksum == "" else checksum,
        started_at=started,
        finished_at=None if failed or rolled_back else started,
        rolled_back_at=started if rolled_back else None,
        logs='ERROR: relation "users" already exists\nat line 3' if failed else None,
        applied_steps_count=0 if failed else 1,
    )


def project(
    members: Iterable[WorktreeSnapshot],
    rows: Iterable[HistoryRow] = (),
    *,
    history: Callable[[DatabaseRef], History] | None = None,
    **kw: Any,
) -> ProjectSnapshot:
    """A project whose members share one database holding `rows` (or `history(ref)`)."""
    snapshots = tuple(members)
    histories: dict[str, History] = {}
    for snapshot in snapshots:
        key = diagnose.group_of(snapshot)
        ref = snapshot.setup.database
        if key is None or ref is None or key in histories:
            continue
        histories[key] = history(ref) if history else History(database=ref, reachable=True, rows=tuple(rows))
    return ProjectSnapshot(name="Americano", repo=ROOT, worktrees=snapshots, histories=histories, **kw)


MAIN = worktree("", "main", is_main=True)
EPIC3 = worktree("Americano-epic3", "feature/epic-3")
EPIC5 = worktree("Americano-epic5", "feature/epic-5")
DETACHED = worktree("Americano-detached", None)
HOSTILE = worktree("Americano-$(touch pwned) it's", "feat/$(id)'x")


REMOVING = Commit(
    "c0ffee0123456789abcdef0123456789abcdef01", 1759400000, "Ada Lovelace", "chore: tidy migrations"
)


def _where(
    tree: Worktree, name: str, kind: Whereabouts | WhereKind, also: Worktree | None = None, **fields: Any
) -> Evidence:
    """Evidence that the git index placed one migration the worktree (and `also`) is behind on."""
    where = kind if isinstance(kind, Whereabouts) else Whereabouts(kind, **fields)
    trees = [tree, *([also] if also else [])]
    return Evidence(whereabouts={(t.path, name): where for t in trees})


def _cases() -> dict[str, tuple[ProjectSnapshot, Evidence]]:
    both = [row(INIT), row(SECOND)]
    none = Evidence()
    cases: dict[str, tuple[ProjectSnapshot, Evidence]] = {}

    def add(name: str, snapshot: ProjectSnapshot, evidence: Evidence = none) -> None:
        cases[name] = (snapshot, evidence)

    add("clean", project([member(MAIN, [INIT, SECOND]), member(EPIC3, [INIT, SECOND])], both))
    gone = replace(EPIC5, prunable="gitdir file points to non-existent location")
    add("prunable", project([member(MAIN, [INIT])], [row(INIT)], skipped=(gone,)))
    add(
        "unreachable-postgresql",
        project(
            [member(MAIN, [INIT]), member(EPIC3, [INIT])],
            history=lambda ref: History(database=ref, reachable=False, error="connection refused"),
        ),
    )
    add(
        "history-denied",
        project(
            [member(MAIN, [INIT]), member(EPIC3, [INIT])],
            history=lambda ref: History(
                database=ref,
                reachable=False,
                has_table=False,
                error="the database role lacks the SELECT privilege on public._prisma_migrations",
                denied=True,
            ),
        ),
    )
    add(
        "unreachable-sqlite",
        project(
            [member(MAIN, [INIT], database=SQLITE)],
            history=lambda ref: History(database=ref, reachable=False, error="unable to open database file"),
        ),
    )
    add(
        "migration-running",
        project(
            [member(MAIN, [INIT])],
            history=lambda ref: History(
                database=ref, reachable=True, rows=(row(INIT),), migration_running=True
            ),
        ),
    )
    for label, names, error in (("", [INIT], None), ("-empty-folder", [], "relation missing")):
        add(
            f"not-managed{label}",
            project(
                [member(MAIN, names)],
                history=lambda ref, e=error: History(database=ref, reachable=True, has_table=False, error=e),  # type: ignore[misc]
            ),
        )
    add("failed-held", project([member(MAIN, [INIT, SECOND])], [row(INIT), row(SECOND, failed=True)]))
    add("failed-nowhere", project([member(MAIN, [INIT])], [row(INIT), row(SECOND, failed=True)]))
    quiet_fail = replace(row(SECOND, failed=True), logs=None, started_at=None)
    add("failed-no-log", project([member(MAIN, [INIT, SECOND])], [row(INIT), quiet_fail]))
    add(
        "discovery",
        project(
            [
                member(
                    MAIN, [INIT], notes=("computed schema path in prisma.config.ts; assumed the default",)
                ),
                member(EPIC3, [INIT], problem="no Prisma schema found (looked in prisma/schema.prisma)"),
                member(
                    EPIC5,
                    [INIT],
                    problem=(
                        "DATABASE_URL is not set (looked in: the environment, /home/dev/Americano-epic5/.env; "
                        'url = env("DATABASE_URL") of schema.prisma reads it)'
                    ),
                    missing_variables=("DATABASE_URL",),
                ),
            ],
            [row(INIT)],
        ),
    )
    add(
        "discovery-bad-url",
        project(
            [
                member(
                    EPIC5,
                    [INIT],
                    problem=(
                        "malformed PostgreSQL URL 'postgresql://dev:***@localhost/db': the port is not a number "
                        'from 1 to 65535 (from url = env("DATABASE_URL") of schema.prisma, DATABASE_URL from '
                        "/home/dev/Americano-epic5/.env)"
                    ),
                    url_from='url = env("DATABASE_URL") of schema.prisma, DATABASE_URL from /home/dev/Americano-epic5/.env',
                ),
            ],
            [row(INIT)],
        ),
    )
    add("unsupported-provider", project([member(MAIN, [INIT], provider="mysql")], [row(INIT)]))
    unlisted = MigrationsFolder(
        path=MAIN.path / "prisma" / "migrations", exists=True, error="Permission denied"
    )
    add("folder-unlistable", project([member(MAIN, folder=unlisted)], [row(INIT)]))
    locked = folder_of(MAIN.path, [INIT], lock="mysql")
    add("provider-mismatch", project([member(MAIN, folder=locked)], [row(INIT)]))
    _behind_cases(add)
    _file_cases(add)
    _branch_cases(add)
    return cases


def _behind_cases(add: Callable[..., None]) -> None:
    both = [row(INIT), row(SECOND)]
    shared = [member(MAIN, [INIT]), member(EPIC3, [INIT]), member(EPIC5, [INIT, SECOND])]
    epic5_tip = RefTip("refs/heads/feature/epic-5", "feature/epic-5", "branch", "0123456789abcdef0123", 1)
    add(
        "behind-committed",
        project(shared, both),
        _where(MAIN, SECOND, "branch", merge_ref="feature/epic-5", refs=(epic5_tip,)),
    )
    uncommitted = Whereabouts("uncommitted", holder=Holder(EPIC5, "prisma/migrations"))
    add("behind-uncommitted", project(shared, both), _where(MAIN, SECOND, uncommitted, also=EPIC3))
    detached = [member(MAIN, [INIT]), member(DETACHED, [INIT, SECOND])]
    loose = Whereabouts("uncommitted", holder=Holder(DETACHED, "prisma/migrations"))
    add("behind-uncommitted-detached", project(detached, both), _where(MAIN, SECOND, loose))
    users = RefTip("refs/heads/feature/users", "feature/users", "branch", "feedbeefcafe0123456789", 2)
    release = RefTip(
        "refs/remotes/origin/release/1", "origin/release/1", "remote", "feedbeefcafe0123456789", 1
    )
    alone = [member(MAIN, [INIT])]
    add(
        "behind-origin-branch",
        project(alone, both),
        _where(MAIN, SECOND, "branch", merge_ref="feature/users", refs=(users,)),
    )
    add(
        "behind-origin-branches",
        project(alone, both),
        _where(MAIN, SECOND, "branch", merge_ref="feature/users", refs=(users, release)),
    )
    add("behind-restore", project(alone, both), _where(MAIN, SECOND, "restore"))
    removal = MigrationChange(REMOVING, "deleted", "prisma/migrations", SECOND, None, "ab" * 20)
    add(
        "behind-deleted-upstream", project(alone, both), _where(MAIN, SECOND, "removed_here", removal=removal)
    )
    rewritten = replace(removal, added_with=((THIRD, "ef" * 20),))  # documenso's squash rewrote the SQL
    squash_note = _where(MAIN, SECOND, "removed_here", removal=rewritten)
    add("behind-deleted-squash-rewritten", project(alone, both), squash_note)
    merged = replace(removal, added_with=((INIT, "ef" * 20),))  # umami's 'combine heatmap prisma migration'
    add(
        "behind-deleted-merged-into-applied",
        project(alone, both),
        _where(MAIN, SECOND, "removed_here", removal=merged),
    )
    renamed = MigrationChange(REMOVING, "renamed", "prisma/migrations", SECOND, THIRD, "ab" * 20, "ab" * 20)
    moved = Whereabouts("removed_here", removal=renamed, successors=(THIRD,), successor_ref="main")
    add("behind-renamed-upstream", project(alone, both), _where(MAIN, SECOND, moved))
    squash = MigrationChange(REMOVING, "deleted", "prisma/migrations", INIT, None, "cd" * 20)
    both_gone = Whereabouts("removed_here", removal=squash, successors=(THIRD,))
    squashed = Evidence(
        whereabouts={
            (MAIN.path, INIT): both_gone,
            (MAIN.path, SECOND): replace(both_gone, removal=replace(squash, name=SECOND)),
        }
    )
    add("behind-squashed-upstream", project([member(MAIN, [THIRD])], both), squashed)
    add("behind-nowhere", project(alone, both), _where(MAIN, SECOND, "gone"))
    add(
        "behind-unknown",
        project(alone, both),
        _where(
            MAIN,
            SECOND,
            Whereabouts("unknown", note="git history not read: git is not installed (no 'git' on PATH)"),
        ),
    )
    gone = _where(MAIN, SECOND, "gone")
    add("behind-nowhere-rolled-back", project(alone, [row(INIT), row(SECOND, rolled_back=True)]), gone)
    add("behind-nowhere-failed", project(alone, [row(INIT), row(SECOND, failed=True)]), gone)
    hostile_name = "20251002000000_it's; $(rm -rf ~)"
    add("failed-hostile-name", project([member(MAIN, [INIT])], [row(INIT), row(hostile_name, failed=True)]))
    bell = "20251002000000_bell\x07\nline"
    add("failed-control-character-name", project([member(MAIN, [INIT])], [row(INIT), row(bell, failed=True)]))
    ring = "20251002000000_bell\x07"
    add("behind-control-character-name", project(alone, [row(INIT), row(ring)]), _where(MAIN, ring, "gone"))
    bidi = replace(row("20251002000000_\u202egnp.exe"), id="0b6f2c1e-7d4a-4f7e-9a51-3c2d1e0f9a8b")
    add("behind-bidi-name", project(alone, [row(INIT), bidi]), _where(MAIN, bidi.migration_name, "gone"))
    add(
        "not-managed-hostile-name",
        project(
            [member(HOSTILE, [hostile_name])],
            history=lambda ref: History(database=ref, reachable=True, has_table=False),
        ),
    )
    drop = "20251002000000_it's; DROP TABLE x"
    add("behind-hostile-name", project(alone, [row(INIT), row(drop)]), _where(MAIN, drop, "gone"))
    hostile = [member(MAIN, [INIT]), member(HOSTILE, [INIT, SECOND])]
    hostile_tip = RefTip("refs/heads/feat/$(id)'x", "feat/$(id)'x", "branch", "0123456789abcdef0123", 1)
    add(
        "behind-hostile-worktree",
        project(hostile, both),
        _where(MAIN, SECOND, "branch", merge_ref="feat/$(id)'x", refs=(hostile_tip,)),
    )
    pending = [member(MAIN, [INIT, SECOND]), member(EPIC3, [INIT])]
    add("pending-others", project(pending, [row(INIT)]))
    add("pending-alone", project([member(MAIN, [INIT, SECOND])], [row(INIT)]))
    add("pending-and-behind", project([member(MAIN, [INIT, THIRD])], [row(INIT), row(SECOND)]))
    add("out-of-order", project([member(MAIN, [EARLY, INIT, SECOND])], both))
    numbered = [member(MAIN, ["01_init", "02_add_billing", "03_add_invoice"])]
    add("out-of-order-numbered", project(numbered, [row("01_init"), row("03_add_invoice")]))
    on_main = Evidence(shared={(EPIC3.path, EARLY): ("main", "Americano")})
    add("out-of-order-shared", project([member(EPIC3, [EARLY, INIT, SECOND])], both), on_main)
    ours = folder_of(EPIC3.path, [INIT, SECOND], edited=[SECOND])
    collided = [member(EPIC3, folder=ours), member(EPIC5, [INIT, SECOND])]
    committed = Evidence(
        restores={(EPIC3.path, SECOND): Restore(changed_by="c0ffee01 Add users (Ada, 2025-10-02)")}
    )
    add("edited-name-collision", project(collided, both), committed)
    add("edited-name-collision-uncommitted", project(collided, both))
    edited_failed = folder_of(MAIN.path, [INIT, SECOND], edited=[SECOND])
    add(
        "failed-edited-after",
        project([member(MAIN, folder=edited_failed)], [row(INIT), row(SECOND, failed=True)]),
    )
    retried = folder_of(MAIN.path, [INIT, SECOND], edited=[SECOND])
    add(
        "edited-rolled-back-first",
        project(
            [member(MAIN, folder=retried)],
            [row(INIT), row(SECOND, rolled_back=True), row(SECOND, checksum=None)],
        ),
    )
    add(
        "not-managed-baseline",
        project(
            [member(MAIN, [INIT, SECOND])],
            history=lambda ref: History(
                database=ref, reachable=True, has_table=False, tables=("Post", "User")
            ),
        ),
    )
    add("out-of-order-odd-newest", project([member(MAIN, ["aaa_first", "zzz"])], [row("zzz")]))


def _file_cases(add: Callable[..., None]) -> None:
    edited = [member(MAIN, folder=folder_of(MAIN.path, [INIT], edited=[INIT])), member(EPIC3, [INIT])]
    add(
        "edited-restore",
        project(edited, [row(INIT)]),
        Evidence(
            restores={
                (MAIN.path, INIT): Restore(rev="abcdef0123456789abcd", changed_by="an uncommitted change")
            }
        ),
    )
    add("edited-copy", project(edited, [row(INIT)]))
    alone = [member(MAIN, folder=folder_of(MAIN.path, [INIT], edited=[INIT]))]
    add(
        "edited-nowhere",
        project(alone, [row(INIT)]),
        Evidence(restores={(MAIN.path, INIT): Restore(changed_by="c0ffee1 Tweak")}),
    )
    add("edited-no-checksum", project(alone, [row(INIT, checksum=None)]))
    no_sql = [member(MAIN, folder=folder_of(MAIN.path, [INIT, SECOND], no_sql=[SECOND]))]
    add(
        "missing-sql-tracked", project(no_sql, [row(INIT)]), Evidence(tracked_sql={(MAIN.path, SECOND): True})
    )
    empty = MAIN.path / "prisma" / "migrations" / SECOND
    add("missing-sql-empty", project(no_sql, [row(INIT)]), Evidence(empty_folders=frozenset({empty})))
    add("missing-sql-untracked-applied", project(no_sql, [row(INIT), row(SECOND)]))
    bad = folder_of(MAIN.path, [INIT])
    bad = replace(
        bad,
        migrations=(replace(bad.migrations[0], read_error="cannot read migration.sql: Permission denied"),),
    )
    add("unreadable", project([member(MAIN, folder=bad)], [row(INIT)]))
    marked = folder_of(MAIN.path, [INIT])
    marked = replace(marked, migrations=(replace(marked.migrations[0], conflict_lines=(3, 9)),))
    schema = MAIN.path / "prisma" / "schema.prisma"
    add(
        "conflict-markers",
        project([replace(member(MAIN, folder=marked), schema_markers=((schema, (12,)),))], [row(INIT)]),
    )
    client = (
        MAIN.path / "node_modules" / ".prisma" / "client" / "schema.prisma",
        "model User {\n  id Int @id\n}\n",
    )
    fresh = "model User {\n  id Int @id\n  email String\n}\n// comment\nenum Role {\n  A\n}\n"
    stale = replace(member(MAIN, [INIT]), schema_text=fresh, client_schema=client)
    add("stale-client", project([stale], [row(INIT)]))
    same = replace(member(MAIN, [INIT]), schema_text=client[1], client_schema=client)
    add("fresh-client", project([same], [row(INIT)]))


def _branch_cases(add: Callable[..., None]) -> None:
    rel = "prisma/migrations"
    many = [f"2025100{i}000000_m{i}" for i in range(1, 8)]
    base = Evidence(base_names={rel: frozenset([INIT, SECOND])})
    add(
        "behind-base",
        project([member(MAIN, [INIT, SECOND]), member(EPIC3, [INIT])], [row(INIT)], base_branch="main"),
        base,
    )
    add(
        "behind-base-many",
        project([member(MAIN, many), member(EPIC3, [])], [], base_branch="main"),
        Evidence(base_names={rel: frozenset(many)}),
    )
    sql = {
        EPIC3.path / rel / THIRD: 'ALTER TABLE "User" ADD COLUMN "email" TEXT;\n',
        EPIC5.path / rel / LATE: 'ALTER TABLE "User" DROP COLUMN "email";\nDROP TABLE "Post";\n',
        DETACHED.path / rel / SECOND: 'ALTER TABLE "Post" RENAME TO "Article";\n',
    }
    trees = [
        member(MAIN, [INIT]),
        member(EPIC3, [INIT, THIRD]),
        member(EPIC5, [INIT, LATE]),
        member(DETACHED, [INIT, SECOND]),
    ]
    add(
        "schema-conflict",
        project(trees, [row(INIT)], base_branch="main"),
        Evidence(base_names={rel: frozenset([INIT])}, unmerged_sql=sql),
    )
    password = '-- AlterTable\nALTER TABLE "Account" ADD COLUMN "password" TEXT;\n'
    add(
        "schema-conflict-base",
        project(
            [member(MAIN, [INIT, SECOND]), member(EPIC3, [INIT, THIRD])], [row(INIT)], base_branch="main"
        ),
        Evidence(
            base_names={rel: frozenset([INIT, SECOND])},
            unmerged_sql={EPIC3.path / rel / THIRD: password},
            base_sql={(rel, SECOND): password},
        ),
    )
    applied = AppliedSql(
        password, "feature/epic-5", "feature/epic-5", file=EPIC5.path / rel / LATE / "migration.sql"
    )
    add(
        "schema-conflict-applied",
        project([member(EPIC3, [INIT, THIRD]), member(EPIC5, [INIT, LATE])], [row(INIT), row(LATE)]),
        Evidence(unmerged_sql={EPIC3.path / rel / THIRD: password}, applied_sql={LATE: applied}),
    )
    add(
        "name-collision",
        project(
            [
                member(MAIN, [INIT]),
                member(EPIC3, [INIT, THIRD]),
                member(EPIC5, folder=folder_of(EPIC5.path, [INIT, THIRD], edited=[THIRD])),
            ],
            [row(INIT)],
        ),
    )
    add(
        "name-collision-older-version",
        project(
            [
                member(MAIN, [INIT]),
                member(EPIC3, [INIT, THIRD]),
                member(EPIC5, folder=folder_of(EPIC5.path, [INIT, THIRD], edited=[THIRD])),
            ],
            [row(INIT)],
        ),
        Evidence(
            versions={(EPIC3.path, THIRD, EPIC5.path): "older", (EPIC5.path, THIRD, EPIC3.path): "newer"}
        ),
    )


CASES: Mapping[str, tuple[ProjectSnapshot, Evidence]] = _cases()


def rendered(name: str) -> list[dict[str, Any]]:
    """The findings of one case as plain JSON values (what `status --json` prints for them)."""
    snapshot, evidence = CASES[name]
    verdicts = diagnose.analyse(snapshot)
    return [f.to_json() for f in diagnose.findings(snapshot, verdicts, evidence, NOW)]


def rendered_text(name: str) -> list[str]:
    """The human `status` lines of one case's findings (severity, message, fix lines)."""
    snapshot, evidence = CASES[name]
    found = diagnose.findings(snapshot, diagnose.analyse(snapshot), evidence, NOW)
    report = StatusReport(
        checked_at=NOW,
        projects=(
            ProjectReport(name="Americano", repo=ROOT, databases=(), worktrees=(), findings=tuple(found)),
        ),
    )
    return render_text(report).splitlines()
