"""How long a PostgreSQL connection may stay silent: the libpq settings on the node's side
and the session settings on the server's side, both from `[server] database_timeout`."""

from __future__ import annotations

import pytest

from callhook.store.postgres.connections import liveness, server_liveness
from callhook.store.postgres.engine import connect_raw
from tests.support import postgres


@pytest.mark.parametrize(
    ("timeout", "idle", "count"),
    [(2, 1, 1), (5, 2, 3), (10, 5, 5), (3600, 1800, 1800)],
)
def test_a_silent_connection_is_given_up_after_about_the_timeout(
    timeout: int, idle: int, count: int
) -> None:
    got = liveness("postgresql://u@db.example/x", timeout)
    assert got == {
        "connect_timeout": timeout,
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": 1,
        "keepalives_count": count,
        "tcp_user_timeout": timeout * 1000,
    }
    # the first keepalive probe, then one a second until the last unanswered one
    assert got["keepalives_idle"] + got["keepalives_count"] == timeout
    assert server_liveness(timeout) == {
        "tcp_keepalives_idle": str(idle),
        "tcp_keepalives_interval": "1",
        "tcp_keepalives_count": str(count),
        "tcp_user_timeout": str(timeout * 1000),
    }


def test_settings_written_in_the_url_win() -> None:
    url = "postgresql://u@db.example/x?keepalives_idle=30&connect_timeout=20"
    got = liveness(url, 5)
    assert "keepalives_idle" not in got and "connect_timeout" not in got
    assert got["tcp_user_timeout"] == 5000


def test_a_connection_carries_them_on_both_ends() -> None:
    url = postgres.fresh_database()
    conn = connect_raw(url, 4)  # over TCP: the server's socket options apply
    try:
        shown = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("tcp_keepalives_idle", "tcp_keepalives_count", "tcp_user_timeout")
        }
        assert shown == {
            "tcp_keepalives_idle": "2",
            "tcp_keepalives_count": "2",
            "tcp_user_timeout": "4000",  # milliseconds
        }
        options = {o.keyword.decode(): o.val for o in conn.pgconn.info}  # libpq's own
        assert options["tcp_user_timeout"] == b"4000"
        assert options["keepalives_idle"] == b"2"
        assert options["connect_timeout"] == b"4"
    finally:
        conn.close()
