"""Builds the migration-history index (`migindex`) with a fixed handful of git commands, and caches it.

One build: `for-each-ref` (the tips), one `cat-file --batch-check` and one `cat-file --batch` (the
migrations folder of every tip, each distinct tree read once), one `git log --raw -M` limited to the
migrations folders (every add, edit, delete and rename). The cache keeps an index until the refs or a
worktree's HEAD change: its key is the worktree list plus the modification times of the ref storage
(a ref update renames a lock file into its folder, which changes that folder's mtime), so a re-check
costs a few `stat` calls instead of git runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from migwatch import indexstore
from migwatch.git import GitError, run_git, run_git_bytes
from migwatch.migindex import (
    LOG_FORMAT,
    REF_FORMAT,
    MigrationChange,
    MigrationIndex,
    RefTip,
    parse_batch,
    parse_log,
    parse_refs,
    parse_tree,
)
from migwatch.model import Worktree

log = logging.getLogger(__name__)

REF_STORAGE = ("packed-refs", "refs", "reftable", "shallow", "HEAD")
CACHE_SIZE = 16
# Indexes that took longer than this to read from git are kept on disk for the next process.
STORE_AFTER_SECONDS = 0.05


def _stat_line(path: Path) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return f"{path.name}:-"
    return f"{path.name}:{info.st_mtime_ns}:{info.st_size}:{info.st_ino}"


def _folder_lines(folder: Path) -> Iterable[str]:
    """The mtime of `folder` and of every folder under it (ref updates land in these folders)."""
    stack = [folder]
    while stack:
        current = stack.pop()
        yield f"{current}:{_stat_line(current)}"
        try:
            with os.scandir(current) as entries:
                stack.extend(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue


def refs_state_key(common_dir: Path, worktrees: Sequence[Worktree]) -> str:
    """A digest of everything the index depends on: worktree HEADs and the ref storage's mtimes."""
    digest = hashlib.sha256()
    for worktree in worktrees:
        digest.update(f"{worktree.path}\0{worktree.head}\0{worktree.branch}\n".encode())
    for name in REF_STORAGE:
        path = common_dir / name
        lines = _folder_lines(path) if path.is_dir() else [_stat_line(path)]
        for line in lines:
            digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def _peel_and_list(
    repo: Path, objects: Sequence[str], migrations_dirs: Sequence[str], env: Mapping[str, str] | None
) -> tuple[dict[str, str], dict[tuple[str, str], dict[str, str]]]:
    """For each listed object: its commit (tags peeled; unreadable ones left out), and the migration
    folders (name → tree sha) of every (commit, migrations dir), read with two `cat-file` runs."""
    request = "".join(
        f"{obj}^{{commit}}\n" + "".join(f"{obj}^{{commit}}:{d}\n" for d in migrations_dirs) for obj in objects
    )
    answers = run_git_bytes(repo, "cat-file", "--batch-check", env=env, stdin=request.encode())
    lines = answers.decode("utf-8", "replace").splitlines()
    stride = 1 + len(migrations_dirs)
    if len(lines) != stride * len(objects):
        raise GitError(
            f"git cat-file --batch-check in {repo} answered {len(lines)} of {stride * len(objects)}"
        )
    commit_of: dict[str, str] = {}
    tree_of: dict[tuple[str, str], str] = {}
    for position, obj in enumerate(objects):
        head = lines[position * stride].split(" ")
        if head[1:2] != ["commit"]:
            continue  # missing or corrupt: left out, with a note
        commit_of[obj] = head[0]
        for offset, directory in enumerate(migrations_dirs, start=1):
            fields = lines[position * stride + offset].split(" ")
            if fields[1:2] == ["tree"]:
                tree_of[(head[0], directory)] = fields[0]
    trees = sorted(set(tree_of.values()))
    folders: dict[str, dict[str, str]] = {}
    if trees:
        raw = run_git_bytes(
            repo, "cat-file", "--batch", env=env, stdin="".join(f"{t}\n" for t in trees).encode()
        )
        for tree, (_, kind, content) in zip(trees, parse_batch(raw), strict=False):
            if kind == "tree" and content is not None:
                folders[tree] = parse_tree(content)
    return commit_of, {pair: folders.get(tree, {}) for pair, tree in tree_of.items()}


