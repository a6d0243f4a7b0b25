"""Partition leases and fenced writes against a real PostgreSQL (tests/support/postgres.py).

Two `Leases` with different node ids in one process stand for two nodes: what is tested
here is the lease SQL and policy (share, hand-back, expiry, epochs) and the writer's
fence, each round driven by hand so that every step is checked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from callhook.cluster.leases import Leases, fair_shares
from callhook.cluster.partitions import PARTITIONS, partition_of
from callhook.events import Event
from callhook.store import Append, Fence, LeaseLost, StoreError, open_store, upgrade
from callhook.store.postgres.leases import LeaseTable
from tests.support import postgres

TTL = 1.0  # short, so that expiry takes a second of the test


@pytest.fixture
def pg_url() -> str:
    url = postgres.fresh_database()
    upgrade(url)
    return url


class Node:
    """One node's `Leases`, recording what its owner processor was told."""

    def __init__(self, url: str, name: str, timeout: float = 2.0, start: float = 0.0) -> None:
        self.metrics = CollectorRegistry()
        table = LeaseTable(url, timeout=timeout)
        self.leases = Leases(table, name, ttl=TTL, renew=0.25, registry=self.metrics)
        self.events: list[tuple[str, int, int]] = []
        self.leases.on_acquired = self._acquired
        self.leases.on_lost = self._lost
        self.start_takes = start  # seconds each on_acquired takes (restoring state)
        self.left_when_stopped: dict[int, float] = {}  # seconds the lease still had

    async def _acquired(self, p: int, epoch: int) -> None:
        await asyncio.sleep(self.start_takes)
        self.events.append(("acquired", p, epoch))

    async def _lost(self, p: int) -> None:
        self.events.append(("lost", p, 0))
        try:
            rows, _ = await asyncio.wait_for(self.leases.status(), TTL / 4)
        except (StoreError, TimeoutError):  # the database is what failed (tested too)
            return
        self.left_when_stopped[p] = rows[p].expires_in

    async def round(self) -> None:
        """One round, and what the processor was told of it."""
        await self.leases.round()
        await self.leases.settled()

    def took(self) -> dict[int, int]:
        return {p: e for kind, p, e in self.events if kind == "acquired"}

    def lost(self) -> set[int]:
        return {p for kind, p, _ in self.events if kind == "lost"}


@pytest.fixture
async def nodes(pg_url: str) -> AsyncIterator[tuple[Node, Node]]:
    a, b = Node(pg_url, "node-a"), Node(pg_url, "node-b")
    try:
        yield a, b
    finally:
        await a.leases.table.close()
        await b.leases.table.close()


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    """Open a store as a clustered node's (its writer shared with other nodes'); each is
    closed after the test."""
    opened: list[Any] = []

    async def store() -> Any:
        s: Any = open_store(pg_url, shared=True)
        await s.open()
        opened.append(s)
        return s

    try:
        yield store
    finally:
        for s in opened:
            await s.close()


async def epochs(url: str) -> dict[int, tuple[str, int]]:
    table = LeaseTable(url)
    try:
        rows, _ = await table.status(TTL)
    finally:
        await table.close()
    return {r.partition: (r.owner, r.epoch) for r in rows}


@pytest.mark.parametrize(
    ("nodes", "shares"),
    [
        (["a"], [16]),
        (["b", "a"], [8, 8]),
        (["c", "a", "b"], [6, 5, 5]),
        (["a", "b", "c", "d", "e"], [4, 3, 3, 3, 3]),
        ([f"n{i:02}" for i in range(20)], [1] * 16 + [0] * 4),
    ],
)
def test_fair_shares_differ_by_one_at_most_and_add_up(nodes: list[str], shares: list[int]) -> None:
    got = fair_shares(nodes)
    assert [got[n] for n in sorted(nodes)] == shares
    assert sum(got.values()) == PARTITIONS


async def test_five_nodes_share_fairly_and_four_take_over_when_one_leaves(pg_url: str) -> None:
    five = [Node(pg_url, f"node-{i}") for i in range(5)]
    try:
        for _ in range(3):  # each joins, then everyone settles
            for n in five:
                await n.round()
        counts = [len(n.leases.owned()) for n in five]
        assert sorted(counts) == [3, 3, 3, 3, 4], counts
        assert len({p for n in five for p in n.leases.owned()}) == PARTITIONS
        await five[0].leases.stop()  # hands everything back, leaves
        for _ in range(2):
            for n in five[1:]:
                await n.round()
        assert [len(n.leases.owned()) for n in five[1:]] == [4, 4, 4, 4]
    finally:
        for n in five[1:]:
            await n.leases.table.close()


