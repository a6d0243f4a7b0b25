"""Correlator scenarios with a fake clock: one test per call flow (timers, restarts and
bounds: test_correlate_lifecycle.py; shared lines: test_correlate_shared_line.py;
transfers and redirects: test_correlate_transfers.py)."""

from __future__ import annotations

import pytest

from tests.support.correlator import T0, Phones, uri


def test_inbound_answered() -> None:
    p = Phones()
    assert p.send("incoming_call", local="101", remote="0711222333", call_id="a") == [
        "call_start",
        "target_add",
        "target_ringing",
    ]
    p.wait(4)
    assert p.send("establish_call", local="101", remote="0711222333", call_id="a") == [
        "call_established"
    ]
    p.wait(60)
    assert p.send(
        "terminate_call", local="101", remote="0711222333", call_id="a", duration="58"
    ) == ["target_ended", "call_ended", "call_cdr"]
    start = p.one("call_start")
    # Every party is a SIP address, an outside number too; the plain number alongside.
    assert start["caller"] == uri("0711222333") and start["callee"] == uri("101")
    assert (start["caller_number"], start["callee_number"]) == ("0711222333", "101")
    assert start["direction"] == "inbound" and start["request_id"] == "0"
    assert start["time"] == str(int(T0)) and start["tenant_id"] == "42"
    cdr = p.one("call_cdr")
    assert cdr["status"] == "answered" and cdr["end_reason"] == "hangup"
    assert (cdr["ring_seconds"], cdr["talk_seconds"]) == (4, 58)
    assert cdr["start_time"] == str(int(T0)) and cdr["answer_time"] == str(int(T0 + 4))
    assert cdr["cdr_id"] == start["cdr_id"] and cdr["extensions"] == ["101"]
    assert p.one("call_established")["call_target"] == uri("101")
    assert len(p.sessions()) == 1
    assert all(e.extensions == ("101",) for e in p.log)


def test_outbound_answered() -> None:
    p = Phones()
    assert p.send("outgoing_call", local="102", remote="0044123", call_id="o") == ["call_start"]
    p.wait(8)
    assert p.send("establish_call", local="102", remote="0044123", call_id="o") == [
        "call_established"
    ]
    p.wait(30)
    assert p.send("terminate_call", local="102", remote="0044123", call_id="o") == [
        "call_ended",
        "call_cdr",
    ]
    start = p.one("call_start")
    assert (start["caller"], start["callee"], start["direction"]) == (
        uri("102"),
        uri("0044123"),
        "outbound",
    )
    cdr = p.one("call_cdr")
    assert (cdr["status"], cdr["talk_seconds"], cdr["ring_seconds"]) == ("answered", 30, 8)
    assert p.one("call_established")["call_target"] == uri("0044123")


def test_outbound_not_answered_is_no_answer() -> None:
    p = Phones()
    p.send("outgoing_call", local="102", remote="0044123", call_id="o")
    p.wait(20)
    assert p.send("terminate_call", local="102", remote="0044123", call_id="o") == [
        "call_noanswer",
        "call_cdr",
    ]
    assert p.one("call_cdr")["status"] == "no_answer"


@pytest.mark.parametrize("callee_first", [False, True])
def test_internal_call_both_phones_report(callee_first: bool) -> None:
    p = Phones()
    a = {"local": "101", "remote": "102", "call_id": "leg-a"}
    b = {"local": "102", "remote": "101", "call_id": "leg-b"}
    first, second = (("incoming_call", b), ("outgoing_call", a))
    if not callee_first:
        first, second = second, first
    p.send(first[0], **first[1])
    p.wait(1)
    p.send(second[0], **second[1])
    p.wait(3)
    p.send("establish_call", **b)
    p.send("establish_call", **a)
    p.wait(20)
    p.send("terminate_call", **a)
    p.wait(0.5)
    p.send("terminate_call", **b)
    keys = [e.key for e in p.log]
    for key in ("call_start", "call_established", "call_ended", "call_cdr", "target_add"):
        assert keys.count(key) == 1, key
    assert len(p.sessions()) == 1
    start = p.one("call_start")
    assert (start["caller"], start["callee"], start["direction"]) == (uri("101"), uri("102"), "ext")
    assert p.one("target_ringing")["call_target"] == uri("102")
    cdr = p.one("call_cdr")
    assert cdr["status"] == "answered" and cdr["direction"] == "ext"
    assert sorted(cdr["extensions"]) == ["101", "102"]
    assert p.log[-1].key == "call_cdr"


