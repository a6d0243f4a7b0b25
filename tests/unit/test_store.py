"""The event log on both backends: group commit, seq, isolation of a failing op."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from callhook.deliver.outbox import Outbox
from callhook.deliver.rules import Index
from callhook.events import Event
from callhook.store import Append, Appended, AppendTx, StoreError, open_store
from callhook.store.records import NewDelivery
from callhook.store.sql.engine import WriterState


def _ev(tenant: str, n: int) -> Event:
    return Event(
        tenant=tenant, key="dnd_on", body={"extension": f"sip:{n}@x"}, extensions=(str(n),)
    )


async def test_concurrent_appends_group_commit_and_gap_free_seq(store_url: str) -> None:
    store: Any = open_store(store_url)
    await store.open()
    log = store.log
    seen: list[int] = []
    log.commit_hooks.append(lambda c: seen.extend(e.seq for e in c.events))
    try:
        results = await asyncio.gather(
            *(log.append(Append([_ev("a", i), _ev("a", i)])) for i in range(500)),
            *(log.append(Append([_ev("b", i)])) for i in range(100)),
        )
        a = sorted(e.seq for r in results for e in r.events if e.tenant == "a")
        b = sorted(e.seq for r in results for e in r.events if e.tenant == "b")
        assert a == list(range(1, 1001))
        assert b == list(range(1, 101))
        # Far fewer transactions than operations: that is the group commit.
        assert store.engine.batches < store.engine.ops
        # Commit hooks ran in commit order, before the appends returned.
        assert len(seen) == 1100
        bodies = await log.read("a", since_seq=998)
        assert [b'"seq":999' in bodies[0], b'"seq":1000' in bodies[1]] == [True, True]
        assert await log.last_seq("a") == 1000
    finally:
        await store.close()


async def test_a_failing_op_does_not_fail_its_neighbours_nor_burn_seq(store_url: str) -> None:
    store: Any = open_store(store_url)
    await store.open()
    log = store.log

    def bad(conn: sqlite3.Connection, st: WriterState) -> None:
        st.next_seq(conn, "a")
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    try:
        results = await asyncio.gather(
            log.append(Append([_ev("a", 1)])),
            store.engine.write(bad),
            log.append(Append([_ev("a", 2)])),
            return_exceptions=True,
        )
        assert isinstance(results[1], StoreError)
        ok = [r for r in results if isinstance(r, Appended)]
        assert sorted(e.seq for r in ok for e in r.events) == [1, 2]
    finally:
        await store.close()
    with pytest.raises(StoreError):
        await store.engine.write(bad)


async def test_state_round_trip(store_url: str) -> None:
    store: Any = open_store(store_url)
    await store.open()
    log = store.log
    try:
        await log.append(
            Append(
                [],
                sessions=[("a", "s1", {"session_id": "s1"}), ("a", "s2", {"x": 1})],
                presence=[("a", "101", {"dnd": True})],
            )
        )
        await log.append(Append([], sessions=[("a", "s2", None)]))
        sessions, presence = await store.state.load()
        assert sessions == [{"session_id": "s1"}]
        assert presence == [{"dnd": True}]
    finally:
        await store.close()


async def test_a_rolled_back_append_leaves_the_outbox_memory_as_it_was(store_url: str) -> None:
    """The outbox notes each call's parties and answer in memory inside the transaction;
    when the transaction rolls back, what it noted must go with it."""
    store: Any = open_store(store_url)
    await store.open()
    outbox = Outbox(Index)
    store.log.tx_hooks.append(outbox.tx_hook)

    def refuse(_tx: AppendTx, events: list[Event]) -> None:
        if any(e.body.get("refuse") for e in events):
            raise RuntimeError("refused after the outbox hook ran")

    store.log.tx_hooks.append(refuse)
    start = {"session_id": "s1", "caller": "sip:101@x", "callee": "0711"}
    try:
        await store.log.append(Append([Event("a", "call_start", start, ("101",), None, "s1")]))
        before = outbox.parties.entry("s1")
        assert before is not None
        answer = {"session_id": "s1", "caller": "sip:102@x", "refuse": True}
        with pytest.raises(StoreError):
            await store.log.append(
                Append([Event("a", "call_established", answer, ("101",), None, "s1")])
            )
        assert outbox.parties.entry("s1") == before
        later = Event("a", "call_ended", {"session_id": "s1"}, ("101",), None, "s1")
        assert not outbox._was_answered(_NoLog(), later)
        assert await store.log.last_seq("a") == 1
    finally:
        await store.close()


class _NoLog:
    """An AppendTx for a call this process saw start: the log is never asked."""

    def first_event_body(self, tenant: str, session: str, key: str, since: float) -> bytes | None:
        raise AssertionError("the outbox should know this call")

    def add_deliveries(self, rows: Sequence[NewDelivery]) -> None: ...

    def on_rollback(self, undo: Callable[[], None]) -> None: ...


async def test_a_nul_character_in_a_text_column_does_not_fail_the_write(store_url: str) -> None:
    """PostgreSQL's text refuses U+0000. A value that reaches the log with one (a
    published queue or session id, a number a Kamailio report carried) must not fail the
    group commit it is in, again on every retry (on a cluster, the partition's owner would
    retry it forever); where PostgreSQL cannot keep it, it is stored as U+FFFD."""
    store: Any = open_store(store_url)
    await store.open()
    log = store.log
    try:
        ev = Event(
            tenant="a", key="queue_member_state", body={"queue": "80\x001"}, queue="80\x001",
            session_id="s\x00x", extensions=("1\x000",),
        )  # fmt: skip
        neighbour = _ev("a", 1)
        got = await asyncio.gather(log.append(Append([ev])), log.append(Append([neighbour])))
        assert [len(a.events) for a in got] == [1, 1]
        stored = await log.read_stored("a", 0, None, 10)
        assert len(stored) == 2
        nul = "\x00" if store_url.startswith("sqlite") else "\ufffd"
        assert {s.queue for s in stored} == {f"80{nul}1", None}
        assert any(b"80\\u00001" in s.body for s in stored)  # the body as it was sent
    finally:
        await store.close()
