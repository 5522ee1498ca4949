"""Env-loading wrappers of package.json scripts: which files and variables they load. Pure.

Each wrapper is read as its own CLI parses its argv (dotenv-cli with minimist, env-cmd with
commander, node's `--env-file`), so `dotenv -e ../../.env -e .env -- prisma migrate deploy` gives
the files `../../.env`, `.env` (resolved from the folder the script runs in) and the command
`prisma migrate deploy`. Files are returned in precedence order: the first one that sets a
variable wins.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

Unwrapped = tuple[list[str], list[Path], list[tuple[str, str]], str]

# Wrappers that fetch secrets from a service: the command runs, but its variables come from elsewhere.
OPAQUE_WRAPPERS = frozenset({"doppler", "infisical", "op", "vercel", "railway"})


def unwrap_env_wrapper(words: Sequence[str], cwd: Path) -> Unwrapped | None:
    """(command it runs, env files, inline variables, wrapper name), or None if `words` is no wrapper."""
    program = Path(words[0]).name if words else ""
    args = list(words[1:])
    if program in {"dotenv", "dotenv-cli"}:
        return _dotenv_cli(args, cwd)
    if program == "dotenvx":
        return _dotenvx(args, cwd)
    if program == "env-cmd":
        return _env_cmd(args, cwd)
    if program == "node":
        return _node(args, cwd)
    if program in {"cross-env", "cross-env-shell", "env"}:
        return _assignments(program, args)
    if program in OPAQUE_WRAPPERS:
        rest = args[args.index("--") + 1 :] if "--" in args else _after_options(args[1:])
        return rest, [], [], program
    return None


def _join(cwd: Path, path: str) -> Path:
    """A file named relative to the folder a wrapper runs in, `..` folded (symlinks are kept)."""
    return Path(os.path.normpath(cwd / path))


def _after_options(args: Sequence[str]) -> list[str]:
    """The words after leading `-x`/`--x` options (values of options are not known: none assumed)."""
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 1
    return list(args[index:])


def _dotenv_cli(args: list[str], cwd: Path) -> Unwrapped:
    """dotenv-cli: `dotenv [-e file]… [-c [env]] [-v VAR=value]… [-o] [--] command`."""
    files: list[str] = []
    variables: list[tuple[str, str]] = []
    cascade: str | None = None
    index = 0
    while index < len(args) and args[index] != "--" and args[index].startswith("-"):
        flag, _, inline = args[index].partition("=")
        takes_value = flag in {"-e", "-v", "-p"}
        value = inline or (args[index + 1] if takes_value and index + 1 < len(args) else "")
        index += 1 if inline or not takes_value else 2
        if flag == "-e":
            files.append(value)
        elif flag == "-v":
            key, _, val = value.partition("=")
            variables.append((key, val))
        elif flag == "-c":
            # minimist: `-c dev` takes a value, a bare `-c` cascades without an environment name.
            if not inline and index < len(args) and not args[index].startswith("-"):
                cascade, index = args[index], index + 1
            else:
                cascade = inline
    rest = args[index + 1 :] if index < len(args) and args[index] == "--" else args[index:]
    paths = files or [".env"]
    if cascade is not None:  # dotenv-cli's order: most specific first, so it wins
        paths = [
            name
            for path in paths
            for name in (
                [f"{path}.{cascade}.local", f"{path}.local", f"{path}.{cascade}", path]
                if cascade
                else [f"{path}.local", path]
            )
        ]
    return rest, [_join(cwd, path) for path in paths], variables, "dotenv-cli"


def _dotenvx(args: list[str], cwd: Path) -> Unwrapped:
    """dotenvx: `dotenvx run [-f file]… [--] command` (the first file wins, as with dotenv)."""
    if not args or args[0] != "run":
        return [], [], [], "dotenvx"
    files: list[str] = []
    index = 1
    while index < len(args) and args[index] != "--" and args[index].startswith("-"):
        flag, _, inline = args[index].partition("=")
        if flag in {"-f", "--env-file"}:
            files.append(inline or (args[index + 1] if index + 1 < len(args) else ""))
            index += 1 if inline else 2
        else:
            index += 1
    rest = args[index + 1 :] if index < len(args) and args[index] == "--" else args[index:]
    return rest, [_join(cwd, path) for path in files or [".env"]], [], "dotenvx"


def _env_cmd(args: list[str], cwd: Path) -> Unwrapped:
    """env-cmd: `env-cmd [-f file] [-r rc -e envs] [--no-override …] [--] command` (v8: `env-cmd file cmd`)."""
    files: list[str] = []
    index = 0
    value_flags = {"-f", "--file", "-r", "--rc-file", "-e", "--environments"}
    uses_rc = False
    while index < len(args) and args[index] != "--" and args[index].startswith("-"):
        flag, _, inline = args[index].partition("=")
        value = inline or (args[index + 1] if flag in value_flags and index + 1 < len(args) else "")
        index += 1 if inline or flag not in value_flags else 2
        if flag in {"-f", "--file"}:
            files.append(value)
        elif flag in {"-e", "--environments", "-r", "--rc-file"}:
            uses_rc = True
    if index < len(args) and args[index] == "--":
        index += 1
    elif not files and not uses_rc and index < len(args) and _looks_like_env_file(args[index]):
        files.append(args[index])  # env-cmd 8's positional file
        index += 1
    if uses_rc and not files:
        return args[index:], [], [], "env-cmd (rc file)"
    return args[index:], [_join(cwd, path) for path in files or [".env"]], [], "env-cmd"


def _looks_like_env_file(word: str) -> bool:
    name = Path(word).name
    return name.startswith(".env") or name.endswith(".env") or word.startswith(("./", "../"))


def _node(args: list[str], cwd: Path) -> Unwrapped | None:
    """`node [--env-file=f]… script.js args`: a wrapper only when the script is Prisma's CLI."""
    files: list[str] = []
    index = 0
    requires_dotenv = False
    while index < len(args) and args[index].startswith("-"):
        flag, _, inline = args[index].partition("=")
        takes_value = flag in {"--env-file", "--env-file-if-exists", "-r", "--require", "--import"}
        value = inline or (args[index + 1] if takes_value and index + 1 < len(args) else "")
        index += 1 if inline or not takes_value else 2
        if flag in {"--env-file", "--env-file-if-exists"}:
            files.append(value)
        elif value == "dotenv/config":
            requires_dotenv = True
    if index >= len(args):
        return None
    script = args[index].replace("\\", "/")
    if not (
        Path(script).name == "prisma" or script.endswith(("prisma/build/index.js", "prisma/dist/index.js"))
    ):
        return None
    # Node reads --env-file at start-up, a later file overriding an earlier one; `-r dotenv/config` runs
    # after that and overrides nothing. In precedence order: the last --env-file first, dotenv's last.
    ordered = list(reversed(files))
    if requires_dotenv:
        custom = [a.split("=", 1)[1] for a in args[index + 1 :] if a.startswith("dotenv_config_path=")]
        ordered += custom or [".env"]
    return ["prisma", *args[index + 1 :]], [_join(cwd, path) for path in ordered], [], "node --env-file"


def _assignments(program: str, args: list[str]) -> Unwrapped:
    """cross-env / env: leading `VAR=value` words, then the command (cross-env-shell: one string)."""
    variables: list[tuple[str, str]] = []
    index = 0
    while index < len(args) and (args[index].startswith("-") or "=" in args[index].split(" ", 1)[0]):
        if "=" in args[index] and not args[index].startswith("-"):
            key, _, value = args[index].partition("=")
            variables.append((key, value))
        index += 1
    rest = args[index:]
    if program == "cross-env-shell" and len(rest) == 1:
        rest = ["sh", "-c", rest[0]]
    return rest, [], variables, "cross-env" if program.startswith("cross-env") else "env"