def test_internal_call_legs_too_far_apart_are_two_sessions() -> None:
    p = Phones(merge_window=5.0)
    p.send("outgoing_call", local="101", remote="102", call_id="a")
    p.wait(6)
    p.send("incoming_call", local="102", remote="101", call_id="b")
    assert len(p.sessions()) == 2


def test_internal_call_other_phone_whose_start_was_lost_joins_later() -> None:
    p = Phones(merge_window=5.0)
    p.send("outgoing_call", local="101", remote="102", call_id="a")
    p.send("establish_call", local="101", remote="102", call_id="a")
    p.wait(60)
    p.send("terminate_call", local="102", remote="101", call_id="b")
    assert p.count("call_cdr") == 0  # 101's own Terminate Call may follow
    assert p.c.active_calls("acme")[0]["state"] == "ending"
    p.tick(6)
    assert len(p.sessions()) == 1 and p.count("call_cdr") == 1
    assert p.one("call_cdr")["end_time"] == str(int(T0 + 60))


def test_ring_group_answered_elsewhere_is_not_missed() -> None:
    p = Phones()
    for n in ("101", "102", "103"):
        p.send("incoming_call", local=n, remote="0711", call_id=f"rg-{n}")
        p.wait(0.2)
    p.wait(6)
    assert p.send("establish_call", local="102", remote="0711", call_id="rg-102") == [
        "call_established",
        "target_noanswer",
        "target_noanswer",
    ]
    noanswer = [e.body for e in p.log if e.key == "target_noanswer"]
    assert {b["call_target"] for b in noanswer} == {uri("101"), uri("103")}
    assert {b["reason"] for b in noanswer} == {"answered_elsewhere"}
    # The phones that rang report Missed Call afterwards: already decided, dropped.
    assert p.send("missed_call", local="101", remote="0711", call_id="rg-101") == []
    assert p.send("missed_call", local="103", remote="0711") == []
    p.wait(30)
    p.send("terminate_call", local="102", remote="0711", call_id="rg-102")
    assert p.count("call_noanswer") == 0 and p.count("call_start") == 1
    assert p.count("target_add") == 3 and len(p.sessions()) == 1
    cdr = p.one("call_cdr")
    assert cdr["status"] == "answered" and cdr["call_target"] == uri("102")
    assert sorted(cdr["extensions"]) == ["101", "102", "103"]


def test_ring_group_forked_with_one_call_id() -> None:
    p = Phones()
    p.send("incoming_call", local="101", remote="0711", call_id="fork")
    p.send("incoming_call", local="102", remote="0711", call_id="fork")
    p.wait(2)
    p.send("establish_call", local="101", remote="0711", call_id="fork")
    assert p.one("target_noanswer")["call_target"] == uri("102")
    assert len(p.sessions()) == 1


def test_anonymous_callers_are_never_merged() -> None:
    p = Phones()
    p.send("incoming_call", local="101", remote="anonymous", call_id="x")
    p.send("incoming_call", local="102", remote="anonymous", call_id="y")
    assert len(p.sessions()) == 2


@pytest.mark.parametrize(("ring", "status"), [(12, "missed"), (2, "abandoned")])
def test_missed_or_abandoned_by_ring_time(ring: float, status: str) -> None:
    p = Phones(min_ring_seconds=5.0)
    p.send("incoming_call", local="101", remote="0711", call_id="m")
    p.wait(ring)
    keys = p.send("missed_call", local="101", remote="0711", call_id="m")
    cdr = p.one("call_cdr")
    assert cdr["status"] == status and cdr["ring_seconds"] == ring
    # A missed call closes with call_noanswer, an abandoned one with call_ended: never both.
    closing = "call_noanswer" if status == "missed" else "call_ended"
    assert keys == ["target_noanswer", closing, "call_cdr"]
    assert p.one("target_noanswer")["reason"] == "no_answer"


