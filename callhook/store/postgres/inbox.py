"""A cluster's inbox: reports stored as they arrive, correlated by their partition's owner.

Any node appends a checked report (a phone's request, a published event, an end-call, a
Kamailio report) to the `inbox` table and answers once that COMMIT returned: the report is
durable whatever node correlates it. The append runs on the inbox's own writer (group
commit, a connection of its own), so it never waits for an owner's transaction, and it
notifies `callhook_inbox_<partition>` in the same transaction, which wakes the owner at
once (LISTEN/NOTIFY; the owner also polls, in case a notification is missed). A channel
per partition: only the node that owns it listens, so the others are not woken for
every report.

The owner reads its partitions' entries in id order and consumes them (DELETE) in the
same fenced transaction that appends their events, snapshots, devices and outbox rows
(`consume`): a crash repeats nothing and loses nothing, and the table holds only what is
not correlated yet. An entry committed late with a smaller id (two nodes' transactions
interleaved) is simply read at the next pass: nothing is skipped.

A report with a dedupe key (a Kamailio report's id) is stored once per tenant and key:
`inbox_seen` remembers the keys a day. A caller that must answer with the committed events
(REST publish, end call) waits for its entry's reply (`inbox_replies`, with a
`callhook_done` notification).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from callhook.store.postgres.connections import TIMEOUT
from callhook.store.postgres.engine import Engine
from callhook.store.sql import Conn
from callhook.store.sql.engine import WriterState

INBOX_CHANNEL = "callhook_inbox_"  # + the partition (payload: the partition)
DONE_CHANNEL = "callhook_done"  # payload: the entry id whose reply is written
SEEN_FOR = 86_400.0  # seconds a dedupe key is remembered
REPLIES_FOR = 600.0  # seconds a reply is kept for its caller


def inbox_channel(partition: int) -> str:
    """The channel a partition's new entries are notified on: only its owner listens."""
    return f"{INBOX_CHANNEL}{partition}"


# Entries not consumed yet, by partition (the cluster status's inbox lag).
LAG = "SELECT partition, COUNT(*) FROM inbox GROUP BY partition"


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A report to store: `kind` says how the owner reads `body` (JSON)."""

    partition: int
    tenant: str
    kind: str
    body: bytes
    dedupe: str = ""  # stored once per (tenant, dedupe); "" none
    # Whether the caller needs the entry's id (to wait for its reply): reading it back
    # costs a round trip in the middle of the pipelined group commit.
    want_id: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored report, as its partition's owner reads it."""

    id: int
    partition: int
    tenant: str
    kind: str
    body: dict[str, Any] | None  # None: not a JSON object (another version wrote it?)
    received_at: float
    raw: bytes = b""  # the stored body, kept when it could not be read


def _entry(i: int, p: int, tenant: str, kind: str, raw: bytes, received_at: float) -> Entry:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        return Entry(i, p, tenant, kind, body, received_at)
    return Entry(i, p, tenant, kind, None, received_at, raw)


_INSERT = "INSERT INTO inbox (partition, tenant, kind, body, received_at) VALUES (?,?,?,?,?)"
# Stored only if its key is new (one statement: pipelined like the others).
_INSERT_ONCE = (
    "WITH seen AS (INSERT INTO inbox_seen (tenant, dedupe, at) VALUES (?,?,?)"
    " ON CONFLICT DO NOTHING RETURNING 1)"
    " INSERT INTO inbox (partition, tenant, kind, body, received_at)"
    " SELECT ?,?,?,?,? FROM seen RETURNING id"
)


class PgInbox:
    """The inbox table: append (any node), read and consume (the partition's owner)."""

    def __init__(self, url: str, *, readers: int = 2, timeout: int = TIMEOUT) -> None:
        # Its own writer connection and thread: an append never queues behind an owner's
        # (fenced, longer) transaction on the store's writer.
        self.engine = Engine(url, readers=readers, timeout=timeout)

    async def open(self) -> None:
        await self.engine.open()

    async def close(self) -> None:
        await self.engine.close()

    def submit(self, entry: NewEntry) -> asyncio.Future[int | None]:
        """Append `entry`: the future gives its id after COMMIT (0 when not `want_id`;
        None: its dedupe key was stored before, nothing was stored again), or raises
        StoreError."""
        return self.engine.submit(lambda conn, st: _append(conn, st, entry))

    async def pending(self, partitions: Sequence[int], limit: int) -> list[Entry]:
        """The oldest entries of `partitions` not consumed yet, in id order."""

        def q(c: Conn) -> list[Entry]:
            rows = c.execute(
                "SELECT id, partition, tenant, kind, body, received_at FROM inbox"
                " WHERE partition = ANY(?) ORDER BY id LIMIT ?",
                (list(partitions), limit),
            ).fetchall()
            return [_entry(int(i), int(p), t, k, bytes(b), float(r)) for i, p, t, k, b, r in rows]

        return await self.engine.read(q)

    async def lag(self) -> dict[int, int]:
        """Entries not consumed yet, by partition."""

        def q(c: Conn) -> dict[int, int]:
            return {int(p): int(n) for p, n in c.execute(LAG)}

        return await self.engine.read(q)

    async def replies(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The replies written for these entries so far."""

        def q(c: Conn) -> dict[int, dict[str, Any]]:
            rows = c.execute("SELECT id, body FROM inbox_replies WHERE id = ANY(?)", (list(ids),))
            return {int(i): orjson.loads(bytes(b)) for i, b in rows}

        return await self.engine.read(q)

    async def prune(self, now: float | None = None) -> None:
        """Forget dedupe keys older than a day and replies nobody fetched (10 minutes)."""
        now = time.time() if now is None else now

        def fn(conn: Conn, st: WriterState) -> None:
            conn.execute("DELETE FROM inbox_seen WHERE at < ?", (now - SEEN_FOR,))
            conn.execute("DELETE FROM inbox_replies WHERE at < ?", (now - REPLIES_FOR,))

        await self.engine.write(fn)


def _append(conn: Conn, st: WriterState, e: NewEntry) -> int | None:
    now = time.time()
    if e.dedupe:
        row = conn.execute(
            _INSERT_ONCE,
            (e.tenant, e.dedupe, now, e.partition, e.tenant, e.kind, e.body, now),
        ).fetchone()
        if row is None:
            return None
    elif e.want_id:
        row = conn.execute(
            _INSERT + " RETURNING id", (e.partition, e.tenant, e.kind, e.body, now)
        ).fetchone()
    else:
        row = (0,)
        conn.execute(_INSERT, (e.partition, e.tenant, e.kind, e.body, now))
    # Notifications go out at COMMIT, once per distinct payload of the transaction.
    conn.execute("SELECT pg_notify(?, ?)", (inbox_channel(e.partition), str(e.partition)))
    return int(row[0])


def consume(conn: Conn, ids: Sequence[int], replies: Sequence[tuple[int, bytes]]) -> None:
    """In the owner's transaction: the entries it correlated are gone, and the callers
    waiting for some of them get their reply (and a notification) at COMMIT."""
    if ids:
        conn.execute("DELETE FROM inbox WHERE id = ANY(?)", (list(ids),))
    if replies:
        now = time.time()
        conn.executemany(
            "INSERT INTO inbox_replies (id, body, at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
            [(i, body, now) for i, body in replies],
        )
        for i, _ in replies:
            conn.execute("SELECT pg_notify(?, ?)", (DONE_CHANNEL, str(i)))
