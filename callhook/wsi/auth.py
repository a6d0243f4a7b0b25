"""WSI `auth`: find the account, check its Argon2 hash off the loop, rate-limit failures.

Argon2 is deliberately slow (~15 ms, 19 MiB), so a reconnect storm of thousands of clients
would queue for seconds. A successful verification is therefore cached briefly, keyed by the
account and a SHA-256 of the password, and tied to the stored hash: a changed password
invalidates it at once. Failures are limited per source address and per account.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from callhook import security
from callhook.directory import Tenant
from callhook.store import directory as dirstore
from callhook.traffic_log import TrafficLog
from callhook.wsi.permissions import Principal
from callhook.wsi.protocol import AUTH_FAILED, Auth, error_reply

T = TypeVar("T")

TOO_MANY = error_reply("too many failed attempts, try again later")
HASH_TTL = 5.0  # seconds a stored hash is reused before it is read again


class Reader(Protocol):
    """The store's read side: run a function on a reader connection."""

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...


def find_tenant(tenants: Mapping[str, Tenant], cmd: Auth) -> Tenant | None:
    """The tenant an auth command names: by name, or by the extension's SIP domain.

    For extensions the domain may also be the tenant's name (handy on the command line);
    without a domain the extension number must be unique across tenants.
    """
    if cmd.extension is None:
        return tenants.get(cmd.tenant or "")
    if cmd.domain:
        for t in tenants.values():
            if cmd.domain.lower() in (t.domain.lower(), t.name.lower()):
                return t
        return None
    owners = [t for t in tenants.values() if t.is_extension(cmd.extension)]
    return owners[0] if len(owners) == 1 else None


class Tickets(Protocol):
    """One-time tickets accepted in place of a tenant password (the dashboard's live channel)."""

    def redeem(self, tenant: str, ticket: str) -> bool: ...

    def attach(self, ws_path: str) -> None: ...


class Authenticator:
    """Verifies WSI credentials; bounded cache, bounded concurrency, bounded failures."""

    def __init__(
        self,
        tenants: Mapping[str, Tenant],
        store: Reader,
        by_account: security.RateLimiter,
        by_address: security.RateLimiter,
        *,
        cache_ttl: float = 300.0,
        cache_max: int = 10_000,
        concurrency: int = 4,
        tickets: Tickets | None = None,
        traffic: TrafficLog | None = None,
    ) -> None:
        self.tenants = tenants
        self.traffic = traffic or TrafficLog()
        self.tickets = tickets
        self.store = store
        self.by_account = by_account
        self.by_address = by_address
        self.cache_ttl = cache_ttl
        self.cache_max = cache_max
        self._cache: dict[tuple[str, str, bytes], tuple[str, float]] = {}
        self._hashes: dict[tuple[str, str], tuple[str, float, Tenant]] = {}
        self._slots = asyncio.Semaphore(concurrency)  # Argon2 costs 19 MiB per verification
        self._dummy_hash = ""

    async def authenticate(self, cmd: Auth, address: str) -> Principal | bytes:
        """A principal, or the reply to send (PortSIP's error, or a rate-limit error)."""
        account = "wsi-account:" + cmd.account()
        source = "wsi-address:" + address
        if self.by_address.blocked(source) or self.by_account.blocked(account):
            self.traffic.login_failed("wsi", address, "rate-limited", account=cmd.account()[:128])
            return TOO_MANY
        tenant = find_tenant(self.tenants, cmd)
        if (
            tenant is not None
            and cmd.extension is None
            and self.tickets is not None
            and self.tickets.redeem(tenant.name, cmd.password)
        ):
            self.by_account.succeeded(account)
            return Principal(tenant.name, None)
        ok = False
        if tenant is None:
            await self._verify_dummy(cmd.password)  # same cost as a real miss
        else:
            ok = await self._check(tenant, cmd.extension, cmd.password)
        if not ok or tenant is None:
            self.by_account.failed(account)
            self.by_address.failed(source)
            reason = "unknown-account" if tenant is None else "wrong-password"
            self.traffic.login_failed("wsi", address, reason, account=cmd.account()[:128])
            return AUTH_FAILED
        self.by_account.succeeded(account)
        return Principal(tenant.name, cmd.extension)

    async def _stored_hash(self, tenant: Tenant, extension: str | None) -> str:
        # Read through a short cache: a storm of logins to one account costs one query.
        # Any directory change (a password set over the API, say) reloads the read model
        # with new Tenant objects, which invalidates it at once.
        key = (tenant.name, extension or "")
        now = time.monotonic()
        hit = self._hashes.get(key)
        if hit is not None and hit[1] > now and hit[2] is tenant:
            return hit[0]
        name = tenant.name
        stored = await self.store.read(lambda c: dirstore.password_hash(c, name, extension))
        if len(self._hashes) >= self.cache_max:
            self._hashes.clear()
        self._hashes[key] = (stored, now + HASH_TTL, tenant)
        return stored

    async def _check(self, tenant: Tenant, extension: str | None, password: str) -> bool:
        stored = await self._stored_hash(tenant, extension)
        if not stored or not password:
            return False
        digest = hashlib.sha256(password.encode("utf-8", "replace")).digest()
        key = (tenant.name, extension or "", digest)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] == stored and hit[1] > now:
            return True
        async with self._slots:
            hit = self._cache.get(key)  # a storm: someone may have verified it meanwhile
            if hit is not None and hit[0] == stored and hit[1] > time.monotonic():
                return True
            ok = await asyncio.to_thread(security.verify_password, stored, password)
        if ok:
            if len(self._cache) >= self.cache_max:
                self._cache.clear()  # crude but bounded; a storm re-verifies once
            self._cache[key] = (stored, now + self.cache_ttl)
        return ok

    async def _verify_dummy(self, password: str) -> None:
        async with self._slots:
            if not self._dummy_hash:
                self._dummy_hash = await asyncio.to_thread(security.hash_password, "x")
            await asyncio.to_thread(security.verify_password, self._dummy_hash, password or "y")