def _commit_times(repo: Path, commits: Sequence[str], env: Mapping[str, str] | None) -> dict[str, int]:
    """Committer dates of readable commits, with one `git log --no-walk --stdin`."""
    if not commits:
        return {}
    out = run_git_bytes(
        repo,
        "log",
        "--no-walk=unsorted",
        "--stdin",
        "--format=%H %ct",
        env=env,
        stdin="\n".join(commits).encode(),
    )
    times: dict[str, int] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        sha, _, stamp = line.partition(" ")
        if stamp.isdigit():
            times[sha] = int(stamp)
    return times


def _read_tips(
    repo: Path, migrations_dirs: Sequence[str], worktrees: Sequence[Worktree], env: Mapping[str, str] | None
) -> tuple[list[RefTip], dict[tuple[str, str], dict[str, str]], list[str]]:
    """Every readable ref tip and worktree HEAD (commit, date), their migration folders, and notes."""
    listed = parse_refs(
        run_git(
            repo, "for-each-ref", f"--format={REF_FORMAT}", "refs/heads", "refs/remotes", "refs/tags", env=env
        )
    )
    listed += [
        RefTip(ref=str(w.path), name=str(w.path), kind="worktree", commit=w.head, timestamp=0)
        for w in worktrees
        if w.head and not w.bare
    ]
    objects = sorted({tip.commit for tip in listed})
    commit_of, contents = _peel_and_list(repo, objects, migrations_dirs, env)
    times = _commit_times(repo, sorted(set(commit_of.values())), env)
    tips: list[RefTip] = []
    notes: list[str] = []
    for tip in listed:
        commit = commit_of.get(tip.commit)
        if commit is None:
            notes.append(f"{tip.kind} {tip.name} points at {tip.commit[:10]}, which git cannot read")
            continue
        tips.append(RefTip(tip.ref, tip.name, tip.kind, commit, times.get(commit, 0)))
    return tips, contents, notes


def build_index(
    repo: Path,
    common_dir: Path,
    migrations_dirs: Sequence[str],
    worktrees: Sequence[Worktree],
    env: Mapping[str, str] | None = None,
    key: str = "",
) -> MigrationIndex:
    """Read the index from git; a git failure gives an empty index whose `problem` says why."""
    dirs = tuple(sorted(set(migrations_dirs)))
    shallow = (common_dir / "shallow").is_file()
    try:
        tips, contents, notes = _read_tips(repo, dirs, worktrees, env)
        commits = sorted({t.commit for t in tips})  # readable tips only: one bad ref must not fail the log
        log_out = (
            run_git_bytes(
                repo,
                "log",
                "--no-show-signature",
                "--stdin",
                "--topo-order",  # a change before the changes it builds on, even within one second
                "--full-history",  # keep side branches whose merge left the folder as it was
                f"--format={LOG_FORMAT}",
                "--raw",
                "--no-abbrev",
                "-M",
                "-z",
                "--",
                *(d or "." for d in dirs),
                env=env,
                stdin="\n".join(commits).encode(),
            ).decode("utf-8", "replace")
            if commits
            else ""
        )
    except GitError as exc:
        log.info("git history of %s not indexed: %s", repo, exc)
        return MigrationIndex(key=key, migrations_dirs=dirs, shallow=shallow, problem=str(exc))
    problem = None
    if notes and not tips:
        problem = f"git cannot read any branch, tag or HEAD of {repo} (a corrupt or incomplete object store?)"
    return MigrationIndex(
        key=key,
        migrations_dirs=dirs,
        problem=problem,
        tips=tuple(tips),
        contents=contents,
        changes=parse_log(log_out, dirs),
        shallow=shallow,
        notes=tuple(notes),
    )


