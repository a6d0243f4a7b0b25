"""The SQL of webhook deliveries claimed by a cluster's nodes (PostgreSQL only).

A pending delivery is *claimable* when it is due, nobody holds it (`claimed_by` empty, or
its `claim_until` passed: a node died or stalled), and it is the head of its (endpoint,
session): no earlier delivery of the same session to the same endpoint is still pending.
So one delivery per (endpoint, session) is in flight in the whole cluster and each
endpoint gets a call's events in order, whichever node wrote them. Rows are picked with
`FOR UPDATE SKIP LOCKED`: nodes claiming at the same moment take different rows and never
wait for each other. Claim times are the server's clock; `next_at` is the claiming
node's (it is a retry delay, set by the node that made the attempt).

Outcomes are written only while the writing node still holds the claim (a node that
stalled past its claim and comes back cannot overwrite what the node that took over
decided). The policy (when to claim, how many, renewing) is callhook/deliver/claims.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from callhook.store import StoreError
from callhook.store.postgres.connections import TIMEOUT, connect_async
from callhook.store.records import Attempt, Item, Update

log = logging.getLogger("callhook.deliver")

CHANNEL = "callhook_deliveries"  # NOTIFY: claimable work another node may take
RECONNECT = 1.0  # seconds between attempts to listen again

_NOW = "extract(epoch from statement_timestamp())"

# Due and free to take. Each arm of the OR is a partial index (migration 8): nobody's,
# or an expired claim.
_FREE = f"""
    d.status = 'pending'
    AND ((d.claimed_by = '' AND d.next_at <= %(now)s::float8)
         OR (d.claimed_by <> '' AND d.claim_until < {_NOW} AND d.next_at <= %(now)s::float8))"""

# ... and not behind an earlier pending delivery of its (endpoint, session).
_CLAIMABLE = f"""{_FREE}
    AND (d.session_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM deliveries e
        WHERE e.endpoint_id = d.endpoint_id AND e.session_id = d.session_id
          AND e.status = 'pending' AND e.seq < d.seq))
"""

# The end of a claiming statement (its UPDATE in a `claimed` CTE): the claimed rows as
# Items, with what sending them needs (the event's stored wire JSON), in seq order.
_ITEMS = """
    RETURNING d.delivery_id, d.endpoint_id, d.seq, d.event_id, d.session_id, d.attempts,
              d.schedule_base, d.next_at, d.context, d.tenant
)
SELECT c.delivery_id, c.endpoint_id, c.seq, c.event_id, c.session_id, c.attempts,
       c.schedule_base, c.next_at, ev.body, ev.extensions, c.context
