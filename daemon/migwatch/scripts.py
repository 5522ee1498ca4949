"""Which `package.json` scripts run which Prisma command, through which env-loading wrapper.

Pure apart from reading `package.json` files and testing for lockfiles. Two questions are answered:

- `prisma_scripts(worktree, package_dir)`: every script of the package's and the worktree root's
  `package.json` that runs Prisma, directly or through other scripts (`npm run x`, `pnpm x`,
  `yarn x`, `bun run x`, `&&` chains, `pnpm --filter <this package> x`), with the env files its
  wrappers load (`dotenv -e a -e b --` of dotenv-cli, `env-cmd -f`, `node --env-file=`,
  `source .env &&`), resolved from the folder each wrapper runs in.
- `package_manager(worktree, package_dir)`: npm, pnpm, yarn or bun, from `packageManager` or the
  lockfile, and `run_script_argv` / `exec_argv` to print commands the way that manager runs them.

`resolve_command(argv, cwd, worktree)` answers the guard's question: which Prisma commands does
this command line (`npm run db:reset`, `pnpm prisma migrate reset`, `npx prisma …`) run?

Command lines are split with `shlex` (POSIX rules, shell operators as their own tokens). Env files
are listed in precedence order: a variable from an earlier file wins (dotenv never overrides a
variable that is already set, and outer wrappers run first).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from migwatch.envwrappers import unwrap_env_wrapper

PackageManager = str  # "npm" | "pnpm" | "yarn" | "bun"

MAX_PACKAGE_JSON_BYTES = 1_000_000
MAX_SCRIPT_CHARS = 10_000
MAX_DEPTH = 8  # script → script → … chains deeper than this are not followed (and cycles stop)

_LOCKFILES: tuple[tuple[str, PackageManager], ...] = (
    ("pnpm-lock.yaml", "pnpm"),
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
)
_OPERATORS = frozenset({"&&", "||", ";", "&", "|", "(", ")", ";;", "|&"})
_REDIRECTS = frozenset({">", ">>", "<", "<<", ">&", "<&", "&>", "&>>", ">|"})
# Subcommands Prisma's CLI reads as two words.
_TWO_WORD = frozenset({"migrate", "db"})
# pnpm's and yarn's own commands: `pnpm install` is not a script named "install".
_PM_BUILTINS = frozenset(
    {"install", "i", "add", "remove", "rm", "update", "up", "exec", "dlx", "create", "init", "link", "why"}
)


@dataclass(frozen=True)
class PrismaScript:
    """One Prisma invocation reached from a `package.json` script.

    `name` is the script a person runs (`pnpm run <name>` in `cwd`); `argv` is Prisma's own argv after
    `prisma` (`("migrate", "deploy", "--schema", "prisma/schema.prisma")`); `subcommand` its command
    words (`"migrate deploy"`, `"generate"`, `"db push"`); `prisma_cwd` the folder Prisma runs in;
    `env_files` absolute paths in precedence order (the first file that sets a variable wins);
    `env_vars` variables set inline (`cross-env A=1`, `A=1 prisma …`); `wrappers` the env-loading
    tools on the way (`dotenv-cli`, `env-cmd`, `node --env-file`, `source`, `cross-env`, `doppler`…);
    `via` the chain of scripts from `name` to the one that runs Prisma.
    """

    name: str
    subcommand: str
    argv: tuple[str, ...]
    cwd: Path
    prisma_cwd: Path
    env_files: tuple[Path, ...] = ()
    env_vars: tuple[tuple[str, str], ...] = ()
    wrappers: tuple[str, ...] = ()
    via: tuple[str, ...] = ()

    @property
    def schema(self) -> Path | None:
        """The `--schema` argument, resolved from the folder Prisma runs in."""
        value = _option_value(self.argv, "--schema")
        return (self.prisma_cwd / value) if value else None


@dataclass(frozen=True)
class _Package:
    """One package.json: its folder, name and scripts."""

    folder: Path
    name: str | None
    scripts: Mapping[str, str]
    is_root: bool = False


@dataclass(frozen=True)
class _Env:
    """Env loaded so far on the way down a chain of wrappers and scripts."""

    files: tuple[Path, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    wrappers: tuple[str, ...] = ()

    def add(
        self, files: Sequence[Path] = (), variables: Sequence[tuple[str, str]] = (), wrapper: str = ""
    ) -> _Env:
        new_files = tuple(f for f in files if f not in self.files)
        wrappers = self.wrappers + ((wrapper,) if wrapper and wrapper not in self.wrappers else ())
        return _Env(self.files + new_files, self.variables + tuple(variables), wrappers)


def read_package(folder: Path) -> _Package | None:
    """The package.json of a folder (None if absent, unreadable, too large or not an object)."""
    loaded = _read_manifest(folder / "package.json")
    if loaded is None:
        return None
    raw = loaded.get("scripts")
    scripts = {k: v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, dict) else {}
    name = loaded.get("name")
    return _Package(folder=folder, name=name if isinstance(name, str) else None, scripts=scripts)


def prisma_scripts(worktree: Path, package_dir: Path) -> list[PrismaScript]:
    """Every script of the package's and the worktree root's package.json that runs Prisma.

    The package's own scripts come first, then the root's (which often delegate to the package with
    `pnpm --filter <name>` or `npm run -w <folder>`); each script is listed once per Prisma command.
    """
    packages = _packages(worktree, package_dir)
    found: list[PrismaScript] = []
    for package in packages:
        for name in package.scripts:
            runs = _run_script(package, name, (), _Env(), packages, (name,), depth=0)
            found += [replace(run, cwd=package.folder) for run in runs]
    return found


def resolve_command(argv: Sequence[str], cwd: Path, worktree: Path) -> list[PrismaScript]:
    """The Prisma commands an argv runs in `cwd` (`npx prisma …`, `npm run x`, `dotenv -- pnpm x`…).

    Scripts are looked up in the nearest package.json at or above `cwd` within the worktree, and in
    the worktree root's. Each result's `name` is the first script on the way, or "" for none.
    """
    package_dir = _nearest_package_dir(cwd, worktree)
    packages = _packages(worktree, package_dir)
    here = next((p for p in packages if p.folder == package_dir), _Package(cwd, None, {}))
    runs = _simple_command(list(argv), here, _Env(), packages, (), depth=0, cwd=cwd)
    return [replace(run, cwd=cwd) for run in runs]


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


# --- walking command lines -------------------------------------------------------------------------


def _run_script(
    package: _Package,
    name: str,
    extra: Sequence[str],
    env: _Env,
    packages: Sequence[_Package],
    via: tuple[str, ...],
    depth: int,
) -> list[PrismaScript]:
    """The Prisma commands script `name` of `package` runs, given args appended to it."""
    text = package.scripts.get(name)
    # A script that runs itself stops at MAX_DEPTH; a name seen before is no cycle when it is another
    # package's script (root `prisma:migrate-dev` → `npm run prisma:migrate-dev -w @documenso/prisma`).
    if text is None:
        return []
    if extra:  # `pnpm with-env prisma db push`: the args are appended to the script's text
        text = f"{text} {shlex.join(extra)}"
    return _run_text(text, package, env, packages, via, depth)


def _run_text(
    text: str,
    package: _Package,
    env: _Env,
    packages: Sequence[_Package],
    via: tuple[str, ...],
    depth: int,
) -> list[PrismaScript]:
    """The Prisma commands a shell command line run in `package`'s folder runs."""
    if depth > MAX_DEPTH or len(text) > MAX_SCRIPT_CHARS:
        return []
    found: list[PrismaScript] = []
    for command in split_commands(text):
        assignments, words = _leading_assignments(command)
        if words and words[0] in {"source", "."} and len(words) > 1:
            # `source ../../.env && prisma …` (with `set -a`): later commands of the line see the file.
            env = env.add([Path(os.path.normpath(package.folder / words[1]))], wrapper="source")
            continue
        here = env.add(variables=assignments)
        found += _simple_command(words, package, here, packages, via, depth, cwd=package.folder)
    return found


