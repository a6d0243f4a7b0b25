"""Free loopback ports for the servers the tests start, outside the ephemeral range.

A port the kernel hands out for `bind(port 0)` comes from the ephemeral range, the same
range every outgoing connection of this machine draws its source port from: between the
moment a test picks it and the moment its server binds it, a client connection (a hub
to PostgreSQL or Redis, a test's phone) may take it, and the server fails with "address
already in use". Ports below that range are never handed to clients: one picked at
random there and bound once to check it is free is only taken by another test picking
the same one in those few milliseconds.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

FIRST = 10_000  # below: well-known and registered services a machine may run


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port of `host` nobody listens on (TCP, or UDP with `socket.SOCK_DGRAM`)."""
    last = _ephemeral_start() - 1
    for _ in range(100):
        port = random.randint(FIRST, last) if last > FIRST else 0
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError(f"no free port between {FIRST} and {last}")
