"""Resumable delivery: `since_seq` across disconnects, slow consumers closed and resumed."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from callhook.client import WsiClient, WsiError, WsiUnreachable
from callhook.events import TOPICS
from tests.support import wsi
from tests.support.hub import Hub
from tests.support.phone import Phone

TENANT = {"name": "acme", "password": "tenant-secret"}
EVERYTHING = [{"topic": t} for t in TOPICS]
_calls = itertools.count(1)


@pytest.fixture
def wsi_hub(request: pytest.FixtureRequest) -> Hub:
    return wsi.session_hub(request)  # one hub for all WSI modules


def last_seq(hub: Hub) -> int:
    events = hub.all_events()
    return int(events[-1]["seq"]) if events else 0


def ring(hub: Hub) -> None:
    n = next(_calls)
    number = ("101", "102", "103")[n % 3]
    phone = Phone(hub.port, "gs-7f3a9c", number, mac=f"000B8233{number:0>4}")
    assert phone.send("Incoming Call", remote=f"0722{n:06d}", call_id=f"res-{n}").status == 200


def register(hub: Hub, pad: int = 30) -> None:
    """A large event (~30 KB by default), to fill socket buffers quickly."""
    contacts = [{"contact_uri": f"<sip:101@10.0.0.{i}>", "pad": "x" * 1000} for i in range(pad)]
    body = {"event_type": "extension_register", "extension": "101"}
    body["registration_contacts"] = contacts  # type: ignore[assignment]
    status, reply = hub.api("POST", "/api/v1/tenants/acme/events", body)
    assert status == 201, reply


def slow_closed(hub: Hub) -> float:
    with urllib.request.urlopen(hub.base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^callhook_wsi_slow_consumers_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def subscribe_all(hub: Hub, since: int) -> Any:
    ws = await wsi.login(hub.wsi_port, **TENANT)
    cmd = {"command": "subscribe", "topics": EVERYTHING, "since_seq": since}
    assert await wsi.call(ws, cmd) == {"status": 0}
    return ws


async def test_resume_across_a_disconnect_while_events_flow(wsi_hub: Hub) -> None:
    base = last_seq(wsi_hub)
    stop = threading.Event()

    def traffic() -> None:
        for _ in range(30):  # ~90 events while the subscriber comes and goes
            if stop.is_set():
                return
            ring(wsi_hub)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        ws = await subscribe_all(wsi_hub, base)
        first = await wsi.events_until(ws, lambda got: len(got) >= 15)
        ws.transport.abort()  # the network drops mid-stream; events keep coming
        await ws.wait_closed()
        ws = await subscribe_all(wsi_hub, first[-1]["seq"])
        await asyncio.to_thread(sender.join)
        final = last_seq(wsi_hub)
        rest = await wsi.events_until(ws, lambda got: bool(got) and got[-1]["seq"] >= final)
        await ws.close()
    finally:
        stop.set()
        sender.join()
    seqs = [e["seq"] for e in first + rest]
    expected = [e["seq"] for e in wsi_hub.all_events() if e["seq"] > base]
    assert seqs == expected  # every event once, in order: no gap, no duplicate
    assert len(seqs) >= 75


async def test_replay_then_live_without_gap_on_ws_path(wsi_hub: Hub) -> None:
    base = last_seq(wsi_hub)
    for _ in range(5):
        ring(wsi_hub)
    async with await wsi.login(wsi_hub.port, path="/ws", **TENANT) as ws:
        cmd = {"command": "subscribe", "topics": EVERYTHING, "since_seq": base}
        assert await wsi.call(ws, cmd) == {"status": 0}
        ring(wsi_hub)
        final = last_seq(wsi_hub)
        got = await wsi.events_until(ws, lambda g: bool(g) and g[-1]["seq"] >= final)
    assert [e["seq"] for e in got] == list(range(base + 1, final + 1))


async def test_snapshot_reports_presence_and_active_calls(wsi_hub: Hub) -> None:
    ring(wsi_hub)  # leaves a ringing call on one of 101..103
    async with await wsi.login(
        wsi_hub.wsi_port, extension="101", domain="acme.example.com", password="secret101"
    ) as ws:
        cmd = {"command": "subscribe", "topics": [{"topic": "extension_events"}], "snapshot": True}
        assert await wsi.call(ws, cmd) == {"status": 0}
        snap = await wsi.recv_json(ws)
    assert snap["event_type"] == "snapshot" and isinstance(snap["as_of_seq"], int)
    assert {p["extension"] for p in snap["presence"]} == {"101", "102"}  # 101 and its peer
    for call in snap["active_calls"]:
        assert {"101", "102"} & set(call["extensions"])


async def test_slow_reader_is_closed_while_a_fast_one_keeps_receiving(wsi_hub: Hub) -> None:
    base = last_seq(wsi_hub)
    fast = wsi.Collector(await subscribe_all(wsi_hub, base))
    # max_queue=1: the library stops reading the socket once one frame waits unread
    slow = await wsi.connect_paused(wsi_hub.wsi_port)
    try:
        assert await wsi.call(slow, {"command": "auth", **TENANT}) == {"status": 0}
        cmd = {"command": "subscribe", "topics": EVERYTHING, "since_seq": base}
        assert await wsi.call(slow, cmd) == {"status": 0}
        before = slow_closed(wsi_hub)
        for _ in range(400):
            # ~4 KB events: well under the test hub's 16 KB budget, which a reader that
            # keeps up may still hold for a moment (events within one flush go together)
            await asyncio.to_thread(register, wsi_hub, 4)
            if slow_closed(wsi_hub) > before:
                break
        else:
            raise AssertionError("the slow reader was never disconnected")
        for _ in range(3):  # life goes on for everyone else
            await asyncio.to_thread(register, wsi_hub, 1)
        final = last_seq(wsi_hub)
        fast_got = await fast.wait_seq(final, within=30)
        assert [e["seq"] for e in fast_got] == list(range(base + 1, final + 1))

        # The slow reader gets what was queued, then the reason and where to resume.
        slow_got: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                slow_got.append(await wsi.recv_json(slow))
        rcvd = closed.value.rcvd
        assert rcvd is not None and rcvd.code == 1013
        resume = slow_got[-1]["seq"] if slow_got else base
        assert rcvd.reason == f"slow consumer: resume with since_seq {resume}"
        async with await subscribe_all(wsi_hub, resume) as again:
            rest = await wsi.events_until(again, lambda g: bool(g) and g[-1]["seq"] >= final)
        assert [e["seq"] for e in slow_got + rest] == list(range(base + 1, final + 1))
    finally:
        await fast.close()
        await slow.close()


async def test_client_library_resumes_by_itself(wsi_hub: Hub) -> None:
    base = last_seq(wsi_hub)
    client = WsiClient(
        f"ws://127.0.0.1:{wsi_hub.wsi_port}/",
        tenant="acme",
        password="tenant-secret",
        topics={"extension_events": ["extension_register"]},
        since_seq=base,
        backoff=(0.05, 0.2),
    )
    async with client:
        events = client.events()
        register(wsi_hub, 1)
        got = [await anext(events)]  # subscribed and live
        final = got[-1]["seq"]
        for _ in range(3):  # another session's slow close may be what the metric counted
            before = slow_closed(wsi_hub)
            for _ in range(400):  # the consumer is not reading meanwhile
                await asyncio.to_thread(register, wsi_hub)
                if slow_closed(wsi_hub) > before:
                    break
            final = last_seq(wsi_hub)
            while got[-1]["seq"] < final:
                got.append(await asyncio.wait_for(anext(events), 20))
            if client.connects >= 2:
                break
        await events.aclose()
    assert [e["seq"] for e in got] == list(range(base + 1, final + 1))
    assert client.connects >= 2


async def test_client_library_reports_refusals(wsi_hub: Hub) -> None:
    url = f"ws://127.0.0.1:{wsi_hub.wsi_port}/"
    async with WsiClient(url, tenant="acme", password="wrong") as client:
        with pytest.raises(WsiError, match="name or password error"):
            await anext(client.events())
    bad = WsiClient(url, extension="103", tenant="acme", password="secret103")
    bad.topics = {"trunk_events": []}
    async with bad:
        with pytest.raises(WsiError, match="not permitted: topics trunk_events"):
            await anext(bad.events())


async def test_client_library_takes_a_clean_close_as_a_drop(tmp_path: Path) -> None:
    """The hub shutting down closes its connections cleanly (1001): the client says so
    to on_retry and waits before reconnecting, as after any drop; without `reconnect`
    it raises. It used to reconnect at once without a word, and without `reconnect` it
    reconnected all the same."""
    hub = Hub(tmp_path).start()
    retries: list[tuple[BaseException, float]] = []
    url = f"ws://127.0.0.1:{hub.wsi_port}/"
    topics = {"extension_events": ["extension_register"]}
    try:
        again = WsiClient(url, tenant="acme", password="tenant-secret", topics=topics,
                          since_seq=0, give_up_after=1.0,
                          on_retry=lambda e, d: retries.append((e, d)))  # fmt: skip
        once = WsiClient(url, tenant="acme", password="tenant-secret", topics=topics,
                         since_seq=0, reconnect=False)  # fmt: skip
        async with again, once:
            events, single = again.events(), once.events()
            register(hub, 1)
            assert (await anext(events))["event_type"] == "extension_register"
            assert (await anext(single))["event_type"] == "extension_register"
            await asyncio.to_thread(hub.stop)
            with pytest.raises(ConnectionError, match=r"the hub closed the connection \(1001"):
                await anext(single)
            with pytest.raises(WsiUnreachable):
                await anext(events)
    finally:
        hub.stop()
    first, delay = retries[0]
    assert "the hub closed the connection (1001 server shutting down)" in str(first), retries
    assert delay > 0
