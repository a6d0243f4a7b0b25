"""Connection caps: per source, in total, for trusted proxies, and the file limit."""

from __future__ import annotations

import resource

from callhook.connections import ConnectionLimits, raise_file_limit


class Conn:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


def test_per_source_and_total_caps() -> None:
    limits = ConnectionLimits(max_open=5, max_per_source=2)
    a1, a2, a3 = Conn(), Conn(), Conn()
    assert limits.admit(a1, "10.0.0.1") is None
    assert limits.admit(a2, "10.0.0.1") is None
    assert limits.admit(a3, "10.0.0.1") == "max_per_source"
    others = [Conn() for _ in range(3)]
    assert [limits.admit(c, f"10.0.1.{i}") for i, c in enumerate(others)] == [None] * 3
    assert limits.admit(Conn(), "10.0.2.1") == "max_open"
    limits.release(a1)
    limits.release(a1)  # twice is harmless
    assert limits.admit(a3, "10.0.0.1") is None
    assert limits.per_source["10.0.0.1"] == 2
    assert limits.m_shed.labels("max_per_source")._value.get() == 1
    assert limits.m_shed.labels("max_open")._value.get() == 1


def test_a_trusted_proxy_is_held_to_the_total_only() -> None:
    limits = ConnectionLimits(max_open=10, max_per_source=1, unlimited_source=lambda ip: ip == "p")
    assert [limits.admit(Conn(), "p") for _ in range(3)] == [None] * 3
    assert limits.admit(Conn(), "q") is None
    assert limits.admit(Conn(), "q") == "max_per_source"


def test_connections_closed_elsewhere_are_found_when_the_cap_is_reached() -> None:
    limits = ConnectionLimits(max_open=2, max_per_source=10)
    gone, kept = Conn(), Conn()
    limits.admit(gone, "a")
    limits.admit(kept, "a")
    gone.closing = True  # handed to another protocol, closed there, never released
    assert limits.admit(Conn(), "a") is None
    assert gone not in limits.open


def test_the_total_stays_below_the_file_limit() -> None:
    limits = ConnectionLimits(max_open=20_000, max_per_source=10)
    limits.cap_to_file_limit(1024)
    assert limits.max_open == 1024 - 128
    limits.cap_to_file_limit(100)
    assert limits.max_open == 100 - 64
    soft = raise_file_limit()
    assert soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or soft == hard
