"""A real reverse proxy in front of a hub: Debian's nginx, on a free loopback port.

`make test` installs nginx when it is missing. Under CI a missing nginx fails the tests
that need it; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.hub import free_port

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{wsi_port};
        location / {{
            proxy_pass http://127.0.0.1:{wsi_upstream};
            proxy_bind 127.0.0.1;
            proxy_http_version 1.1;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $http_connection;
        }}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_bind 127.0.0.1;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $http_connection;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        reason = "nginx is not installed (make test installs Debian's nginx-light)"
        if IN_CI:
            pytest.fail(f"the reverse-proxy tests need it under CI: {reason}")
        pytest.skip(reason)
    return found


class Nginx:
    """nginx proxying 127.0.0.1:`port` to 127.0.0.1:`upstream` (and `wsi_port` to
    `wsi_upstream`), connecting from 127.0.0.1 and appending the client's address to
    `X-Forwarded-For`."""

    def __init__(self, workdir: Path, upstream: int, wsi_upstream: int) -> None:
        self.dir = workdir
        self.port = free_port()
        self.upstream = upstream
        self.wsi_port = free_port()
        self.wsi_upstream = wsi_upstream
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Nginx:
        binary = nginx_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(
            CONFIG.format(
                dir=self.dir,
                port=self.port,
                upstream=self.upstream,
                wsi_port=self.wsi_port,
                wsi_upstream=self.wsi_upstream,
            )
        )
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx not listening after {timeout}s: {self.logs()}")

    def logs(self) -> str:
        try:
            return (self.dir / "error.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