def test_internal_caller_gives_up() -> None:
    p = Phones()
    p.send("outgoing_call", local="101", remote="102", call_id="a")
    p.send("incoming_call", local="102", remote="101", call_id="b")
    p.wait(9)
    assert p.send("terminate_call", local="101", remote="102", call_id="a") == [
        "target_noanswer",
        "call_noanswer",
        "call_cdr",
    ]
    assert p.one("target_noanswer")["reason"] == "caller_cancelled"
    assert p.one("call_cdr")["status"] == "missed"
    assert p.send("missed_call", local="102", remote="101", call_id="b") == []


def test_hold_unhold_repeat_but_duplicates_drop() -> None:
    p = Phones()
    a = {"local": "101", "remote": "102", "call_id": "h"}
    p.send("outgoing_call", **a)
    p.send("establish_call", **a)
    assert p.send("hold_call", **a) == ["call_hold"]
    assert p.send("hold_call", **a) == []
    assert p.send("resume_call", **a) == ["call_unhold"]
    assert p.send("resume_call", **a) == []
    assert p.send("hold_call", **a) == ["call_hold"]
    hold = p.log[-1].body
    assert (hold["aor"], hold["peer_aor"], hold["call_id"]) == (uri("101"), uri("102"), "h")
    assert p.c.active_calls("acme")[0]["state"] == "held"


def test_duplicates_are_dropped() -> None:
    p = Phones()
    v = {"local": "101", "remote": "0711", "call_id": "d"}
    assert p.send("incoming_call", **v) == ["call_start", "target_add", "target_ringing"]
    assert p.send("incoming_call", **v) == []
    p.send("establish_call", **v)
    assert p.send("establish_call", **v) == []
    p.send("terminate_call", **v)
    assert p.send("terminate_call", **v) == []
    assert p.count("call_cdr") == 1


def test_out_of_order_establish_before_incoming() -> None:
    p = Phones()
    v = {"local": "101", "remote": "0711", "call_id": "o"}
    assert p.send("establish_call", **v, calldirection="incoming") == [
        "call_start",
        "call_established",
    ]
    assert p.send("incoming_call", **v) == []
    p.wait(5)
    p.send("terminate_call", **v)
    start = p.one("call_start")
    assert (start["caller"], start["callee"]) == (uri("0711"), uri("101"))
    assert p.one("call_cdr")["status"] == "answered"


@pytest.mark.parametrize(
    ("duration", "keys", "status"),
    [
        ("95", ["call_start", "call_established", "call_ended", "call_cdr"], "answered"),
        (None, ["call_start", "call_ended", "call_cdr"], "no_answer"),
    ],
)
def test_terminate_only(duration: str | None, keys: list[str], status: str) -> None:
    p = Phones()
    v = {"local": "101", "remote": "0711"}
    if duration:
        v["duration"] = duration
    assert p.send("terminate_call", **v) == keys
    cdr = p.one("call_cdr")
    assert cdr["status"] == status
    if duration:
        assert cdr["talk_seconds"] == 95
        assert cdr["answer_time"] == cdr["start_time"] == str(int(T0 - 95))


def test_calls_without_call_ids() -> None:
    p = Phones()
    v = {"local": "101", "remote": "0711"}
    for _ in range(2):  # the same caller twice in a row: two calls
        p.send("incoming_call", **v)
        p.send("incoming_call", **v)
        p.send("establish_call", **v)
        p.wait(10)
        p.send("terminate_call", **v, duration="10")
        p.send("terminate_call", **v, duration="10")
        p.wait(2)
    assert p.count("call_start") == 2 and p.count("call_cdr") == 2
    assert len(p.sessions()) == 2


def test_call_id_on_some_events_only() -> None:
    p = Phones()
    p.send("incoming_call", local="101", remote="0711")
    p.send("establish_call", local="101", remote="0711", call_id="late-id")
    p.send("terminate_call", local="101", remote="0711")
    assert p.count("call_start") == 1 and p.count("call_cdr") == 1


def test_internal_caller_dials_a_ring_group() -> None:
    p = Phones()
    p.send("outgoing_call", local="104", remote="600", call_id="c")  # 600: a ring group
    p.send("incoming_call", local="101", remote="104", call_id="r1")
    p.send("incoming_call", local="102", remote="104", call_id="r2")
    p.wait(3)
    p.send("establish_call", local="102", remote="104", call_id="r2")
    p.send("establish_call", local="104", remote="600", call_id="c")
    p.wait(10)
    p.send("terminate_call", local="104", remote="600", call_id="c")
    p.tick(6)  # 102 never reports its end: closed after merge_window
    assert len(p.sessions()) == 1 and p.count("call_established") == 1
    assert p.one("target_noanswer")["call_target"] == uri("101")
    cdr = p.one("call_cdr")
    assert (cdr["caller"], cdr["callee"], cdr["call_target"]) == (
        uri("104"),
        uri("600"),
        uri("102"),
    )
    assert (cdr["caller_number"], cdr["callee_number"], cdr["call_target_number"]) == (
        "104",
        "600",
        "102",
    )


