"""Records delivery outcomes and attempts in batches through the single writer.

The writer is shared with ingest, so one transaction per attempt would compete with phones
for it. Outcomes collect for a few milliseconds (or until a batch is full) and go in one
store write; while that write is in flight the next batch builds up. A crash before a
batch commits only means those deliveries are sent again: at-least-once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from callhook.store.records import Attempt, Update

log = logging.getLogger("callhook.deliver")

__all__ = ["Attempt", "Recorder", "Update"]


class Writer(Protocol):
    """The part of the store the recorder needs."""

    async def record(self, updates: list[Update], attempts: list[Attempt]) -> None: ...


class Recorder:
    """Batches `Update`s and `Attempt`s into few writer transactions."""

    def __init__(self, store: Writer, *, delay: float = 0.02, max_batch: int = 2000) -> None:
        self._store = store
        self._delay = delay
        self._max_batch = max_batch
        self._updates: list[Update] = []
        self._attempts: list[Attempt] = []
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    def add(self, update: Update, attempt: Attempt | None = None) -> None:
        self._updates.append(update)
        if attempt is not None:
            self._attempts.append(attempt)
        if self._task is not None:
            return  # the running flush picks these up when its write returns
        if len(self._updates) >= self._max_batch:
            self._kick()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self._kick)

    def _kick(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="recorder")

    async def _run(self) -> None:
        try:
            while self._updates or self._attempts:
                updates, attempts = self._updates, self._attempts
                self._updates, self._attempts = [], []
                try:
                    await self._store.record(updates, attempts)
                    self.batches += 1
                except Exception:
                    # The rows stay as they were (pending): they will be sent again.
                    log.exception("recording %d delivery outcomes failed", len(updates))
        finally:
            self._task = None

    async def flush(self) -> None:
        """Return once everything added so far is committed."""
        while self._updates or self._attempts or self._task is not None:
            if self._task is None:
                self._kick()
            task = self._task
            if task is not None:
                await asyncio.shield(task)

    async def close(self) -> None:
        await self.flush()
