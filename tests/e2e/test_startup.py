"""Start-up failures: one line naming the setting, exit status 1, nothing left running.

Ports are bound before anything starts (and before the banner); a failure inside
Hub.start() stops what had started, in reverse order.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from callhook import config
from callhook.app import Hub as HubApp
from callhook.listeners import StartupError, bind
from callhook.store import StoreError
from tests.support.hub import Hub


def _serve(h: Hub) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "callhook.cli", "serve", "--config", str(h.config_path)],
        cwd=h.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("taken", ["listen", "wsi_listen"])
def test_a_port_in_use_is_one_line_naming_the_setting(tmp_path: Path, taken: str) -> None:
    h = Hub(tmp_path)
    port = h.port if taken == "listen" else h.wsi_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        done = _serve(h)
    assert done.returncode == 1, done
    assert done.stderr.strip().splitlines() == [
        f"Error: server.{taken} 127.0.0.1:{port}: address already in use (another program, or"
        f' a hub already running, listens there: stop it, or set {taken} = "HOST:PORT" under'
        f" [server] in the config file, or CALLHOOK_SERVER_{taken.upper()})"
    ]
    assert "Traceback" not in done.stdout + done.stderr
    assert "API and dashboard" not in done.stdout  # no banner for a hub that is not up
    # The other port was released: a second start works once the first is free.
    started = h.start()
    try:
        assert started.alive()
    finally:
        h.stop()


def test_two_hubs_binding_one_port_at_the_same_moment_do_not_both_start(
    tmp_path: Path,
) -> None:
    """With SO_REUSEADDR both hubs may bind a port nobody listens on yet. The socket
    listens as it is bound, so the second gets the one-line error at once; it used to get
    a socket its event loop could not listen on, and a hub that answered nothing."""
    port = Hub(tmp_path).port
    first = bind("server.listen", f"127.0.0.1:{port}")
    try:
        with pytest.raises(StartupError, match=rf"^server.listen 127.0.0.1:{port}: address al"):
            bind("server.listen", f"127.0.0.1:{port}")
    finally:
        first.close()


def test_an_address_the_machine_does_not_have_is_named(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"^server.listen 192\.0\.2\.1:8080: cannot assign"):
        bind("server.listen", "192.0.2.1:8080")


def test_a_failure_inside_start_stops_what_had_started(tmp_path: Path) -> None:
    """The WSI listener cannot start (its socket is gone): the database, the delivery
    workers and the bus that had started are stopped again, and the error is raised."""
    settings = config.parse(
        {
            "server": {
                "database": f"sqlite:///{tmp_path / 'hub.db'}",
                "wsi_listen": "127.0.0.1:0",
            }
        },
        env={},
    )

    async def attempt() -> HubApp:
        hub = HubApp(settings)
        sock = bind("server.wsi_listen", "127.0.0.1:0")
        sock.close()  # create_server() will fail on it
        with pytest.raises(OSError):
            await hub.start(sock)
        # nothing keeps running: no task of ours is left, the store takes no more work
        await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert left == [], left
        assert not hub.ready
        return hub

    hub = asyncio.run(attempt())
    assert not [t for t in threading.enumerate() if t.name == "sqlite-writer"]
    with pytest.raises(StoreError, match="closed"):
        asyncio.run(hub.store.ping())
