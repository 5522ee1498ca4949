"""Which `package.json` scripts run which Prisma command, through which env-loading wrapper.

Pure apart from reading `package.json` files and testing for lockfiles (both in `packagemanager.py`,
which also says what a package manager's command line runs). Two questions are answered:

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

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from migwatch.envwrappers import unwrap_env_wrapper
from migwatch.packagemanager import (
    MAX_PACKAGE_JSON_BYTES,
    MAX_WORKSPACE_PACKAGES,
    Package,
    PackageManager,
    RunsBinary,
    exec_argv,
    manager_step,
    nearest_package_dir,
    package_manager,
    project_packages,
    read_package,
    run_script_argv,
)

# Re-exported: the package-manager half moved to packagemanager.py; its old import paths keep working.
__all__ = [
    "MAX_DEPTH",
    "MAX_PACKAGE_JSON_BYTES",
    "MAX_SCRIPT_CHARS",
    "MAX_WORKSPACE_PACKAGES",
    "PackageManager",
    "PrismaScript",
    "exec_argv",
    "package_manager",
    "prisma_scripts",
    "read_package",
    "resolve_command",
    "run_script_argv",
    "split_commands",
]

MAX_SCRIPT_CHARS = 10_000
MAX_DEPTH = 8  # script → script → … chains deeper than this are not followed (and cycles stop)

_OPERATORS = frozenset({"&&", "||", ";", "&", "|", "(", ")", ";;", "|&"})
_REDIRECTS = frozenset({">", ">>", "<", "<<", ">&", "<&", "&>", "&>>", ">|"})
# Subcommands Prisma's CLI reads as two words.
_TWO_WORD = frozenset({"migrate", "db"})


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


def prisma_scripts(worktree: Path, package_dir: Path) -> list[PrismaScript]:
    """Every script of the package's and the worktree root's package.json that runs Prisma.

    The package's own scripts come first, then the root's (which often delegate to the package with
    `pnpm --filter <name>` or `npm run -w <folder>`); each script is listed once per Prisma command.
    """
    packages = project_packages(worktree, package_dir)
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
    package_dir = nearest_package_dir(cwd, worktree)
    packages = project_packages(worktree, package_dir)
    here = next((p for p in packages if p.folder == package_dir), Package(cwd, None, {}))
    runs = _simple_command(list(argv), here, _Env(), packages, (), depth=0, cwd=cwd)
    return [replace(run, cwd=cwd) for run in runs]


# --- walking command lines -------------------------------------------------------------------------


def _run_script(
    package: Package,
    name: str,
    extra: Sequence[str],
    env: _Env,
    packages: Sequence[Package],
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
    package: Package,
    env: _Env,
    packages: Sequence[Package],
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
    package: Package,
    env: _Env,
    packages: Sequence[Package],
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
    step = manager_step(words, package, packages, cwd)
    if step is None:
        return []
    if isinstance(step, RunsBinary):
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
