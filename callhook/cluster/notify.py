"""LISTEN for the inbox's notifications: new entries (wake the owner), replies written.

One connection per node, in autocommit, reconnecting by itself. A notification missed
while it reconnects costs latency only: the owner and the reply waiters also poll.
New entries are notified on one channel per partition, and a node listens only to the
partitions it owns (`follow`): a report wakes its owner, not every node of the cluster.
The channels followed change at most a second after the leases did (the connection is
busy waiting for notifications meanwhile); the owner is woken once they are listened
to, so an entry notified just before is not left for its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

import psycopg

from callhook.store.postgres.connections import TIMEOUT, connect_async
from callhook.store.postgres.inbox import DONE_CHANNEL, INBOX_CHANNEL, inbox_channel

log = logging.getLogger("callhook.cluster")

RECONNECT = 1.0  # seconds between attempts
FOLLOW_EVERY = 1.0  # seconds between checks of the partitions to listen to


class Listener:
    """Calls `on_inbox(partition)` and `on_done(entry_id)` as notifications arrive."""

    def __init__(
        self,
        url: str,
        on_inbox: Callable[[int], None],
        on_done: Callable[[int], None],
        timeout: int = TIMEOUT,
    ) -> None:
        self.url = url
        self.timeout = timeout  # a silent connection is given up after it (then again)
        self.on_inbox = on_inbox
        self.on_done = on_done
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._wanted: frozenset[int] = frozenset()  # partitions to listen to

    def follow(self, partitions: Iterable[int]) -> None:
        """Listen to these partitions' new entries (those this node owns), only."""
        self._wanted = frozenset(partitions)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inbox-listener")
        with contextlib.suppress(asyncio.TimeoutError):  # not fatal: the owner polls
            await asyncio.wait_for(self.connected.wait(), self.timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                conn = await connect_async(self.url, self.timeout, bound_statements=False)
            except psycopg.Error as exc:
                log.warning("inbox listener cannot connect: %s", " ".join(str(exc).split()))
                await asyncio.sleep(RECONNECT)
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {DONE_CHANNEL}")
                    listening: frozenset[int] = frozenset()
                    self.connected.set()
                    self.on_inbox(-1)  # whatever came while not listening: look now
                    while True:
                        listening = await self._listen(conn, listening)
                        async for n in conn.notifies(timeout=FOLLOW_EVERY):
                            self._dispatch(n.channel, n.payload)
            except psycopg.Error as exc:
                log.warning("inbox listener lost PostgreSQL: %s", " ".join(str(exc).split()))
            self.connected.clear()
            await asyncio.sleep(RECONNECT)

    async def _listen(
        self, conn: psycopg.AsyncConnection[object], listening: frozenset[int]
    ) -> frozenset[int]:
        """LISTEN to the partitions wanted now, UNLISTEN the others; what is listened to."""
        wanted = self._wanted
        for p in sorted(listening - wanted):
            await conn.execute(f"UNLISTEN {inbox_channel(p)}")
        added = sorted(wanted - listening)
        for p in added:
            await conn.execute(f"LISTEN {inbox_channel(p)}")
        if added:
            self.on_inbox(-1)  # entries notified before we listened: look now
        return wanted

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            value = int(payload)
        except ValueError:
            return
        try:
            if channel.startswith(INBOX_CHANNEL):
                self.on_inbox(value)
            elif channel == DONE_CHANNEL:
                self.on_done(value)
        except Exception:  # a consumer's bug must not stop the notifications
            log.exception("inbox notification handler failed")
