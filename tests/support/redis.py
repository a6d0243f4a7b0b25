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
from pathlib import Path

from tests.support.postgres import IN_CI


class Unavailable(Exception):
    """redis-server is not installed here."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One running server; `url` for its database 0."""

    def __init__(self) -> None:
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
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", str(self.dir),
               "--protected-mode", "yes", "--daemonize", "no"]  # fmt: skip
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


def start() -> RedisServer:
    """A new running server, or a skip (a failure under CI=true) when none is installed."""
    import pytest

    try:
        return RedisServer().start()
    except Unavailable as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
