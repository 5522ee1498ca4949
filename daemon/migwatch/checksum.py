"""Prisma's migration checksum rules (SPEC §5), pure."""

from __future__ import annotations

import hashlib


def checksum_variants(raw: bytes) -> tuple[str, ...]:
    """Checksums Prisma accepts for this `migration.sql`: as is, CRLF→LF, LF→CRLF (first = as is).

    Prisma reads the file as UTF-8 with invalid bytes replaced and a BOM kept, then hashes the text.
    """
    try:
        text = raw.decode("utf-8")
        as_is = raw
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        as_is = text.encode("utf-8")
    variants = [hashlib.sha256(as_is).hexdigest()]
    if "\n" in text:
        if "\r\n" in text:
            variants.append(hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest())
        variants.append(hashlib.sha256(text.replace("\n", "\r\n").encode("utf-8")).hexdigest())
    return tuple(dict.fromkeys(variants))


def old_format(hex_checksum: str) -> str:
    """The checksum as old Prisma versions stored it: hex of each byte without zero padding."""
    return "".join(f"{byte:x}" for byte in bytes.fromhex(hex_checksum))


def checksum_matches(stored: str | None, variants: tuple[str, ...]) -> bool:
    """Whether a stored `_prisma_migrations.checksum` matches a local file (exact, case-sensitive)."""
    if not stored or not variants:
        return False
    if len(stored) == 64:
        return stored in variants
    return any(old_format(variant) == stored for variant in variants)
