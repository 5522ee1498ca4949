"""`prisma` for the fix-effect tests: finds the schema and the database URL from the current folder the
way the Prisma 6 CLI does, then runs the REAL Prisma 6.19 CLI of `../shared/prisma-oracle` on them.

Run as a script (the test PATH's `prisma`, and `npx prisma …` through the `npx` shim). The schema:
`--schema`, else `package.json` `"prisma": {"schema"}`, else `prisma/schema.prisma`, else
`schema.prisma`. The URL: the datasource's `url = env("NAME")` (or literal), NAME from the
environment, else from the `.env` next to the nearest `package.json`, else the `.env` in the schema's
folder — Prisma 6's own lookup (SPEC §4). An unset variable fails as Prisma does (P1012).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from dotenv import dotenv_values

ORACLE = Path(os.environ["MIGWATCH_TEST_PRISMA_ORACLE"])
_URL = re.compile(r'^\s*url\s*=\s*(?:env\(\s*"(?P<env>[^"]+)"\s*\)|"(?P<literal>[^"]*)")', re.M)


def find_schema(cwd: Path, args: list[str]) -> Path | None:
    """The schema Prisma 6 would read from `cwd`."""
    if "--schema" in args:
        index = args.index("--schema")
        if index + 1 < len(args):
            return (cwd / args[index + 1]).resolve()
    for key in (f"--schema={a.split('=', 1)[1]}" for a in args if a.startswith("--schema=")):
        return (cwd / key.split("=", 1)[1]).resolve()
    manifest = cwd / "package.json"
    if manifest.is_file():
        prisma = json.loads(manifest.read_text(encoding="utf-8")).get("prisma")
        if isinstance(prisma, dict) and isinstance(prisma.get("schema"), str):
            return (cwd / prisma["schema"]).resolve()
    for candidate in (cwd / "prisma" / "schema.prisma", cwd / "schema.prisma"):
        if candidate.is_file():
            return candidate
    return None


def env_files(cwd: Path, schema: Path) -> list[Path]:
    """The `.env` files Prisma 6 loads, in precedence order."""
    files: list[Path] = []
    for folder in [cwd, *cwd.parents]:
        if (folder / "package.json").is_file():
            files.append(folder / ".env")
            break
    files.append(schema.parent / ".env")
    return [f for f in files if f.is_file()]


def database_url(cwd: Path, schema: Path) -> str | None:
    match = _URL.search(schema.read_text(encoding="utf-8"))
    if match is None:
        return None
    if match["literal"] is not None:
        return match["literal"]
    name = match["env"]
    if os.environ.get(name):
        return os.environ[name]
    for file in env_files(cwd, schema):
        value = dotenv_values(file).get(name)
        if value:
            return value
    return None


def main() -> int:
    args = sys.argv[1:]
    cwd = Path.cwd()
    schema = find_schema(cwd, args)
    if schema is None or not schema.is_file():
        print(
            "Error: Could not find Prisma Schema that is required for this command.\n"
            "Checked following paths:\n\nschema.prisma: file not found\nprisma/schema.prisma: file not found",
            file=sys.stderr,
        )
        return 1
    url = database_url(cwd, schema)
    if not url:
        print(
            f"Error: Prisma schema validation - (get-config wasm)\nError code: P1012\nerror: Environment variable "
            f"not found in {schema}.",
            file=sys.stderr,
        )
        return 1
    os.execv(str(ORACLE), [str(ORACLE), "--schema", str(schema), "--url", url, "--", *args])


if __name__ == "__main__":
    sys.exit(main())
