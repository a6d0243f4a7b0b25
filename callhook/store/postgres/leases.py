"""The SQL of a cluster's partition leases and node heartbeats (PostgreSQL only).

`partition_leases` has one row per partition: its owner, a fencing `epoch` that grows by
one each time the partition changes hands, and `expires_at`. Every time is the server's
`now()`: no node's clock is trusted. `cluster_nodes` holds each node's last heartbeat,
written in the same statement that renews its leases, so a node whose leases expired is
no longer counted alive either. The policy (fair share, hand-back, giving up) is
`callhook/cluster/leases.py`; this module only says what the database does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import psycopg

from callhook.store import Fence, StoreError
from callhook.store.postgres.connections import connect_async
from callhook.store.sql import Conn

# Run first in a fenced transaction: the leases still held at their epoch, locked (FOR
# SHARE) until COMMIT, so none changes hands while the transaction writes. Every statement
# here that locks several lease rows and may wait locks them in partition order (ORDER BY
# comes before the lock), so a fenced write and a renewal never wait for each other in a
# circle (a deadlock PostgreSQL would end after a second by failing one of them).
FENCE = (
    "SELECT l.partition, l.owner, l.epoch FROM partition_leases l"
    " JOIN unnest(?::int[], ?::text[], ?::bigint[]) AS f(p, o, e)"
    " ON l.partition = f.p AND l.owner = f.o AND l.epoch = f.e"
    " WHERE l.expires_at > statement_timestamp() ORDER BY l.partition FOR SHARE OF l"
)


# FENCE in a pipelined transaction: fails it (without a round trip to wait for the rows)
# unless every lease is held; the writer then runs the operations again one at a time,
# each checking its own fences with FENCE.
ASSERT_FENCES = (
    f"SELECT callhook_assert(count(*) = ?, 'a lease fence failed') FROM ({FENCE}) AS held"
)


def assert_fences(conn: Conn, fences: set[Fence]) -> None:
    """Fail the transaction (at COMMIT's round trip at the latest) unless every one of
    `fences` is held; the held ones stay locked until the transaction ends."""
    given = list(fences)
    conn.execute(
        ASSERT_FENCES,
        (
            len(given),  # the count's `?` comes first in the statement
            [f.partition for f in given],
            [f.owner for f in given],
            [f.epoch for f in given],
        ),
    )


def failed_fences(conn: Conn, fences: set[Fence]) -> set[Fence]:
    """Those of `fences` not held now; the held ones stay locked until the transaction ends."""
    given = list(fences)
    rows = conn.execute(
        FENCE,
        ([f.partition for f in given], [f.owner for f in given], [f.epoch for f in given]),
    ).fetchall()
    held = {Fence(int(p), str(o), int(e)) for p, o, e in rows}
    return fences - held


# Heartbeat and renewal in one statement (one round trip a second), which also says who
# else is alive and what they hold (the statement cannot see its own writes: others only).
_BEAT = """
WITH beat AS (
    INSERT INTO cluster_nodes (node_id, seen_at) VALUES (%(me)s, now())
    ON CONFLICT (node_id) DO UPDATE SET seen_at = now()
), mine AS (
    SELECT l.partition FROM partition_leases l
    JOIN unnest(%(parts)s::int[], %(epochs)s::bigint[]) AS h(p, e)
    ON l.partition = h.p AND l.epoch = h.e
    WHERE l.owner = %(me)s AND l.expires_at > now()
    ORDER BY l.partition FOR NO KEY UPDATE OF l
), renewed AS (
    UPDATE partition_leases l SET expires_at = now() + make_interval(secs => %(ttl)s)
    FROM mine WHERE l.partition = mine.partition
    RETURNING l.partition
)
SELECT ARRAY(SELECT node_id FROM cluster_nodes
             WHERE node_id <> %(me)s AND seen_at > now() - make_interval(secs => %(ttl)s)),
       ARRAY(SELECT partition FROM renewed),
       ARRAY(SELECT owner FROM partition_leases
             WHERE owner <> %(me)s AND expires_at > now())
"""

# Free or expired partitions, taken with the epoch one higher. Rows another transaction
# holds (a fenced write in flight, another node taking it) are skipped, never waited for.
# The partitions this node held last come first, then from an offset of its own, so that
# nodes starting together do not all reach for the same rows.
_ACQUIRE = """
UPDATE partition_leases l
SET owner = %(me)s, epoch = l.epoch + 1, expires_at = now() + make_interval(secs => %(ttl)s)
WHERE l.partition IN (
    SELECT partition FROM partition_leases WHERE expires_at < now()
    ORDER BY owner <> %(me)s, (partition + %(offset)s) %% %(n)s
    LIMIT %(want)s FOR UPDATE SKIP LOCKED
) AND l.expires_at < now()
RETURNING l.partition, l.epoch
"""

# Handing back: the lease expires now (the owner stays shown until another node takes it).
_RELEASE = """
WITH mine AS (
    SELECT l.partition FROM partition_leases l
    JOIN unnest(%(parts)s::int[], %(epochs)s::bigint[]) AS h(p, e)
    ON l.partition = h.p AND l.epoch = h.e
    WHERE l.owner = %(me)s AND l.expires_at > now()
    ORDER BY l.partition FOR NO KEY UPDATE OF l
)
UPDATE partition_leases l SET expires_at = now() FROM mine WHERE l.partition = mine.partition
"""

# A node leaving: every lease it owns expires now.
_LEAVE = """
WITH mine AS (
    SELECT partition FROM partition_leases WHERE owner = %(me)s AND expires_at > now()
    ORDER BY partition FOR NO KEY UPDATE
)
UPDATE partition_leases l SET expires_at = now() FROM mine WHERE l.partition = mine.partition
"""

_STATUS = """
SELECT partition, owner, epoch, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM partition_leases ORDER BY partition
"""

_NODES = """
SELECT node_id, EXTRACT(EPOCH FROM now() - seen_at)::float8 FROM cluster_nodes
WHERE seen_at > now() - make_interval(secs => %(ttl)s) ORDER BY node_id
"""


@dataclass(frozen=True, slots=True)
class Beat:
    """What one heartbeat learnt."""

    others: tuple[str, ...]  # the other nodes alive (heartbeat younger than the lease time)
    renewed: frozenset[int]  # this node's partitions renewed (the others are not its own)
    held_by: dict[str, int]  # leases running now per other owner


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """One partition's lease as the database has it now."""

    partition: int
    owner: str  # "" never owned
    epoch: int
    expires_in: float  # seconds; <= 0: free (expired or handed back)


class LeaseTable:
    """One node's own connection to the lease tables (never queued behind the writer).

    Every call has a deadline (`timeout` seconds, connecting included); a failure closes
    the connection (the next call connects again) and raises StoreError.
    """

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._connecting = asyncio.Lock()  # the renewals and a status query may race here

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        async with self._connecting:
            conn = self._conn
            if conn is None or conn.closed or conn.broken:
                conn = self._conn = await connect_async(self.url, self.timeout)
            return conn

    async def _run(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            conn = await self._connection()
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            await self.close()
            raise StoreError(f"partition leases: {' '.join(str(exc).split())}") from exc

    async def beat(self, me: str, held: dict[int, int], ttl: float) -> Beat:
        """Heartbeat, and renew `held` (partition -> epoch) for `ttl` seconds."""
        parts = sorted(held)
        rows = await self._run(
            _BEAT, {"me": me, "ttl": ttl, "parts": parts, "epochs": [held[p] for p in parts]}
        )
        others, renewed, owners = rows[0]
        held_by: dict[str, int] = {}
        for owner in owners:
            held_by[str(owner)] = held_by.get(str(owner), 0) + 1
        return Beat(tuple(str(n) for n in others), frozenset(int(p) for p in renewed), held_by)

    async def acquire(
        self, me: str, want: int, ttl: float, *, offset: int, partitions: int
    ) -> dict[int, int]:
        """Take up to `want` free or expired partitions: partition -> its new epoch."""
        if want <= 0:
            return {}
        params = {"me": me, "ttl": ttl, "want": want, "offset": offset, "n": partitions}
        return {int(p): int(e) for p, e in await self._run(_ACQUIRE, params)}

    async def release(self, me: str, leases: dict[int, int]) -> None:
        """Hand back `leases` (partition -> epoch): free for another node at once."""
        if leases:
            parts = sorted(leases)
            epochs = [leases[p] for p in parts]
            await self._run(_RELEASE, {"me": me, "parts": parts, "epochs": epochs})

    async def leave(self, me: str) -> None:
        """This node stops: every lease it holds expires now (one taken by a round cut
        short too) and it is no longer counted alive."""
        await self._run(_LEAVE, {"me": me})
        await self._run("DELETE FROM cluster_nodes WHERE node_id = %(me)s", {"me": me})

    async def status(self, ttl: float) -> tuple[list[LeaseRow], list[tuple[str, float]]]:
        """Every partition's lease, and the nodes alive with seconds since their heartbeat."""
        leases = [
            LeaseRow(int(p), str(o), int(e), round(float(x), 3))
            for p, o, e, x in await self._run(_STATUS, {})
        ]
        nodes = [(str(n), float(ago)) for n, ago in await self._run(_NODES, {"ttl": ttl})]
        return leases, nodes

    async def inbox_lag(self) -> dict[int, int]:
        """Inbox entries not consumed yet, by partition (for a status without a node)."""
        from callhook.store.postgres.inbox import LAG  # (imports this module's importer)

        return {int(p): int(n) for p, n in await self._run(LAG, {})}

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass
