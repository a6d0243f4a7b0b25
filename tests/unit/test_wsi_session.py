"""Session logic without sockets: replay + live switch-over, command order, garbage limit.

The log is a real SQLite `events` table; "commits" insert a row and then publish the
event to the service, the same order as the hub (publish after commit).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, TypeVar

import orjson

from callhook import config
from callhook.bus.memory import MemoryBus
from callhook.connections import ConnectionLimits
from callhook.directory import Extension, Tenant
from callhook.events import Event
from callhook.limits.node import node_limits
from callhook.store.records import StoredEvent
from callhook.store.sql.log import _ext_column
from callhook.wsi.permissions import Principal
from callhook.wsi.service import WsiService
from callhook.wsi.session import Outgoing, Session

T = TypeVar("T")


class FakeStore:
    """The events table, plus hooks that 'commit' around each replay read."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute(
            "CREATE TABLE events (tenant, seq, event_id, topic, key, session_id, extensions,"
            " queue, created_at, body)"
        )
        self.before_read: Callable[[], None] | None = None
        self.after_read: Callable[[], None] | None = None

    async def read_stored(
        self, tenant: str, since: int, keys: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        await asyncio.sleep(0)
        if self.before_read:
            self.before_read()  # committed before the snapshot: in the page and held live
        sql = "SELECT seq, key, extensions, queue, body FROM events WHERE tenant=? AND seq>?"
        args: list[object] = [tenant, since]
        if keys is not None:
            sql += f" AND key IN ({','.join('?' * len(keys))})"
            args.extend(keys)
        rows = self.conn.execute(sql + " ORDER BY seq LIMIT ?", [*args, limit])
        result = [
            StoredEvent(seq, key, tuple(x for x in exts.split(",") if x), queue, body)
            for seq, key, exts, queue, body in rows
        ]
        if self.after_read:
            self.after_read()  # committed after it: only held live
        return result


class Recorder(Session):
    """A session whose transport is a list."""

    __slots__ = ("closes", "out")

    def __init__(self, service: WsiService) -> None:
        super().__init__(service, "127.0.0.1")
        self.out: list[dict[str, Any]] = []
        self.closes: list[tuple[int, str]] = []

    def send(self, payload: bytes) -> None:
        self.out.append(orjson.loads(payload))

    def deliver(self, out: Outgoing) -> bool:
        if self.replay is not None:
            return self.hold(out)
        self.send(out.payload)
        return True

    async def wait_writable(self) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))
        self.forget()


def make_service() -> tuple[WsiService, FakeStore]:
    tenant = Tenant("acme", "1", "acme.example.com", extensions={"101": Extension("101")})
    store = FakeStore()
    hub = SimpleNamespace(
        settings=config.parse({}, env={}),
        tenants={"acme": tenant},
        bus=MemoryBus(),
        log=store,
        state=SimpleNamespace(),
        limits=node_limits(config.parse({}, env={}).auth, "memory", "n"),
        store=SimpleNamespace(directory=SimpleNamespace()),
        connections=ConnectionLimits(100, 100),
    )
    return WsiService(hub), store  # type: ignore[arg-type]


class Log:
    """Appends events to the table and publishes them, like the hub's commit hook."""

    def __init__(self, service: WsiService, store: FakeStore) -> None:
        self.service, self.store, self.seq = service, store, 0

    def commit(self, ext: str = "101", key: str = "call_start") -> None:
        self.seq += 1
        ev = Event("acme", key, {"n": self.seq}, extensions=(ext,), seq=self.seq)
        ev.event_id = f"e{self.seq}"
        self.store.conn.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                *("acme", ev.seq, ev.event_id, ev.topic, ev.key, None),
                *(_ext_column(ev.extensions), None, 0.0, ev.wire_bytes()),
            ),
        )
        self.service.publish([ev])


async def authed(service: WsiService) -> Recorder:
    s = Recorder(service)
    s.principal = Principal("acme")
    service.sessions.add(s)
    return s