FROM claimed c JOIN events ev ON ev.tenant = c.tenant AND ev.seq = c.seq
ORDER BY c.seq
"""

# Any due delivery, with what sending it needs.
_CLAIM_DUE = f"""
WITH picked AS (
    SELECT d.delivery_id FROM deliveries d
    WHERE {_CLAIMABLE}
    ORDER BY d.next_at LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    UPDATE deliveries d SET claimed_by = %(me)s, claim_until = {_NOW} + %(ttl)s::float8
    FROM picked WHERE d.delivery_id = picked.delivery_id
{_ITEMS}"""

# Just-committed deliveries this node already has in memory: only their ids come back.
_CLAIM_IDS = f"""
WITH picked AS (
    SELECT d.delivery_id FROM deliveries d
    WHERE d.delivery_id = ANY(%(ids)s) AND {_CLAIMABLE}
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d SET claimed_by = %(me)s, claim_until = {_NOW} + %(ttl)s::float8
FROM picked WHERE d.delivery_id = picked.delivery_id
RETURNING d.delivery_id
"""

# After outcomes: the next pending delivery of each (endpoint, session) whose delivery
# just finished, claimed by the node that finished it (it was waiting behind it). One
# index range per finished delivery, not a scan of everything waiting.
_CLAIM_NEXT = f"""
WITH done AS (
    SELECT DISTINCT endpoint_id, session_id FROM deliveries
    WHERE delivery_id = ANY(%(ids)s) AND session_id IS NOT NULL AND status <> 'pending'
), heads AS (
    SELECT h.delivery_id FROM done CROSS JOIN LATERAL (
        SELECT d.delivery_id FROM deliveries d
        WHERE d.endpoint_id = done.endpoint_id AND d.session_id = done.session_id
          AND d.status = 'pending'
        ORDER BY d.seq LIMIT 1) h
), claimed AS (
    UPDATE deliveries d SET claimed_by = %(me)s, claim_until = {_NOW} + %(ttl)s::float8
    FROM heads WHERE d.delivery_id = heads.delivery_id AND {_FREE}
{_ITEMS}"""

_RENEW = f"""
UPDATE deliveries SET claim_until = GREATEST(claim_until, {_NOW} + %(ttl)s::float8)
WHERE delivery_id = ANY(%(ids)s) AND claimed_by = %(me)s AND status = 'pending'
RETURNING delivery_id
"""

# A retry waiting for its time stays with the node that made the attempt (its timer),
# until its delay plus the claim time passed: then any node may take it.
# A batch of outcomes and attempts in one statement (arrays, not a statement per row).
_RECORD = f"""
WITH u AS (
    SELECT * FROM unnest(%(ids)s::text[], %(statuses)s::text[], %(attempts)s::bigint[],
                         %(next_at)s::float8[], %(codes)s::bigint[], %(errors)s::text[],
                         %(updated)s::float8[])
        AS u(delivery_id, status, attempts, next_at, last_code, last_error, updated_at)
), outcomes AS (
    UPDATE deliveries d SET status = u.status, attempts = u.attempts, next_at = u.next_at,
        last_code = u.last_code, last_error = u.last_error, updated_at = u.updated_at,
        claim_until = CASE WHEN u.status = 'pending'
            THEN {_NOW} + GREATEST(0, u.next_at - u.updated_at) + %(ttl)s::float8
            ELSE d.claim_until END
    FROM u WHERE d.delivery_id = u.delivery_id AND d.claimed_by = %(me)s
      AND d.status = 'pending'
    RETURNING d.delivery_id
)
INSERT INTO delivery_attempts
SELECT a.* FROM unnest(%(a_ids)s::text[], %(a_n)s::bigint[], %(a_at)s::float8[],
                       %(a_codes)s::bigint[], %(a_latency)s::float8[], %(a_errors)s::text[],
                       %(a_responses)s::text[])
    AS a(delivery_id, n, at, status_code, latency_ms, error, response)
WHERE EXISTS (SELECT 1 FROM deliveries WHERE delivery_id = a.delivery_id)
ON CONFLICT (delivery_id, n) DO UPDATE SET at = excluded.at,
    status_code = excluded.status_code, latency_ms = excluded.latency_ms,
    error = excluded.error, response = excluded.response
"""

# Pending deliveries by the node holding them ('' : nobody), with those due and the
# oldest due time (the cluster status's delivery lag).
_BACKLOG = """
SELECT claimed_by, COUNT(*), COUNT(*) FILTER (WHERE next_at <= %(now)s::float8),
       MIN(next_at) FILTER (WHERE next_at <= %(now)s::float8)
FROM deliveries WHERE status = 'pending' GROUP BY claimed_by ORDER BY claimed_by
"""

_RELEASE = """
UPDATE deliveries SET claimed_by = '', claim_until = 0
WHERE claimed_by = %(me)s AND status = 'pending'
"""


def _item(row: tuple[Any, ...]) -> Item:
    exts = tuple(x for x in str(row[9]).split(",") if x)
    return Item(str(row[0]), str(row[1]), int(row[2]), str(row[3]), row[4], int(row[5]),
                int(row[6]), float(row[7]), bytes(row[8]), exts, str(row[10]))  # fmt: skip


class ClaimTable:
    """One node's own connection for claims and outcomes (never queued behind the writer).

    Every call has a deadline (`timeout` seconds, connecting included); a failure closes
    the connection (the next call connects again) and raises StoreError.
    """

    def __init__(self, url: str, me: str, *, ttl: float, timeout: float = 5.0) -> None:
        self.url = url
        self.me = me
        self.ttl = ttl
        self.timeout = timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        # One statement (or one outcome transaction) at a time on the one connection:
        # a claim must never run inside another caller's transaction.
        self._lock = asyncio.Lock()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            conn = self._conn = await connect_async(self.url, self.timeout)
        return conn

    async def _run(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with self._lock:
            try:
                conn = await self._connection()
                cur = await conn.execute(sql, params)
                return await cur.fetchall() if cur.description else []
            except psycopg.Error as exc:
                await self._drop()
                raise StoreError(f"delivery claims: {' '.join(str(exc).split())}") from exc

    async def claim_due(self, now: float, limit: int) -> list[Item]:
        """Claim up to `limit` claimable deliveries due at `now` (this node's clock)."""
        params = {"me": self.me, "ttl": self.ttl, "now": now, "limit": limit}
        return [_item(r) for r in await self._run(_CLAIM_DUE, params)]

    async def claim_ids(self, ids: list[str], now: float) -> set[str]:
        """Claim those of `ids` that are claimable at `now` (this node's clock); returns
        the ones claimed."""
        if not ids:
            return set()
        params = {"me": self.me, "ttl": self.ttl, "ids": ids, "now": now}
        rows = await self._run(_CLAIM_IDS, params)
        return {str(r[0]) for r in rows}

    async def renew(self, ids: list[str]) -> set[str]:
        """Extend this node's claims on `ids`; returns those still this node's."""
        if not ids:
            return set()
        rows = await self._run(_RENEW, {"me": self.me, "ttl": self.ttl, "ids": ids})
        return {str(r[0]) for r in rows}

    async def record(
        self, updates: list[Update], attempts: list[Attempt], now: float | None = None
    ) -> list[Item]:
        """Outcomes of this node's attempts (one statement); with `now` (this node's
        clock), then claims what each finished delivery let go next and returns it."""
        last = {u.delivery_id: u for u in updates}  # the newest of each, in order
        tried = {(a.delivery_id, a.n): a for a in attempts}
        us, at = list(last.values()), list(tried.values())
        params = {
            "me": self.me, "ttl": self.ttl,
            "ids": [u.delivery_id for u in us], "statuses": [u.status for u in us],
            "attempts": [u.attempts for u in us], "next_at": [u.next_at for u in us],
            "codes": [u.last_code for u in us], "errors": [u.last_error for u in us],
            "updated": [u.updated_at for u in us],
            "a_ids": [a.delivery_id for a in at], "a_n": [a.n for a in at],
            "a_at": [a.at for a in at], "a_codes": [a.status_code for a in at],
            "a_latency": [a.latency_ms for a in at], "a_errors": [a.error for a in at],
            "a_responses": [a.response for a in at],
        }  # fmt: skip
        await self._run(_RECORD, params)
        finished = [u.delivery_id for u in us if u.status != "pending"]
        if not finished or now is None:
            return []
        params = {"me": self.me, "ttl": self.ttl, "ids": finished, "now": now}
        return [_item(r) for r in await self._run(_CLAIM_NEXT, params)]

    async def release(self) -> int:
        """Give up every claim of this node on pending deliveries (start and stop)."""
        rows = await self._run(_RELEASE + " RETURNING delivery_id", {"me": self.me})
        return len(rows)

    async def backlog(self, now: float) -> list[dict[str, Any]]:
        """Pending deliveries per holder ('': not claimed), how many are due at `now`, and
        for how long the oldest due one has waited."""
        return [
            {"claimed_by": str(by), "pending": int(n), "due": int(due),
             "oldest_due_s": round(max(0.0, now - float(first)), 3) if first is not None else None}
            for by, n, due, first in await self._run(_BACKLOG, {"now": now})
        ]  # fmt: skip

    async def notify(self) -> None:
        """Tell the other nodes there is claimable work."""
        await self._run("SELECT pg_notify(%(ch)s, %(me)s)", {"ch": CHANNEL, "me": self.me})

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass


async def listen(
    url: str,
    me: str,
    on_notify: Callable[[], None],
    connected: asyncio.Event,
    silent_after: int = TIMEOUT,
) -> None:
    """LISTEN for other nodes' notices, forever, reconnecting by itself (a connection
    silent for `silent_after` seconds is given up); calls `on_notify` for each, and once
    on every (re)connection: what came while not listening."""
    while True:
        try:
            conn = await connect_async(url, silent_after, bound_statements=False)
        except psycopg.Error as exc:
            log.warning("delivery claims cannot listen: %s", " ".join(str(exc).split()))
            await asyncio.sleep(RECONNECT)
            continue
        try:
            async with conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                connected.set()
                on_notify()
                async for n in conn.notifies():
                    if n.payload != me:
                        on_notify()
        except psycopg.Error as exc:
            log.warning("delivery claims lost PostgreSQL: %s", " ".join(str(exc).split()))
        connected.clear()
        await asyncio.sleep(RECONNECT)
