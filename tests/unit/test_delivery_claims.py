"""The claim rules of a cluster's deliveries, on a real PostgreSQL (two "nodes" = two
ClaimTables with different ids on one database): who may claim what, and when."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import psycopg
import pytest

from callhook.config import DeliveryConfig
from callhook.deliver import payload
from callhook.deliver.claims import Claims
from callhook.deliver.dispatch import Dispatcher
from callhook.deliver.recorder import Recorder
from callhook.deliver.rules import Endpoint, Index
from callhook.deliver.sender import Sender
from callhook.store.postgres.claims import ClaimTable
from callhook.store.postgres.engine import upgrade
from callhook.store.records import Attempt, Update
from tests.support import postgres

pytestmark = pytest.mark.own_engines


@pytest.fixture
def url() -> Iterator[str]:
    db = postgres.fresh_database()
    upgrade(db)
    yield db


def stage(url: str, rows: list[tuple[str, int, str | None]], next_at: float = 0.0) -> None:
    """Deliveries (id, seq, session) of one endpoint, pending and due, with their events."""
    with psycopg.connect(url, autocommit=True) as c:
        for did, seq, session in rows:
            c.execute(
                "INSERT INTO events (tenant, seq, event_id, topic, key, session_id, created_at,"
                " body) VALUES ('t', %s, %s, 'extension_events', 'call_start', %s, 0, %s)",
                (seq, f"ev{seq}", session, b'{"seq": %d}' % seq),
            )
            c.execute(
                "INSERT INTO deliveries (delivery_id, endpoint_id, tenant, seq, event_id, key,"
                " session_id, status, next_at, created_at, updated_at)"
                " VALUES (%s, 'ep', 't', %s, %s, 'call_start', %s, 'pending', %s, 0, 0)",
                (did, seq, f"ev{seq}", session, next_at),
            )


def done(did: str, n: int = 1) -> tuple[list[Update], list[Attempt]]:
    now = time.time()
    return [Update(did, "succeeded", n, now, 200, "", now)], [
        Attempt(did, n, now, 200, 1.0, "", "ok")
    ]


def claimed_by(url: str, did: str) -> tuple[str, str]:
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute(
            "SELECT claimed_by, status FROM deliveries WHERE delivery_id = %s", (did,)
        ).fetchone()
        assert row is not None
        return str(row[0]), str(row[1])


async def test_only_the_head_of_a_session_is_claimed_and_each_once(url: str) -> None:
    stage(url, [("d1", 1, "s"), ("d2", 2, "s"), ("d3", 3, None), ("d4", 4, "s2")])
    a, b = ClaimTable(url, "a", ttl=30), ClaimTable(url, "b", ttl=30)
    try:
        got = await a.claim_due(time.time(), 100)
        assert [i.delivery_id for i in got] == ["d1", "d3", "d4"]
        assert got[0].wire == b'{"seq": 1}' and got[0].session == "s"
        assert await b.claim_due(time.time(), 100) == []  # claimed, or behind d1
        assert await a.claim_due(time.time(), 100) == []  # a holds them already
        await a.record(*done("d1"))
        assert [i.delivery_id for i in await b.claim_due(time.time(), 100)] == ["d2"]
    finally:
        await a.close()
        await b.close()


async def test_claims_taken_at_once_by_two_nodes_never_overlap(url: str) -> None:
    stage(url, [(f"d{n}", n, None) for n in range(1, 201)])
    a, b = ClaimTable(url, "a", ttl=30), ClaimTable(url, "b", ttl=30)
    try:
        results = await asyncio.gather(
            *(t.claim_due(time.time(), 20) for _ in range(5) for t in (a, b))
        )
        ids = [i.delivery_id for r in results for i in r]
        assert len(ids) == len(set(ids)) == 200
    finally:
        await a.close()
        await b.close()


async def test_an_expired_claim_is_taken_and_the_late_node_cannot_overwrite(url: str) -> None:
    stage(url, [("d1", 1, "s"), ("d2", 2, "s")])
    a, b = ClaimTable(url, "a", ttl=1), ClaimTable(url, "b", ttl=30)
    try:
        assert [i.delivery_id for i in await a.claim_due(time.time(), 10)] == ["d1"]
        assert await b.claim_due(time.time(), 10) == []
        await asyncio.sleep(1.2)  # a stalls past its claim
        assert [i.delivery_id for i in await b.claim_due(time.time(), 10)] == ["d1"]
        await a.record(*done("d1"))  # too late: not a's any more
        assert claimed_by(url, "d1") == ("b", "pending")
        assert await a.renew(["d1"]) == set()
        await b.record(*done("d1"))
        assert claimed_by(url, "d1") == ("b", "succeeded")
    finally:
        await a.close()
        await b.close()


async def test_a_retry_stays_with_its_node_until_its_time_plus_the_claim(url: str) -> None:
    stage(url, [("d1", 1, None)])
    a, b = ClaimTable(url, "a", ttl=1), ClaimTable(url, "b", ttl=1)
    try:
        assert len(await a.claim_due(time.time(), 10)) == 1
        now = time.time()
        await a.record([Update("d1", "pending", 1, now + 0.5, 503, "HTTP 503", now)], [])
        await asyncio.sleep(0.7)  # due now, but still a's (its timer sends it)
        assert await b.claim_due(time.time(), 10) == []
        await asyncio.sleep(1.0)  # a did not: anyone may
        got = await b.claim_due(time.time(), 10)
        assert [(i.delivery_id, i.attempts) for i in got] == [("d1", 1)]
    finally:
        await a.close()
        await b.close()


async def test_a_node_gives_its_claims_back(url: str) -> None:
    stage(url, [("d1", 1, None), ("d2", 2, None)])
    a, b = ClaimTable(url, "a", ttl=60), ClaimTable(url, "b", ttl=60)
    try:
        assert len(await a.claim_ids(["d1", "d2", "nope"], time.time())) == 2
        assert await b.claim_ids(["d1"], time.time()) == set()
        assert await a.release() == 2
        assert len(await b.claim_due(time.time(), 10)) == 2
    finally:
        await a.close()
        await b.close()


class _Health:
    def succeeded(self, ep: object) -> None: ...
    def failed(self, ep: object, consecutive: int, reason: str, gone: bool) -> None: ...


async def test_a_node_that_stalled_past_its_claims_drops_what_it_no_longer_holds(
    url: str,
) -> None:
    stage(url, [("d1", 1, None), ("d2", 2, None)])
    a, b = ClaimTable(url, "a", ttl=1), ClaimTable(url, "b", ttl=30)
    claims = Claims(a, lambda _wake, _ev: asyncio.sleep(0), ttl=1, poll=60)
    sender = Sender(connect_timeout=1, total_timeout=1, allow_private=True)
    dispatcher = Dispatcher(
        sender=sender,
        recorder=Recorder(claims),
        store=a,  # type: ignore[arg-type]  # never read: deliveries come from claims
        index=Index,
        build=lambda *_a: None,  # type: ignore[arg-type,return-value]
        settings=DeliveryConfig(),
        health=_Health(),
    )
    claims.dispatcher = dispatcher
    try:
        got = await a.claim_due(time.time(), 10)
        for item in got:  # waiting for a retry an hour away (on a timer)
            item.next_at = time.time() + 3600
        dispatcher.add(got)
        assert dispatcher.depth() == {"ep": 2}
        await asyncio.sleep(1.2)  # stalled: the claims expire, b takes one of them
        assert [i.delivery_id for i in await b.claim_due(time.time(), 1)] == ["d1"]
        await claims._renew()  # renews d2, learns d1 is b's now
        assert list(dispatcher.queues["ep"].items) == ["d2"]
        assert claimed_by(url, "d2") == ("a", "pending")
    finally:
        await dispatcher.stop(grace=0)
        await a.close()
        await b.close()


async def test_work_left_for_want_of_room_is_claimed_when_an_outcome_frees_some(
    url: str,
) -> None:
    stage(url, [("d1", 1, "s1"), ("d2", 2, "s2")])  # two calls: d2 does not wait for d1
    silent = socket.create_server(("127.0.0.1", 0))  # takes the connection, never answers
    port = silent.getsockname()[1]
    index = Index([Endpoint("ep", "t", "webhook", f"http://127.0.0.1:{port}/")])
    a = ClaimTable(url, "a", ttl=30)
    claims = Claims(a, lambda _wake, _ev: asyncio.sleep(0), ttl=30, poll=60, capacity=1)
    dispatcher = Dispatcher(
        sender=Sender(connect_timeout=5, total_timeout=30, allow_private=True),
        recorder=Recorder(claims),
        store=a,  # type: ignore[arg-type]  # never read: deliveries come from claims
        index=lambda: index,
        build=lambda ep, item, ts: payload.webhook(ep, item.event_id, item.wire, ts),
        settings=DeliveryConfig(),
        health=_Health(),
    )
    claims.dispatcher = dispatcher
    try:
        claims.kick()
        assert claims._pass is not None
        await claims._pass
        assert claimed_by(url, "d1") == ("a", "pending")
        assert claimed_by(url, "d2") == ("", "pending")  # no room for it here: d1 in flight
        dispatcher.drop("ep")  # d1 is done with: room again, and no poll for 60 s
        await claims.record(*done("d1"))
        assert claims._pass is not None, "no claim pass after room freed"
        await claims._pass
        assert claimed_by(url, "d2") == ("a", "pending")
    finally:
        await dispatcher.stop(grace=0)
        await a.close()
        silent.close()
