"""The evapi side of bench/kamailio_evapi.py: a client that reads Kamailio's evapi stream
(netstrings, one JSON report each) and POSTs them to the hub in batches (at most 100, or
what arrived within 50 ms), as the shipped configuration's timer does with http_client.

    python bench/evapi_reader.py EVAPI_PORT HUB_URL KEY
"""

from __future__ import annotations

import http.client
import select
import socket
import sys
import time
import urllib.parse

BATCH = 100
TICK = 0.05


def main() -> None:
    port, hub, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    url = urllib.parse.urlsplit(hub)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=10)
    sock = socket.create_connection(("127.0.0.1", port))
    buf, pending = b"", []
    last = time.monotonic()
    while True:
        ready, _, _ = select.select([sock], [], [], TICK)
        if ready:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
            while b":" in buf:  # netstring: LEN:DATA,
                head, rest = buf.split(b":", 1)
                size = int(head)
                if len(rest) < size + 1:
                    break
                pending.append(rest[:size])
                buf = rest[size + 1 :]
        if pending and (len(pending) >= BATCH or time.monotonic() - last >= TICK):
            while pending:
                body, pending = b"[" + b",".join(pending[:BATCH]) + b"]", pending[BATCH:]
                conn.request("POST", url.path, body, {"Authorization": f"Bearer {key}"})
                conn.getresponse().read()
            last = time.monotonic()


if __name__ == "__main__":
    main()