class GitIndexCache:
    """Indexes per (repository, migrations folders), rebuilt only when the refs or HEADs change."""

    def __init__(self, store: Callable[[], Path] | None = None) -> None:
        """`store`: the folder (computed on first use) where slow-to-build indexes are kept between processes."""
        self._store = store
        self._lock = threading.Lock()
        self._indexes: dict[tuple[Path, tuple[str, ...]], MigrationIndex] = {}
        self._common_dirs: dict[Path, Path] = {}
        self.builds = 0  # how many times git was asked (tests and benchmarks read it)

    def _common_dir(self, repo: Path, env: Mapping[str, str] | None) -> Path:
        if repo not in self._common_dirs:
            out = run_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir", env=env).strip()
            self._common_dirs[repo] = Path(out)
        return self._common_dirs[repo]

    def index(
        self,
        repo: Path,
        migrations_dirs: Sequence[str],
        worktrees: Sequence[Worktree],
        env: Mapping[str, str] | None = None,
    ) -> MigrationIndex:
        """The index at the current refs state (from the cache when nothing moved)."""
        dirs = tuple(sorted(set(migrations_dirs)))
        with self._lock:
            try:
                common = self._common_dir(repo, env)
            except GitError as exc:
                return MigrationIndex(key="", migrations_dirs=dirs, problem=str(exc))
            key = refs_state_key(common, worktrees)
            cached = self._indexes.get((repo, dirs))
            if cached is not None and cached.key == key:
                return cached
            path = indexstore.store_path(self._store(), repo, dirs) if self._store else None
            stored = indexstore.load(path, key) if path else None
            if stored is not None:
                self._indexes[(repo, dirs)] = stored
                return stored
            self.builds += 1
            started = time.perf_counter()
            index = build_index(repo, common, dirs, worktrees, env, key)
            if index.problem is not None:
                index = replace(index, key="")  # a failed build is retried at the next check
            elif path is not None and time.perf_counter() - started >= STORE_AFTER_SECONDS:
                indexstore.save(path, index)
            if len(self._indexes) >= CACHE_SIZE:
                self._indexes.pop(next(iter(self._indexes)))
            self._indexes[(repo, dirs)] = index
            return index


# The process's cache: the daemon's re-checks share it; `status` runs share its files.
SHARED_CACHE = GitIndexCache(store=indexstore.default_folder)


def read_blobs(repo: Path, shas: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """migration.sql texts by blob id (one `cat-file --batch`); unreadable ones are left out."""
    wanted = sorted(set(shas))
    if not wanted:
        return {}
    try:
        raw = run_git_bytes(
            repo, "cat-file", "--batch", env=env, stdin="".join(f"{s}\n" for s in wanted).encode()
        )
    except GitError as exc:
        log.info("cannot read migration.sql blobs in %s: %s", repo, exc)
        return {}
    return {
        sha: content.decode("utf-8", "replace")
        for sha, (_, kind, content) in zip(wanted, parse_batch(raw), strict=False)
        if kind == "blob" and content is not None
    }


def removal_reached(
    repo: Path,
    changes: Sequence[MigrationChange],
    heads: Sequence[str],
    env: Mapping[str, str] | None = None,
    memo: dict[tuple[str, str], bool] | None = None,
) -> MigrationChange | None:
    """The newest removal (deleted, or renamed away) among `changes` that one of `heads` contains.

    `memo` keeps answers across calls (a squash removes many migrations in one commit).
    """
    known = memo if memo is not None else {}
    for change in changes:
        if change.kind not in ("deleted", "renamed") or change.renamed_to == change.name:
            continue
        for head in heads:
            key = (change.commit.sha, head)
            if key not in known:
                try:
                    base = run_git(repo, "merge-base", change.commit.sha, head, env=env).strip()
                except GitError:
                    base = ""  # unrelated histories, or an unreadable commit: not reached
                known[key] = base == change.commit.sha
            if known[key]:
                return change
    return None
