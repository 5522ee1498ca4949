"""Package managers: `package.json` files, lockfiles, workspaces, and what a manager's command runs.

Pure apart from reading `package.json` / `pnpm-workspace.yaml` files and testing for lockfiles.
`scripts.py` follows chains of scripts through here: `manager_step` says what one `npm`/`pnpm`/
`yarn`/`bun`/`turbo`/`npx` command line runs (a binary, or a script of a known package, selected
with `--filter`, `-w`, `--prefix`, `yarn workspace …`); `package_manager` names the project's
manager (from `packageManager` or the lockfile), and `run_script_argv` / `exec_argv` print commands
the way that manager runs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

PackageManager = str  # "npm" | "pnpm" | "yarn" | "bun"

MAX_PACKAGE_JSON_BYTES = 1_000_000

_LOCKFILES: tuple[tuple[str, PackageManager], ...] = (
    ("pnpm-lock.yaml", "pnpm"),
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
)
# pnpm's and yarn's own commands: `pnpm install` is not a script named "install".
_PM_BUILTINS = frozenset(
    {"install", "i", "add", "remove", "rm", "update", "up", "exec", "dlx", "create", "init", "link", "why"}
)


@dataclass(frozen=True)
class Package:
    """One package.json: its folder, name and scripts."""

    folder: Path
    name: str | None
    scripts: Mapping[str, str]
    is_root: bool = False


def read_package(folder: Path) -> Package | None:
    """The package.json of a folder (None if absent, unreadable, too large or not an object)."""
    loaded = _read_manifest(folder / "package.json")
    if loaded is None:
        return None
    raw = loaded.get("scripts")
    scripts = {k: v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, dict) else {}
    name = loaded.get("name")
    return Package(folder=folder, name=name if isinstance(name, str) else None, scripts=scripts)


def package_manager(worktree: Path, package_dir: Path) -> tuple[PackageManager, str]:
    """The project's package manager and how it was found (`packageManager` field, a lockfile, default)."""
    folders = _folders_up(package_dir, worktree)
    for folder in folders:
        manifest = _read_manifest(folder / "package.json")
        field = manifest.get("packageManager") if manifest else None
        if isinstance(field, str) and field.split("@", 1)[0] in {"npm", "pnpm", "yarn", "bun"}:
            return field.split("@", 1)[0], f"packageManager {field!r} in {folder / 'package.json'}"
    for folder in folders:
        for lockfile, manager in _LOCKFILES:
            if (folder / lockfile).is_file():
                return manager, f"{folder / lockfile}"
    return "npm", "no lockfile (npm is the default)"


def run_script_argv(manager: PackageManager, script: str, extra: Sequence[str] = ()) -> list[str]:
    """How a person runs a package.json script with that manager (`pnpm run db:deploy`)."""
    if manager == "npm":
        return ["npm", "run", script, *(["--", *extra] if extra else [])]
    return [manager, "run", script, *extra]


def exec_argv(manager: PackageManager, prisma_argv: Sequence[str]) -> list[str]:
    """How a person runs the project's installed Prisma CLI with that manager (`pnpm exec prisma …`)."""
    runner = {"npm": ["npx"], "pnpm": ["pnpm", "exec"], "yarn": ["yarn"], "bun": ["bunx"]}
    return [*runner.get(manager, ["npx"]), "prisma", *prisma_argv]


@dataclass(frozen=True)
class RunsBinary:
    """A package manager running a binary (`npx prisma …`, `pnpm exec prisma …`)."""

    argv: tuple[str, ...]


@dataclass(frozen=True)
class RunsScript:
    """A package manager running a script (`pnpm run db:deploy`, `yarn workspace db migrate`)."""

    package: Package
    name: str
    extra: tuple[str, ...]


