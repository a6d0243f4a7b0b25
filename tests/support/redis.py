"""A throwaway `redis-server` from Debian's `redis-server` package, for the cluster tests.

Started on a free loopback port with no persistence (no RDB snapshots, no AOF), in a
temporary directory, and stopped at the end; `stop()`/`start()` again on the same port
stage an outage. Missing binary: a skip on a developer's machine, a failure under CI=true
(`make test` installs the package).
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.ports import free_port
from tests.support.postgres import IN_CI


class Unavailable(Exception):
    """redis-server is not installed here."""


class RedisServer:
    """One running server; `url` for its database 0."""

    def __init__(self, bind: Sequence[str] = ()) -> None:
        """`bind`: addresses of this machine to listen on besides 127.0.0.1 (a veth's)."""
        self.bind = ["127.0.0.1", *bind]
        binary = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if binary is None:
            raise Unavailable(
                "redis-server is not installed (Debian package `redis-server`; make test"
                " installs it)"
            )
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="callhook-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return self.url_at("127.0.0.1")

    def url_at(self, host: str) -> str:
        return f"redis://{host}:{self.port}/0"

    def start(self) -> RedisServer:
        # Protected mode refuses every client but loopback ones; a namespaced node (through
        # its veth, to an address of this machine) is one of ours.
        protected = "yes" if self.bind == ["127.0.0.1"] else "no"
        cmd = [self.binary, "--port", str(self.port), "--bind", *self.bind,
               "--save", "", "--appendonly", "no", "--dir", str(self.dir),
               "--protected-mode", protected, "--daemonize", "no"]  # fmt: skip
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start: {(self.dir / 'redis.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start(bind: Sequence[str] = ()) -> RedisServer:
    """A new running server, or a skip (a failure under CI=true) when none is installed."""
    import pytest

    try:
        return RedisServer(bind).start()
    except Unavailable as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
