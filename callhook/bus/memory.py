"""In-process bus: committed events go straight to local subscribers, in commit order."""

from __future__ import annotations

from typing import Any

from callhook.bus import Subscriber, hand_over
from callhook.events import Event


class MemoryBus:
    """The default bus of a single node."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def publish(self, events: list[Event]) -> None:
        hand_over(self._subscribers, events)

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def directory_changed(self) -> None:
        return None  # no other node

    async def nodes(self) -> list[dict[str, Any]]:
        return []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._subscribers.clear()
