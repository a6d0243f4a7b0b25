"""A hub behind a real reverse proxy (Debian's nginx): `[server] trusted_proxies`.

Behind a proxy every client is the proxy: ten bad keys from one client locked the admin out
for everyone, and open ingest, rate limits and logs saw only the proxy. The client address
the proxy appends to `X-Forwarded-For` is believed only from a listed proxy, and only the
entry the proxy itself wrote: a client cannot forge its way into an open ingest network.

Clients use their own loopback addresses (127.0.0.x) so the proxy (127.0.0.1) and each
client are told apart, as on a real network.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.support.hub import ADMIN_KEY, Hub
from tests.support.proxy import Nginx

OPEN_NET = "127.0.0.64/26"  # 127.0.0.64 - 127.0.0.127: open ingest for acme
PER_SOURCE = 4


@pytest.fixture(scope="module")
def behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Nginx]]:
    work = tmp_path_factory.mktemp("proxy")
    hub = Hub(
        work,
        server_config='trusted_proxies = ["127.0.0.1/32"]',
        extra_config=(
            f"\n[auth]\napi_max_failures_per_source = {PER_SOURCE}\n"
            f"wsi_max_failures_per_source = {PER_SOURCE}\n"
        ),
    )
    text = hub.config_path.read_text()
    hub.config_path.write_text(
        text.replace(
            'open_ingest_networks = ["127.0.0.0/8"]', f'open_ingest_networks = ["{OPEN_NET}"]'
        )
    )
    hub.start()
    proxy = Nginx(work / "nginx", hub.port, hub.wsi_port)
    try:
        proxy.start()
        yield hub, proxy
    finally:
        proxy.stop()
        hub.stop()


def request(
    port: int, source: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One GET to 127.0.0.1:`port`, sent from `source`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", target, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


PAIRS = "/mac=000B82AABBCC&local=101&remote=0711"  # no token, no event: open ingest only


def test_open_ingest_sees_the_client_behind_the_proxy(behind: tuple[Hub, Nginx]) -> None:
    hub, proxy = behind
    assert request(proxy.port, "127.0.0.70", PAIRS)[0] in (200, 202)  # inside the network
    assert request(proxy.port, "127.0.0.5", PAIRS)[0] == 404  # outside: the proxy is not it
    raw = [e for e in hub.all_events() if e["event_type"] == "action_url"]
    assert len(raw) == 1, raw


def test_a_forged_forwarded_address_is_not_believed(behind: tuple[Hub, Nginx]) -> None:
    hub, proxy = behind
    forged = {"X-Forwarded-For": "127.0.0.70"}
    # Through the proxy: it appends the real client after the forged entry.
    assert request(proxy.port, "127.0.0.5", PAIRS, forged)[0] == 404
    # Straight to the hub from an address that is not a listed proxy: the header is ignored.
    assert request(hub.port, "127.0.0.6", PAIRS, forged)[0] == 404
    assert request(hub.port, "127.0.0.6", PAIRS, {"Forwarded": "for=127.0.0.70"})[0] == 404


def test_bad_keys_lock_out_one_client_not_everyone(behind: tuple[Hub, Nginx]) -> None:
    _hub, proxy = behind
    bad = {"Authorization": "Bearer chk_not-a-key"}
    statuses = [request(proxy.port, "127.0.0.9", "/api/v1/tenants", bad)[0] for _ in range(6)]
    assert statuses == [401] * PER_SOURCE + [429] * 2
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert request(proxy.port, "127.0.0.9", "/api/v1/tenants", admin)[0] == 429
    assert request(proxy.port, "127.0.0.10", "/api/v1/tenants", admin)[0] == 200


def test_logs_name_the_client_not_the_proxy(behind: tuple[Hub, Nginx]) -> None:
    hub, proxy = behind
    bad = {"Authorization": "Bearer chk_logged"}
    assert request(proxy.port, "127.0.0.11", "/api/v1/tenants", bad)[0] == 401
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in hub.logs().splitlines() if line.startswith("{")]
        failed = [rec for rec in lines if rec.get("message") == "login failed"]
        if any(rec.get("source_ip") == "127.0.0.11" for rec in failed):
            break
        assert time.monotonic() < deadline, failed[-3:]
        time.sleep(0.1)
    assert all(rec.get("source_ip") != "127.0.0.1" for rec in failed), failed


async def _wsi_login(url: str, source: str, number: str) -> dict[str, Any]:
    """A WSI login through the proxy, from `source`, to a missing extension."""
    async with connect(url, compression=None, open_timeout=10, local_addr=(source, 0)) as ws:
        auth = {"command": "auth", "extension": number, "domain": "acme", "password": "x"}
        await ws.send(json.dumps(auth))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert isinstance(reply, dict)
        return reply


@pytest.mark.parametrize(("carrier", "first", "other"), [("/ws", 30, 31), ("listener", 32, 33)])
def test_wsi_logins_through_the_proxy_are_limited_per_client(
    behind: tuple[Hub, Nginx], carrier: str, first: int, other: int
) -> None:
    """Both WSI carriers: `/ws` on the main port, and the WSI listener behind its own proxy
    port (the handshake's header names the client there)."""
    _hub, proxy = behind
    url = (
        f"ws://127.0.0.1:{proxy.port}/ws"
        if carrier == "/ws"
        else f"ws://127.0.0.1:{proxy.wsi_port}/"
    )

    async def run() -> list[str]:
        tries = [await _wsi_login(url, f"127.0.0.{first}", f"7{first}{i}") for i in range(6)]
        elsewhere = await _wsi_login(url, f"127.0.0.{other}", f"7{other}9")
        return [r["error"] for r in [*tries, elsewhere]]

    errors = asyncio.run(run())
    wrong, too_many = "name or password error", "too many failed attempts, try again later"
    assert errors == [wrong] * PER_SOURCE + [too_many] * 2 + [wrong], errors
