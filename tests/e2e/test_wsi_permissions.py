"""Who follows whom, end to end: PortSIP's permission rules on real connections.

Test tenant acme: 101 and 102 in group sales, 103 in group support, queue 8001 (members
101, 102; manager 100), trunk carrier1. Tenant globex: extension 201.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from tests.support import wsi
from tests.support.hub import Hub
from tests.support.phone import Phone

ACCOUNTS: dict[str, dict[str, str]] = {
    "ext101": {"extension": "101", "domain": "acme.example.com", "password": "secret101"},
    "ext102": {"extension": "102", "domain": "acme.example.com", "password": "secret102"},
    "ext103": {"extension": "103", "domain": "acme.example.com", "password": "secret103"},
    "acme": {"name": "acme", "password": "tenant-secret"},
    "globex": {"name": "globex", "password": "globex-secret"},
}

EXT_TOPIC = [{"topic": "extension_events"}]
_calls = itertools.count(1)


@pytest.fixture
def wsi_hub(request: pytest.FixtureRequest) -> Hub:
    return wsi.session_hub(request)  # one hub for all WSI modules


def ring(hub: Hub, number: str) -> str:
    call_id = f"perm-{number}-{next(_calls)}"
    remote = f"0711{next(_calls):06d}"
    phone = Phone(hub.port, "gs-7f3a9c", number, mac=f"000B8222{number:0>4}")
    assert phone.send("Incoming Call", remote=remote, call_id=call_id).status == 200
    return call_id


async def subscribed(hub: Hub, account: str, **cmd: Any) -> Any:
    ws = await wsi.login(hub.wsi_port, **ACCOUNTS[account])
    reply = await wsi.call(ws, {"command": "subscribe", "topics": EXT_TOPIC, **cmd})
    assert reply == {"status": 0}, reply
    return ws


# (subscriber, its subscribe command) -> which extensions' calls it sees
MATRIX = [
    ("ext101", {}, {"101", "102"}),  # itself and its group peer
    ("ext102", {}, {"101", "102"}),
    ("ext103", {}, {"103"}),  # another group: only itself
    ("ext101", {"extensions": ["102"]}, {"102"}),
    ("ext101", {"extensions": ["101"]}, {"101"}),
    ("acme", {}, {"101", "102", "103"}),  # a tenant follows everything in it
    ("acme", {"extensions": ["103"]}, {"103"}),
    ("globex", {}, set()),  # nothing crosses tenants
    ("globex", {"extensions": ["101", "102", "103"]}, set()),
]


@pytest.mark.parametrize(("account", "cmd", "sees"), MATRIX)
async def test_who_receives_whose_calls(
    wsi_hub: Hub, account: str, cmd: dict[str, Any], sees: set[str]
) -> None:
    async with await subscribed(wsi_hub, account, **cmd) as ws:
        calls = {ring(wsi_hub, n): n for n in ("101", "102", "103")}
        got = await wsi.until_pong(ws)
    seen = {calls[e["call_id"]] for e in got if e.get("call_id") in calls}
    assert seen == sees
    assert all(e["tenant_name"] == "acme" for e in got)


REFUSALS = [
    ("ext101", {"extensions": ["103"]}, "not permitted: extensions 103"),
    ("ext101", {"extensions": ["102", "103", "104"]}, "not permitted: extensions 103, 104"),
    ("ext103", {"extensions": ["101"]}, "not permitted: extensions 101"),
    (
        "ext101",
        {"topics": [{"topic": "trunk_events", "keys": ["trunk_connected"]}]},
        "not permitted: topics trunk_events",
    ),
    (
        "ext101",
        {"topics": [{"topic": "trunk_events"}, {"topic": "queue_events"}], "queues": ["9"]},
        "not permitted: topics trunk_events",  # a queue it may not follow is only left out
    ),
]


@pytest.mark.parametrize(("account", "cmd", "error"), REFUSALS)
async def test_refused_subscribe_names_what_and_changes_nothing(
    wsi_hub: Hub, account: str, cmd: dict[str, Any], error: str
) -> None:
    async with await wsi.login(wsi_hub.wsi_port, **ACCOUNTS[account]) as ws:
        reply = await wsi.call(ws, {"command": "subscribe", "topics": EXT_TOPIC, **cmd})
        assert reply == {"error": error, "status": -1}
        ring(wsi_hub, "101")
        ring(wsi_hub, "103")
        assert await wsi.until_pong(ws) == []


@pytest.mark.parametrize(
    ("account", "queues", "allowed"),
    [
        ("ext101", None, True),  # omitted: the queues it belongs to
        ("ext101", ["8001"], True),
        ("ext103", None, False),  # belongs to no queue: follows none
        ("ext103", ["8001"], False),  # asks for one it may not follow: left out, not refused
        ("acme", None, True),
        ("acme", ["8001"], True),
        ("globex", ["8001"], False),
    ],
)
async def test_queue_events_follow_membership(
    wsi_hub: Hub, account: str, queues: list[str] | None, allowed: bool
) -> None:
    cmd: dict[str, Any] = {"command": "subscribe", "topics": [{"topic": "queue_events"}]}
    if queues is not None:
        cmd["queues"] = queues
    async with await wsi.login(wsi_hub.wsi_port, **ACCOUNTS[account]) as ws:
        # a tenant follows any queue of its own (globex has no 8001: nothing comes)
        ignored = queues if queues and not allowed and account.startswith("ext") else []
        assert await wsi.call(ws, cmd) == (
            {"status": 0, "ignored_queues": ignored} if ignored else {"status": 0}
        )
        body = {
            "event_type": "queue_member_state",
            "queue": "8001",
            "extension": "102",
            "state": "ready",
        }
        status, reply = wsi_hub.api("POST", "/api/v1/tenants/acme/events", body)
        assert status == 201, reply
        got = await wsi.until_pong(ws)
    assert [e["event_type"] for e in got] == (["queue_member_state"] if allowed else [])


async def test_unsubscribe_narrows_to_remaining_extensions(wsi_hub: Hub) -> None:
    async with await subscribed(wsi_hub, "ext101") as ws:
        cmd = {"command": "unsubscribe", "topics": EXT_TOPIC, "extensions": ["102"]}
        assert await wsi.call(ws, cmd) == {"status": 0}
        calls = {ring(wsi_hub, n): n for n in ("101", "102")}
        got = await wsi.until_pong(ws)
    assert {calls[e["call_id"]] for e in got if e.get("call_id") in calls} == {"101"}


async def test_commands_before_auth_are_refused(wsi_hub: Hub) -> None:
    async with await wsi.open_ws(wsi_hub.wsi_port) as ws:
        for cmd in ({"command": "subscribe", "topics": EXT_TOPIC}, {"command": "ping"}):
            reply = json.loads(await wsi.send_raw(ws, json.dumps(cmd)))
            assert reply == {"error": "not authenticated: send auth first", "status": -1}
        assert await wsi.call(ws, {"command": "auth", **ACCOUNTS["acme"]}) == {"status": 0}
        assert await wsi.call(ws, {"command": "ping"}) == {"status": 0, "pong": True}
