"""Correlator scenarios with a fake clock: transfers (blind, to a target that never
reports, of an incoming call) and redirects (a SIP server's 302) continue one session."""

from __future__ import annotations

from tests.support.correlator import Phones, uri


def test_blind_transfer_continues_the_session() -> None:
    p = Phones()
    p.send("incoming_call", local="101", remote="0711", call_id="t1")
    p.send("establish_call", local="101", remote="0711", call_id="t1")
    p.wait(10)
    assert p.send("blind_transfer", local="101", remote="103", call_id="t1") == ["call_reroute"]
    reroute = p.one("call_reroute")
    assert reroute["reason"] == "blind_transfer"
    assert (reroute["call_target"], reroute["transferred_by"]) == (uri("103"), uri("101"))
    assert p.send("terminate_call", local="101", remote="0711", call_id="t1") == ["target_ended"]
    p.wait(1)
    assert p.send("incoming_call", local="103", remote="0711", call_id="t2") == [
        "target_add",
        "target_ringing",
    ]
    p.wait(3)
    assert p.send("establish_call", local="103", remote="0711", call_id="t2") == []
    p.wait(40)
    assert p.send("terminate_call", local="103", remote="0711", call_id="t2")[-2:] == [
        "call_ended",
        "call_cdr",
    ]
    assert len(p.sessions()) == 1 and p.count("call_established") == 1
    cdr = p.one("call_cdr")
    assert cdr["status"] == "answered" and sorted(cdr["extensions"]) == ["101", "103"]


def test_transfer_whose_target_never_reports_closes_on_tick() -> None:
    p = Phones(merge_window=5.0)
    p.send("establish_call", local="101", remote="0711", call_id="t", calldirection="incoming")
    p.send("attended_transfer", local="101", remote="0800", call_id="t")
    p.send("terminate_call", local="101", remote="0711", call_id="t")
    assert p.count("call_ended") == 0
    assert p.tick(4) == []
    assert p.tick(2)[-2:] == ["call_ended", "call_cdr"]
    assert p.one("call_cdr")["end_reason"] == "transferred"
    assert p.one("call_reroute")["call_target"] == uri("0800")
    assert p.one("call_reroute")["call_target_number"] == "0800"


def redirected(p: Phones) -> None:
    """101 calls 102, which rings and redirects the call to 104 (a SIP server's view: 302)."""
    p.send("outgoing_call", local="101", remote="102", call_id="r")
    p.send("incoming_call", local="102", remote="101", call_id="r")
    moved = {"reason": "redirect"}
    assert p.send("blind_transfer", moved, local="102", remote="104", call_id="r") == [
        "call_reroute"
    ]
    failed = {"fail_code": "302"}
    end = {"local": "102", "remote": "101", "call_id": "r", "calldirection": "incoming"}
    assert p.send("terminate_call", failed, **end) == ["target_fail"]


def test_a_redirected_call_goes_on_to_the_new_target_unanswered_until_it_answers() -> None:
    p = Phones(merge_window=5.0)
    redirected(p)
    reroute = p.one("call_reroute")
    assert reroute["reason"] == "redirect"
    assert (reroute["call_target"], reroute["transferred_by"]) == (uri("104"), uri("102"))
    assert p.one("target_fail")["fail_code"] == 302
    assert p.count("call_established") == 0
    p.wait(1)
    assert p.send("outgoing_call", local="101", remote="104", call_id="r") == []
    assert p.tick(10) == []  # no longer waiting for the redirect to be followed
    assert p.send("incoming_call", local="104", remote="101", call_id="r") == [
        "target_add",
        "target_ringing",
    ]
    assert p.send("establish_call", local="104", remote="101", call_id="r") == ["call_established"]
    assert p.one("call_established")["call_target"] == uri("104")
    p.wait(30)
    p.send("terminate_call", local="101", remote="104", call_id="r")
    got = p.send("terminate_call", local="104", remote="101", call_id="r")
    assert got[-2:] == ["call_ended", "call_cdr"]
    cdr = p.one("call_cdr")
    assert cdr["status"] == "answered" and cdr["call_target"] == uri("104")
    assert sorted(cdr["extensions"]) == ["101", "102", "104"]
    assert len(p.sessions()) == 1


def test_a_redirect_nobody_follows_fails_with_its_status_after_merge_window() -> None:
    p = Phones(merge_window=5.0)
    redirected(p)
    assert p.tick(4) == []
    assert p.tick(2) == ["call_fail", "call_cdr"]
    assert p.one("call_fail")["fail_code"] == 302
    assert p.one("call_cdr")["status"] == "failed"


def test_a_redirect_after_the_answer_is_not_a_reroute() -> None:
    p = Phones()
    p.send("outgoing_call", local="101", remote="102", call_id="r")
    p.send("establish_call", local="102", remote="101", call_id="r", calldirection="incoming")
    moved = {"reason": "redirect"}
    assert p.send("blind_transfer", moved, local="102", remote="104", call_id="r") == []


def test_an_incoming_call_transferred_stays_inbound() -> None:
    p = Phones()
    v = {"local": "101", "call_id": "t", "calldirection": "incoming"}
    assert p.send("blind_transfer", remote="103", **v) == [
        "call_start",
        "call_established",
        "call_reroute",
    ]
    start = p.one("call_start")
    assert (start["caller"], start["callee"], start["direction"]) == ("", uri("101"), "inbound")
    reroute = p.one("call_reroute")
    assert (reroute["transferred_by"], reroute["call_target"]) == (uri("101"), uri("103"))


def test_a_transfer_s_direction_corrects_a_guess() -> None:
    p = Phones()
    # Establish Call without $calldirection: taken for the caller's phone at first.
    p.send("establish_call", local="101", remote="0711", call_id="g")
    p.send("blind_transfer", local="101", remote="103", call_id="g", calldirection="incoming")
    assert p.one("call_reroute")["caller"] == uri("0711")
    p.send("terminate_call", local="101", remote="0711", call_id="g")
    p.tick(10)  # the target never showed up
    cdr = p.one("call_cdr")
    assert (cdr["caller"], cdr["callee"], cdr["direction"]) == (uri("0711"), uri("101"), "inbound")