def split_commands(text: str) -> list[list[str]]:
    """A shell command line as simple commands (split at `&&`, `||`, `;`, `|`, `&`), redirects dropped.

    An unparseable line (unbalanced quotes) gives no commands.
    """
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return []
    commands: list[list[str]] = [[]]
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif token in _OPERATORS:
            commands.append([])
        elif token in _REDIRECTS:
            skip_next = True
            # `2>&1`: the lexer leaves the descriptor number on the command; drop it.
            if commands[-1] and commands[-1][-1].isdigit():
                commands[-1].pop()
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def _leading_assignments(words: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """`A=1 B=2 cmd …` → ([("A", "1"), ("B", "2")], ["cmd", …])."""
    index = 0
    while index < len(words) and _is_assignment(words[index]):
        index += 1
    pairs = [(word.partition("=")[0], word.partition("=")[2]) for word in words[:index]]
    return pairs, list(words[index:])


def _is_assignment(word: str) -> bool:
    key, sep, _ = word.partition("=")
    return bool(sep) and bool(key) and key.replace("_", "a").isalnum() and not key[0].isdigit()


def _simple_command(
    words: list[str],
    package: _Package,
    env: _Env,
    packages: Sequence[_Package],
    via: tuple[str, ...],
    depth: int,
    cwd: Path,
) -> list[PrismaScript]:
    """The Prisma commands one simple command runs (Prisma, a wrapper, a runner, or another script)."""
    if not words or depth > MAX_DEPTH:
        return []
    program = Path(words[0]).name
    if program == "prisma":
        return [_prisma(words[1:], env, via, cwd)]
    if program in {"sh", "bash", "zsh", "dash"} and len(words) >= 3 and words[1] == "-c":
        return _run_text(words[2], package, env, packages, via, depth + 1)
    unwrapped = unwrap_env_wrapper(words, cwd)
    if unwrapped is not None:
        rest, files, variables, wrapper = unwrapped
        inner = env.add(files, variables, wrapper)
        return _simple_command(rest, package, inner, packages, via, depth + 1, cwd)
    step = _manager_step(words, package, packages, cwd)
    if step is None:
        return []
    if isinstance(step, _Exec):
        return _simple_command(list(step.argv), package, env, packages, via, depth + 1, cwd)
    inner_via = (*via, step.name)
    return _run_script(step.package, step.name, step.extra, env, packages, inner_via, depth + 1)


def _prisma(argv: Sequence[str], env: _Env, via: tuple[str, ...], cwd: Path) -> PrismaScript:
    """One Prisma invocation, its subcommand words read as Prisma's CLI reads them."""
    positional: list[str] = []
    for index, word in enumerate(argv):
        if word.startswith("-"):
            continue
        if index and argv[index - 1] in {"--schema", "--config", "--name", "-n"}:
            continue  # an option's value, not a command word
        positional.append(word)
    words = positional[:2] if positional and positional[0] in _TWO_WORD else positional[:1]
    return PrismaScript(
        name=via[0] if via else "",
        subcommand=" ".join(words),
        argv=tuple(argv),
        cwd=cwd,
        prisma_cwd=cwd,
        env_files=env.files,
        env_vars=env.variables,
        wrappers=env.wrappers,
        via=via,
    )


def _option_value(argv: Sequence[str], option: str) -> str | None:
    """`--schema x` or `--schema=x` in an argv."""
    for index, word in enumerate(argv):
        if word == option and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(option + "="):
            return word[len(option) + 1 :]
    return None


# --- package managers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exec:
    """A package manager running a binary (`npx prisma …`, `pnpm exec prisma …`)."""

    argv: tuple[str, ...]


@dataclass(frozen=True)
class _ScriptCall:
    """A package manager running a script (`pnpm run db:deploy`, `yarn workspace db migrate`)."""

    package: _Package
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


def _manager_step(
    words: Sequence[str], package: _Package, packages: Sequence[_Package], cwd: Path
) -> _Exec | _ScriptCall | None:
    """What a package-manager command line runs: a binary, a script of a known package, or nothing known."""
    program = Path(words[0]).name
    if program in {"npx", "bunx", "pnpx"}:
        return _Exec(tuple(_skip_runner_options(words[1:])))
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
        return _ScriptCall(target, args[0], tuple(_drop_separator(args[1:])))
    if verb in {"exec", "x", "dlx"}:
        return _Exec(tuple(_skip_runner_options(args)))
    if manager == "turbo":
        return _ScriptCall(target, verb, ()) if verb in target.scripts else None
    if manager == "npm" or verb in _PM_BUILTINS:
        return None
    if verb in target.scripts:  # `pnpm db:push`, `yarn with-env prisma …`, `bun migrate`
        return _ScriptCall(target, verb, tuple(args))
    return _Exec((verb, *args))  # `pnpm prisma migrate deploy` runs the installed binary


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


def _select(selected: Sequence[tuple[str, str]], packages: Sequence[_Package], cwd: Path) -> _Package | None:
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


def _workspace_packages(root: Path) -> list[_Package]:
    """The packages the root's `workspaces` (npm, yarn, bun) or `pnpm-workspace.yaml` globs name.

    Cached per root until one of the files and folders it was read from changes (a root's scripts
    select packages dozens of times; the daemon re-reads after an edit).
    """
    cached = _WORKSPACE_CACHE.get(root)
    if cached is not None and _mtimes(path for path, _ in cached[0]) == cached[0]:
        return cached[1]
    patterns = _workspace_patterns(root)
    found: list[_Package] = []
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


_WORKSPACE_CACHE: dict[Path, tuple[tuple[tuple[Path, int], ...], list[_Package]]] = {}


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


def _packages(worktree: Path, package_dir: Path) -> list[_Package]:
    """The package's and the worktree root's package.json (once each), the package's first."""
    found: list[_Package] = []
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


def _nearest_package_dir(cwd: Path, worktree: Path) -> Path:
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
