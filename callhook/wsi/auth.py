"""WSI `auth`: find the account, check its Argon2 hash off the loop, rate-limit failures.

Argon2 is deliberately slow (~15 ms, 19 MiB), so a reconnect storm of thousands of clients
would queue for seconds. A successful verification is therefore cached briefly, keyed by the
account and a SHA-256 of the password, and tied to the stored hash: a changed password
invalidates it at once.

Brute force: failures are limited per account (however the domain is spelt:
`101@ACME.example.com`, `101@acme`) and per source address ([auth] in the config). Only
failures count; a check reserves its place first, so parallel guesses cannot overrun a
limit, and checks beyond the failures still allowed wait for those in flight
(callhook/limits). Argon2 runs in at most
`hash_concurrency` threads at once, so a flood of logins leaves the other core to phones;
beyond `hash_queue` waiting logins, more are answered "busy" at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry

from callhook import security
from callhook.directory import Tenant
from callhook.limits import Attempt, Limiter, Refused
from callhook.ops import AuthMetrics
from callhook.traffic_log import TrafficLog
from callhook.wsi.permissions import Principal
from callhook.wsi.protocol import AUTH_FAILED, Auth, error_reply

T = TypeVar("T")

TOO_MANY = error_reply("too many failed attempts, try again later")
BUSY = error_reply("too many logins in progress, try again later")
HASH_TTL = 5.0  # seconds a stored hash is reused before it is read again


class Passwords(Protocol):
    """The part of the directory auth reads: stored Argon2 hashes."""

    async def password_hash(self, tenant: str, extension: str | None) -> str: ...


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

    async def check(self, tenant: str, ticket: str) -> bool:
        """True once for a live ticket of `tenant`; ConnectionError: cannot tell now."""
        ...

    def attach(self, ws_path: str) -> None: ...


def account_key(tenant: Tenant | None, cmd: Auth) -> str:
    """The account an auth names, however it is spelt: `acme/101` for `101@ACME.example.com`
    and for `101@acme`; `acme` for the tenant itself."""
    if tenant is None:
        return "unknown:" + cmd.account().lower()
    return tenant.name if cmd.extension is None else f"{tenant.name}/{cmd.extension}"


class Busy(Exception):
    """More logins are waiting for an Argon2 slot than `hash_queue` allows."""


def _lowest_priority() -> None:
    """Hash threads yield the CPU to the event loop (phones) whenever both want it (Linux:
    a thread's nice value is its own)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class HashSlots:
    """Runs Argon2 in at most `concurrency` threads of its own, at the lowest CPU priority,
    with at most `queue` callers waiting.

    A slot is freed when its thread finishes, not when the waiting client goes away, so the
    bound holds even for clients that disconnect mid-check.
    """

    def __init__(self, concurrency: int, queue: int, on_peak: Callable[[int], None]) -> None:
        self._free = asyncio.Semaphore(concurrency)
        self._threads = ThreadPoolExecutor(
            concurrency, thread_name_prefix="argon2", initializer=_lowest_priority
        )
        self.queue = queue
        self.waiting = 0
        self.running = 0
        self.peak = 0
        self._on_peak = on_peak

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._free.locked() and self.waiting >= self.queue:
            raise Busy
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        if self.running > self.peak:
            self.peak = self.running
            self._on_peak(self.peak)
        work = asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)
        work.add_done_callback(self._done)
        return await asyncio.shield(work)

    def _done(self, _work: object) -> None:
        self.running -= 1
        self._free.release()