async def test_a_lone_node_takes_every_partition_at_epoch_one(nodes: tuple[Node, Node]) -> None:
    a, _ = nodes
    await a.round()
    assert a.leases.owned() == {p: 1 for p in range(PARTITIONS)}
    assert a.took() == a.leases.owned()  # the processor was told, with each epoch
    await a.round()  # renewing changes nothing
    assert a.leases.owned() == {p: 1 for p in range(PARTITIONS)}
    assert len(a.events) == PARTITIONS


async def test_a_node_that_joins_gets_its_share_handed_over_gracefully(
    nodes: tuple[Node, Node], pg_url: str
) -> None:
    a, b = nodes
    await a.round()
    await b.round()  # b is alive now, but every lease is still a's
    assert b.leases.nodes_alive == 2 and b.leases.owned() == {}
    await a.round()  # a sees two nodes: keeps 8, hands back 8 (after stopping them)
    kept = a.leases.owned()
    assert len(kept) == PARTITIONS // 2
    handed = set(range(PARTITIONS)) - set(kept)
    assert a.lost() == handed
    # graceful: each was stopped while its lease still ran, then handed back
    assert all(a.left_when_stopped[p] > 0 for p in handed)
    await b.round()
    assert set(b.leases.owned()) == handed
    assert set(b.leases.owned()).isdisjoint(a.leases.owned())
    # a partition that changes hands gets the next epoch; the fence tells owners apart
    assert all(e == 2 for e in b.leases.owned().values())
    stored = await epochs(pg_url)
    assert {p: o for p, (o, _) in stored.items() if o == "node-b"}.keys() == handed
    # stable: more rounds move nothing
    for _ in range(2):
        await a.round()
        await b.round()
    assert len(a.leases.owned()) + len(b.leases.owned()) == PARTITIONS
    assert len(b.events) == len(handed) and a.lost() == handed


