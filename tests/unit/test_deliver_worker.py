"""The delivery service in-process: real SQLite store, real event log, real HTTP sink.

Per-session order under failures, overflow of the in-memory queue (rows left in the
database and refilled), restart from the outbox, and 410 holding what arrives next.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from callhook import config
from callhook.deliver.service import DeliveryService
from callhook.directory import Tenant
from callhook.events import Event
from callhook.store import Append
from callhook.store.sqlite import SQLiteStore
from tests.support.sink import Recorded, Sink


class Node:
    """A store, an event log and a delivery service, as the hub wires them."""

    def __init__(self, tmp: Path, sink: Sink, delivery: dict[str, Any]) -> None:
        self.settings = config.parse(
            {
                "server": {"database": f"sqlite:///{tmp}/d.db", "allow_private_targets": True},
                "delivery": {"schedule": [0, 0.1, 0.2, 0.3], "jitter": 0, **delivery},
                "tenant": [
                    {
                        "name": "acme",
                        "extension": [{"number": "101"}],
                        "webhook": [{"url": sink.url("/a")}],
                    }
                ],
            },
            env={},
        )
        self.store = SQLiteStore(self.settings.server.database)
        self.log = self.store.log
        self.tenants: dict[str, Tenant] = {}
        self.svc = DeliveryService(
            self.settings,
            self.store.deliveries,
            lambda ev: self.log.append(Append([ev])),
            self.tenants.get,
        )

    async def start(self) -> Node:
        await self.store.open()
        hashes = await self.store.directory.hash_passwords(self.settings)
        await self.store.directory.apply_config(self.settings, hashes)
        self.tenants.update(await self.store.directory.load())
        await self.svc.apply_config()
        self.log.tx_hooks.append(self.svc.outbox.tx_hook)  # as app.py hooks them
        self.log.commit_hooks.append(self.svc.on_commit)
        await self.svc.start()
        return self

    async def stop(self) -> None:
        await self.svc.stop()
        await self.store.close()

    async def publish(self, sessions: int, per_session: int) -> list[Event]:
        """Events interleaved across sessions, committed in small batches."""
        out: list[Event] = []
        for i in range(per_session):
            batch = [
                Event("acme", "call_hold", {"session_id": f"s{s}", "i": i}, ("101",), None, f"s{s}")
                for s in range(sessions)
            ]
            out.extend((await self.log.append(Append(batch))).events)
        return out


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


async def until(cond: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


def delivered(sink: Sink) -> list[Recorded]:
    """Successful requests for the test's events (not the hub's own webhook_events)."""
    return [
        r
        for r in sink.requests("/a")
        if r.answered == 200 and r.json()["event_type"] == "call_hold"
    ]


def assert_session_order(sink: Sink) -> None:
    """No attempt of a session's event before every earlier one of it was answered 200."""
    by_session: dict[str, list[Recorded]] = {}
    for r in sink.requests("/a"):
        body = r.json()
        if body["event_type"] == "call_hold":
            by_session.setdefault(body["session_id"], []).append(r)
    for reqs in by_session.values():
        done = 0  # highest seq answered 200 so far
        for r in reqs:
            seq = r.json()["seq"]
            assert seq >= done, f"seq {seq} sent after {done} was delivered"
            if r.answered == 200:
                done = seq


async def test_failures_keep_per_session_order_and_lose_nothing(tmp_path: Path, sink: Sink) -> None:
    sink.program("/a", status=503, times=25)
    node = await Node(tmp_path, sink, {"schedule": [0] + [0.05] * 20}).start()
    try:
        events = await node.publish(sessions=5, per_session=8)
        await until(lambda: len({r.headers["webhook-id"] for r in delivered(sink)}) == 40)
        assert {r.headers["webhook-id"] for r in delivered(sink)} == {e.event_id for e in events}
        assert_session_order(sink)
    finally:
        await node.stop()


async def test_overflow_stays_in_the_database_and_is_refilled(tmp_path: Path, sink: Sink) -> None:
    node = await Node(tmp_path, sink, {"max_in_flight_per_endpoint": 2}).start()
    node.svc.dispatcher.cap = 7  # tiny queue: most rows wait in the database
    sink.program("/a", delay=0.01)
    try:
        events = await node.publish(sessions=4, per_session=15)
        await until(lambda: len(delivered(sink)) >= 60)
        ids = [r.headers["webhook-id"] for r in delivered(sink)]
        assert sorted(ids) == sorted(e.event_id for e in events)  # each exactly once
        assert_session_order(sink)
        await node.svc.recorder.flush()
        n = await node.store.engine.read(
            lambda c: c.execute("SELECT COUNT(*) FROM deliveries WHERE status='pending'").fetchone()
        )
        assert n[0] == 0
    finally:
        await node.stop()


async def test_pending_rows_are_sent_by_the_next_process(tmp_path: Path, sink: Sink) -> None:
    sink.program("/a", status=503)
    node = await Node(tmp_path, sink, {"schedule": [0, 30]}).start()
    events = await node.publish(sessions=2, per_session=3)
    await until(lambda: sink.count("/a") >= 2)  # the two heads failed; retry in 30 s
    await node.stop()
    sink.clear()
    # Make the retries due now (as time passing would), then start a new process.
    with sqlite3.connect(tmp_path / "d.db") as conn:
        conn.execute("UPDATE deliveries SET next_at = 0")
    node2 = await Node(tmp_path, sink, {"schedule": [0, 30]}).start()
    try:
        await until(lambda: len(delivered(sink)) >= 6)
        assert {r.headers["webhook-id"] for r in delivered(sink)} == {e.event_id for e in events}
        assert_session_order(sink)
    finally:
        await node2.stop()


async def test_gone_disables_holds_and_announces(tmp_path: Path, sink: Sink) -> None:
    sink.program("/a", status=410)
    node = await Node(tmp_path, sink, {}).start()
    try:
        await node.publish(sessions=1, per_session=1)
        await until(lambda: any(not e.active for e in node.svc.index.by_id.values()))
        await node.publish(sessions=1, per_session=2)  # arrives while disabled: held

        def statuses(c: Any) -> dict[str, int]:
            rows = c.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
            return dict(rows.fetchall())

        await node.svc.recorder.flush()
        deadline = time.monotonic() + 5
        while (s := await node.store.engine.read(statuses)).get("held", 0) < 2:
            assert time.monotonic() < deadline, s
            await asyncio.sleep(0.02)
        assert s.get("failed") == 1 and s.get("pending", 0) == 0
        assert sink.count("/a") == 1
        keys = [b for b in await node.log.read("acme", key="endpoint_disabled")]
        assert len(keys) == 1 and b'"reason":"410 Gone' in keys[0]
    finally:
        await node.stop()