class Authenticator:
    """Verifies WSI credentials; bounded cache, bounded concurrency, bounded failures."""

    def __init__(
        self,
        tenants: Mapping[str, Tenant],
        store: Passwords,
        by_account: Limiter,
        by_address: Limiter,
        *,
        cache_ttl: float = 300.0,
        cache_max: int = 10_000,
        concurrency: int = 1,
        queue: int = 256,
        tickets: Tickets | None = None,
        traffic: TrafficLog | None = None,
        metrics: AuthMetrics | None = None,
    ) -> None:
        self.tenants = tenants
        self.traffic = traffic or TrafficLog()
        self.metrics = metrics or AuthMetrics(CollectorRegistry())
        self.tickets = tickets
        self.store = store
        self.by_account = by_account
        self.by_address = by_address
        self.cache_ttl = cache_ttl
        self.cache_max = cache_max
        self._cache: dict[tuple[str, str, bytes], tuple[str, float]] = {}
        self._hashes: dict[tuple[str, str], tuple[str, float, Tenant]] = {}
        self.slots = HashSlots(concurrency, queue, self.metrics.hash_peak.set)
        self._dummy_hash = ""

    async def authenticate(self, cmd: Auth, address: str) -> Principal | bytes:
        """A principal, or the reply to send (PortSIP's error, or a rate-limit error)."""
        tenant = find_tenant(self.tenants, cmd)
        label = cmd.account()[:128]
        account = "wsi-account:" + account_key(tenant, cmd)
        source = "wsi-address:" + address
        if tenant is not None:
            # A password verified in the last `cache_ttl` seconds gets in without touching
            # the limits: an attacker locking an account out cannot lock out its clients'
            # reconnections (and learns nothing: only the right password takes this way).
            known = await self._recently_verified(tenant, cmd.extension, cmd.password)
            if known is not None:
                return Principal(tenant.name, cmd.extension, known)
        by_source = await self.by_address.begin(source)
        if isinstance(by_source, Refused):
            return self._refused(by_source, address, label)
        by_account = await self.by_account.begin(account)
        if isinstance(by_account, Refused):  # refused without a check: costs the source nothing
            await self.by_address.finish(by_source, failed=False)
            return self._refused(by_account, address, label)
        if tenant is not None and cmd.extension is None and self.tickets is not None:
            try:
                redeemed = await self.tickets.check(tenant.name, cmd.password)
            except ConnectionError:  # the cluster's tickets are away: not the client's fault
                await self._finish(by_account, by_source, failed=False)
                self.metrics.refused.labels("wsi", "busy").inc()
                return BUSY
            if redeemed:
                await self._finish(by_account, by_source, failed=False)
                return Principal(tenant.name, None)
        try:
            if tenant is None:
                await self._verify_dummy(cmd.password)  # same cost as a real miss
                credential = None
            else:
                credential = await self._check(tenant, cmd.extension, cmd.password)
        except Busy:
            await self._finish(by_account, by_source, failed=False)  # not the client's fault
            self.metrics.refused.labels("wsi", "busy").inc()
            return BUSY
        except BaseException:  # cancelled (the client went away) or the database: no verdict
            await asyncio.shield(self._finish(by_account, by_source, failed=False))
            raise
        if credential is None or tenant is None:
            await self._finish(by_account, by_source, failed=True)
            reason = "unknown-account" if tenant is None else "wrong-password"
            self.traffic.login_failed("wsi", address, reason, account=label)
            return AUTH_FAILED
        # The account's failures are forgotten; the address keeps its other failures.
        await self._finish(by_account, by_source, failed=False)
        return Principal(tenant.name, cmd.extension, credential)

    async def _finish(self, by_account: Attempt, by_source: Attempt, *, failed: bool) -> None:
        await self.by_account.finish(by_account, failed=failed, forget=not failed)
        await self.by_address.finish(by_source, failed=failed)

    def _refused(self, refused: Refused, address: str, label: str) -> bytes:
        if refused.busy:  # checks of this key in flight for too long: not the client's doing
            self.metrics.refused.labels("wsi", "busy").inc()
            return BUSY
        self.metrics.refused.labels("wsi", "rate-limited").inc()
        self.traffic.login_failed("wsi", address, "rate-limited", account=label)
        return TOO_MANY

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
        stored = await self.store.password_hash(name, extension)
        if len(self._hashes) >= self.cache_max:
            self._hashes.clear()
        self._hashes[key] = (stored, now + HASH_TTL, tenant)
        return stored

    async def current_hashes(
        self, accounts: set[tuple[str, str | None]]
    ) -> dict[tuple[str, str | None], str]:
        """The stored hash of each (tenant, extension), read now ('' if none)."""
        found = await asyncio.gather(*(self.store.password_hash(t, e) for t, e in accounts))
        return dict(zip(accounts, found, strict=True))

    async def _recently_verified(
        self, tenant: Tenant, extension: str | None, password: str
    ) -> str | None:
        """The stored hash, if this password was verified against it within `cache_ttl`."""
        if not password:
            return None
        digest = hashlib.sha256(password.encode("utf-8", "replace")).digest()
        hit = self._cache.get((tenant.name, extension or "", digest))
        if hit is None or hit[1] <= time.monotonic():
            return None
        stored = await self._stored_hash(tenant, extension)
        return stored if stored and hit[0] == stored else None

    async def _check(self, tenant: Tenant, extension: str | None, password: str) -> str | None:
        """The stored hash the password matches, or None."""
        stored = await self._stored_hash(tenant, extension)
        if not stored or not password:
            # No such extension (or no password): the same cost as a wrong password, so
            # timing does not tell which extensions exist.
            await self._verify_dummy(password)
            return None
        digest = hashlib.sha256(password.encode("utf-8", "replace")).digest()
        key = (tenant.name, extension or "", digest)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] == stored and hit[1] > now:
            return stored
        if not await self.slots.run(self._verify, stored, password, key):
            return None
        if len(self._cache) >= self.cache_max:
            self._cache.clear()  # crude but bounded; a storm re-verifies once
        self._cache[key] = (stored, now + self.cache_ttl)
        return stored

    def _verify(self, stored: str, password: str, key: tuple[str, str, bytes]) -> bool:
        """In a hash thread: verify, unless another thread verified it while this one waited."""
        hit = self._cache.get(key)
        if hit is not None and hit[0] == stored and hit[1] > time.monotonic():
            return True
        self.metrics.checks.labels("wsi").inc()
        return security.verify_password(stored, password)

    async def _verify_dummy(self, password: str) -> None:
        if not self._dummy_hash:
            self._dummy_hash = await self.slots.run(security.hash_password, "x")
        self.metrics.checks.labels("wsi").inc()
        await self.slots.run(security.verify_password, self._dummy_hash, password or "y")
