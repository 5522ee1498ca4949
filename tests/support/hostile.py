"""Hostile names: what anyone can commit as a migration folder or a branch, or write into
`_prisma_migrations`, shared by the display, fix-template and property tests.

Shell payloads call `pwned`, a program that exists only on the sandbox PATH and leaves a marker file
(tests/support/sandbox.py); none needs a `/`, so each is also a valid folder name.
"""

from __future__ import annotations

import unicodedata

MARKER_PROGRAM = "pwned"

# Payloads that run `pwned` if a shell line holding them unquoted is pasted.
SHELL_PAYLOADS: dict[str, str] = {
    "command_substitution": "m$(pwned)",
    "backticks": "m`pwned`",
    "semicolon": "m; pwned",
    "pipe": "m | pwned",
    "ampersand": "m & pwned",
    "and_list": "m && pwned",
    "newline": "m\npwned",
    "carriage_return": "m\rpwned\r",
    "single_quote": "m'; pwned; echo '",
    "double_quote": 'm"; pwned; echo "',
    "quoted_substitution": "m'$(pwned)'",
    "redirect": "m > pwned-file",
    "process_substitution": "m <(pwned)",
    "brace_expansion": "{m,$(pwned)}",
    "option": "--pwned-option=1",
    "leading_dash": "-pwned",
    "spaces": "m  with   spaces",
    "glob": "*",
    "tilde": "~",
    "variable": "$HOME${PATH}",
    "history": "m!!",
    "non_utf8": "m\udcff\udcfe-not-utf8",  # bytes ff fe, decoded with surrogateescape
    "escape_sequences": "m\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b[1A",
    "bidi_override": "m\u202epwned\u2066",
    "backslash": "m\\; pwned",
    "pathspec_magic": ":(glob)m*",
}
# Payloads that matter most at the start of a name: there they could become an option or a pattern.
LEADING_PAYLOADS = ("leading_dash", "option", "tilde", "glob", "brace_expansion", "pathspec_magic")

# What a forged line would look like in the status output.
FORGED_FIX = "\n          $ git -C /tmp reset --hard  # forged\n"
FORGED_ROW = "\n  evil-worktree  main  ok  1  1  6.19.3\n"
TERMINAL_PAYLOADS: dict[str, str] = {
    "forged_fix_line": "20250101000000_x" + FORGED_FIX,
    "forged_table_row": "20250101000000_y" + FORGED_ROW,
    "cr_overwrite": "20250101000000_z\r$ npx prisma migrate reset --force",
    "osc52_clipboard": "20250101000000_c\x1b]52;c;cm0gLXJmIH4=\x07",
    "csi_clear": "20250101000000_d\x1b[2J\x1b[H",
    "c1_csi": "20250101000000_e\x9b2J",
    "bell": "20250101000000_f\x07",
    "bidi": "20250101000000_g\u202eexe.txt\u2069",
    "line_separator": "20250101000000_h\u2028$ forged",
    "non_utf8": "20250101000000_i\udcff",
}

# Characters a terminal or a notification server acts on instead of showing.
_RAW_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"})


def raw_controls(text: str, *, allow: str = "\n") -> list[str]:
    """The characters of `text` that would act instead of show (`allow`: the line breaks the renderer
    itself puts between lines)."""
    return [
        character
        for character in text
        if character not in allow and unicodedata.category(character) in _RAW_CATEGORIES
    ]
