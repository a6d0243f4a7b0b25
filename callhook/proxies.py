"""Who the client is behind a reverse proxy (`[server] trusted_proxies`), pure.

A request's peer is the proxy's address when the hub sits behind nginx or HAProxy; the
client's is in the header the proxy adds. That header is believed only when the peer is a
listed proxy: anyone else could write it. Walking the list from the right (the nearest
hop first), every address that is itself a trusted proxy is skipped, and the first one that
is not is the client (so a client cannot prepend a fake address that wins). Only one
header is read, the one `[server] trusted_proxy_header` names: a proxy that sets
`X-Forwarded-For` passes a client's own `Forwarded` header on untouched, and the other way
round.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

HEADERS = {"x-forwarded-for": b"x-forwarded-for", "forwarded": b"forwarded"}


def _address(text: str) -> Address | None:
    """An address as proxies write it: `192.0.2.7`, `192.0.2.7:4711`, `[2001:db8::1]:80`,
    or quoted in `Forwarded`."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None  # `unknown`, an obfuscated `_name`, garbage


def _forwarded_for(value: str) -> list[str]:
    """The `for=` of each element of an RFC 7239 `Forwarded` header, in order."""
    out = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, v = pair.partition("=")
            if name.strip().lower() == "for":
                out.append(v)
    return out


class TrustedProxies:
    """Resolves the client address of a request that may have come through listed proxies."""

    def __init__(self, networks: Iterable[str], header: str = "x-forwarded-for") -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )
        self.header = HEADERS[header]

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusted(self, ip: Address | str) -> bool:
        if isinstance(ip, str):
            parsed = _address(ip)
            if parsed is None:
                return False
            ip = parsed
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.networks)

    def client(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The client's address: `peer`, or what a trusted `peer` says it forwarded for."""
        if not self.networks or not self.trusted(peer):
            return peer
        values = [v.decode("latin-1") for k, v in headers if k.lower() == self.header]
        if not values:
            return peer
        joined = ",".join(values)  # several header lines are one list (RFC 9110 5.3)
        hops = _forwarded_for(joined) if self.header == b"forwarded" else joined.split(",")
        client = peer
        for hop in reversed(hops):
            ip = _address(hop)
            if ip is None:
                break  # unreadable: the nearest address known is as far as we can trust
            client = str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)
            if not self.trusted(ip):
                break
        return client
