"""Config reload against real nodes: SIGHUP, `POST /api/v1/config/reload` and `callhook
reload` apply the file's tenants without a restart; a bad file changes nothing and the
node goes on; in a cluster the other node sees the change (a tenant, an extension, a
rotated ingest token) through the directory notice."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cluster import Cluster, wait_for
from tests.support import wsi
from tests.support.hub import Hub
from tests.support.phone import get

# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = pytest.mark.own_engines

NEW = """
[[tenant]]
name = "initech"
ingest_token = "tk-reload-1"
open_ingest_networks = ["127.0.0.0/8"]
"""
EXTENSION = """
[[tenant.extension]]
number = "104"
password = "secret104"
display_name = "Dave"
"""


def ring(hub: Hub, token: str, n: int) -> int:
    target = f"/token={token}&event=Incoming%20Call&local=101&remote=0700&call_id=rl-{n}"
    try:
        return get(hub.port, target).status
    except OSError:
        return 0


def can_login(hub: Hub, **auth: str) -> bool:
    async def run() -> bool:
        ws = await wsi.open_ws(hub.wsi_port)
        try:
            return await wsi.call(ws, {"command": "auth", **auth}) == {"status": 0}
        finally:
            await ws.close()

    return asyncio.run(run())


def edit(hub: Hub, old: str, new: str) -> None:
    text = hub.config_path.read_text()
    assert old in text
    hub.config_path.write_text(text.replace(old, new, 1))


def add_extension(text: str) -> str:
    """104 among acme's extensions (after 103's table)."""
    anchor = 'display_name = "Carol"\ngroups = ["support"]\n'
    assert anchor in text
    return text.replace(anchor, anchor + EXTENSION, 1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("reload"))
    try:
        yield c.start()
    finally:
        c.stop()


def test_sighup_on_a_and_b_serves_the_new_tenant_extension_and_token(cluster: Cluster) -> None:
    a, b = cluster.nodes
    assert ring(b, "tk-reload-1", 1) == 404 and ring(b, "gx-1234", 2) == 200
    assert not can_login(b, extension="104", domain="acme", password="secret104")
    for hub in (a, b):  # the same file on every node, as deploy/ shows
        hub.config_path.write_text(add_extension(hub.config_path.read_text()) + NEW)
        edit(hub, 'ingest_token = "gx-1234"', 'ingest_token = "gx-rotated-5678"')
    assert a.proc is not None
    started = time.monotonic()
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: ring(b, "tk-reload-1", 3) == 200, 10)
    seen = time.monotonic() - started
    assert ring(b, "gx-rotated-5678", 4) == 200 and ring(b, "gx-1234", 5) == 404
    assert can_login(b, extension="104", domain="acme", password="secret104")
    assert "config reloaded" in a.log_path.read_text(), a.logs()
    assert "config reloaded" not in b.log_path.read_text()  # B read the database, not its file
    print(f"reload on A seen by B after {seen * 1000:.0f} ms")


def test_a_broken_file_is_refused_and_both_nodes_go_on(cluster: Cluster) -> None:
    a, b = cluster.nodes
    good = a.config_path.read_text()
    a.config_path.write_text(good + "\n[[tenant]\nname = \n")  # not TOML
    assert a.proc is not None
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config reload refused" in a.log_path.read_text(), 10)
    status, body = a.api("POST", "/api/v1/config/reload")
    assert status == 422 and body["error"]["code"] == "invalid-config", body
    assert "not valid TOML" in body["error"]["message"]
    # Valid TOML, but a queue member that is not an extension: refused by the same rules.
    a.config_path.write_text(good.replace('members = ["101", "102"]', 'members = ["101", "199"]'))
    status, body = a.api("POST", "/api/v1/config/reload")
    assert status == 422 and "199" in body["error"]["message"], body
    for n, hub in enumerate((a, b)):
        assert hub.alive() and ring(hub, "gs-7f3a9c", 10 + n) == 200
        assert hub.api("GET", "/readyz")[0] == 200
    status, queue = a.api("GET", "/api/v1/tenants/acme/queues/8001")
    assert status == 200 and queue["members"] == ["101", "102"], queue  # nothing changed
    a.config_path.write_text(good)


def test_callhook_reload_on_one_node_and_what_needs_a_restart(tmp_path: Path) -> None:
    hub = Hub(tmp_path).start()
    try:
        cmd = [sys.executable, "-m", "callhook.cli", "reload", "--config", str(hub.config_path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "reloaded: no change"
        hub.config_path.write_text(
            add_extension(hub.config_path.read_text()).replace(
                "tick_interval = 0.2", "tick_interval = 0.3"
            )
        )
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "added" in done.stdout and "104" in done.stdout, done.stdout
        assert "[correlation] changed; it takes effect at the next restart" in done.stdout
        assert can_login(hub, extension="104", domain="acme", password="secret104")
        hub.config_path.write_text(hub.config_path.read_text() + "\nbogus = 1\n")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "bogus" in done.stderr, done.stderr  # said at once
        assert hub.alive() and hub.api("GET", "/readyz")[0] == 200
    finally:
        hub.stop()
