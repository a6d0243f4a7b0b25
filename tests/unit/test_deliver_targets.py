"""SSRF guard: forbidden addresses, URL checks, and the send-time resolver (DNS rebinding)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from callhook.deliver.payload import Request
from callhook.deliver.sender import Sender
from callhook.deliver.targets import (
    GuardedResolver,
    TargetRefused,
    address_allowed,
    check_literal,
    check_url,
)
from tests.support.sink import Sink


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("127.1.2.3", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.40.207", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        # IPv6 forms that carry an IPv4 address: the embedded address decides.
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 (RFC 6052) of 169.254.169.254
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8: public
        ("64:ff9b:1::a00:1", False),  # local-use NAT64 (RFC 8215): never public
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("::127.0.0.1", False),  # IPv4-compatible (deprecated)
        ("::a9fe:a9fe", False),  # IPv4-compatible 169.254.169.254
        ("::ffff:0:7f00:1", False),  # IPv4-translated (RFC 2765)
        ("::ffff:0:c0a8:101", False),  # IPv4-translated 192.168.1.1
        ("fec0::1", False),  # site-local (deprecated, still routed inside some sites)
        ("fec0:1:2::3", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
    ],
)
def test_addresses(ip: str, allowed: bool) -> None:
    addr = ipaddress.ip_address(ip)
    assert address_allowed(addr, allow_private=False) is allowed
    assert address_allowed(addr, allow_private=True) is True


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/x",
        "http://[::1]/x",
        "http://10.0.0.5/x",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http:///nohost",
        "http://user:pw@example.com/",
        "http://$host/x",
    ],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(TargetRefused):
        check_literal(url, allow_private=False)


def test_public_urls_pass_the_literal_check() -> None:
    assert check_literal("https://crm.example.com/hook?x=$CallerIDNum", False) == "crm.example.com"
    assert check_literal("http://8.8.8.8:8080/", False) == "8.8.8.8"
    assert check_literal("http://127.0.0.1:9000/", True) == "127.0.0.1"


async def test_creation_check_resolves_names() -> None:
    with pytest.raises(TargetRefused):
        await check_url("http://localhost/", allow_private=False)
    with pytest.raises(TargetRefused, match="does not resolve"):
        await check_url("http://no-such-host.invalid/", allow_private=False)


class Rebinding(AbstractResolver):
    """A DNS server that answers a public-looking name with the loopback address."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
             "proto": 0, "flags": 0}
        ]  # fmt: skip

    async def close(self) -> None:
        return None


async def test_send_time_resolution_refuses_rebinding() -> None:
    with Sink() as sink:
        url = f"http://rebind.example.com:{sink.port}/hook"
        # The sender's guarded resolver, around a rebinding DNS answer: refused, not retried.
        sender = Sender(connect_timeout=2, total_timeout=5, allow_private=False,
                        resolver=Rebinding())  # fmt: skip
        await sender.start()
        try:
            resp = await sender.send(Request("POST", url, {}, b"{}"))
            assert resp.refused and resp.status is None and "private or loopback" in resp.error
        finally:
            await sender.close()
        assert sink.count("/hook") == 0
        # Allowed by configuration, the same name reaches the (loopback) sink.
        sender = Sender(connect_timeout=2, total_timeout=5, allow_private=True,
                        resolver=Rebinding())  # fmt: skip
        await sender.start()
        try:
            resp = await sender.send(Request("POST", url, {}, b"{}"))
            assert resp.status == 200, resp
        finally:
            await sender.close()
        assert sink.count("/hook") == 1
        assert sink.requests("/hook")[0].headers["host"] == f"rebind.example.com:{sink.port}"


def test_guarded_resolver_drops_forbidden_addresses() -> None:
    async def resolve(allow: bool) -> list[ResolveResult]:
        return await GuardedResolver(allow, Rebinding()).resolve("rebind.example.com", 80)

    with pytest.raises(TargetRefused):
        asyncio.run(resolve(False))
    assert [r["host"] for r in asyncio.run(resolve(True))] == ["127.0.0.1"]


async def test_sender_refuses_without_retry_and_never_connects() -> None:
    with Sink() as sink:
        sender = Sender(connect_timeout=2, total_timeout=5, allow_private=False)
        await sender.start()
        try:
            resp = await sender.send(Request("POST", sink.url("/x"), {}, b"{}"))
            assert resp.refused and resp.status is None and "private" in resp.error
            resp = await sender.send(Request("POST", f"http://localhost:{sink.port}/x", {}, b""))
            assert resp.refused
        finally:
            await sender.close()
        assert sink.count() == 0
