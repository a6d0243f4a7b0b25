"""SSRF guard: webhook targets must be public unless `server.allow_private_targets`.

Checked twice: when an endpoint is created (clear error for the user) and at send time,
on the very addresses the connection will use (the resolver the sender's client uses), so a
name that later resolves to 127.0.0.1 (DNS rebinding) is refused as well.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from callhook import fields

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(OSError):
    """The target is not allowed (private address, bad scheme ...); never retried."""


# IPv6 prefixes whose last 32 bits are an IPv4 address the traffic ends up at.
_LAST_32_BITS = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "64:ff9b::/96",  # NAT64 well-known prefix (RFC 6052)
        "::ffff:0:0:0/96",  # IPv4-translated (RFC 2765)
        "::/96",  # IPv4-compatible (deprecated by RFC 4291, still accepted by some stacks)
    )
)
# Never public: local-use NAT64 (RFC 8215; the IPv4 part may sit anywhere) and site-local
# (deprecated by RFC 3879, Python's is_global does not know it).
_NEVER_PUBLIC = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("fec0::/10"))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4 ...), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.sixtofour is not None:
        return ip.sixtofour  # 2002:7f00:1::1 is routed to 127.0.0.1
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _LAST_32_BITS):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(ip: IPAddress, allow_private: bool) -> bool:
    """Public unicast only, unless private targets are allowed by configuration.

    An IPv6 address that carries an IPv4 one must be public on both counts.
    """
    if allow_private:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _NEVER_PUBLIC):
            return False
        inner = embedded_ipv4(ip)
        if inner is not None and not address_allowed(inner, False):
            return False
        if ip.ipv4_mapped is not None:
            return True  # public IPv4, written the mapped way
    # is_global is False for loopback, RFC 1918, link-local, CGNAT, documentation, reserved.
    return ip.is_global and not ip.is_multicast


def parse_target(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL; TargetRefused with the reason otherwise (the URL
    rule of callhook/fields.py, which the config file and the API apply too)."""
    try:
        fields.check_target_url(url)
    except ValueError as exc:
        raise TargetRefused(str(exc)) from None
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


# Every refusal of a private target says how to allow one (a lab, a CRM on the LAN).
HINT = " (set [server] allow_private_targets = true to allow private targets)"


def check_literal(url: str, allow_private: bool) -> str:
    """Reject bad URLs and forbidden literal addresses without DNS; returns the host."""
    host, _port = parse_target(url)
    ip = literal_ip(host)
    if ip is not None and not address_allowed(ip, allow_private):
        raise TargetRefused(f"{ip} is a private, loopback or link-local address{HINT}")
    if not allow_private and host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        raise TargetRefused(f"localhost is not allowed{HINT}")
    return host


async def check_url(url: str, allow_private: bool) -> None:
    """Creation-time check: the URL, and every address its host resolves to now."""
    host = check_literal(url, allow_private)
    if allow_private or literal_ip(host) is not None:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout=5
        )
    except (OSError, TimeoutError):
        raise TargetRefused(f"{host} does not resolve") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address_allowed(ip, allow_private):
            raise TargetRefused(f"{host} resolves to {ip}, a private or loopback address{HINT}")


class GuardedResolver(AbstractResolver):
    """A resolver (aiohttp's interface) that drops forbidden addresses; refuses when none
    is left."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return results
        allowed = [r for r in results if address_allowed(ipaddress.ip_address(r["host"]), False)]
        if not allowed:
            shown = ", ".join(r["host"] for r in results[:3])
            raise TargetRefused(f"{host} resolves to {shown}: private or loopback{HINT}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
