"""traffic_log: which refusals get a line (rate limits), and the readable format's fields."""

from __future__ import annotations

import logging

from callhook.ops import JsonFormatter, TextFormatter
from callhook.traffic_log import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_source_and_reason_per_period() -> None:
    clock = Clock()
    lim = RateLimiter(burst=100, window=10, per_source=60, clock=clock)
    assert lim.allow("refused", "10.0.0.1", "unknown-token") == 0
    assert lim.allow("refused", "10.0.0.1", "unknown-token") is None
    assert lim.allow("refused", "10.0.0.1", "no-token") == 1  # other reason: a line, 1 held
    assert lim.allow("refused", "10.0.0.2", "unknown-token") == 0
    clock.now += 60
    assert lim.allow("refused", "10.0.0.1", "unknown-token") == 0


def test_burst_caps_lines_per_window_and_counts_the_rest() -> None:
    clock = Clock()
    lim = RateLimiter(burst=3, window=10, per_source=60, clock=clock)
    got = [lim.allow("refused", f"10.0.0.{i}", "unknown-token") for i in range(10)]
    assert got == [0, 0, 0] + [None] * 7
    assert lim.allow("login", "10.0.0.1", "unknown-key") == 0  # kinds are limited apart
    clock.now += 10
    assert lim.allow("refused", "10.0.1.1", "unknown-token") == 7


def test_remembered_sources_are_bounded() -> None:
    lim = RateLimiter(burst=10**9, window=10, per_source=60, clock=Clock())
    for i in range(10_000):
        lim.allow("refused", str(i), "r")
    assert len(lim._recent) <= 4096


def _record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(
        "callhook.ingest", logging.INFO, "x", 1, "phone request refused", (), None
    )
    rec.__dict__.update(extra)
    return rec


def test_text_format_shows_the_fields() -> None:
    line = TextFormatter().format(
        _record(source_ip="192.0.2.7", status=404, reason="unknown-token", event="Incoming Call")
    )
    assert "INFO    callhook.ingest: phone request refused" in line
    assert 'source_ip=192.0.2.7 status=404 reason=unknown-token event="Incoming Call"' in line


def test_text_and_json_formats_carry_the_same_fields() -> None:
    import orjson

    rec = _record(source_ip="192.0.2.7", events=["call_start", "target_add"], seq=4)
    as_json = orjson.loads(JsonFormatter().format(rec))
    assert as_json["events"] == ["call_start", "target_add"] and as_json["seq"] == 4
    text = TextFormatter().format(rec)
    assert 'events=["call_start","target_add"]' in text and "seq=4" in text
