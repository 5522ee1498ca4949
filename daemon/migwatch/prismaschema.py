"""Prisma schema text, as far as migwatch reads it: its data model blocks. Pure."""

from __future__ import annotations

import re

_BLOCK = re.compile(r"^\s*(model|enum|type|view)\s+(\w+)\s*\{(.*?)^\s*\}", re.S | re.M)


def datamodel_blocks(schema_text: str) -> list[str]:
    """The schema's models, enums, types and views, comments and layout removed, sorted.

    Generated clients keep a reformatted copy of the schema, so text is compared in this form.
    """
    without_comments = re.sub(r"//[^\n]*", "", schema_text)
    blocks = []
    for kind, name, body in _BLOCK.findall(without_comments):
        fields = sorted(" ".join(line.split()) for line in body.splitlines() if line.strip())
        blocks.append(f"{kind} {name} {{{'; '.join(fields)}}}")
    return sorted(blocks)


def block_name(block: str) -> str:
    """`User` of a `datamodel_blocks` entry `model User {…}`."""
    return block.split(" ", 2)[1]
