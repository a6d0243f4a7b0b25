"""Read events back from the durable log for `since_seq` resumption.

The log's public reader returns wire bodies only; replay also needs the routing columns
(extensions, queue) that are not part of the wire body, so it reads the `events` table
directly, read-only, on the store's reader threads. Each SELECT is one WAL snapshot, and
events commit in `seq` order, so a page always holds a gap-free prefix of the log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import NamedTuple

from callhook.wsi.auth import Reader

PAGE = 500


class Row(NamedTuple):
    """One stored event: what routing needs, and the wire body to send."""

    seq: int
    key: str
    extensions: tuple[str, ...]
    queue: str | None
    body: bytes


def _select(
    conn: sqlite3.Connection, tenant: str, since: int, keys: Collection[str] | None, limit: int
) -> list[Row]:
    sql = "SELECT seq, key, extensions, queue, body FROM events WHERE tenant=? AND seq>?"
    args: list[object] = [tenant, since]
    if keys is not None:
        sql += f" AND key IN ({','.join('?' * len(keys))})"
        args.extend(keys)
    sql += " ORDER BY seq LIMIT ?"
    args.append(limit)
    return [
        Row(int(seq), key, tuple(e for e in (exts or "").split(",") if e), queue, bytes(body))
        for seq, key, exts, queue, body in conn.execute(sql, args)
    ]


async def read_page(
    store: Reader,
    tenant: str,
    since: int,
    keys: Collection[str] | None = None,
    limit: int = PAGE,
) -> list[Row]:
    """Up to `limit` events of `tenant` after `since` (only `keys`, when given), oldest first."""
    if keys is not None and not keys:
        return []
    return await store.read(lambda c: _select(c, tenant, since, keys, limit))