# Options that take a value, per manager (`-w` is a flag in pnpm, a workspace name in npm).
_VALUE_OPTIONS: dict[str, frozenset[str]] = {
    "npm": frozenset({"-w", "--workspace", "--prefix", "-C"}),
    "pnpm": frozenset({"--filter", "-F", "-C", "--dir"}),
    "yarn": frozenset({"--cwd"}),
    "bun": frozenset({"--cwd", "--filter", "-F"}),
    "turbo": frozenset({"--filter", "-F"}),
}
_SELECTORS = frozenset({"-w", "--workspace", "--filter", "-F"})
_PNPM_ENTRY = re.compile(r"""^\s*-\s*["']?([^"'#\s]+)["']?\s*(?:#.*)?$""", re.M)
_DIRS = frozenset({"--prefix", "-C", "--dir", "--cwd"})


def manager_step(
    words: Sequence[str], package: Package, packages: Sequence[Package], cwd: Path
) -> RunsBinary | RunsScript | None:
    """What a package-manager command line runs: a binary, a script of a known package, or nothing known."""
    program = Path(words[0]).name
    if program in {"npx", "bunx", "pnpx"}:
        return RunsBinary(tuple(_skip_runner_options(words[1:])))
    manager = program
    if manager not in _VALUE_OPTIONS:
        return None
    selected, rest = _global_options(manager, list(words[1:]), cwd)
    target = package if selected is None else _select(selected, packages, cwd)
    if manager == "turbo" and selected is None:  # turbo runs a task in the workspaces, not the root
        target = next((p for p in packages if not p.is_root and rest[-1:] and rest[-1] in p.scripts), None)
    if not rest:
        return None
    verb, args = rest[0], rest[1:]
    if manager == "yarn" and verb == "workspace" and args:
        target, verb, args = _select([("-w", args[0])], packages, cwd), (args[1:] or [""])[0], args[2:]
    if target is None:
        return None
    if verb in {"run", "run-script"} and args:
        return RunsScript(target, args[0], tuple(_drop_separator(args[1:])))
    if verb in {"exec", "x", "dlx"}:
        return RunsBinary(tuple(_skip_runner_options(args)))
    if manager == "turbo":
        return RunsScript(target, verb, ()) if verb in target.scripts else None
    if manager == "npm" or verb in _PM_BUILTINS:
        return None
    if verb in target.scripts:  # `pnpm db:push`, `yarn with-env prisma …`, `bun migrate`
        return RunsScript(target, verb, tuple(args))
    return RunsBinary((verb, *args))  # `pnpm prisma migrate deploy` runs the installed binary


def _global_options(
    manager: str, args: list[str], cwd: Path
) -> tuple[list[tuple[str, str]] | None, list[str]]:
    """(package selectors and folders given, the rest from the verb on) of a manager's command line."""
    selected: list[tuple[str, str]] = []
    index = 0
    values = _VALUE_OPTIONS[manager]
    rest: list[str] = []
    while index < len(args):
        if args[index] == "--" and rest:  # the script's own arguments: `npm run with:env -- npm … -w x`
            rest += args[index:]
            break
        flag, _, inline = args[index].partition("=")
        if flag in values:
            value = inline or (args[index + 1] if index + 1 < len(args) else "")
            if flag in _SELECTORS or flag in _DIRS:
                selected.append((flag, value))
            index += 1 if inline else 2
        elif args[index].startswith("-") and not rest and args[index] != "--":
            index += 1
        else:
            rest.append(args[index])
            index += 1
    return (selected or None), rest


def _select(selected: Sequence[tuple[str, str]], packages: Sequence[Package], cwd: Path) -> Package | None:
    """The package a `--filter`/`-w`/`-C`/`--prefix` names: a known one, else one of the root's workspaces.

    From the repository root, `npm run prisma:migrate-dev` often delegates to the Prisma package with
    `npm run … -w @scope/prisma` (documenso): that package is found among the root's workspaces.
    """
    root = next((p for p in packages if p.is_root), None)
    for candidates in (packages, _workspace_packages(root.folder) if root else []):
        for flag, value in selected:
            names_a_folder = flag in _DIRS or flag in {"-w", "--workspace"} or value.startswith(("./", "../"))
            for package in candidates:
                if names_a_folder and (cwd / value).resolve() == package.folder.resolve():
                    return package
                if value and value in {package.name, f"{package.name}...", f"...{package.name}"}:
                    return package
    return None


MAX_WORKSPACE_PACKAGES = 500


