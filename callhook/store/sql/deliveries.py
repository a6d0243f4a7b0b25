"""The outbox and its attempt log: pending work, outcomes, history, requeues, pruning."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from callhook.deliver.rules import Endpoint
from callhook.store import EndpointPlan
from callhook.store.records import Attempt, AttemptRow, EndpointState, Item, Update
from callhook.store.sql import Conn, endpoints
from callhook.store.sql.engine import ThreadEngine as Engine

T = TypeVar("T")

_SELECT_ITEMS = (
    "SELECT d.delivery_id, d.endpoint_id, d.seq, d.event_id, d.session_id, d.attempts,"
    " d.schedule_base, d.next_at, e.body, e.extensions, d.context"
    " FROM deliveries d JOIN events e ON e.tenant = d.tenant AND e.seq = d.seq"
)


def _item(row: tuple[Any, ...]) -> Item:
    exts = tuple(x for x in str(row[9]).split(",") if x)
    return Item(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bytes(row[8]), exts, row[10]
    )


def load_pending(
    conn: Conn, endpoint_id: str, *, after_seq: int = 0, limit: int = 10_000
) -> list[Item]:
    """Pending deliveries of one endpoint, oldest event first (per-session order)."""
    rows = conn.execute(
        _SELECT_ITEMS + " WHERE d.endpoint_id = ? AND d.status = 'pending' AND d.seq > ?"
        " ORDER BY d.seq LIMIT ?",
        (endpoint_id, after_seq, limit),
    ).fetchall()
    return [_item(r) for r in rows]


def load_items(conn: Conn, delivery_ids: list[str]) -> list[Item]:
    """Specific deliveries (redeliver), whatever their status."""
    marks = ",".join("?" * len(delivery_ids))
    rows = conn.execute(
        _SELECT_ITEMS + f" WHERE d.delivery_id IN ({marks}) ORDER BY d.seq", delivery_ids
    ).fetchall()
    return [_item(r) for r in rows]


def pending_endpoints(conn: Conn) -> list[str]:
    """Endpoints with pending deliveries (to fill the queues at start)."""
    rows = conn.execute("SELECT DISTINCT endpoint_id FROM deliveries WHERE status = 'pending'")
    return [str(r[0]) for r in rows]


def write_batch(conn: Conn, updates: list[Update], attempts: list[Attempt]) -> None:
    """Record delivery outcomes and attempts."""
    conn.executemany(
        "UPDATE deliveries SET status=?, attempts=?, next_at=?, last_code=?, last_error=?,"
        " updated_at=? WHERE delivery_id=?",
        [
            (
                u.status,
                u.attempts,
                u.next_at,
                u.last_code,
                u.last_error,
                u.updated_at,
                u.delivery_id,
            )
            for u in updates
        ],
    )
    # Only for deliveries that still exist: an attempt may finish after its endpoint (and
    # with it the delivery) was deleted.
    conn.executemany(
        "INSERT INTO delivery_attempts SELECT CAST(? AS TEXT), CAST(? AS BIGINT),"
        " CAST(? AS DOUBLE PRECISION), CAST(? AS BIGINT), CAST(? AS DOUBLE PRECISION),"
        " CAST(? AS TEXT), CAST(? AS TEXT)"
        " WHERE EXISTS (SELECT 1 FROM deliveries WHERE delivery_id = ?)"
        " ON CONFLICT (delivery_id, n) DO UPDATE SET at = excluded.at,"
        " status_code = excluded.status_code, latency_ms = excluded.latency_ms,"
        " error = excluded.error, response = excluded.response",
        [
            (
                a.delivery_id,
                a.n,
                a.at,
                a.status_code,
                a.latency_ms,
                a.error,
                a.response,
                a.delivery_id,
            )
            for a in attempts
        ],
    )


_DELIVERY_COLUMNS = (
    "delivery_id, endpoint_id, seq, event_id, key, session_id, status, attempts, next_at,"
    " last_code, last_error, created_at, updated_at"
)


def _delivery(r: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": r[0],
        "endpoint_id": r[1],
        "seq": r[2],
        "event_id": r[3],
        "event_type": r[4],
        "session_id": r[5],
        "status": r[6],
        "attempts": r[7],
        "next_attempt_at": r[8] if r[6] == "pending" else None,
        "last_status_code": r[9],
        "last_error": r[10] or None,
        "created_at": r[11],
        "updated_at": r[12],
    }


def list_deliveries(
    conn: Conn,
    endpoint_id: str,
    *,
    status: str | None = None,
    since: float | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; page with `before_seq` = the last row's `seq`."""
    sql = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE endpoint_id = ?"
    args: list[Any] = [endpoint_id]
    if status:
        sql += " AND status = ?"
        args.append(status)
    if since is not None:
        sql += " AND created_at >= ?"
        args.append(since)
    if before_seq is not None:
        sql += " AND seq < ?"
        args.append(before_seq)
    sql += " ORDER BY seq DESC LIMIT ?"
    args.append(limit)
    return [_delivery(r) for r in conn.execute(sql, args)]


