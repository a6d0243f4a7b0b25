"""Report ids a tenant's Kamailio sent recently, to recognise a batch it sends again.

Kamailio sends a batch again when it did not get the hub's 2xx: the answer was lost, or
the hub restarted after committing the batch. Each report carries an id unique to it
(`id`: Kamailio's start time, the process id and a counter of that process). The events a
report caused carry its id as `report_id`, so the ids outlive the process: the first batch
a tenant sends after the hub started reads its last `RECALL` events back from the log.

Per node: with several nodes (a cluster), a batch sent again to another node is stored
once by the inbox, which keeps each report id a day (callhook/store/postgres/inbox.py).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Final

import orjson

from callhook.store import EventLog

KEEP: Final = 100_000  # ids remembered per tenant (Kamailio sends at most 100 per batch)
RECALL: Final = 20_000  # events read back per tenant after a start


class SeenReports:
    """The recent report ids of each tenant, and one lock per tenant: a batch sent again
    while the first is still being written waits for it and is then recognised."""

    def __init__(self, log: EventLog, keep: int = KEEP, recall: int = RECALL) -> None:
        self._log = log
        self._keep = keep
        self._recall = recall
        self._ids: dict[str, OrderedDict[str, None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, tenant: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant, asyncio.Lock())

    async def load(self, tenant: str) -> None:
        """Read the tenant's recent report ids from the log (once per process)."""
        if tenant in self._ids:
            return
        last = await self._log.last_seq(tenant)
        rows = await self._log.read(
            tenant, since_seq=max(0, last - self._recall), limit=self._recall
        )
        ids: OrderedDict[str, None] = OrderedDict()
        for raw in rows:
            rid = orjson.loads(raw).get("report_id")
            if isinstance(rid, str) and rid:
                ids[rid] = None
        self._ids[tenant] = ids
        self._trim(tenant)

    def seen(self, tenant: str, rid: str) -> bool:
        return rid in self._ids.get(tenant, ())

    def add(self, tenant: str, rids: list[str]) -> None:
        ids = self._ids.setdefault(tenant, OrderedDict())
        for rid in rids:
            ids[rid] = None
        self._trim(tenant)

    def _trim(self, tenant: str) -> None:
        ids = self._ids[tenant]
        while len(ids) > self._keep:
            ids.popitem(last=False)
