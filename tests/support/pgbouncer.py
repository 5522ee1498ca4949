"""A real PgBouncer (Debian package `pgbouncer`) in front of the test cluster, in a given pool mode."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.pg import TEST_PASSWORD, TEST_USER, PgServer, _free_port


class PgBouncerUnavailableError(RuntimeError):
    """The pgbouncer binary is not installed (tools/system-deps.sh installs it)."""


class PgBouncer:
    """One pgbouncer process on 127.0.0.1:`port` pooling every database of `server`."""

    def __init__(self, server: PgServer, pool_mode: str) -> None:
        binary = shutil.which("pgbouncer") or (
            "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
        )
        if binary is None:
            raise PgBouncerUnavailableError(
                "pgbouncer is not installed: run `bash tools/system-deps.sh` as root"
            )
        self.pool_mode = pool_mode
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix=f"pgbouncer-{pool_mode}-"))
        os.chmod(self.folder, 0o755)  # pgbouncer drops root privileges and must still read its files
        (self.folder / "userlist.txt").write_text(f'"{TEST_USER}" "{TEST_PASSWORD}"\n', encoding="utf-8")
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={server.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = scram-sha-256\nauth_file = {self.folder / 'userlist.txt'}\n"
            f"pool_mode = {pool_mode}\nmax_client_conn = 50\ndefault_pool_size = 5\n"
            "server_reset_query = DISCARD ALL\nlogfile =\nsyslog = 0\n",
            encoding="utf-8",
        )
        for name in ("userlist.txt", "pgbouncer.ini"):
            os.chmod(self.folder / name, 0o644)
        argv = [binary, str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:
            argv[1:1] = ["-u", "postgres"]  # pgbouncer refuses to run as root
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_until_listening()

    def _wait_until_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}: {error.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)  # polling a port that has no event to wait on
        self.stop()
        raise RuntimeError(f"pgbouncer did not listen on 127.0.0.1:{self.port} within {timeout} s")

    def url(self, dbname: str) -> str:
        """A Prisma-style URL to `dbname` through this pooler."""
        return f"postgresql://{TEST_USER}:{TEST_PASSWORD}@127.0.0.1:{self.port}/{dbname}?schema=public"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)