def get_delivery(conn: Conn, tenant: str, delivery_id: str) -> dict[str, Any] | None:
    """One delivery with every attempt (time, status code, latency, error, response excerpt)."""
    row = conn.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id = ? AND tenant = ?",
        (delivery_id, tenant),
    ).fetchone()
    if row is None:
        return None
    out = _delivery(row)
    out["attempt_log"] = [
        {
            "n": a[0],
            "at": a[1],
            "status_code": a[2],
            "latency_ms": a[3],
            "error": a[4] or None,
            "response": a[5],
        }
        for a in conn.execute(
            "SELECT n, at, status_code, latency_ms, error, response FROM delivery_attempts"
            " WHERE delivery_id = ? ORDER BY n",
            (delivery_id,),
        )
    ]
    return out


def requeue_one(conn: Conn, tenant: str, delivery_id: str, now: float) -> str | None:
    """Make one delivery pending and due now (a fresh retry schedule); returns its endpoint."""
    row = conn.execute(
        "SELECT endpoint_id FROM deliveries WHERE delivery_id = ? AND tenant = ?",
        (delivery_id, tenant),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE deliveries SET status = 'pending', next_at = ?, schedule_base = attempts,"
        " updated_at = ? WHERE delivery_id = ?",
        (now, now, delivery_id),
    )
    return str(row[0])


def requeue_range(
    conn: Conn,
    endpoint_id: str,
    *,
    since: float,
    until: float,
    statuses: Sequence[str],
    now: float,
) -> int:
    """Replay: deliveries created in [since, until] with one of `statuses` become pending."""
    marks = ",".join("?" * len(statuses))
    cur = conn.execute(
        "UPDATE deliveries SET status = 'pending', next_at = ?, schedule_base = attempts,"
        f" updated_at = ? WHERE endpoint_id = ? AND created_at >= ? AND created_at <= ?"
        f" AND status IN ({marks})",
        (now, now, endpoint_id, since, until, *statuses),
    )
    return cur.rowcount


def hold_pending(conn: Conn, endpoint_id: str, now: float) -> int:
    """An endpoint was disabled: its pending deliveries are kept as `held`."""
    cur = conn.execute(
        "UPDATE deliveries SET status = 'held', updated_at = ? WHERE endpoint_id = ?"
        " AND status = 'pending'",
        (now, endpoint_id),
    )
    return cur.rowcount