async def settle(s: Session) -> None:
    if s.task is not None:
        await s.task


async def test_replay_then_live_has_no_gap_and_no_duplicate() -> None:
    service, store = make_service()
    log = Log(service, store)
    for _ in range(3):
        log.commit()
    store.before_read = lambda: log.commit()
    store.after_read = lambda: log.commit()
    s = await authed(service)
    s.on_message(b'{"command":"subscribe","topics":[{"topic":"extension_events"}],"since_seq":1}')
    await settle(s)
    store.before_read = store.after_read = None
    log.commit()  # plain live
    assert s.out[0] == {"status": 0}
    assert [m["seq"] for m in s.out[1:]] == list(range(2, log.seq + 1))


async def test_replay_filters_like_the_subscription() -> None:
    service, store = make_service()
    log = Log(service, store)
    log.commit("101")
    log.commit("102")
    log.commit("101", key="call_ended")
    s = await authed(service)
    cmd = (
        b'{"command":"subscribe","topics":[{"topic":"extension_events","keys":["call_start"]}],'
        b'"extensions":["101"],"since_seq":0}'
    )
    s.on_message(cmd)
    await settle(s)
    assert [m.get("seq") for m in s.out] == [None, 1]


async def test_commands_behind_a_slow_one_keep_their_order() -> None:
    service, _ = make_service()
    s = await authed(service)
    s.on_message(b'{"command":"subscribe","topics":[{"topic":"cdr_events"}],"since_seq":0}')
    s.on_message(b'{"command":"ping"}')
    s.on_message(b"junk")
    assert s.out == [{"status": 0}]  # the others wait for the replay
    await settle(s)
    assert s.out[1:] == [{"status": 0, "pong": True}, {"error": "malformed JSON", "status": -1}]


async def test_held_events_over_budget_close_with_the_replay_position() -> None:
    service, store = make_service()
    service.max_queue_bytes = 100
    log = Log(service, store)
    log.commit()

    def flood() -> None:
        for _ in range(5):
            log.commit()

    store.after_read = flood
    s = await authed(service)
    s.on_message(b'{"command":"subscribe","topics":[{"topic":"extension_events"}],"since_seq":0}')
    await settle(s)
    # closed while reading the first page: nothing was replayed yet, so resume from 0
    assert s.closes == [(1013, "slow consumer: resume with since_seq 0")]
    assert s.out == [{"status": 0}]


async def test_garbage_only_clients_are_dropped() -> None:
    service, _ = make_service()
    s = Recorder(service)
    for _ in range(12):
        s.on_message(b"garbage")
    assert len(s.out) == 10
    assert s.closes[0] == (1008, "too many invalid commands")


async def test_a_directory_change_during_a_replay_narrows_it_and_the_held_events() -> None:
    service, store = make_service()
    sales = {n: Extension(n, groups=("sales",)) for n in ("101", "102")}
    service.tenants["acme"] = Tenant("acme", "1", "acme.example.com", extensions=sales)  # type: ignore[index]
    log = Log(service, store)
    log.commit("102")
    log.commit("101")
    s = Recorder(service)
    s.principal = Principal("acme", "101")
    service.sessions.add(s)
    moved = Tenant(
        "acme",
        "1",
        "acme.example.com",
        extensions={"101": sales["101"], "102": Extension("102", groups=("support",))},
    )

    def change() -> None:
        store.before_read = None
        log.commit("102")  # held live, then taken away
        service.tenants["acme"] = moved  # type: ignore[index]
        s.recheck(moved, None)
        log.commit("101")  # held live, still allowed

    store.before_read = change
    s.on_message(b'{"command":"subscribe","topics":[{"topic":"extension_events"}],"since_seq":0}')
    await settle(s)
    log.commit("102")  # live, after: not routed any more
    log.commit("101")
    assert s.out[0] == {"status": 0}
    assert [m["seq"] for m in s.out[1:]] == [2, 4, 6]  # 101's only