def test_internal_call_talk_time_is_the_longest_reported() -> None:
    p = Phones()
    a = {"local": "101", "remote": "102", "call_id": "a"}
    b = {"local": "102", "remote": "101", "call_id": "b"}
    p.send("outgoing_call", **a)
    p.send("incoming_call", **b)
    p.send("establish_call", **b)
    p.send("establish_call", **a)
    p.wait(93)
    assert p.send("terminate_call", **a, duration="92") == []  # 102's end follows
    p.wait(0.05)
    assert p.send("terminate_call", **b, duration="93") == [
        "target_ended",
        "call_ended",
        "call_cdr",
    ]
    cdr = p.one("call_cdr")
    assert cdr["talk_seconds"] == 93 and cdr["end_time"] == str(int(T0 + 93))


@pytest.mark.parametrize("loser_says", ["missed_call", "terminate_call", None])
def test_ring_group_loser_reports_stay_in_the_one_session(loser_says: str | None) -> None:
    p = Phones(merge_window=1)
    p.send("incoming_call", local="101", remote="0711999000", call_id="g1")
    p.send("incoming_call", local="102", remote="0711999000", call_id="g2")
    p.wait(2)
    p.send("establish_call", local="101", remote="0711999000", call_id="g1")
    if loser_says:
        extra = {"duration": "0"} if loser_says == "terminate_call" else {}
        assert p.send(loser_says, local="102", remote="0711999000", call_id="g2", **extra) == []
    p.wait(3)
    p.send("terminate_call", local="101", remote="0711999000", call_id="g1", duration="3")
    assert p.count("call_start") == 1 and p.count("call_cdr") == 1
    assert p.one("target_noanswer")["reason"] == "answered_elsewhere"
    assert sorted(p.one("call_cdr")["extensions"]) == ["101", "102"]


def test_a_lone_terminate_with_talk_time_reads_forward_in_time() -> None:
    p = Phones()
    keys = p.send("terminate_call", local="101", remote="0711", call_id="late", duration="30")
    assert keys == ["call_start", "call_established", "call_ended", "call_cdr"]
    times = [int(e.body["time"]) for e in p.log]
    assert times == [int(T0) - 30, int(T0) - 30, int(T0), int(T0)]


def test_talk_time_longer_than_the_call_is_not_answered_before_it_began() -> None:
    p = Phones()
    p.send("outgoing_call", local="101", remote="0711", call_id="o")
    p.wait(10)
    p.send("terminate_call", local="101", remote="0711", call_id="o", duration="60")
    times = [int(e.body["time"]) for e in p.log]
    assert times == sorted(times) and p.one("call_start")["time"] == str(int(T0))
    assert p.one("call_established")["time"] == str(int(T0))


def test_a_caller_learned_late_is_filled_in() -> None:
    p = Phones()
    p.send("incoming_call", local="101", call_id="a")  # the phone did not say who called
    p.wait(0.3)
    p.send("incoming_call", local="101", remote="0711", call_id="b")  # another call
    p.send("establish_call", local="101", remote="0722", call_id="a")
    p.send("terminate_call", local="101", remote="0722", call_id="a", display_remote="Zed")
    assert len(p.sessions()) == 2
    ended = [e.body for e in p.log if e.key == "call_ended"]
    assert ended[0]["caller"] == uri("0722")
    cdr = p.one("call_cdr")
    assert (cdr["call_id"], cdr["caller"], cdr["caller_display_name"]) == ("a", uri("0722"), "Zed")


def test_a_second_ring_naming_a_caller_is_another_call_without_call_ids() -> None:
    p = Phones()
    p.send("incoming_call", local="101")
    p.wait(0.3)
    p.send("incoming_call", local="101", remote="0711")
    assert len(p.sessions()) == 2
