"""Shared fixtures: a real PostgreSQL cluster, isolated git, a headless notification server, leak checks."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.support import leaks
from tests.support.gitrepo import GIT_LOCATION_VARIABLES, git_environment
from tests.support.notifyserver import NotificationServer
from tests.support.pg import PgDatabase, PgServer

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "leakcheck: fail the test if it leaves threads or child processes running"
    )
    # migwatch's caches (git index, config schema results) go to a folder of this session, not the
    # developer's ~/.cache.
    global _CACHE_HOME
    _CACHE_HOME = tempfile.mkdtemp(prefix="migwatch-test-cache-")
    os.environ["XDG_CACHE_HOME"] = _CACHE_HOME


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE_HOME:
        shutil.rmtree(_CACHE_HOME, ignore_errors=True)


_CACHE_HOME = ""


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL cluster for the whole session (fails, never skips, without the server binaries)."""
    server = PgServer.start_new()
    yield server
    server.cleanup()


@pytest.fixture
def pg_database(pg_server: PgServer) -> PgDatabase:
    """A fresh, empty database; `.url` has the password, `.connect()` gives an autocommit connection."""
    pg_server.ensure_running()
    return PgDatabase(pg_server, pg_server.create_database())


@pytest.fixture
def pg_url(pg_database: PgDatabase) -> str:
    """`postgresql://migwatch_test:secret@127.0.0.1:PORT/<fresh db>?schema=public`."""
    return pg_database.url


@pytest.fixture
def git_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Isolate git from the machine (private HOME and global config, fixed identity); returns os.environ."""
    for name in GIT_LOCATION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in git_environment(tmp_path_factory.mktemp("home")).items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


@pytest.fixture(scope="session")
def notification_server() -> Iterator[NotificationServer]:
    """Xvfb + a private session bus + dunst, for the whole session."""
    server = NotificationServer.start()
    yield server
    server.shutdown()


@pytest.fixture
def notifications(
    notification_server: NotificationServer, monkeypatch: pytest.MonkeyPatch
) -> NotificationServer:
    """The notification server, emptied, with DISPLAY and DBUS_SESSION_BUS_ADDRESS set for this test."""
    notification_server.clear()
    for name, value in notification_server.env.items():
        monkeypatch.setenv(name, value)
    return notification_server


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves new threads or child processes alive (after a 2 s grace period)."""
    before = leaks.snapshot()
    yield
    problems = leaks.find_leaks(before)
    if problems:
        pytest.fail("leaked: " + "; ".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _leakcheck_marker(request: pytest.FixtureRequest) -> None:
    # Autouse fixtures are set up first and torn down last: the check then runs after every other
    # fixture of the test has cleaned up.
    if request.node.get_closest_marker("leakcheck") is not None:
        request.getfixturevalue("no_leaks")


@pytest.fixture(autouse=True)
def _forget_seen_secrets() -> Iterator[None]:
    """Each test starts with an empty scrub list: a password remembered by one test (scrub.py keeps them
    for the life of the process) must not mask another test's output."""
    from migwatch.scrub import forget_all

    forget_all()
    yield
    forget_all()