def prune(conn: Conn, before: float, limit: int = 5000) -> int:
    """Delete finished deliveries (and their attempts) created before `before`, a chunk."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT delivery_id FROM deliveries WHERE created_at < ? AND status != 'pending'"
            " LIMIT ?",
            (before, limit),
        )
    ]
    if not ids:
        return 0
    conn.executemany("DELETE FROM delivery_attempts WHERE delivery_id = ?", [(i,) for i in ids])
    conn.executemany("DELETE FROM deliveries WHERE delivery_id = ?", [(i,) for i in ids])
    return len(ids)


def counts(conn: Conn, endpoint_id: str) -> dict[str, int]:
    """Deliveries per status (dashboard, endpoint view)."""
    return {
        str(s): int(n)
        for s, n in conn.execute(
            "SELECT status, COUNT(*) FROM deliveries WHERE endpoint_id = ? GROUP BY status",
            (endpoint_id,),
        )
    }


def recent_health(
    conn: Conn, tenant: str, since: float, max_attempts: int
) -> tuple[list[tuple[str, str, int]], list[AttemptRow]]:
    counts = [
        (str(e), str(s), int(n))
        for e, s, n in conn.execute(
            "SELECT endpoint_id, status, COUNT(*) FROM deliveries"
            " WHERE created_at >= ? AND tenant = ? GROUP BY endpoint_id, status",
            (since, tenant),
        )
    ]
    attempts = [
        AttemptRow(*r)
        for r in conn.execute(
            "SELECT d.endpoint_id, d.delivery_id, d.status, a.at, a.status_code, a.latency_ms,"
            " a.error FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.delivery_id"
            " WHERE d.created_at >= ? AND d.tenant = ? ORDER BY a.at DESC LIMIT ?",
            (since, tenant, max_attempts),
        )
    ]
    return counts, attempts


class SqlDeliveries:
    """Endpoints, outbox and attempt log in the SQLite file (store.Deliveries)."""

    def __init__(self, engine: Engine) -> None:
        self._e = engine

    async def _write(self, fn: Callable[[Conn], T]) -> T:
        return await self._e.write(lambda c, _st: fn(c))

    async def load_endpoints(self) -> list[Endpoint]:
        return await self._e.read(endpoints.load_all)

    async def insert_endpoint(self, ep: Endpoint) -> None:
        await self._write(lambda c: endpoints.insert(c, ep))

    async def update_endpoint(self, ep: Endpoint, *, hold_at: float | None = None) -> None:
        def write(c: Conn) -> None:
            endpoints.update(c, ep)
            if hold_at is not None:
                hold_pending(c, ep.endpoint_id, hold_at)

        await self._write(write)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._write(lambda c: endpoints.delete(c, endpoint_id))

    async def sync_config_endpoints(self, plan: EndpointPlan) -> list[str]:
        return await self._write(lambda c: endpoints.sync_config(c, plan))

    async def set_endpoint_state(self, state: EndpointState, *, hold: bool, now: float) -> None:
        def write(c: Conn) -> None:
            endpoints.set_state(
                c,
                state.endpoint_id,
                health=state.health,
                failing_since=state.failing_since,
                disabled_reason=state.disabled_reason,
                now=now,
            )
            if hold:
                hold_pending(c, state.endpoint_id, now)

        await self._write(write)

    async def pending_endpoints(self) -> list[str]:
        return await self._e.read(pending_endpoints)

    async def load_pending(
        self, endpoint_id: str, *, after_seq: int = 0, limit: int = 10_000
    ) -> list[Item]:
        return await self._e.read(
            lambda c: load_pending(c, endpoint_id, after_seq=after_seq, limit=limit)
        )

    async def load_items(self, delivery_ids: list[str]) -> list[Item]:
        return await self._e.read(lambda c: load_items(c, delivery_ids))

    async def record(self, updates: list[Update], attempts: list[Attempt]) -> None:
        await self._write(lambda c: write_batch(c, updates, attempts))

    async def list_deliveries(
        self,
        endpoint_id: str,
        *,
        status: str | None = None,
        since: float | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        return await self._e.read(
            lambda c: list_deliveries(
                c, endpoint_id, status=status, since=since, before_seq=before_seq, limit=limit
            )
        )

    async def get_delivery(self, tenant: str, delivery_id: str) -> dict[str, Any] | None:
        return await self._e.read(lambda c: get_delivery(c, tenant, delivery_id))

    async def requeue_one(self, tenant: str, delivery_id: str, now: float) -> str | None:
        return await self._write(lambda c: requeue_one(c, tenant, delivery_id, now))

    async def requeue_range(
        self,
        endpoint_id: str,
        *,
        since: float,
        until: float,
        statuses: Sequence[str],
        now: float,
    ) -> int:
        return await self._write(
            lambda c: requeue_range(
                c, endpoint_id, since=since, until=until, statuses=statuses, now=now
            )
        )

    async def prune(self, before: float, limit: int = 5000) -> int:
        return await self._write(lambda c: prune(c, before, limit))

    async def recent_health(
        self, tenant: str, since: float, max_attempts: int
    ) -> tuple[list[tuple[str, str, int]], list[AttemptRow]]:
        return await self._e.read(lambda c: recent_health(c, tenant, since, max_attempts))