async def test_a_node_that_stops_renewing_loses_everything_to_the_other(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await a.round()
    await b.round()
    await a.round()
    await b.round()
    before = a.leases.owned()
    assert len(before) == 8
    # a pauses (no round): by the local deadline it stops processing by itself...
    await asyncio.sleep(TTL + 0.1)
    a.leases._expire()
    await a.leases.settled()
    assert a.leases.owned() == {} and a.lost() >= set(before)
    # ...and b, seeing one node alive, takes all of a's partitions at the next epoch
    await b.round()
    assert b.leases.nodes_alive == 1
    owned = b.leases.owned()
    assert set(owned) == set(range(PARTITIONS))
    assert all(owned[p] == before[p] + 1 for p in before)
    # a comes back: it renews nothing, and gets work back only by handover
    await a.round()
    assert a.leases.owned() == {}
    await b.round()
    await a.round()
    assert len(a.leases.owned()) == 8
    assert all(e == before.get(p, 2) + 2 for p, e in a.leases.owned().items() if p in before)


async def test_a_stopping_node_hands_everything_back_at_once(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.round()
    await b.round()
    await a.leases.stop()  # no lease time to wait: b takes all on its next round
    assert a.lost() == set(range(PARTITIONS))
    started = time.monotonic()
    await b.round()
    assert set(b.leases.owned()) == set(range(PARTITIONS))
    assert time.monotonic() - started < TTL  # taken at once, not after expiry
    assert b.leases.nodes_alive == 1  # a left the heartbeat table too


async def test_the_loop_keeps_leases_and_gives_them_up_alone(pg_url: str) -> None:
    a = Node(pg_url, "node-a")
    await a.leases.start()
    try:
        assert len(a.leases.owned()) == PARTITIONS  # the first share, taken at start
        await asyncio.sleep(TTL * 2.5)  # renewed all along
        assert len(a.leases.owned()) == PARTITIONS
        assert a.lost() == set()
    finally:
        await a.leases.stop()
    assert a.lost() == set(range(PARTITIONS))


def _event(tenant: str, n: int) -> Event:
    return Event(tenant=tenant, key="dnd_on", body={"extension": f"sip:{n}@x"}, extensions=("1",))


async def test_a_node_that_cannot_renew_stops_processing_by_itself(pg_url: str) -> None:
    a = Node(pg_url, "node-a", timeout=TTL * 6)  # a renewal waits that long at most
    await a.leases.start()
    blocker = await psycopg.AsyncConnection.connect(pg_url)
    try:
        assert len(a.leases.owned()) == PARTITIONS
        # another session holds every lease row: a's renewals wait (then fail) meanwhile
        await blocker.execute("SELECT * FROM partition_leases FOR UPDATE")
        started = time.monotonic()
        while a.lost() != set(range(PARTITIONS)):
            assert time.monotonic() - started < TTL * 5, "still processing"
            await asyncio.sleep(0.05)
        assert a.leases.owned() == {}
        # by its own deadline: its renewal is still waiting, nothing has failed yet
        waiting = await blocker.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%%partition_leases%%'"
        )
        assert (await waiting.fetchone()) == (1,)
        await blocker.rollback()
        # the database answers again: the leases, expired by now, are taken back, each
        # at the next epoch (what was written under epoch 1 can be told apart)
        while len(a.leases.owned()) < PARTITIONS:
            assert time.monotonic() - started < TTL * 10, "never taken back"
            await asyncio.sleep(0.05)
        assert set(a.leases.owned().values()) == {2}
        failed = a.metrics.get_sample_value("callhook_lease_rounds_failed_total")
        assert failed is not None and failed >= 1
        assert a.metrics.get_sample_value("callhook_partitions_owned") == PARTITIONS
        lost = a.metrics.get_sample_value("callhook_partition_changes_total", {"change": "lost"})
        assert lost == PARTITIONS
    finally:
        await blocker.close()
        await a.leases.stop()


async def test_a_slow_start_never_delays_the_renewals(pg_url: str) -> None:
    # restoring each partition takes 0.3 s: 16 of them take 4.8 s, several lease times
    a = Node(pg_url, "node-a", start=0.3)
    await a.leases.start()
    try:
        await asyncio.sleep(TTL * 2.5)
        assert a.lost() == set()  # renewed all along, none lost while starting
        assert len(a.leases.owned()) == PARTITIONS
        assert 0 < len(a.took()) < PARTITIONS  # the starts go on, one after the other
    finally:
        await a.leases.stop()


async def test_with_no_processor_leases_are_just_held(pg_url: str) -> None:
    leases = Leases(LeaseTable(pg_url), "node-a", ttl=TTL, renew=0.25)
    await leases.start()  # no on_acquired / on_lost set: a node before its pipeline
    try:
        assert len(leases.owned()) == PARTITIONS
    finally:
        await leases.stop()
    assert leases.owned() == {}
    assert {o for o, _ in (await epochs(pg_url)).values()} == {"node-a"}


async def test_a_write_under_a_stale_epoch_stores_nothing(
    nodes: tuple[Node, Node], stores: Callable[[], Awaitable[Any]]
) -> None:
    a, b = nodes
    store = await stores()
    await a.round()
    p = partition_of("acme")
    fence = a.leases.fence(p)
    assert fence == Fence(p, "node-a", 1)
    stored = await store.log.append(Append([_event("acme", 1)], fences=[fence]))
    assert [e.seq for e in stored.events] == [1]

    # a's lease runs out (a paused) and b takes the partition at epoch 2
    await asyncio.sleep(TTL + 0.1)
    with pytest.raises(LeaseLost):  # expired, not yet taken: refused already
        await store.log.append(Append([_event("acme", 2)], fences=[fence]))
    await b.round()
    assert b.leases.owned()[p] == 2
    # a's stale write, in the same group commit as b's good one: a's alone is refused
    stale, good = await asyncio.gather(
        store.log.append(Append([_event("acme", 3)], fences=[fence])),
        store.log.append(Append([_event("acme", 4)], fences=[b.leases.fence(p)])),
        return_exceptions=True,
    )
    assert isinstance(stale, LeaseLost) and isinstance(stale, StoreError)
    assert stale.fence == fence
    assert not isinstance(good, BaseException)
    assert [e.seq for e in good.events] == [2]  # seq stays gap-free
    bodies = await store.log.read("acme")
    assert [b'"sip:2@x"' in x or b'"sip:3@x"' in x for x in bodies] == [False, False]
    assert len(bodies) == 2
    # once a gave the partition up (its own deadline), it has no fence to write with
    a.leases._expire()
    await a.leases.settled()
    with pytest.raises(LeaseLost):
        a.leases.fence(p)


async def test_a_write_held_up_while_its_lease_changes_hands_stores_nothing(
    nodes: tuple[Node, Node], stores: Callable[[], Awaitable[Any]], pg_url: str
) -> None:
    """The fence is checked in the transaction that commits the write, not when it was
    handed over: a write that waited (behind another one of its node's writer, here one
    waiting for the writers' lock) while its lease changed hands is refused."""
    from callhook.store.postgres.engine import WRITER_LOCK

    a, b = nodes
    store = await stores()
    blocker = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        await a.round()
        p = partition_of("acme")
        await blocker.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK,))
        ahead = asyncio.ensure_future(store.log.append(Append([_event("beta", 1)])))
        await asyncio.sleep(0.2)  # the writer is in ahead's transaction, for the lock
        held_up = asyncio.ensure_future(
            store.log.append(Append([_event("acme", 1)], fences=[a.leases.fence(p)]))
        )
        await asyncio.sleep(TTL + 0.1)  # a's lease runs out while its write waits
        await b.round()
        assert b.leases.owned()[p] == 2
        assert not held_up.done() and not ahead.done()
        await blocker.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))
        assert [e.seq for e in (await ahead).events] == [1]
        with pytest.raises(LeaseLost):
            await held_up
        assert await store.log.read("acme") == []
    finally:
        await blocker.close()