def _workspace_packages(root: Path) -> list[Package]:
    """The packages the root's `workspaces` (npm, yarn, bun) or `pnpm-workspace.yaml` globs name.

    Cached per root until one of the files and folders it was read from changes (a root's scripts
    select packages dozens of times; the daemon re-reads after an edit).
    """
    cached = _WORKSPACE_CACHE.get(root)
    if cached is not None and _mtimes(path for path, _ in cached[0]) == cached[0]:
        return cached[1]
    patterns = _workspace_patterns(root)
    found: list[Package] = []
    watched = [root / "package.json", root / "pnpm-workspace.yaml"]
    for pattern in patterns:
        if pattern.startswith("!") or ".." in Path(pattern).parts or Path(pattern).is_absolute():
            continue
        watched.append((root / pattern.rstrip("/")).parent)
        for folder in sorted(root.glob(pattern.rstrip("/"))):
            package = read_package(folder) if "node_modules" not in folder.parts else None
            if package is not None and len(found) < MAX_WORKSPACE_PACKAGES:
                found.append(package)
                watched.append(folder / "package.json")
    if len(_WORKSPACE_CACHE) > 64:
        _WORKSPACE_CACHE.clear()
    _WORKSPACE_CACHE[root] = (_mtimes(watched), found)
    return found


_WORKSPACE_CACHE: dict[Path, tuple[tuple[tuple[Path, int], ...], list[Package]]] = {}


def _workspace_patterns(root: Path) -> list[str]:
    manifest = _read_manifest(root / "package.json") or {}
    workspaces = manifest.get("workspaces")
    if isinstance(workspaces, dict):  # yarn 1: {"packages": [...], "nohoist": [...]}
        workspaces = workspaces.get("packages")
    patterns = [w for w in workspaces if isinstance(w, str)] if isinstance(workspaces, list) else []
    try:
        pnpm = (root / "pnpm-workspace.yaml").read_text(encoding="utf-8")[:MAX_PACKAGE_JSON_BYTES]
    except (OSError, UnicodeDecodeError):
        pnpm = ""
    # The `packages:` list of pnpm-workspace.yaml, read line by line (`  - "apps/*"`).
    return patterns + [m.group(1) for m in _PNPM_ENTRY.finditer(pnpm)]


def _mtimes(paths: Iterable[Path]) -> tuple[tuple[Path, int], ...]:
    """(path, modification time in ns, or -1 if absent) of each path: the cache's validity key."""
    stamped = []
    for path in paths:
        try:
            stamped.append((path, path.stat().st_mtime_ns))
        except OSError:
            stamped.append((path, -1))
    return tuple(stamped)


def _skip_runner_options(args: Sequence[str]) -> list[str]:
    """`npx --yes -p prisma prisma …` → `prisma …`."""
    index = 0
    while index < len(args) and args[index].startswith("-"):
        if args[index] == "--":
            return list(args[index + 1 :])
        index += 2 if args[index] in {"-p", "--package", "-c", "--call"} else 1
    return list(args[index:])


def _drop_separator(args: Sequence[str]) -> list[str]:
    return list(args[1:]) if args and args[0] == "--" else list(args)


def project_packages(worktree: Path, package_dir: Path) -> list[Package]:
    """The package's and the worktree root's package.json (once each), the package's first."""
    found: list[Package] = []
    for folder in dict.fromkeys([package_dir, worktree]):
        package = read_package(folder)
        if package is not None:
            found.append(replace(package, is_root=folder == worktree))
    return found


def _folders_up(start: Path, root: Path) -> list[Path]:
    """start, its parent, … up to and including root (just start if it is not under root)."""
    chain = [start]
    while chain[-1] != root and root in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def nearest_package_dir(cwd: Path, worktree: Path) -> Path:
    """The nearest folder at or above `cwd` (within the worktree) with a package.json; else `cwd`."""
    for folder in _folders_up(cwd, worktree):
        if (folder / "package.json").is_file():
            return folder
    return cwd


def _read_manifest(path: Path) -> dict[str, object] | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_PACKAGE_JSON_BYTES:
            return None
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None
