"""Read-side queries: CDRs and devices (the event log's reads live in log.py)."""

from __future__ import annotations

from typing import Any

import orjson

from callhook.store.records import CdrFilter
from callhook.store.sql import Conn
from callhook.store.sql.log import EXTENSION_MATCH, ext_needle


def cdrs(conn: Conn, tenant: str, f: CdrFilter) -> list[tuple[int, bytes]]:
    """(seq, body) of matching CDRs, oldest first."""
    sql = "SELECT seq, body FROM cdrs WHERE tenant=? AND seq>?"
    args: list[Any] = [tenant, f.after]
    if f.start_from is not None:
        sql += " AND start_time>=?"
        args.append(f.start_from)
    if f.start_to is not None:
        sql += " AND start_time<?"
        args.append(f.start_to)
    if f.extension:
        sql += " AND " + EXTENSION_MATCH
        args.append(ext_needle(f.extension))
    if f.status:
        sql += " AND status=?"
        args.append(f.status)
    sql += " ORDER BY seq LIMIT ?"
    args.append(f.limit)
    return [(int(r[0]), bytes(r[1])) for r in conn.execute(sql, args)]


DEVICE_COLUMNS = (
    "mac",
    "vendor",
    "model",
    "firmware",
    "hardware",
    "ip",
    "extension",
    "last_event",
    "first_seen",
    "last_seen",
    "details",
)


def devices(conn: Conn, tenant: str) -> list[dict[str, Any]]:
    cols = ", ".join(DEVICE_COLUMNS)
    rows = conn.execute(f"SELECT {cols} FROM devices WHERE tenant=? ORDER BY mac", (tenant,))
    out = [dict(zip(DEVICE_COLUMNS, r, strict=True)) for r in rows]
    for d in out:  # a JSON object in the row: language, active_user, active_host, ...
        try:
            d["details"] = orjson.loads(d["details"] or "{}")
        except orjson.JSONDecodeError:
            d["details"] = {}
    return out
