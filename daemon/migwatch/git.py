"""The git edge: one function runs git and raises one error type; helpers parse what it prints."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from migwatch.model import Worktree

log = logging.getLogger(__name__)

GIT_TIMEOUT = 30.0


class GitError(Exception):
    """git failed or is missing; the message is one line naming the folder."""


def run_git(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True, text: bool = True
) -> str:
    """Run `git -C cwd args…` and return its stdout (text), or raise GitError."""
    completed = run_git_bytes(cwd, *args, env=env, check=check)
    return completed.decode("utf-8", "replace") if text else completed.decode("latin-1")


def run_git_bytes(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    stdin: bytes | None = None,
) -> bytes:
    """Run git and return raw stdout bytes (for blob contents); `stdin` feeds `cat-file --batch` & co."""
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("GIT_OPTIONAL_LOCKS", "0")  # a watcher must never take git's index lock
    run_env["LC_ALL"] = "C"
    try:
        completed = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            env=run_env,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed (no 'git' on PATH)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {' '.join(args)} in {cwd} took longer than {GIT_TIMEOUT:.0f} s") from None
    if check and completed.returncode != 0:
        message = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = message[-1] if message else f"exit code {completed.returncode}"
        raise GitError(f"git {' '.join(args[:2])} failed in {cwd}: {reason}")
    return completed.stdout


def parse_worktree_list(porcelain_z: str) -> list[Worktree]:
    """Parse `git worktree list --porcelain -z` output."""
    worktrees: list[Worktree] = []
    fields: dict[str, str] = {}
    for token in [*porcelain_z.split("\0"), ""]:
        if token:
            key, _, value = token.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            branch = fields.get("branch")
            worktrees.append(
                Worktree(
                    path=Path(fields["worktree"]),
                    head=fields.get("HEAD"),
                    branch=branch.removeprefix("refs/heads/") if branch else None,
                    is_main=not worktrees,
                    bare="bare" in fields,
                    prunable=fields["prunable"] or "gitdir file points to non-existent location"
                    if "prunable" in fields
                    else None,
                    locked="locked" in fields,
                )
            )
        fields = {}
    return worktrees


def list_worktrees(repo: Path, env: Mapping[str, str] | None = None) -> list[Worktree]:
    """Every worktree of the repository that `repo` is a checkout of (main first)."""
    if not repo.is_dir():
        raise GitError(f"repository folder {repo} does not exist")
    return parse_worktree_list(run_git(repo, "worktree", "list", "--porcelain", "-z", env=env))


def common_dir(repo: Path, env: Mapping[str, str] | None = None) -> Path:
    """$GIT_COMMON_DIR: where `worktrees/` metadata lives."""
    out = run_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir", env=env).strip()
    return Path(out)


def git_dir(worktree: Path, env: Mapping[str, str] | None = None) -> Path:
    """The worktree's own git dir (holds its HEAD)."""
    return Path(run_git(worktree, "rev-parse", "--path-format=absolute", "--git-dir", env=env).strip())


def names_at(
    repo: Path, ref: str, folder: str, env: Mapping[str, str] | None = None
) -> frozenset[str] | None:
    """Subfolder names of `folder` (repo-relative) at `ref`; None when the ref does not exist."""
    try:
        out = run_git(repo, "ls-tree", "-d", "--name-only", "-z", f"{ref}:{folder}", env=env)
    except GitError as exc:
        log.debug("no %s at %s: %s", folder, ref, exc)
        return None
    return frozenset(name for name in out.split("\0") if name)


def file_revisions(
    worktree: Path, relpath: str, limit: int = 50, env: Mapping[str, str] | None = None
) -> list[str]:
    """Commits that changed `relpath` on the worktree's HEAD, newest first."""
    out = run_git(worktree, "log", f"-{limit}", "--format=%H", "--", relpath, env=env, check=False)
    return out.split()


def merge_base(worktree: Path, rev: str, other: str, env: Mapping[str, str] | None = None) -> str | None:
    """The best common ancestor of two revisions, or None (unrelated histories, unknown revision)."""
    out = run_git(worktree, "merge-base", rev, other, env=env, check=False).strip()
    return out or None


def blob_at(worktree: Path, rev: str, relpath: str, env: Mapping[str, str] | None = None) -> bytes | None:
    """The file's bytes at a revision, or None."""
    try:
        return run_git_bytes(worktree, "show", f"{rev}:{relpath}", env=env)
    except GitError:
        return None


def blobs_at(
    repo: Path, specs: Sequence[str], env: Mapping[str, str] | None = None
) -> dict[str, bytes | None]:
    """The bytes of every `<rev>:<path>` in one `git cat-file --batch` call; None where there is none."""
    wanted = [spec for spec in dict.fromkeys(specs) if "\n" not in spec]
    found: dict[str, bytes | None] = dict.fromkeys(specs)
    if not wanted:
        return found
    out = run_git_bytes(
        repo, "cat-file", "--batch", env=env, stdin="".join(f"{s}\n" for s in wanted).encode()
    )
    pos = 0
    for spec in wanted:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            found[spec] = out[pos : pos + size]
            pos += size + 1
        elif len(header) == 3:  # a tree or commit: skip its body
            pos += int(header[2]) + 1
    return found


def last_change(worktree: Path, relpath: str, env: Mapping[str, str] | None = None) -> str | None:
    """`uncommitted change` or `<short sha> <subject> (<author>, <date>)` for the last change of a file."""
    status = run_git(worktree, "status", "--porcelain", "--", relpath, env=env, check=False).strip()
    if status:
        return "an uncommitted change in this worktree"
    out = run_git(worktree, "log", "-1", "--format=%h %s (%an, %cs)", "--", relpath, env=env, check=False)
    return out.strip() or None


def is_tracked(worktree: Path, relpath: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether git knows the path at HEAD."""
    out = run_git(worktree, "ls-tree", "-r", "--name-only", "HEAD", "--", relpath, env=env, check=False)
    return bool(out.strip())


def branches_of(repo: Path, refs: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """Local branch names (refs/heads)."""
    out = run_git(repo, "for-each-ref", "--format=%(refname:short)", *refs, env=env, check=False)
    return [line for line in out.splitlines() if line]
