"""The bus carries committed events to in-process subscribers (and, scaled out, other nodes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from callhook.events import Event

Subscriber = Callable[[list[Event]], None]


class Bus(Protocol):
    """Narrow on purpose: publish committed events, let local consumers subscribe."""

    def publish(self, events: list[Event]) -> None: ...

    def subscribe(self, fn: Subscriber) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
