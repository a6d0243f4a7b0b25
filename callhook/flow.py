"""How a node turns reports into committed events, and where it reads live state from.

Two compositions, chosen once by the Hub (app.py): `LocalFlow` here, one node correlating
in-process (callhook/pipeline.py), and a cluster node's (callhook/cluster/flow.py), where
reports go through the inbox to their partition's owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from callhook.correlate import Correlator
from callhook.directory import Tenant
from callhook.pipeline import Intake, Pipeline
from callhook.store import CorrelationState

log = logging.getLogger("callhook")


class TenantState(Protocol):
    """Presence and open calls of a tenant (the correlator's read side)."""

    def presence(self, tenant: str, extension: str) -> dict[str, Any]: ...

    def reported_extensions(self, tenant: str) -> list[str]: ...

    def active_calls(self, tenant: str) -> list[dict[str, Any]]: ...


class StateView(Protocol):
    """Where the API and WSI snapshots read a tenant's live state."""

    async def of(self, tenant: str) -> TenantState: ...


class Flow(Protocol):
    """A node's intake and live state, started and stopped with the hub."""

    intake: Intake
    state: StateView

    async def start(self) -> None:
        """Before anything is published: state restored, connections open."""
        ...

    async def run(self) -> None:
        """Once the bus, webhooks and WSI are up: the timers and workers that commit."""
        ...

    async def halt(self) -> None:
        """Undo run() (first when the hub stops: nothing commits after it)."""
        ...

    async def close(self) -> None:
        """Undo start()."""
        ...


class LocalState:
    """One node: the correlator is the live state of every tenant."""

    def __init__(self, correlator: Correlator) -> None:
        self.correlator = correlator

    async def of(self, tenant: str) -> TenantState:
        return self.correlator


class LocalFlow:
    """One node: correlate in-process, restore at start, run the correlator's timers."""

    def __init__(
        self,
        pipeline: Pipeline,
        correlator: Correlator,
        state: CorrelationState,
        tenants: dict[str, Tenant],
        tick_interval: float,
    ) -> None:
        self.intake: Intake = pipeline
        self.pipeline = pipeline
        self.state: StateView = LocalState(correlator)
        self._correlator = correlator
        self._stored = state
        self._tenants = tenants
        self._tick_interval = tick_interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sessions, presence = await self._stored.load()
        # A deleted tenant's calls and presence are being purged: a namesake starts empty.
        self._correlator.restore(
            [s for s in sessions if s.get("tenant") in self._tenants],
            [p for p in presence if p.get("tenant") in self._tenants],
        )

    async def run(self) -> None:
        self._task = asyncio.create_task(self._ticker(), name="correlator-tick")

    async def close(self) -> None:
        pass

    async def halt(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            try:
                await self.pipeline.tick()
            except Exception:
                log.exception("correlator tick failed")
