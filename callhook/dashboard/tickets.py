"""One-time, short-lived tickets that open the dashboard's live (WSI) channel.

The dashboard logs in with an API key, but the WSI `auth` command takes a tenant `name` and
`password`. The dashboard trades its key for a ticket (`POST .../dashboard-ticket`) and sends
the ticket as the password; the WSI server redeems it here before checking the real password.
A WSI server that does so calls `attach(path)`: until one has, the dashboard is told to poll
the events API instead, so it never spends the tenant's failed-auth allowance on tickets.
Pure: the clock is injected, nothing here does I/O.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

PREFIX = "dt_"  # so that a WSI server can tell a ticket from a password without a lookup


class TicketBook:
    """Tickets by value: each valid once, for one tenant, for `ttl` seconds."""

    def __init__(
        self,
        ttl: float = 30.0,
        max_tickets: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_tickets = max_tickets
        self._clock = clock
        self._tickets: dict[
            str, tuple[str, float]
        ] = {}  # ticket -> (tenant, expires), oldest first
        self.ws_path: str | None = None  # where a WSI server redeems tickets (see attach)

    def attach(self, ws_path: str = "/ws") -> None:
        """Called by the WSI server that redeems these tickets on `ws_path` (main port)."""
        self.ws_path = ws_path

    def issue(self, tenant: str) -> str:
        """A new ticket for `tenant`; the oldest are forgotten beyond `max_tickets`."""
        now = self._clock()
        self._purge(now)
        while len(self._tickets) >= self.max_tickets:
            del self._tickets[next(iter(self._tickets))]
        ticket = PREFIX + secrets.token_urlsafe(24)
        self._tickets[ticket] = (tenant, now + self.ttl)
        return ticket

    async def start(self) -> None:
        """Nothing to open (a cluster's tickets are in Redis: shared_tickets.py)."""

    async def stop(self) -> None:
        """Nothing to close."""

    async def grant(self, tenant: str) -> str:
        return self.issue(tenant)

    async def check(self, tenant: str, ticket: str) -> bool:
        return self.redeem(tenant, ticket)

    def redeem(self, tenant: str, ticket: str) -> bool:
        """True once for a live ticket of `tenant`; a ticket is used up even when it fails."""
        if not ticket.startswith(PREFIX):
            return False
        entry = self._tickets.pop(ticket, None)
        if entry is None:
            return False
        owner, expires = entry
        return owner == tenant and self._clock() < expires

    def __len__(self) -> int:
        return len(self._tickets)

    def _purge(self, now: float) -> None:
        # Insertion order is expiry order (one ttl for all), so stop at the first live one.
        while self._tickets:
            first = next(iter(self._tickets))
            if self._tickets[first][1] > now:
                return
            del self._tickets[first]
