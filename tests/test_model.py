"""The typed fix (model.Fix, Command, Note, sql_literal): quoting by construction, proven by running it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from migwatch.model import Command, Fix, Note, Origin, SqlStatement, sql_literal
from tests.support.pg import PgDatabase

HOSTILE = ["it's", "$(touch pwned)", "a b", "`id`", "x;y", "*", "~", "-n", '"q"', "new\nline", ""]


def test_command_renders_posix_quoted_argv_with_cwd_chain_and_comment() -> None:
    command = Command(
        ("git", "-C", "/w/a b", "add", "it's"), then=(("git", "commit", "-m", "x y"),), comment="why"
    )
    assert command.render() == "git -C '/w/a b' add 'it'\"'\"'s' && git commit -m 'x y'  # why"
    assert (
        Command(("npx", "prisma", "generate"), cwd=Path("/w/$x")).render()
        == "cd '/w/$x' && npx prisma generate"
    )


@pytest.mark.parametrize("word", HOSTILE)
def test_a_rendered_command_gives_the_shell_exactly_its_argv(tmp_path: Path, word: str) -> None:
    """Run through a real shell: each argument arrives whole and nothing else runs. A word with invisible
    characters is written `$'…'` (shellquote), which bash and zsh read but dash 0.5.12 does not."""
    folder = tmp_path / f"dir {word}".replace("/", "_").replace("\n", "_")
    folder.mkdir()
    line = Command(("printf", "[%s]\\n", word, "--"), cwd=folder).render()
    done = subprocess.run(
        ["bash", "-c", line + " && pwd"], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert done.stdout == f"[{word}]\n[--]\n{folder}\n"
    assert not (tmp_path / "pwned").exists()


def test_sql_literal_doubles_quotes_and_refuses_control_characters() -> None:
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal("é ß 日本") == "'é ß 日本'"
    assert sql_literal("naïve 名前") == "'naïve 名前'"
    # What the output edge would show escaped cannot be copied back: refused, like NUL.
    for bad in (
        "nul\x00",
        "bell\x07",
        "esc\x1b[31m",
        "del\x7f",
        "tab\tx",
        "new\nline",
        "bidi\u202e",
        "byte\udcff",
    ):
        with pytest.raises(ValueError, match="invisible characters"):
            sql_literal(bad)


def test_a_printed_delete_touches_only_the_named_row(pg_database: PgDatabase) -> None:
    names = ["it's'; DELETE FROM _prisma_migrations; --", "plain", "it''s", "\\'"]
    with pg_database.connect() as connection:
        connection.execute("CREATE TABLE _prisma_migrations (migration_name text)")
        for name in names:
            connection.execute("INSERT INTO _prisma_migrations VALUES (%s)", (name,))
        for name in names:
            statement = f"DELETE FROM _prisma_migrations WHERE migration_name = {sql_literal(name)}"
            with connection.transaction(force_rollback=True):
                deleted = connection.execute(statement).rowcount
                left = [row[0] for row in connection.execute("SELECT migration_name FROM _prisma_migrations")]
            assert (deleted, sorted(left)) == (1, sorted(n for n in names if n != name))


def test_fix_lines_headline_and_which_lines_are_commands() -> None:
    fix = Fix(
        steps=(
            Note("# first do this by hand: ", SqlStatement("SELECT 1;")),
            Command(("npx", "prisma", "migrate", "deploy"), cwd=Path("/w")),
        ),
        reset_warning="Do not run `prisma migrate dev` here.",
        why="because",
    )
    assert fix.lines() == [
        "# first do this by hand: SELECT 1;",
        "cd /w && npx prisma migrate deploy",
        "Do not run `prisma migrate dev` here.",
        "why: because",
    ]
    assert fix.headline == "cd /w && npx prisma migrate deploy"  # the first command, not the first line
    assert [is_command for is_command, _ in fix.shown()] == [False, True, False, False]
    assert Fix(steps=(Note("wait for it to finish"),)).headline == "wait for it to finish"
    assert (Fix().headline, bool(Fix()), Fix().lines()) == (None, False, [])


def test_origin_describes_branch_and_folder() -> None:
    assert Origin("/w/Americano-epic5", "feature/x").describe() == "feature/x (Americano-epic5)"
    assert Origin("/w/Americano-epic5", None).describe() == "Americano-epic5"
