"""Prisma's checksum rules (SPEC §5): what is hashed, which stored values match."""

from __future__ import annotations

import hashlib

import pytest

from migwatch.checksum import checksum_matches, checksum_variants, old_format
from tests.support.prisma_rows import prisma_checksum

LF_SQL = 'CREATE TABLE "User" (\n    "id" SERIAL NOT NULL,\n    "email" TEXT NOT NULL\n);\n'
CRLF_SQL = LF_SQL.replace("\n", "\r\n")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_checksum_is_sha256_lowercase_hex_of_the_utf8_text() -> None:
    raw = 'ALTER TABLE "Café" ADD COLUMN "naïve" TEXT;\n'.encode()
    variants = checksum_variants(raw)
    assert variants[0] == sha(raw) == prisma_checksum(raw)
    assert len(variants[0]) == 64
    assert variants[0] == variants[0].lower()
    assert checksum_matches(sha(raw), variants)


def test_known_value_of_a_simple_file() -> None:
    # `printf 'SELECT 1;\n' | sha256sum`, computed outside Python.
    expected = "b4e0497804e46e0a0b0b8c31975b062152d551bac49c3c2e80932567b4085dcd"
    assert checksum_variants(b"SELECT 1;\n")[0] == expected
    assert checksum_matches(expected, checksum_variants(b"SELECT 1;\r\n"))


def test_variants_of_an_lf_file_are_as_is_and_crlf() -> None:
    raw = LF_SQL.encode()
    assert checksum_variants(raw) == (sha(raw), sha(CRLF_SQL.encode()))


def test_crlf_file_matches_its_lf_stored_checksum() -> None:
    variants = checksum_variants(CRLF_SQL.encode())
    assert variants[0] == sha(CRLF_SQL.encode())
    assert checksum_matches(sha(LF_SQL.encode()), variants)
    assert checksum_matches(sha(CRLF_SQL.encode()), variants)


def test_lf_file_matches_its_crlf_stored_checksum() -> None:
    assert checksum_matches(sha(CRLF_SQL.encode()), checksum_variants(LF_SQL.encode()))


def test_mixed_line_endings_match_the_lf_form() -> None:
    mixed = "SELECT 1;\r\nSELECT 2;\nSELECT 3;\r\n"
    variants = checksum_variants(mixed.encode())
    assert variants[0] == sha(mixed.encode())
    assert checksum_matches(sha(b"SELECT 1;\nSELECT 2;\nSELECT 3;\n"), variants)
    # Neither the all-CRLF form nor a different text matches.
    assert not checksum_matches(sha(b"SELECT 1;\r\nSELECT 2;\r\nSELECT 3;\r\n"), variants)
    assert not checksum_matches(sha(b"SELECT 1;\nSELECT 2;\n"), variants)


def test_a_file_without_newlines_has_one_variant() -> None:
    assert checksum_variants(b"SELECT 1;") == (sha(b"SELECT 1;"),)


def test_bom_is_kept() -> None:
    with_bom = b"\xef\xbb\xbf" + LF_SQL.encode()
    variants = checksum_variants(with_bom)
    assert variants[0] == sha(with_bom) == prisma_checksum(with_bom)
    assert variants[0] != sha(LF_SQL.encode())
    assert not checksum_matches(sha(LF_SQL.encode()), variants)
    assert not checksum_matches(sha(with_bom), checksum_variants(LF_SQL.encode()))


def test_invalid_utf8_is_replaced_by_u_fffd_before_hashing() -> None:
    raw = b"-- caf\xe9 latin-1\nSELECT '\xff\xfe';\n"
    expected = sha("-- caf\ufffd latin-1\nSELECT '\ufffd\ufffd';\n".encode())
    variants = checksum_variants(raw)
    assert variants[0] == expected == prisma_checksum(raw)
    assert variants[0] != sha(raw)
    assert checksum_matches(prisma_checksum(raw), variants)
    # The CRLF form is taken of the replaced text too.
    crlf = "-- caf\ufffd latin-1\r\nSELECT '\ufffd\ufffd';\r\n".encode()
    assert checksum_matches(sha(crlf), variants)


def test_truncated_multibyte_sequence_at_the_end_is_replaced() -> None:
    raw = b"SELECT 1; -- \xe2\x82"  # the first two bytes of U+20AC
    assert checksum_variants(raw)[0] == prisma_checksum(raw) == sha("SELECT 1; -- \ufffd".encode())


def test_old_format_is_hex_of_each_byte_without_zero_padding() -> None:
    assert old_format("000f10ff" + "00" * 28) == "0f10ff" + "0" * 28
    digest = sha(LF_SQL.encode())
    expected = "".join(format(byte, "x") for byte in hashlib.sha256(LF_SQL.encode()).digest())
    assert old_format(digest) == expected


def test_old_unpadded_stored_value_matches() -> None:
    # Find content whose digest has bytes below 0x10, so the old format is shorter than 64.
    for number in range(1000):
        raw = f"SELECT {number};\n".encode()
        old = old_format(sha(raw))
        if len(old) < 64:
            break
    else:
        pytest.fail("no short old-format checksum in 1000 tries")
    assert checksum_matches(old, checksum_variants(raw))
    # Also when the file was since converted to CRLF.
    assert checksum_matches(old, checksum_variants(raw.replace(b"\n", b"\r\n")))
    assert not checksum_matches(old, checksum_variants(b"SELECT other;\n"))


def test_upper_case_stored_value_does_not_match() -> None:
    variants = checksum_variants(LF_SQL.encode())
    assert not checksum_matches(sha(LF_SQL.encode()).upper(), variants)


@pytest.mark.parametrize("stored", [None, ""])
def test_null_or_empty_stored_value_does_not_match(stored: str | None) -> None:
    assert not checksum_matches(stored, checksum_variants(LF_SQL.encode()))
    assert not checksum_matches(stored, checksum_variants(b""))


def test_no_local_variants_never_match() -> None:
    assert not checksum_matches(sha(b""), ())


def test_empty_file_checksum() -> None:
    assert checksum_variants(b"") == (sha(b""),)
    assert checksum_matches(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", checksum_variants(b"")
    )
