"""SSRF guard: webhook targets must be public unless `server.allow_private_targets`.

Checked twice: when an endpoint is created (clear error for the user) and at send time,
on the very addresses the connection will use (a resolver wrapped around aiohttp's), so a
name that later resolves to 127.0.0.1 (DNS rebinding) is refused as well.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(OSError):
    """The target is not allowed (private address, bad scheme ...); never retried."""


def address_allowed(ip: IPAddress, allow_private: bool) -> bool:
    """Public unicast only, unless private targets are allowed by configuration."""
    if allow_private:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    # is_global is False for loopback, RFC 1918, link-local, CGNAT, documentation, reserved.
    return ip.is_global and not ip.is_multicast


def parse_target(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL; TargetRefused with the reason otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("the URL must start with http:// or https://")
    host = parts.hostname or ""
    if not host:
        raise TargetRefused("the URL has no host")
    if "$" in host:
        raise TargetRefused("variables are not allowed in the host part of the URL")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not supported; use a secret")
    return host, port or (443 if parts.scheme == "https" else 80)


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_literal(url: str, allow_private: bool) -> str:
    """Reject bad URLs and forbidden literal addresses without DNS; returns the host."""
    host, _port = parse_target(url)
    ip = literal_ip(host)
    if ip is not None and not address_allowed(ip, allow_private):
        raise TargetRefused(f"{ip} is a private, loopback or link-local address")
    if not allow_private and host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        raise TargetRefused("localhost is not allowed")
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
            raise TargetRefused(f"{host} resolves to {ip}, a private or loopback address")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops forbidden addresses; refuses when none is left."""

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
            raise TargetRefused(f"{host} resolves to {shown}: private or loopback")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
