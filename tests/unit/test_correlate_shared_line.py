"""Shared lines: two calls at once on one phone's line are two sessions, whatever the
phone reports and when (a fake clock, as in test_correlate.py)."""

from __future__ import annotations

import pytest

from tests.support.correlator import T0, Phones, restarted, uri


def test_two_calls_from_one_shared_line_are_two_sessions() -> None:
    """Ring legs merge on the caller's number: a phone settled "answered elsewhere" that
    then answers its own call id was in a second call (a company line shared by two)."""
    p = Phones(merge_window=1)
    line = "0711999000"
    p.send("incoming_call", local="101", remote=line, call_id="sc1")
    p.wait(0.4)
    p.send("incoming_call", local="102", remote=line, call_id="sc2")
    p.wait(1.5)
    p.send("establish_call", local="101", remote=line, call_id="sc1")
    assert p.one("target_noanswer")["reason"] == "answered_elsewhere"
    p.wait(1.5)
    assert p.send("establish_call", local="102", remote=line, call_id="sc2") == [
        "call_start",
        "call_established",
    ]
    assert p.c.presence("acme", "102")["status"] == "busy"
    p.wait(2)
    p.send("terminate_call", local="101", remote=line, call_id="sc1", duration="3")
    assert p.c.presence("acme", "102")["status"] == "busy"
    p.wait(2)
    assert p.send("terminate_call", local="102", remote=line, call_id="sc2", duration="30") == [
        "target_ended",
        "call_ended",
        "call_cdr",
    ]
    assert p.send("terminate_call", local="102", remote=line, call_id="sc2", duration="30") == []
    assert len(p.sessions()) == 2 and p.count("call_start") == 2
    first, second = (e.body for e in p.log if e.key == "call_cdr")
    assert (first["call_id"], first["talk_seconds"], first["status"]) == ("sc1", 3, "answered")
    assert (second["call_id"], second["talk_seconds"], second["status"]) == ("sc2", 30, "answered")
    assert second["call_target"] == uri("102") and second["extensions"] == ["102"]
    assert (second["caller"], second["ring_seconds"]) == (first["caller"], 3)
    assert second["start_time"] == str(int(T0 + 0.4))
    start = [e.body for e in p.log if e.key == "call_start"][1]
    assert start["session_id"] == second["session_id"] and start["time"] == str(int(T0 + 0.4))
    assert p.c.presence("acme", "102")["sessions"] == []


def test_shared_line_second_call_survives_a_restart() -> None:
    p = Phones(merge_window=1)
    p.send("incoming_call", local="101", remote="0711999000", call_id="sc1")
    p.send("incoming_call", local="102", remote="0711999000", call_id="sc2")
    p.wait(2)
    p.send("establish_call", local="101", remote="0711999000", call_id="sc1")
    p.send("establish_call", local="102", remote="0711999000", call_id="sc2")
    first, second = (e.session_id for e in p.log if e.key == "call_start")
    p2 = restarted(p, after=1, merge_window=1)
    p2.send("terminate_call", local="101", remote="0711999000", call_id="sc1", duration="3")
    p2.send("terminate_call", local="102", remote="0711999000", call_id="sc2", duration="9")
    assert [(e.session_id, e.body["talk_seconds"]) for e in p2.log if e.key == "call_cdr"] == [
        (first, 3),
        (second, 9),
    ]


@pytest.mark.parametrize(
    "report",
    [("hold_call", {}), ("terminate_call", {"duration": "30"})],
)
def test_shared_line_second_call_known_by_hold_or_talk_time(
    report: tuple[str, dict[str, str]],
) -> None:
    p = Phones(merge_window=1)
    p.send("incoming_call", local="101", remote="0711999000", call_id="sc1")
    p.send("incoming_call", local="102", remote="0711999000", call_id="sc2")
    p.wait(2)
    p.send("establish_call", local="101", remote="0711999000", call_id="sc1")
    p.wait(3)
    p.send("terminate_call", local="101", remote="0711999000", call_id="sc1", duration="3")
    event, extra = report
    keys = p.send(event, local="102", remote="0711999000", call_id="sc2", **extra)
    assert keys[:2] == ["call_start", "call_established"]
    p.tick(4 * 3600 + 10)
    assert p.count("call_cdr") == 2 and len(p.sessions()) == 2
    assert {c.body["status"] for c in p.log if c.key == "call_cdr"} == {"answered"}


def test_shared_line_second_call_answered_after_the_first_ended() -> None:
    """The phone that rang first lost, and answered its own call only after the first call
    had ended: it still gets a call of its own, with its talk time."""
    p = Phones(merge_window=1)
    line = "0711999000"
    p.send("incoming_call", local="102", remote=line, call_id="sc2")
    p.send("incoming_call", local="101", remote=line, call_id="sc1")
    p.wait(2)
    p.send("establish_call", local="101", remote=line, call_id="sc1")
    p.wait(1)
    p.send("terminate_call", local="101", remote=line, call_id="sc1", duration="1")
    p.wait(1)
    assert p.send("establish_call", local="102", remote=line, call_id="sc2")[:2] == [
        "call_start",
        "call_established",
    ]
    p.wait(5)
    p.send("terminate_call", local="102", remote=line, call_id="sc2", duration="5")
    cdrs = [e.body for e in p.log if e.key == "call_cdr"]
    assert [(c["call_target"], c["talk_seconds"]) for c in cdrs] == [
        (uri("101"), 1),
        (uri("102"), 5),
    ]
    assert cdrs[1]["call_id"] == "sc2" and cdrs[0]["session_id"] != cdrs[1]["session_id"]