async def test_owners_commit_without_waiting_for_the_writers_lock(
    nodes: tuple[Node, Node], stores: Callable[[], Awaitable[Any]], pg_url: str
) -> None:
    """A partition owner's writes (fenced) do not take the lock unfenced writes take
    turns with: another node holding it (applying a config file, say) holds up none of
    the owners' commits."""
    from callhook.store.postgres.engine import WRITER_LOCK

    a, _ = nodes
    store = await stores()
    blocker = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        await a.round()
        fence = a.leases.fence(partition_of("acme"))
        await blocker.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK,))
        fenced = store.log.append(Append([_event("acme", 1)], fences=[fence]))
        stored = await asyncio.wait_for(fenced, 5)
        assert [e.seq for e in stored.events] == [1]
        unfenced = asyncio.ensure_future(store.log.append(Append([_event("beta", 1)])))
        await asyncio.sleep(0.3)
        assert not unfenced.done()  # it waits for the lock
        await blocker.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))
        assert [e.seq for e in (await unfenced).events] == [1]
    finally:
        await blocker.close()


async def test_writers_of_two_nodes_keep_one_tenants_seq_gap_free(
    stores: Callable[[], Awaitable[Any]],
) -> None:
    """Each writer keeps the seqs it assigned: when the other node appended since, the
    next one is taken (the log's primary key fails the transaction), and the batch runs
    again reading the seq from the log."""
    one = await stores()
    two = await stores()
    seqs = []
    for n, store in enumerate([one, one, two, one, two, two, one]):
        stored = await store.log.append(Append([_event("acme", n), _event("beta", n)]))
        seqs.append([e.seq for e in stored.events])
    assert seqs == [[n, n] for n in range(1, 8)]
    assert len(await one.log.read("acme")) == 7


async def test_an_owner_and_another_nodes_unfenced_writes_keep_seq_gap_free(
    nodes: tuple[Node, Node], stores: Callable[[], Awaitable[Any]]
) -> None:
    """The owner's commits (fenced, no lock) and another node's unfenced events for the
    same tenant (under the lock) at once: every seq is used once, none skipped, each
    stored in the order of its seq. (The hub sends every event of a tenant through its
    owner; this is what keeps the log right should any other writer append.)"""
    a, _ = nodes
    owner = await stores()
    other = await stores()
    await a.round()
    fence = a.leases.fence(partition_of("acme"))

    async def owner_writes() -> list[int]:
        out = []
        for n in range(40):
            batch = Append([_event("acme", n), _event("acme", n)], fences=[fence])
            out += [e.seq for e in (await owner.log.append(batch)).events]
        return out

    async def other_writes() -> list[int]:
        out = []
        for n in range(40):
            out += [e.seq for e in (await other.log.append(Append([_event("acme", n)]))).events]
        return out

    mine, theirs = await asyncio.gather(owner_writes(), other_writes())
    assert sorted(mine + theirs) == list(range(1, 121))
    assert mine == sorted(mine) and theirs == sorted(theirs)
    assert len(await owner.log.read("acme", limit=200)) == 120


async def test_fenced_writes_need_postgresql(tmp_path: Any) -> None:
    store: Any = open_store(f"sqlite:///{tmp_path}/one.db")
    await store.open()
    try:
        with pytest.raises(StoreError, match="PostgreSQL"):
            await store.log.append(Append([_event("acme", 1)], fences=[Fence(0, "x", 1)]))
        assert await store.log.read("acme") == []
    finally:
        await store.close()
