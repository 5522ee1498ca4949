"""A real PostgreSQL cluster for the test session: initdb + pg_ctl in a temp dir, one database per test."""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

TEST_USER = "migwatch_test"
TEST_PASSWORD = "secret"
_POSTGRES_OS_USER = "postgres"
_BIN_GLOB_ROOT = Path("/usr/lib/postgresql")
_database_counter = itertools.count(1)


class PgUnavailableError(RuntimeError):
    """PostgreSQL's server binaries are not installed, or the cluster could not be started."""


def find_pg_bindir(root: Path = _BIN_GLOB_ROOT) -> Path:
    """The `bin` folder of the highest installed PostgreSQL version (holding initdb and pg_ctl)."""
    candidates: list[tuple[int, Path]] = []
    for bindir in root.glob("*/bin"):
        if (bindir / "pg_ctl").is_file() and (bindir / "initdb").is_file() and bindir.parent.name.isdigit():
            candidates.append((int(bindir.parent.name), bindir))
    if not candidates:
        raise PgUnavailableError(
            f"no PostgreSQL server binaries under {root}/*/bin (pg_ctl, initdb): "
            "run `bash tools/system-deps.sh` as root to install the postgresql package"
        )
    return max(candidates)[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class PgDatabase:
    """One fresh database of the test cluster, as handed to a test by the `pg_database` fixture."""

    server: PgServer
    name: str

    @property
    def url(self) -> str:
        """Prisma-style URL with the password and `?schema=public`."""
        return self.server.url(self.name)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit superuser connection to this database (caller closes it)."""
        return self.server.admin_connect(self.name)


class PgServer:
    """One PostgreSQL cluster listening on 127.0.0.1:`port` and a unix socket in its temp dir.

    As root, initdb/pg_ctl run as the `postgres` OS user (they refuse to run as root).
    """

    def __init__(self, base_dir: Path, bindir: Path, port: int, as_postgres_user: bool) -> None:
        self.base_dir = base_dir
        self.bindir = bindir
        self.port = port
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "socket"
        self.log_file = base_dir / "server.log"
        self._as_postgres_user = as_postgres_user
        self._running = False
        self._cleaned_up = False

    # -- lifecycle -----------------------------------------------------------------------------------------

    @classmethod
    def start_new(cls, *, bindir: Path | None = None) -> PgServer:
        """initdb a new cluster in a fresh temp dir, start it, create the `migwatch_test` superuser."""
        bindir = bindir or find_pg_bindir()
        as_postgres_user = os.geteuid() == 0
        # Not under pytest's tmp_path: the postgres OS user must be able to reach the folder.
        base_dir = Path(tempfile.mkdtemp(prefix="migwatch-pg-"))
        if as_postgres_user:
            postgres = pwd.getpwnam(_POSTGRES_OS_USER)
            os.chown(base_dir, postgres.pw_uid, postgres.pw_gid)
        server = cls(base_dir, bindir, _free_port(), as_postgres_user)
        atexit.register(server.cleanup)
        try:
            server._initdb()
            server._start_on_a_free_port()
            server._create_test_role()
        except BaseException:
            server.cleanup()
            raise
        return server

    def start(self) -> None:
        """Start the (stopped) cluster again, on the same port."""
        self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.log_file))
        self._running = True

    def stop(self, mode: str = "fast") -> None:
        """Shut the cluster down (`fast` ends sessions cleanly; `immediate` is a crash)."""
        self._pg_ctl("stop", "-w", "-t", "30", "-m", mode)
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def ensure_running(self) -> None:
        """Restart the cluster if a test stopped it and did not start it again."""
        if not self._running:
            self.start()

    def cleanup(self) -> None:
        """Stop the cluster (if running) and delete its folder; safe to call twice."""
        if self._cleaned_up:
            return
        self._cleaned_up = True
        if self._running:
            try:
                self.stop("immediate")
            except PgUnavailableError as error:
                logger.warning("could not stop the test cluster: %s", error)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- connections ---------------------------------------------------------------------------------------

    def url(self, dbname: str, user: str = TEST_USER, password: str | None = TEST_PASSWORD) -> str:
        """`postgresql://user:password@127.0.0.1:PORT/dbname?schema=public` (Prisma's form)."""
        credentials = user if password is None else f"{user}:{password}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{dbname}?schema=public"

    def admin_connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection as `migwatch_test` over the unix socket (trust auth)."""
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=TEST_USER, dbname=dbname, autocommit=True
        )

    def create_database(self) -> str:
        """Create an empty database owned by `migwatch_test`; returns its name."""
        name = f"test_{next(_database_counter)}_{uuid.uuid4().hex[:8]}"
        with self.admin_connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, dbname: str) -> None:
        """Drop a database, ending its sessions first."""
        with self.admin_connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))

    def create_readonly_role(self, dbname: str, name: str, password: str) -> None:
        """A login role that may only read schema `public` of `dbname` (tables now and later)."""
        role = sql.Identifier(name)
        with self.admin_connect(dbname) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    verb, role, sql.Literal(password)
                )
            )
            statements: list[sql.SQL | sql.Composed] = [
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)),
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), role),
                sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
                sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role),
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(role),
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}"
                ).format(sql.Identifier(TEST_USER), role),
            ]
            for statement in statements:
                conn.execute(statement)

    # -- internals -----------------------------------------------------------------------------------------

    def _run(self, argv: Sequence[str]) -> None:
        command = list(argv)
        if self._as_postgres_user:
            command = ["runuser", "-u", _POSTGRES_OS_USER, "--", *command]
        completed = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=self.base_dir, check=False
        )
        if completed.returncode != 0:
            output = (completed.stderr or completed.stdout).strip().replace("\n", " | ")
            log_tail = ""
            if self.log_file.exists():
                log_tail = " | server log: " + " | ".join(
                    self.log_file.read_text(errors="replace").splitlines()[-5:]
                )
            raise PgUnavailableError(
                f"{Path(argv[0]).name} {argv[1]} failed (exit {completed.returncode}): {output}{log_tail}"
            )

    def _pg_ctl(self, *args: str) -> None:
        self._run([str(self.bindir / "pg_ctl"), args[0], "-D", str(self.data_dir), "-s", *args[1:]])

    def _initdb(self) -> None:
        started = time.monotonic()
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ]
        )
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8"
        )
        self._write_port_settings()
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            # Durability is irrelevant for throw-away test data; these make start and DDL fast.
            conf.write(
                "\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 100\nshared_buffers = 32MB\n"
                "include_if_exists = 'port.conf'\n"
            )
        self.socket_dir.mkdir()
        if self._as_postgres_user:
            postgres = pwd.getpwnam(_POSTGRES_OS_USER)
            for path in (self.socket_dir, self.data_dir / "pg_hba.conf", self.data_dir / "port.conf"):
                os.chown(path, postgres.pw_uid, postgres.pw_gid)
        logger.debug("initdb took %.2f s", time.monotonic() - started)

    def _write_port_settings(self) -> None:
        (self.data_dir / "port.conf").write_text(f"port = {self.port}\n", encoding="utf-8")

    def _start_on_a_free_port(self) -> None:
        # The free port can be taken by someone else between the probe and the start: try a few.
        for attempt in range(3):
            try:
                self.start()
                return
            except PgUnavailableError:
                if attempt == 2:
                    raise
                self.port = _free_port()
                self._write_port_settings()

    def _create_test_role(self) -> None:
        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                    sql.Identifier(TEST_USER), sql.Literal(TEST_PASSWORD)
                )
            )
