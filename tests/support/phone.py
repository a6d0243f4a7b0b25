"""A phone on a raw socket: request lines written byte for byte as Grandstream's guides show them.

Grandstream phones are configured with `HOST/key=$var&key2=$var2` (no scheme, no `?`), so
the request line is `GET /key=value&key2=value2 HTTP/1.1` (Grandstream's Event Notification guide).
"""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send_raw(
    port: int, request: bytes, host: str = "127.0.0.1", timeout: float = 10, source: str = ""
) -> Response:
    """Write `request` as is and read the whole response (the request must close).
    `source`: the address to send from (any of 127.0.0.0/8 reaches a loopback hub)."""
    where = (source, 0) if source else None
    with socket.create_connection((host, port), timeout=timeout, source_address=where) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


def parse_response(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return Response(0, {}, raw)
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Response(status, headers, body)


def get(
    port: int,
    target: str,
    user_agent: str = "Grandstream GXV3370 1.0.1.28",
    host: str = "127.0.0.1",
    timeout: float = 10,
) -> Response:
    """`GET {target} HTTP/1.1`, the way a phone sends it (Connection: close)."""
    req = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"User-Agent: {user_agent}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    return send_raw(port, req, host, timeout)


def pairs(values: dict[str, str]) -> str:
    """`k=v&k2=v2` with values percent-encoded as a phone does (UTF-8)."""
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in values.items())


class Phone:
    """A Grandstream phone with an extension, sending seed-shaped Action URLs."""

    def __init__(self, port: int, token: str, number: str, mac: str = "000B82112233") -> None:
        self.port = port
        self.token = token
        self.number = number
        self.mac = mac

    def send(self, event: str, **variables: str) -> Response:
        values = {"token": self.token, "event": event, "mac": self.mac, "local": self.number}
        values.update(variables)
        return get(self.port, "/" + pairs(values))


def send_all(requests: list[tuple[Phone, str, dict[str, str]]], in_flight: int = 8) -> None:
    """Send (phone, event, variables) requests, `in_flight` at a time; all must get 200."""

    def one(item: tuple[Phone, str, dict[str, str]]) -> int:
        phone, event, variables = item
        return phone.send(event, **variables).status

    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        statuses = list(pool.map(one, requests))
    assert set(statuses) == {200}, statuses
