"""The dashboard's tickets in a cluster: kept in Redis, so a ticket issued by one node opens
the live channel on any other (a round-robin balancer sends the ticket request and the
WebSocket to different nodes). Each is a key that expires after `ttl`, taken with GETDEL:
valid once, on one node. One node: the in-process TicketBook (tickets.py).
"""

from __future__ import annotations

import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

from callhook.bus import clustered
from callhook.dashboard.tickets import PREFIX, TicketBook

KEY = "callhook:ticket:"


class SharedTickets:
    """Tickets by value in Redis: each valid once, for one tenant, for `ttl` seconds."""

    def __init__(self, url: str, ttl: float = 30.0) -> None:
        self.url = url
        self.ttl = ttl
        self.ws_path: str | None = None
        self._redis: Redis | None = None

    def attach(self, ws_path: str = "/ws") -> None:
        self.ws_path = ws_path

    async def start(self) -> None:
        self._redis = Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def grant(self, tenant: str) -> str:
        """A new ticket; raises ConnectionError when Redis cannot be reached."""
        assert self._redis is not None
        ticket = PREFIX + secrets.token_urlsafe(24)
        try:
            await self._redis.set(KEY + ticket, tenant, px=int(self.ttl * 1000))
        except (RedisError, OSError) as exc:
            raise ConnectionError(f"Redis: {exc}") from exc
        return ticket

    async def check(self, tenant: str, ticket: str) -> bool:
        """True once for a live ticket of `tenant` (used up even when it fails); raises
        ConnectionError when Redis cannot tell (not the client's failure)."""
        if not ticket.startswith(PREFIX):
            return False
        assert self._redis is not None
        try:
            owner = await self._redis.getdel(KEY + ticket)
        except (RedisError, OSError) as exc:
            raise ConnectionError(f"Redis: {exc}") from exc
        if isinstance(owner, bytes):
            owner = owner.decode()
        return owner == tenant


def ticket_book(bus: str) -> TicketBook | SharedTickets:
    """In this process for one node; in Redis (the bus's server) for a cluster."""
    return SharedTickets(bus) if clustered(bus) else TicketBook()
