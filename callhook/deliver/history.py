"""The delivery log: list and show deliveries with their attempts; requeue; prune.

Reads run on reader connections; the requeue and prune functions run in the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

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
    conn: sqlite3.Connection,
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


def get_delivery(conn: sqlite3.Connection, tenant: str, delivery_id: str) -> dict[str, Any] | None:
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


def requeue_one(conn: sqlite3.Connection, tenant: str, delivery_id: str, now: float) -> str | None:
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
    conn: sqlite3.Connection,
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


def hold_pending(conn: sqlite3.Connection, endpoint_id: str, now: float) -> int:
    """An endpoint was disabled: its pending deliveries are kept as `held`."""
    cur = conn.execute(
        "UPDATE deliveries SET status = 'held', updated_at = ? WHERE endpoint_id = ?"
        " AND status = 'pending'",
        (now, endpoint_id),
    )
    return cur.rowcount


def prune(conn: sqlite3.Connection, before: float, limit: int = 5000) -> int:
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


def counts(conn: sqlite3.Connection, endpoint_id: str) -> dict[str, int]:
    """Deliveries per status (dashboard, endpoint view)."""
    return {
        str(s): int(n)
        for s, n in conn.execute(
            "SELECT status, COUNT(*) FROM deliveries WHERE endpoint_id = ? GROUP BY status",
            (endpoint_id,),
        )
    }
