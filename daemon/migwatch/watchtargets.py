"""What the daemon watches for each worktree and repository (SPEC §8), computed from what discovery found.

Pure except for reading a worktree's `.git` file (and asking git when that is not enough).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from migwatch import git as gitio
from migwatch.model import PrismaSetup

K = TypeVar("K", bound=Hashable)

__all__ = ["WatchTarget", "git_busy", "git_dir_of", "repository_targets", "setup_targets", "worktree_targets"]


@dataclass(frozen=True)
class WatchTarget(Generic[K]):
    """One thing to watch: events under `path` whose name matches `names` (None: any) queue `key`.

    A `recursive` target sees its whole tree; a non-recursive one only the folder's direct entries.
    """

    key: K
    path: Path
    recursive: bool = False
    names: frozenset[str] | None = None  # fnmatch patterns of entry names


def worktree_targets(
    key: K,
    *,
    worktree: Path,
    package_dir: Path | None,
    schema_path: Path | None,
    migrations_dir: Path | None,
    git_dir: Path | None,
) -> list[WatchTarget[K]]:
    """What a worktree's check depends on: its migrations (recursive), schema, `.env`/config files, HEAD."""
    targets: list[WatchTarget[K]] = []
    if migrations_dir is not None:
        targets.append(WatchTarget(key, migrations_dir, recursive=True))
    if schema_path is not None:
        if schema_path.suffix == ".prisma":
            targets.append(WatchTarget(key, schema_path.parent, names=frozenset({"*.prisma", ".env"})))
        else:  # a schema folder (several .prisma files)
            targets.append(WatchTarget(key, schema_path, recursive=True))
    config_names = frozenset({".env", "package.json", "prisma.config.*", "prisma7.config.*"})
    if package_dir is not None:
        targets.append(WatchTarget(key, package_dir, names=config_names))
        config_dir = package_dir / ".config"
        targets.append(WatchTarget(key, config_dir, names=frozenset({"prisma.*", "prisma7.*"})))
    if package_dir != worktree:
        targets.append(WatchTarget(key, worktree, names=frozenset({".env", "package.json"})))
    if git_dir is not None:
        targets.append(WatchTarget(key, git_dir, names=frozenset({"HEAD"})))
    return targets


def repository_targets(key: K, common_dir: Path) -> list[WatchTarget[K]]:
    """`$GIT_COMMON_DIR/worktrees/` (`git worktree add/remove`) and the branch refs.

    A commit, merge or fetch moves a branch without touching any worktree's HEAD, and where a missing
    migration lives (a branch tip, uncommitted in a worktree) decides the fix: loose refs under
    `refs/heads/` and `refs/remotes/`, and `packed-refs`.
    """
    return [
        WatchTarget(key, common_dir / "worktrees"),
        WatchTarget(key, common_dir, names=frozenset({"packed-refs"})),
        WatchTarget(key, common_dir / "refs" / "heads", recursive=True),
        WatchTarget(key, common_dir / "refs" / "remotes", recursive=True),
    ]


def setup_targets(key: K, setup: PrismaSetup, env: Mapping[str, str]) -> list[tuple[WatchTarget[K], Path]]:
    """A discovered worktree's targets, each with the root no fallback watch may climb above (the
    worktree for what is inside it, the target itself for what lies outside)."""
    path = setup.worktree.path
    targets = worktree_targets(
        key,
        worktree=path,
        package_dir=setup.package_dir,
        schema_path=setup.schema_path,
        migrations_dir=setup.migrations_dir,
        git_dir=git_dir_of(path, env),
    )
    # The env files discovery read (script wrappers' `dotenv -e ../../.env`, the config's loadEnvFile,
    # the project's env_files): a change to one can change the URL. Only those inside the worktree.
    folders: dict[Path, set[str]] = {}
    for file in setup.env_files:
        if _inside(file, path):
            folders.setdefault(file.parent, set()).add(file.name)
    targets += [WatchTarget(key, folder, names=frozenset(names)) for folder, names in folders.items()]
    pairs = [(t, path if _inside(t.path, path) else t.path) for t in targets]
    # The worktree folder itself, seen from its parent: `rm -rf` or a move of the whole worktree.
    pairs.append((WatchTarget(key, path.parent, names=frozenset({path.name})), path.parent))
    return pairs


def git_dir_of(worktree: Path, env: Mapping[str, str]) -> Path | None:
    """The worktree's own git dir: `.git` itself, or where its `.git` file points (no git process)."""
    dotgit = worktree / ".git"
    try:
        if dotgit.is_dir():
            return dotgit
        text = dotgit.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text.startswith("gitdir:"):
        target = Path(text.split(":", 1)[1].strip())
        return target if target.is_absolute() else (worktree / target).resolve()
    try:
        return gitio.git_dir(worktree, env=env)
    except gitio.GitError:
        return None


def git_busy(worktree: Path, env: Mapping[str, str]) -> bool:
    """Whether a git command holds the worktree's index lock (a checkout is rewriting its files)."""
    git_dir = git_dir_of(worktree, env)
    return git_dir is not None and (git_dir / "index.lock").exists()


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
