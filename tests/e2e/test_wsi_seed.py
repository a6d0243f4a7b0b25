"""Every example of PortSIP's "Going Real-Time with PortSIP PBX Pub/Sub", sent verbatim.

The hub has a tenant shaped like PortSIP's examples: domain test.com, extension 101 with password
111111, and 101, 102, 103 in one group (PortSIP's precondition for its subscribe example).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import wsi
from tests.support.hub import Hub
from tests.support.phone import Phone

TOKEN = "sp-0001"


@pytest.fixture
def wsi_hub(request: pytest.FixtureRequest) -> Hub:
    return wsi.session_hub(request)  # one hub for all WSI modules


async def seed_login(hub: Hub) -> Any:
    ws = await wsi.open_ws(hub.wsi_port)
    assert await wsi.send_raw(ws, wsi.SEED_AUTH_EXTENSION) == wsi.SEED_OK
    return ws


async def tenant_login(hub: Hub) -> Any:
    ws = await wsi.open_ws(hub.wsi_port)
    reply = await wsi.send_raw(ws, wsi.SEED_AUTH_TENANT.replace("tenant name", "sipiw"))
    assert reply == wsi.SEED_OK
    return ws


def phone(hub: Hub, number: str) -> Phone:
    return Phone(hub.port, TOKEN, number, mac=f"000B8211{number:0>4}")


def caller(call_id: str) -> str:
    # a distinct outside caller per call, so the correlator never merges two test calls
    return "0711" + str(abs(hash(call_id)) % 10**6).zfill(6)


def ring(hub: Hub, number: str, call_id: str) -> None:
    reply = phone(hub, number).send("Incoming Call", remote=caller(call_id), call_id=call_id)
    assert reply.status == 200


def hang_up(hub: Hub, number: str, call_id: str) -> None:
    reply = phone(hub, number).send("Terminate Call", remote=caller(call_id), call_id=call_id)
    assert reply.status == 200


def publish(hub: Hub, body: dict[str, Any]) -> None:
    status, reply = hub.api("POST", "/api/v1/tenants/sipiw/events", body)
    assert status == 201, reply


def keys(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


async def test_auth_by_extension_verbatim(wsi_hub: Hub) -> None:
    ws = await wsi.open_ws(wsi_hub.wsi_port)
    async with ws:
        assert await wsi.send_raw(ws, wsi.SEED_AUTH_EXTENSION) == wsi.SEED_OK


async def test_auth_by_tenant_verbatim(wsi_hub: Hub) -> None:
    # "tenant name" is PortSIP's placeholder: no such tenant, so PortSIP's error reply.
    ws = await wsi.open_ws(wsi_hub.wsi_port)
    async with ws:
        assert await wsi.send_raw(ws, wsi.SEED_AUTH_TENANT) == wsi.SEED_AUTH_ERROR
        renamed = wsi.SEED_AUTH_TENANT.replace("tenant name", "sipiw")
        assert await wsi.send_raw(ws, renamed) == wsi.SEED_OK


@pytest.mark.parametrize(
    "message",
    [
        wsi.SEED_AUTH_EXTENSION.replace("111111", "wrong"),
        wsi.SEED_AUTH_EXTENSION.replace("test.com", "nowhere.example"),
        wsi.SEED_AUTH_EXTENSION.replace('"101"', '"999"'),
        wsi.SEED_AUTH_TENANT.replace("tenant name", "sipiw").replace("111111", "nope"),
    ],
)
async def test_bad_credentials_get_the_seed_error(wsi_hub: Hub, message: str) -> None:
    ws = await wsi.open_ws(wsi_hub.wsi_port)
    async with ws:
        assert await wsi.send_raw(ws, message) == wsi.SEED_AUTH_ERROR


@pytest.mark.parametrize(
    "auth",
    [
        {"username": "101", "domain": "test.com", "password": "111111"},
        {"extension_number": "101", "domain": "test.com", "password": "111111"},
        {"username": "101@test.com", "password": "111111"},
        {"username": "sipiw", "password": "111111"},
    ],
)
async def test_portsip_v22_spelling(wsi_hub: Hub, auth: dict[str, str]) -> None:
    ws = await wsi.open_ws(wsi_hub.wsi_port)
    async with ws:
        assert await wsi.call(ws, {"command": "auth", **auth}) == {"status": 0}


async def test_subscribe_example_delivers_group_events(wsi_hub: Hub) -> None:
    async with await seed_login(wsi_hub) as ws:
        assert await wsi.send_raw(ws, wsi.SEED_SUBSCRIBE_EXTENSIONS) == wsi.SEED_OK
        ring(wsi_hub, "102", "seed-sub-1")
        ring(wsi_hub, "104", "seed-sub-2")  # not in 101's group, and not asked for
        got = await wsi.until_pong(ws)
    assert keys(got) == ["call_start", "target_add", "target_ringing"]
    assert all(e["call_id"] == "seed-sub-1" for e in got)
    start = got[0]
    assert start["callee"] == "sip:102@test.com"
    assert start["topic"] == "extension_events"
    assert isinstance(start["seq"], int) and isinstance(start["event_id"], str)
    assert start["tenant_name"] == "sipiw" and isinstance(start["time"], str)


async def test_cdr_subscribe_and_both_unsubscribe_examples(wsi_hub: Hub) -> None:
    async with await seed_login(wsi_hub) as ws:
        assert await wsi.send_raw(ws, wsi.SEED_SUBSCRIBE_EXTENSIONS_AND_CDR) == wsi.SEED_OK
        ring(wsi_hub, "103", "seed-cdr-1")
        hang_up(wsi_hub, "103", "seed-cdr-1")
        got = keys(await wsi.until_pong(ws))
        assert "call_cdr" in got

        assert await wsi.send_raw(ws, wsi.SEED_UNSUBSCRIBE_CDR) == wsi.SEED_OK
        ring(wsi_hub, "103", "seed-cdr-2")
        hang_up(wsi_hub, "103", "seed-cdr-2")
        got = keys(await wsi.until_pong(ws))
        assert got and "call_cdr" not in got

        assert await wsi.send_raw(ws, wsi.SEED_UNSUBSCRIBE_EXTENSIONS_AND_CDR) == wsi.SEED_OK
        ring(wsi_hub, "103", "seed-cdr-3")
        assert await wsi.until_pong(ws) == []


async def test_queue_example(wsi_hub: Hub) -> None:
    async with await seed_login(wsi_hub) as member, await tenant_login(wsi_hub) as tenant:
        # 101 is a member of 8001 and the manager of 8002, like PortSIP's example.
        assert await wsi.send_raw(member, wsi.SEED_SUBSCRIBE_QUEUES) == wsi.SEED_OK
        assert await wsi.send_raw(tenant, wsi.SEED_SUBSCRIBE_QUEUES) == wsi.SEED_OK
        for queue in ("8001", "8002", "8003"):
            publish(wsi_hub, {"event_type": "queue_status", "queue": queue, "waiting_calls": 1})
        for ws in (member, tenant):
            got = await wsi.until_pong(ws)
            assert [e["queue"] for e in got] == ["8001", "8002"]
            assert {e["topic"] for e in got} == {"queue_events"}


async def test_queue_example_for_a_non_member_pushes_nothing(wsi_hub: Hub) -> None:
    # "if the extension(subscriber) is not a member of the queue, and also not a queue
    # manager of the queue, the events will not push to the extension(subscriber)"
    async with await wsi.login(
        wsi_hub.wsi_port, extension="104", domain="test.com", password="secret104"
    ) as ws:
        reply = json.loads(await wsi.send_raw(ws, wsi.SEED_SUBSCRIBE_QUEUES))
        assert reply == {"status": 0, "ignored_queues": ["8001", "8002"]}
        publish(wsi_hub, {"event_type": "queue_status", "queue": "8001"})
        assert await wsi.until_pong(ws) == []


async def test_queue_subscribe_keeps_the_permitted_queues(wsi_hub: Hub) -> None:
    # 101 may follow 8001 (member), not 8003: it gets 8001's events and nothing of 8003's.
    message = wsi.SEED_SUBSCRIBE_QUEUES.replace('"8002"', '"8003"')
    async with await seed_login(wsi_hub) as ws:
        reply = json.loads(await wsi.send_raw(ws, message))
        assert reply == {"status": 0, "ignored_queues": ["8003"]}
        for queue in ("8003", "8001", "8003"):
            publish(wsi_hub, {"event_type": "queue_status", "queue": queue, "waiting_calls": 2})
        got = await wsi.until_pong(ws)
        assert [e["queue"] for e in got] == ["8001"]


async def test_trunk_example_tenant_only(wsi_hub: Hub) -> None:
    async with await seed_login(wsi_hub) as ext, await tenant_login(wsi_hub) as tenant:
        reply = json.loads(await wsi.send_raw(ext, wsi.SEED_SUBSCRIBE_TRUNKS))
        assert reply == {"error": "not permitted: topics trunk_events", "status": -1}
        assert await wsi.send_raw(tenant, wsi.SEED_SUBSCRIBE_TRUNKS) == wsi.SEED_OK
        publish(wsi_hub, {"event_type": "trunk_connected", "trunk": "carrier1"})
        publish(wsi_hub, {"event_type": "trunk_disconnected", "trunk": "carrier1"})
        assert keys(await wsi.until_pong(tenant)) == ["trunk_connected", "trunk_disconnected"]
        assert await wsi.until_pong(ext) == []
