"""The migration-history index, built from real git repositories with real worktrees."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from migwatch import indexstore
from migwatch.git import list_worktrees
from migwatch.gitindex import GitIndexCache, build_index, read_blobs, removal_reached
from migwatch.migindex import MigrationIndex, parse_log, parse_refs, parse_tree
from migwatch.whereabouts import Holder, Whereabouts, locate, sql_contains
from tests.support.gitrepo import PrismaRepo

DIR = "apps/web/prisma/migrations"
INIT = "20250101000000_init"
BILLING = "20250201000000_add_billing"
TYPO = "20250301000000_add_invoce"
FIXED = "20250301000000_add_invoice"
TEMPLATES_A = "20250401000000_templates"
TEMPLATES_B = "20250402000000_templates_type"
SQUASHED = "20250410000000_add_templates"


def _build(repo: PrismaRepo) -> MigrationIndex:
    return GitIndexCache().index(repo.main, [DIR], list_worktrees(repo.main, env=repo.env), env=repo.env)


@pytest.fixture
def history(tmp_path: Path) -> PrismaRepo:
    """main: init, billing; a typo migration renamed; two template migrations squashed into one;
    feature/billing-v2 (worktree) keeps billing, main later deletes it."""
    repo = PrismaRepo.create(tmp_path, provider="sqlite")
    main = repo.main
    repo.write_migration(main, INIT, 'CREATE TABLE "User" (id INTEGER);\n')
    repo.write_migration(main, BILLING, 'CREATE TABLE "Billing" (id INTEGER);\n')
    repo.commit(main, "Add init and billing")
    repo.add_worktree("web-billing", "feature/billing-v2")
    repo.write_migration(main, TYPO, 'CREATE TABLE "Invoice" (id INTEGER);\n')
    repo.commit(main, "Add invoice")
    repo.git(main, "mv", f"{DIR}/{TYPO}", f"{DIR}/{FIXED}")
    repo.commit(main, "Fix the invoice migration name")
    repo.write_migration(main, TEMPLATES_A, 'CREATE TABLE "Template" (id INTEGER);\n')
    repo.write_migration(main, TEMPLATES_B, 'ALTER TABLE "Template" ADD COLUMN "type" TEXT;\n')
    repo.commit(main, "Add templates")
    shutil.rmtree(repo.migrations_path(main) / TEMPLATES_A)
    shutil.rmtree(repo.migrations_path(main) / TEMPLATES_B)
    repo.write_migration(
        main,
        SQUASHED,
        'CREATE TABLE "Template" (id INTEGER);\nALTER TABLE "Template" ADD COLUMN "type" TEXT;\n',
    )
    repo.commit(main, "chore: tidy migrations")
    shutil.rmtree(repo.migrations_path(main) / BILLING)
    repo.commit(main, "Remove billing")
    return repo


def test_tips_contain_exactly_the_folders_of_their_trees(history: PrismaRepo) -> None:
    index = _build(history)
    assert index.problem is None and not index.shallow
    assert [t.name for t in index.tips_with(DIR, BILLING) if t.kind == "branch"] == ["feature/billing-v2"]
    assert sorted(t.kind for t in index.tips_with(DIR, BILLING)) == ["branch", "worktree"]
    assert {t.name for t in index.tips_with(DIR, FIXED) if t.kind == "branch"} == {"main"}
    assert index.tips_with(DIR, TYPO) == []
    main = next(t for t in index.tips if t.name == "main")
    assert set(index.names_at(main.commit, DIR)) == {INIT, FIXED, SQUASHED}


def test_changes_record_adds_deletes_renames_and_squashes(history: PrismaRepo) -> None:
    index = _build(history)
    billing = index.history_of(BILLING)
    assert [(c.kind, c.commit.subject) for c in billing] == [
        ("deleted", "Remove billing"),
        ("added", "Add init and billing"),
    ]
    assert billing[0].commit.author == "Migwatch Test" and len(billing[0].commit.date) == 10
    renamed = index.history_of(TYPO)[0]
    assert (renamed.kind, renamed.renamed_to, renamed.old_blob == renamed.new_blob) == (
        "renamed",
        FIXED,
        True,
    )
    squashed = index.history_of(TEMPLATES_A)[0]
    assert (squashed.kind, [name for name, _ in squashed.added_with]) == ("deleted", [SQUASHED])


def test_the_cache_rebuilds_only_when_refs_or_heads_move(history: PrismaRepo) -> None:
    cache = GitIndexCache()
    worktrees = list_worktrees(history.main, env=history.env)
    first = cache.index(history.main, [DIR], worktrees, env=history.env)
    assert cache.index(history.main, [DIR], worktrees, env=history.env) is first
    assert cache.builds == 1
    history.git(history.main, "branch", "feature/new")  # a new loose ref
    second = cache.index(history.main, [DIR], worktrees, env=history.env)
    assert cache.builds == 2 and "feature/new" in {t.name for t in second.tips}
    history.git(history.main, "pack-refs", "--all")
    cache.index(history.main, [DIR], worktrees, env=history.env)
    assert cache.builds == 3
    billing = history.main.parent / "web-billing"
    history.write_migration(billing, "20250501000000_more", "SELECT 1;\n")
    history.commit(billing, "More")  # moves a packed branch: a new loose ref file
    third = cache.index(history.main, [DIR], list_worktrees(history.main, env=history.env), env=history.env)
    assert cache.builds == 4
    assert [t.kind for t in third.tips_with(DIR, "20250501000000_more")] == ["branch", "worktree"]


def test_a_detached_worktree_head_is_a_tip(history: PrismaRepo) -> None:
    billing = history.main.parent / "web-billing"
    history.git(billing, "checkout", "-q", "--detach", "HEAD")
    history.git(history.main, "branch", "-D", "feature/billing-v2")
    index = _build(history)
    assert [(t.kind, t.name) for t in index.tips_with(DIR, BILLING)] == [("worktree", str(billing))]


def test_without_git_on_path_the_index_says_why(history: PrismaRepo) -> None:
    env = {**history.env, "PATH": "/nonexistent"}
    index = GitIndexCache().index(history.main, [DIR], list_worktrees(history.main, env=history.env), env=env)
    assert index.problem == "git is not installed (no 'git' on PATH)"
    assert index.tips == () and index.changes == {}


def test_a_ref_to_a_missing_commit_is_left_out_with_a_note(history: PrismaRepo) -> None:
    main = history.main
    blob = history.git(main, "hash-object", "-w", "--stdin")  # an empty blob: any object id git knows
    missing = "1" * 40
    (main / ".git" / "refs" / "heads" / "broken").write_text(missing + "\n", encoding="utf-8")
    index = _build(history)
    assert blob and index.problem is None
    assert "broken" not in {t.name for t in index.tips}
    assert f"branch broken points at {missing[:10]}, which git cannot read" in index.notes


def test_a_corrupt_object_store_gives_a_problem_not_a_traceback(history: PrismaRepo) -> None:
    objects = history.main / ".git" / "objects"
    for folder in objects.iterdir():
        if len(folder.name) == 2:
            shutil.rmtree(folder)
    index = _build(history)
    assert index.problem == (
        f"git cannot read any branch, tag or HEAD of {history.main} (a corrupt or incomplete object store?)"
    )
    assert index.tips == ()


def test_a_hole_in_the_history_gives_a_problem_not_a_traceback(history: PrismaRepo) -> None:
    root = history.git(history.main, "rev-list", "--max-parents=0", "HEAD")
    (history.main / ".git" / "objects" / root[:2] / root[2:]).unlink()
    index = _build(history)
    assert index.problem is not None and index.problem.startswith(
        f"git log --no-show-signature failed in {history.main}: fatal: "
    )


def test_a_shallow_clone_is_flagged(history: PrismaRepo, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    history.git(tmp_path, "clone", "-q", "--depth", "1", f"file://{history.main}", str(clone))
    index = build_index(clone, clone / ".git", [DIR], list_worktrees(clone, env=history.env), history.env)
    assert index.shallow and index.problem is None
    assert {t.name for t in index.tips_with(DIR, FIXED)} >= {"main", "origin/main"}


def test_ten_thousand_branches(history: PrismaRepo) -> None:
    head = history.git(history.main, "rev-parse", "HEAD")
    commands = "".join(f"create refs/heads/agent/{n:05d} {head}\n" for n in range(10_000))
    subprocess.run(
        ["git", "update-ref", "--stdin"],
        input=commands,
        text=True,
        cwd=history.main,
        env=history.env,
        check=True,
    )
    index = _build(history)
    assert index.problem is None
    assert len(index.tips_with(DIR, FIXED)) == 10_000 + 2  # the new branches, main, the main worktree


def test_parsers_ignore_garbage() -> None:
    assert parse_refs("nonsense\n\0\0\0\0\n") == []
    assert parse_log("\x1egarbage\0:100644", [DIR]) == {}
    assert parse_tree(b"40000 x") == {}


# ------------------------------------------------------------------------------ whereabouts from the index


def _locate(
    repo: PrismaRepo, worktree: Path, name: str, base: str | None = "main", **kwargs: object
) -> Whereabouts:
    """What the pipeline does: the index, the removal this HEAD or the base reached, the blobs."""
    worktrees = list_worktrees(repo.main, env=repo.env)
    index = GitIndexCache().index(repo.main, [DIR], worktrees, env=repo.env)
    here = next(w for w in worktrees if w.path == worktree)
    heads = [h for h in (here.head, base and repo.git(repo.main, "rev-parse", base)) if h]
    removal = removal_reached(repo.main, index.history_of(name), heads, env=repo.env)
    removals = [r for c in index.history_of(name) for r in index.removed_by(c.commit.sha)]
    shas = [b for c in removals for b in (c.old_blob, *(blob for _, blob in c.added_with)) if b]
    blobs = read_blobs(repo.main, shas, env=repo.env)
    return locate(index, name, here, DIR, base_branch=base, removed_upstream=removal, blobs=blobs, **kwargs)  # type: ignore[arg-type]


def test_whereabouts_follow_the_history(history: PrismaRepo) -> None:
    main = history.main
    first = history.git(main, "rev-list", "--max-parents=0", "HEAD")
    old = history.add_worktree("web-old", "feature/old", first)
    # This HEAD still has it: only the working tree lost it.
    assert _locate(history, main, FIXED).kind == "restore"
    # The base branch removed it: an old branch that still has it must not be merged.
    billing = _locate(history, old, BILLING)
    assert (billing.kind, billing.removal and billing.removal.commit.subject) == (
        "removed_here",
        "Remove billing",
    )
    assert billing.successors == ()
    # Without a base branch the branch whose tip has it is the answer.
    assert (
        _locate(history, old, BILLING, base=None).kind,
        _locate(history, old, BILLING, base=None).merge_ref,
    ) == (
        "branch",
        "feature/billing-v2",
    )
    renamed = _locate(history, old, TYPO)
    assert (renamed.kind, renamed.successors) == ("removed_here", (FIXED,))
    squashed = _locate(history, old, TEMPLATES_B)
    assert (squashed.kind, squashed.successors) == ("removed_here", (SQUASHED,))
    assert _locate(history, old, INIT).merge_ref == "main"
    assert _locate(history, old, "20990101000000_never_committed").kind == "gone"


def test_whereabouts_of_an_uncommitted_migration(history: PrismaRepo) -> None:
    billing_wt = history.main.parent / "web-billing"
    history.write_migration(billing_wt, "20250601000000_wip", "SELECT 1;\n")
    worktrees = {w.path: w for w in list_worktrees(history.main, env=history.env)}
    holder = Holder(worktrees[billing_wt], DIR)
    found = _locate(history, history.main, "20250601000000_wip", holders=[holder])
    assert (found.kind, found.holder) == ("uncommitted", holder)


def test_whereabouts_without_git_history(history: PrismaRepo) -> None:
    index = MigrationIndex(key="", migrations_dirs=(DIR,), problem="git is not installed (no 'git' on PATH)")
    worktree = list_worktrees(history.main, env=history.env)[0]
    found = locate(index, BILLING, worktree, DIR)
    assert (found.kind, found.note) == (
        "unknown",
        "git history not read: git is not installed (no 'git' on PATH)",
    )


def test_sql_containment_ignores_comments_and_layout() -> None:
    assert sql_contains(
        '-- squashed\nCREATE TABLE "A" (id INT);\n\nCREATE TABLE "B" (id INT);', 'CREATE TABLE "A"\n(id INT);'
    )
    assert not sql_contains('CREATE TABLE "A" (id INT);', 'CREATE TABLE "B" (id INT);')
    assert not sql_contains("SELECT 1;", "-- only a comment\n")


def test_a_rename_that_adds_statements_is_no_successor(history: PrismaRepo) -> None:
    """rallly 460e88086d 'Fix migration (#1574)': renamed and given 4 more lines in one commit; recording
    the new name as applied would skip those lines, so it is reported as a deletion (with advice)."""
    main = history.main
    later = "20250501000000_add_invoice"
    history.git(main, "mv", f"{DIR}/{FIXED}", f"{DIR}/{later}")
    sql = history.migrations_path(main) / later / "migration.sql"
    sql.write_text(
        sql.read_text(encoding="utf-8") + 'CREATE INDEX "Invoice_id" ON "Invoice"(id);\n', encoding="utf-8"
    )
    history.commit(main, "Fix migration")
    first = history.git(main, "rev-list", "--max-parents=0", "HEAD")
    old = history.add_worktree("web-old", "feature/old", first)
    found = _locate(history, old, FIXED)
    assert (found.kind, found.successors) == ("removed_here", ())
    assert found.removal is not None and [n for n, _ in found.removal.added_with] == [later]


def test_the_index_is_kept_on_disk_for_the_next_process(history: PrismaRepo, tmp_path: Path) -> None:
    """A status run reads the index from disk when the refs are where they were (each run is a process)."""
    worktrees = list_worktrees(history.main, env=history.env)
    built = GitIndexCache().index(history.main, [DIR], worktrees, env=history.env)
    path = indexstore.store_path(tmp_path / "store", history.main, [DIR])
    indexstore.save(path, built)
    assert path.stat().st_mode & 0o777 == 0o600
    assert indexstore.load(path, built.key) == built
    assert indexstore.load(path, "another refs state") is None
    path.write_text("{not json", encoding="utf-8")
    assert indexstore.load(path, built.key) is None
    cache = GitIndexCache(store=lambda: tmp_path / "store")
    indexstore.save(path, built)
    assert cache.index(history.main, [DIR], worktrees, env=history.env) == built
    assert cache.builds == 0  # read from disk: git was not asked
