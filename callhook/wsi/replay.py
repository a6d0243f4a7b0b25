"""Read events back from the durable log for `since_seq` resumption.

Replay needs the routing columns (extensions, queue) besides the wire body, so it reads
`EventLog.read_stored`: pages of `StoredEvent`, each a gap-free prefix of the log after
`since` (events commit in `seq` order).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from callhook.store.records import StoredEvent

PAGE = 500


class StoredReader(Protocol):
    """The event log's replay read."""

    async def read_stored(
        self, tenant: str, since: int, keys: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]: ...


async def read_page(
    log: StoredReader,
    tenant: str,
    since: int,
    keys: Collection[str] | None = None,
    limit: int = PAGE,
) -> list[StoredEvent]:
    """Up to `limit` events of `tenant` after `since` (only `keys`, when given), oldest first."""
    if keys is not None and not keys:
        return []
    return await log.read_stored(tenant, since, None if keys is None else sorted(keys), limit)
