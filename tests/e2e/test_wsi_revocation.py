"""Directory changes reach sessions already open: permissions are re-checked at once.

Moving 102 out of 101's group, removing 101 from queue 8001, changing 103's password or
deleting an extension once left open sessions with what they had. Now subscriptions narrow
to what is still allowed, and a changed password or a deleted account closes the session
with 1008 and a reason.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import wsi
from tests.support.hub import Hub
from tests.support.phone import Phone

TOKEN = "gs-7f3a9c"
EXT = {"extension_events": None}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    # One hub; each test changes entries of its own (102's group, 101 in 8001, 103's
    # password, a new 104, globex).
    h = Hub(tmp_path_factory.mktemp("revoke")).start()
    try:
        yield h
    finally:
        h.stop()


def account(number: str) -> dict[str, str]:
    return {"extension": number, "domain": "acme.example.com", "password": f"secret{number}"}


_remotes = itertools.count(1)


def ring(hub: Hub, number: str, call_id: str) -> None:
    phone = Phone(hub.port, TOKEN, number, mac=f"000B8233{number:0>4}")
    remote = f"0711{next(_remotes):06d}"  # one caller per call: no ring group
    assert phone.send("Incoming Call", remote=remote, call_id=call_id).status == 200


def change(hub: Hub, method: str, path: str, body: Any = None) -> None:
    status, reply = hub.api(method, "/api/v1/tenants/acme" + path, body)
    assert status in (200, 204), (status, reply)


def callers(events: list[dict[str, Any]]) -> set[str]:
    return {e["call_id"] for e in events if e.get("event_type") == "call_start"}


async def closed_with(ws: Any) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), wsi.TIMEOUT)
    rcvd = info.value.rcvd
    assert rcvd is not None
    return rcvd.code, rcvd.reason


async def test_leaving_a_group_narrows_open_subscriptions(hub: Hub) -> None:
    async with await wsi.login(hub.wsi_port, **account("101")) as ws:
        cmd = {"command": "subscribe", "topics": [{"topic": "extension_events"}]}
        assert await wsi.call(ws, cmd) == {"status": 0}
        ring(hub, "102", "before")
        assert callers(await wsi.until_pong(ws)) == {"before"}
        change(hub, "PATCH", "/extensions/102", {"groups": ["support"]})
        ring(hub, "102", "after")
        ring(hub, "101", "own")
        assert callers(await wsi.until_pong(ws)) == {"own"}  # 102's call no longer comes
        # and asking for 102 again is refused, as for any extension outside the group
        again = {**cmd, "extensions": ["102"]}
        reply = await wsi.call(ws, again)
        assert reply["status"] == -1 and "102" in reply["error"], reply


async def test_leaving_a_queue_stops_its_events(hub: Hub) -> None:
    body = {"event_type": "queue_member_state", "queue": "8001", "extension": "102"}
    async with await wsi.login(hub.wsi_port, **account("101")) as ws:
        cmd = {"command": "subscribe", "topics": [{"topic": "queue_events"}]}
        assert await wsi.call(ws, cmd) == {"status": 0}
        status, reply = hub.api("POST", "/api/v1/tenants/acme/events", {**body, "state": "ready"})
        assert status == 201, reply
        assert [e["state"] for e in await wsi.until_pong(ws)] == ["ready"]
        change(hub, "PATCH", "/queues/8001", {"members": ["102"]})
        assert hub.api("POST", "/api/v1/tenants/acme/events", {**body, "state": "paused"})[0] == 201
        assert await wsi.until_pong(ws) == []


async def test_a_changed_password_closes_the_session(hub: Hub) -> None:
    ws = await wsi.login(hub.wsi_port, **account("103"))
    other = await wsi.login(hub.wsi_port, **account("101"))
    change(hub, "PATCH", "/extensions/103", {"password": "a-new-secret-103"})
    code, reason = await closed_with(ws)
    assert code == 1008 and "password" in reason
    assert await wsi.call(other, {"command": "ping"}) == {"status": 0, "pong": True}
    await other.close()
    # the new password works, the old one does not
    await (
        await wsi.login(hub.wsi_port, **{**account("103"), "password": "a-new-secret-103"})
    ).close()
    async with await wsi.open_ws(hub.wsi_port) as again:
        reply = await wsi.call(again, {"command": "auth", **account("103")})
        assert reply["status"] == -1


async def test_a_deleted_extension_closes_its_session(hub: Hub) -> None:
    new = {"number": "104", "password": "secret104", "groups": ["sales"]}
    status, reply = hub.api("POST", "/api/v1/tenants/acme/extensions", new)
    assert status == 201, reply
    ws = await wsi.login(hub.wsi_port, **account("104"))
    peer = await wsi.login(hub.wsi_port, **account("101"))
    cmd = {"command": "subscribe", "topics": [{"topic": "extension_events"}]}
    assert await wsi.call(peer, cmd) == {"status": 0}
    change(hub, "DELETE", "/extensions/104")
    code, reason = await closed_with(ws)
    assert code == 1008 and "104" in reason and "deleted" in reason
    ring(hub, "101", "still")
    assert callers(await wsi.until_pong(peer)) == {"still"}  # the peer keeps its own
    await peer.close()


async def test_a_deleted_tenant_closes_its_sessions(hub: Hub) -> None:
    ws = await wsi.login(hub.wsi_port, name="globex", password="globex-secret")
    status, reply = hub.api("DELETE", "/api/v1/tenants/globex")
    assert status == 204, reply
    code, reason = await closed_with(ws)
    assert code == 1008 and "tenant" in reason
