"""Connections to PostgreSQL whose silence is bounded: every connection the hub opens.

A cut network (a node cut off, a dead host, a dropped NAT entry) sends no reset: the
socket just stays quiet. These settings make both ends give such a connection up within
`[server] database_timeout` seconds, so a writer, a claim or a LISTEN never waits for TCP
to give up (about 15 minutes).
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.string import StrDumperUnknown

TIMEOUT = 5  # seconds ([server] database_timeout): a silent connection is given up after it


def dsn(url: str) -> str:
    """libpq takes `postgresql://` and `postgres://` URLs as they are."""
    return url


def liveness(url: str, timeout: int = TIMEOUT) -> dict[str, int]:
    """libpq settings that give a connection up after `timeout` seconds of silence.

    A cut network (a node cut off, a dead host, a dropped NAT entry) sends no reset: the
    socket just stays quiet, and without these a query waits for TCP to give up (about 15
    minutes) with the writer and every phone behind it. `connect_timeout` bounds a new
    connection; keepalive probes find a dead peer while waiting for an answer (a slow
    query still answers the probes, so it is not cut); `tcp_user_timeout` bounds data sent
    and never acknowledged. Settings written in the URL win.
    """
    idle = max(1, timeout // 2)
    wanted = {
        "connect_timeout": timeout,
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": 1,
        "keepalives_count": max(1, timeout - idle),
        "tcp_user_timeout": timeout * 1000,  # milliseconds
    }
    given = conninfo_to_dict(dsn(url))
    return {k: v for k, v in wanted.items() if k not in given}


def server_liveness(timeout: int = TIMEOUT) -> dict[str, str]:
    """The same on the server's side of the connection (session settings any user may
    set): PostgreSQL then ends a cut-off node's session, its transaction and the locks it
    holds, within about `timeout` seconds instead of hours, and the other nodes go on."""
    idle = max(1, timeout // 2)
    return {
        "tcp_keepalives_idle": str(idle),
        "tcp_keepalives_interval": "1",
        "tcp_keepalives_count": str(max(1, timeout - idle)),
        "tcp_user_timeout": str(timeout * 1000),
    }


class _NulSafeStr(StrDumperUnknown):
    """Strings as psycopg sends them, but a NUL character (which PostgreSQL's text cannot
    hold, and psycopg refuses) as U+FFFD. A value from outside that carries one (a queue
    name or session id in a published event, a number a Kamailio report carried, a
    webhook receiver's answer) would otherwise fail its whole transaction on every retry:
    every report in the same group commit, and on a cluster the partition's owner, which
    would retry it forever. Event bodies are stored as bytes and keep theirs escaped."""

    def dump(self, obj: str) -> bytes | bytearray | memoryview | None:
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)


def nul_safe(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """Send `conn`'s strings through _NulSafeStr (every connection the hub opens)."""
    conn.adapters.register_dumper(str, _NulSafeStr)


async def connect_async(
    url: str, silent_after: float, *, bound_statements: bool = True
) -> psycopg.AsyncConnection[Any]:
    """An autocommit asyncio connection given up after `silent_after` seconds of silence;
    with `bound_statements`, its statements and lock waits are bounded by it too (a
    LISTEN connection, which waits for notifications, is opened without)."""
    settings: dict[str, Any] = liveness(url, max(1, math.ceil(silent_after)))
    if bound_statements:
        ms = int(silent_after * 1000)
        settings["options"] = f"-c statement_timeout={ms} -c lock_timeout={ms}"
    conn = await psycopg.AsyncConnection.connect(
        make_conninfo(dsn(url), **settings), autocommit=True
    )
    nul_safe(conn)
    return conn
