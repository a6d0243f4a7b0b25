"""Thousands of malformed request lines: never a 5xx, and the hub stays up."""

from __future__ import annotations

import random
import socket

from tests.support.hub import Hub
from tests.support.phone import parse_response

PIECES = [
    b"/",
    b"token=gs-7f3a9c",
    b"&",
    b"=",
    b"event=",
    b"Incoming%20Call",
    b"%",
    b"%zz",
    b"%00",
    b"%ff%fe",
    b"$mac",
    b"$$NAME$$",
    b"local=",
    b"sip:101@x",
    b"?",
    b"#",
    b"ingest/",
    b"..",
    b"mac=zz:zz",
    b"duration=-5",
    b"\xc3\xa9",
    b"\xff",
    b"+",
    b";",
    b"{remoteNumber}",
    b"call-id=",
    b"a" * 300,
    b"//",
    b"%2F",
    b"event=Terminate+Call",
]


def _target(rng: random.Random) -> bytes:
    out = b"/"
    for _ in range(rng.randint(0, 12)):
        out += rng.choice(PIECES)
    return out.replace(b" ", b"")


def _send(port: int, target: bytes, method: bytes = b"GET") -> int:
    req = method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return parse_response(data).status


def test_malformed_requests_never_5xx(shared_hub: Hub) -> None:
    rng = random.Random(1234)
    statuses: dict[int, int] = {}
    for i in range(2000):
        method = rng.choice([b"GET", b"GET", b"GET", b"HEAD", b"POST", b"PUT"])
        status = _send(shared_hub.port, _target(rng), method)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500 or status == 0, (i, status)
    assert shared_hub.alive()
    status, body = shared_hub.api("GET", "/readyz", key="")
    assert status == 200, body
    # The fuzz reached the parser, not just the HTTP layer.
    assert statuses.get(200, 0) + statuses.get(202, 0) > 0, statuses
    assert statuses.get(400, 0) + statuses.get(404, 0) > 0, statuses
