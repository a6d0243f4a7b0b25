"""A throwaway PostgreSQL 15 server from Debian's `postgresql` package, for the tests.

`initdb` into a temporary directory, `pg_ctl start` on a free loopback port (socket in
the same directory), as an unprivileged user when the tests run as root (PostgreSQL
refuses to run as root; CI runs as root), stopped at the end of the session. Each hub or
store test gets a database of its own (`new_database`). Missing binaries: a skip on a
developer's machine, a failure under CI=true (`make test` installs the package).
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import psycopg

from tests.support.ports import free_port

BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin")]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class Unavailable(Exception):
    """PostgreSQL is not installed here."""


def _bin_dir() -> Path:
    for d in BIN_DIRS:
        if (d / "initdb").exists():
            return d
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise Unavailable(
        "PostgreSQL is not installed (Debian package `postgresql`; make test installs it)"
    )


class PostgresServer:
    """One running server; `url(db)` for its databases."""

    def __init__(self, listen: Sequence[str] = (), trust: Sequence[str] = ()) -> None:
        """`listen`: addresses to listen on besides 127.0.0.1 (this machine's own, e.g. a
        veth's), and `trust`: the networks allowed to connect from them (tests/support/netns.py)."""
        self.bin = _bin_dir()
        self.listen = ",".join(["127.0.0.1", *listen])
        self.trust = list(trust)
        self.dir = Path(tempfile.mkdtemp(prefix="callhook-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres" if _has_user("postgres") else "nobody"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        self._run(
            self.bin / "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-locale", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        if self.trust:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.writelines(f"host all all {net} trust\n" for net in self.trust)
        opts = self._options() + " -c full_page_writes=off -c shared_buffers=32MB"
        self._run(
            self.bin / "pg_ctl", "-D", str(self.data), "-o", opts, "-w", "-t", "60",
            "-l", str(self.dir / "server.log"), "start",
        )  # fmt: skip
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run(self.bin / "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server (fast: connections are cut) and start it again."""
        self._run(self.bin / "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        time.sleep(down_for)
        self._run(
            self.bin / "pg_ctl", "-D", str(self.data), "-o", self._options(), "-w", "-t", "60",
            "-l", str(self.dir / "server.log"), "start",
        )  # fmt: skip

    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.dir} -c listen_addresses={self.listen}"
            " -c fsync=off -c synchronous_commit=on -c max_connections=300"
        )

    def url_at(self, host: str, database: str) -> str:
        """The URL of one of its databases (a URL from `new_database`) through `host`."""
        name = database.rsplit("/", 1)[-1]
        return f"postgresql://postgres@{host}:{self.port}/{name}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; returns its URL."""
        with self._lock:
            name = f"hub_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


_server: PostgresServer | None = None
_server_lock = threading.Lock()


def server() -> PostgresServer:
    """The session's server, started on first use (raises Unavailable if not installed)."""
    global _server
    with _server_lock:
        if _server is None:
            _server = PostgresServer().start()
        return _server


def _unavailable(exc: Unavailable) -> NoReturn:
    """No PostgreSQL here: a failure under CI=true (`make test` installs it), else a skip."""
    import pytest

    if IN_CI:
        pytest.fail(str(exc))
    pytest.skip(str(exc))


def fresh_database() -> str:
    """A new database on the session's server, or a skip (a failure under CI=true) when
    PostgreSQL is not installed."""
    try:
        return server().new_database()
    except Unavailable as exc:
        _unavailable(exc)


def start(listen: Sequence[str] = (), trust: Sequence[str] = ()) -> PostgresServer:
    """A server of the test's own (to restart it, or to listen beyond loopback), or a
    skip (a failure under CI=true) when PostgreSQL is not installed."""
    try:
        return PostgresServer(listen, trust).start()
    except Unavailable as exc:
        _unavailable(exc)
