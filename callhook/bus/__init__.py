"""The bus carries committed events to in-process subscribers (and, scaled out, other nodes)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from callhook.events import Event

Subscriber = Callable[[list[Event]], None]

log = logging.getLogger("callhook.bus")


def hand_over(subscribers: Iterable[Subscriber], events: list[Event]) -> None:
    """`events` to each subscriber; one that raises is logged, the others still get them."""
    for fn in subscribers:
        try:
            fn(events)
        except Exception:  # one broken consumer must not stop the others
            log.exception("bus subscriber failed")


class Bus(Protocol):
    """Narrow on purpose: publish committed events, let local consumers subscribe."""

    def publish(self, events: list[Event]) -> None: ...

    def subscribe(self, fn: Subscriber) -> None: ...

    def directory_changed(self) -> None:
        """This node changed the directory: other nodes, if any, reload theirs."""
        ...

    async def nodes(self) -> list[dict[str, Any]]:
        """The nodes of the cluster with their last heartbeat ([] for one node); raises
        when the bus cannot be reached."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# The bus of each `[server] bus` scheme, as the store's BACKENDS: "module:class".
BUSES: dict[str, str] = {
    "memory": "callhook.bus.memory:MemoryBus",
    "redis": "callhook.bus.redis:RedisBus",
    "rediss": "callhook.bus.redis:RedisBus",
}


def bus_class(url: str) -> Any:
    """The class serving `url` (`memory`, `redis://...`); the config checked the URL."""
    target = BUSES[url.split(":", 1)[0].lower()]
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def clustered(url: str) -> bool:
    """Whether this bus joins several nodes (anything but the in-process one)."""
    return url != "memory"
