"""How a fix runs a Prisma command in this project (SPEC §6a): the way the project itself runs it.

In order: a `package.json` script that runs exactly that command (`pnpm run db:deploy`, from the
folder of the package.json that has it); a script that is Prisma alone behind an env-loading wrapper
(`"prisma": "dotenv -e ../../.env -- prisma"` → `pnpm run prisma migrate resolve …`); the dotenv-cli
wrapper the project's scripts use, with their env files (`npx dotenv -e ../../.env -- prisma …`);
else `npx prisma …` in the package folder (where both Prisma 6 and 7 find their config). Pure: the
pipeline reads the scripts (`scripts.prisma_scripts`) and the package manager.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from migwatch.model import Command
from migwatch.scripts import PackageManager, PrismaScript, run_script_argv

# Options a deploy/resolve script may carry that do not change which database or migrations it uses.
_HARMLESS = frozenset({"--schema", "--config"})


def _words(argv: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(positional words, option names) of a Prisma argv; option values are skipped."""
    words: list[str] = []
    options: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            options.append(name)
            skip = "=" not in word and name in _HARMLESS
            continue
        words.append(word)
    return words, options


@dataclass(frozen=True)
class PrismaRunner:
    """The package folder, its package manager and the scripts that run Prisma there."""

    package_dir: Path
    manager: PackageManager = "npm"
    scripts: tuple[PrismaScript, ...] = ()

    def _exact(self, args: tuple[str, ...]) -> PrismaScript | None:
        """A script that runs exactly `prisma <args>`; one that loads env files first (the project needs them)."""
        exact = [
            script
            for script in self.scripts
            if (words := _words(script.argv)) and tuple(words[0]) == args and set(words[1]) <= _HARMLESS
        ]
        return next((s for s in exact if s.env_files), exact[0] if exact else None)

    def _passthrough(self) -> PrismaScript | None:
        return next((s for s in self.scripts if not s.argv and s.env_files), None)

    def _dotenv_files(self) -> tuple[Path, ...]:
        for script in self.scripts:
            if "dotenv-cli" in script.wrappers and script.env_files:
                return script.env_files
        return ()

    def command(self, *args: str, comment: str | None = None) -> Command:
        """The command line that runs `prisma <args…>` the way this project does."""
        exact = self._exact(args) if all(not a.startswith("-") for a in args) else None
        if exact is not None:
            return Command(tuple(run_script_argv(self.manager, exact.name)), cwd=exact.cwd, comment=comment)
        through = self._passthrough()
        if through is not None:
            return Command(
                tuple(run_script_argv(self.manager, through.name, args)), cwd=through.cwd, comment=comment
            )
        files = self._dotenv_files()
        if files:
            loaded = [part for f in files for part in ("-e", os.path.relpath(f, self.package_dir))]
            return Command(
                ("npx", "dotenv", *loaded, "--", "prisma", *args), cwd=self.package_dir, comment=comment
            )
        return Command(("npx", "prisma", *args), cwd=self.package_dir, comment=comment)
