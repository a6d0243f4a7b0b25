"""LISTEN for the inbox's notifications: new entries (wake the owner), replies written.

One connection per node, in autocommit, reconnecting by itself. A notification missed
while it reconnects costs latency only: the owner and the reply waiters also poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from psycopg.conninfo import make_conninfo

from callhook.store.postgres.engine import TIMEOUT, dsn, liveness
from callhook.store.postgres.inbox import DONE_CHANNEL, INBOX_CHANNEL

log = logging.getLogger("callhook.cluster")

RECONNECT = 1.0  # seconds between attempts


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
                conninfo = make_conninfo(dsn(self.url), **liveness(self.url, self.timeout))
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            except psycopg.Error as exc:
                log.warning("inbox listener cannot connect: %s", " ".join(str(exc).split()))
                await asyncio.sleep(RECONNECT)
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {INBOX_CHANNEL}")
                    await conn.execute(f"LISTEN {DONE_CHANNEL}")
                    self.connected.set()
                    self.on_inbox(-1)  # whatever came while not listening: look now
                    async for n in conn.notifies():
                        self._dispatch(n.channel, n.payload)
            except psycopg.Error as exc:
                log.warning("inbox listener lost PostgreSQL: %s", " ".join(str(exc).split()))
            self.connected.clear()
            await asyncio.sleep(RECONNECT)

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            value = int(payload)
        except ValueError:
            return
        try:
            if channel == INBOX_CHANNEL:
                self.on_inbox(value)
            elif channel == DONE_CHANNEL:
                self.on_done(value)
        except Exception:  # a consumer's bug must not stop the notifications
            log.exception("inbox notification handler failed")
