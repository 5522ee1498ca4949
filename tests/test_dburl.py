"""Connection URLs: identity without the password, grouping of worktrees per database, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from migwatch.dburl import UrlError, database_ref, group_key, parse_postgres, redact


def pg(url: str) -> str:
    return group_key(database_ref("postgresql", url, relative_to=Path("/")))


def test_id_has_no_password() -> None:
    ref = database_ref(
        "postgresql", "postgresql://kyin:s3cret@localhost:5432/americano?schema=public", relative_to=Path("/")
    )
    assert ref.id == "postgresql://kyin@localhost:5432/americano?schema=public"
    assert ref.url == "postgresql://kyin:s3cret@localhost:5432/americano?schema=public"
    assert "s3cret" not in repr(ref)
    assert ref.schema == "public"


def test_id_defaults_port_and_schema_and_accepts_postgres_scheme() -> None:
    ref = database_ref("postgres", "postgres://kyin:pw@db.internal/americano", relative_to=Path("/"))
    assert ref.provider == "postgresql"
    assert ref.id == "postgresql://kyin@db.internal:5432/americano?schema=public"


def test_encoded_password_and_user() -> None:
    target = parse_postgres(
        "postgresql://k%40yin:p%40ss%2Fw%3Ard@localhost:5433/my%20db?schema=app&sslmode=require"
    )
    assert (target.user, target.password, target.dbname, target.port, target.schema) == (
        "k@yin",
        "p@ss/w:rd",
        "my db",
        5433,
        "app",
    )
    assert target.params == (("sslmode", "require"),)
    ref = database_ref("postgresql", "postgresql://kyin:p%40ss@localhost/db", relative_to=Path("/"))
    assert "p%40ss" not in ref.id and "p@ss" not in ref.id


def test_urls_differing_only_in_credentials_and_params_group_together() -> None:
    same = {
        pg("postgresql://kyin:s3cret@localhost:5432/americano?schema=public"),
        pg("postgresql://other:different@localhost:5432/americano"),
        pg("postgresql://kyin@LOCALHOST/americano?schema=public&connection_limit=5&sslmode=disable"),
        pg("postgres://localhost:5432/americano?pool_timeout=10"),
    }
    assert same == {"postgresql://localhost:5432/americano?schema=public"}


def test_different_schema_host_port_or_database_do_not_group() -> None:
    keys = [
        pg("postgresql://kyin@localhost:5432/americano?schema=public"),
        pg("postgresql://kyin@localhost:5432/americano?schema=epic3"),
        pg("postgresql://kyin@localhost:5433/americano"),
        pg("postgresql://kyin@127.0.0.1:5432/americano"),
        pg("postgresql://kyin@localhost:5432/americano_test"),
    ]
    assert len(set(keys)) == len(keys)


def test_sqlite_group_is_the_absolute_file(tmp_path: Path) -> None:
    a = database_ref("sqlite", "file:./dev.db", relative_to=tmp_path / "prisma")
    b = database_ref("sqlite", f"file:{tmp_path}/prisma/../prisma/dev.db", relative_to=tmp_path)
    c = database_ref("sqlite", "file:dev.db?connection_limit=1", relative_to=tmp_path / "prisma")
    assert a.id == f"file:{tmp_path / 'prisma' / 'dev.db'}"
    assert group_key(a) == group_key(b) == group_key(c) == a.id
    other = database_ref("sqlite", "file:./dev.db", relative_to=tmp_path / "other")
    assert group_key(other) != group_key(a)


def test_sqlite_needs_a_file_url() -> None:
    with pytest.raises(UrlError) as raised:
        database_ref("sqlite", "postgresql://kyin:s3cret@localhost/db", relative_to=Path("/"))
    assert "s3cret" not in str(raised.value)


def test_postgresql_needs_a_postgresql_url() -> None:
    with pytest.raises(UrlError) as raised:
        database_ref("postgresql", "mysql://kyin:s3cret@localhost/db", relative_to=Path("/"))
    assert (
        str(raised.value)
        == "a postgresql datasource needs a postgresql:// URL, got 'mysql://kyin:***@localhost/db'"
    )


def test_malformed_port_message_has_no_password() -> None:
    with pytest.raises(UrlError) as raised:
        parse_postgres("postgresql://kyin:s3cret@localhost:notaport/db")
    assert "s3cret" not in str(raised.value)
    assert str(raised.value).startswith(
        "malformed PostgreSQL URL 'postgresql://kyin:***@localhost:notaport/db'"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://kyin:s3cret@localhost:5432/db", "postgresql://kyin:***@localhost:5432/db"),
        ("postgresql://kyin@localhost/db", "postgresql://kyin@localhost/db"),
        ("see postgres://:pw@h/db and mysql://u:p@x", "see postgres://:***@h/db and mysql://u:***@x"),
        # An unencoded `@` in the password must not leak its tail.
        ("postgresql://kyin:p@ss@localhost/db", "postgresql://kyin:***@localhost/db"),
        (
            "'postgresql://kyin@localhost/db?password=s3cret&schema=x'",
            "'postgresql://kyin@localhost/db?password=***&schema=x'",
        ),
        ("no url here", "no url here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("url", "user", "password", "host"),
    [
        # Prisma's (WHATWG) parser: the user part ends at the last `@`, the password at nothing but it.
        ("postgresql://kyin:p@ss@localhost/db", "kyin", "p@ss", "localhost"),
        ("postgresql://kyin:p:a:ss@localhost:5433/db", "kyin", "p:a:ss", "localhost"),
        ("postgresql://kyin:@localhost/db", "kyin", "", "localhost"),
        ("postgresql://kyin:p%2Fss@[::1]:5433/db", "kyin", "p/ss", "::1"),
    ],
)
def test_unencoded_at_and_colon_in_passwords_are_accepted(
    url: str, user: str, password: str, host: str
) -> None:
    target = parse_postgres(url)
    assert (target.user, target.password, target.host) == (user, password, host)
    assert password not in repr(target) or not password


@pytest.mark.parametrize("delimiter", ["/", "?", "#"])
def test_unencoded_slash_question_hash_are_refused_without_the_password(delimiter: str) -> None:
    url = f"postgresql://kyin:se{delimiter}cretpw@localhost:5432/db"
    with pytest.raises(UrlError) as raised:
        database_ref("postgresql", url, relative_to=Path("/"))
    assert str(raised.value) == (
        "malformed PostgreSQL URL 'postgresql://kyin:***@localhost:5432/db': the user or password holds an "
        "unencoded '/', '?' or '#' (percent-encode them: %2F, %3F, %23); Prisma refuses this URL too"
    )


def test_key_value_dsn_is_refused_redacted() -> None:
    with pytest.raises(UrlError) as raised:
        database_ref(
            "postgresql", "host=db port=5432 user=kyin password='s3 cret' dbname=app", relative_to=Path("/")
        )
    assert str(raised.value) == (
        "a postgresql datasource needs a postgresql:// URL, got a key/value connection string "
        "'host=db port=5432 user=kyin password=*** dbname=app'"
    )


def test_url_pasted_twice_is_refused_redacted() -> None:
    url = "postgresql://kyin:twice-pw@localhost/dbpostgresql://kyin:twice-pw@localhost/db"
    with pytest.raises(UrlError) as raised:
        database_ref("postgresql", url, relative_to=Path("/"))
    assert "twice-pw" not in str(raised.value)
    assert "pasted twice" in str(raised.value)


def test_huge_url_is_refused_before_parsing_and_redaction_is_linear() -> None:
    import time

    huge = "postgresql://u:" + "p@" * 500_000 + "h/db"
    started = time.perf_counter()
    with pytest.raises(UrlError) as raised:
        database_ref("postgresql", huge, relative_to=Path("/"))
    assert str(raised.value) == "the database URL is longer than 4,096 characters: not a database URL"
    redacted = redact(huge + " " + "x://a:b@" * 100_000)
    assert time.perf_counter() - started < 10.0  # a hang bound: quadratic redaction of 1 MB takes minutes
    assert "p@p@" not in redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://kyin:pa/ss@localhost/db", "postgresql://kyin:***@localhost/db"),
        ("postgresql://kyin:pa#ss@localhost/db", "postgresql://kyin:***@localhost/db"),
        ("got 'host=h password=\"a b-secret\" user=u'", "got 'host=h password=*** user=u'"),
        ("PGPASSWORD=hunter22 psql", "PGPASSWORD=*** psql"),
        # A URL mangled into a SQLite path: one slash after the scheme.
        ("file:/tmp/x/postgresql:/kyin:hunter2@db/app", "file:/tmp/x/postgresql:/kyin:***@db/app"),
        (
            "a postgresql://u:pw1@h/dbpostgresql://u:pw1@h/db b",
            "a postgresql://u:***@h/dbpostgresql://u:***@h/db b",
        ),
    ],
)
def test_redact_every_shape(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_seen_passwords_are_scrubbed_by_value_anywhere() -> None:
    from migwatch.scrub import scrub

    parse_postgres("postgresql://kyin:Sc%2Frub-me@localhost/db")
    assert scrub("driver said: password Sc/rub-me or Sc%2Frub-me was wrong") == (
        "driver said: password *** or *** was wrong"
    )


def test_a_password_that_is_a_common_word_masks_only_itself() -> None:
    # rallly's .env.example uses the password `postgres`: scrubbing it must not mangle `postgresql://`.
    from migwatch.scrub import remember_secret, scrub

    remember_secret("postgres")
    assert (
        scrub("postgresql://postgres:postgres@localhost:5432/db") == "postgresql://***:***@localhost:5432/db"
    )
    assert scrub("read through DATABASE_URL of postgresql") == "read through DATABASE_URL of postgresql"
    assert scrub("password postgres was refused") == "password *** was refused"
