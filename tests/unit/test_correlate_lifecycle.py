"""The correlator over time, with a fake clock: ring and idle timeouts on tick(), restarts
from saved state, and the bounds that keep its memory finite."""

from __future__ import annotations

from typing import Any

import pytest

from callhook.ingest.model import PhoneEvent
from tests.support.correlator import T0, Phones, restarted, uri


def test_idle_session_times_out_on_tick() -> None:
    p = Phones(session_timeout=3600)
    p.send("establish_call", local="101", remote="0711", call_id="z")
    assert p.tick(3599) == []
    assert p.tick(2) == ["target_ended", "call_ended", "call_cdr"] or p.log[-1].key == "call_cdr"
    cdr = p.one("call_cdr")
    assert cdr["end_reason"] == "timeout" and cdr["status"] == "answered"
    assert p.c.active_calls("acme") == []
    assert p.send("terminate_call", local="101", remote="0711", call_id="z") == []


def test_ringing_decided_missed_after_ring_timeout() -> None:
    p = Phones(ring_timeout=180)
    # The phone has shown it reports answers, so silence means nobody answered.
    p.send("establish_call", local="101", remote="0711", call_id="earlier")
    p.send("terminate_call", local="101", remote="0711", call_id="earlier")
    p.send("incoming_call", local="101", remote="0712", call_id="r")
    assert p.tick(179) == []
    assert p.tick(2) == ["target_noanswer", "call_noanswer", "call_cdr"]
    cdr = p.log[-1].body
    assert (cdr["status"], cdr["end_reason"]) == ("missed", "ring_timeout")


def test_a_call_that_only_rang_ends_unanswered_after_ring_timeout() -> None:
    """It rang for session_timeout (4 h) when the phone had never reported an answer."""
    p = Phones(ring_timeout=180, session_timeout=4 * 3600)
    p.send("incoming_call", local="101", remote="0712", call_id="r")
    p.wait(100)
    p.send("incoming_call", local="101", remote="0712", call_id="r")  # news: a repeat
    assert p.tick(179) == []
    assert p.tick(2) == ["target_noanswer", "call_noanswer", "call_cdr"]
    assert p.one("target_noanswer")["reason"] == "ring_timeout"
    cdr = p.one("call_cdr")
    assert (cdr["status"], cdr["end_reason"]) == ("missed", "ring_timeout")
    assert p.c.active_calls("acme") == []
    assert p.c.presence("acme", "101")["sessions"] == []


def test_ring_timeout_ends_a_call_as_missed_call_does() -> None:
    """The same closing events, in the same order, whether the phone said Missed Call or
    went silent."""
    said, silent = Phones(ring_timeout=60), Phones(ring_timeout=60)
    for p in (said, silent):
        p.send("incoming_call", local="101", remote="0712", call_id="g")
        p.send("incoming_call", local="102", remote="0712", call_id="g2")  # a ring group
        p.wait(30)
        p.send("missed_call", local="102", remote="0712", call_id="g2")
    said.wait(20)
    said.send("missed_call", local="101", remote="0712", call_id="g")
    silent.tick(61)  # no news since the Missed Call of 102
    assert [e.key for e in said.log] == [e.key for e in silent.log]
    assert silent.log[-1].key == "call_cdr" and silent.one("call_cdr")["status"] == "missed"


def test_a_dialing_phone_that_never_reports_answers_is_not_given_up_on() -> None:
    """An outgoing call's phone configured without Establish Call may be talking."""
    p = Phones(ring_timeout=180, session_timeout=3600)
    p.send("outgoing_call", local="101", remote="0712", call_id="o")
    assert p.tick(600) == []
    p.send("terminate_call", local="101", remote="0712", call_id="o", duration="590")
    assert p.one("call_cdr")["status"] == "answered"


def test_restart_keeps_the_session() -> None:
    p = Phones()
    p.send("incoming_call", local="101", remote="0711", call_id="r")
    p.send("establish_call", local="101", remote="0711", call_id="r")
    changes = p.c.drain_changes()
    [(tenant, sid, state)] = changes.sessions
    assert tenant == "acme" and state is not None and sid == p.one("call_start")["session_id"]
    presence = [d for _, _, d in changes.presence]
    assert p.c.drain_changes().sessions == []
    p2 = Phones()
    p2.now = p.now + 100
    p2.c.restore([state], presence)
    assert p2.c.presence("acme", "101")["sessions"] == [sid]
    assert p2.c.active_calls("acme")[0]["session_id"] == sid
    p2.send("terminate_call", local="101", remote="0711", call_id="r")
    cdr = p2.one("call_cdr")
    assert cdr["session_id"] == sid and cdr["cdr_id"] == p.one("call_start")["cdr_id"]
    assert p2.count("call_start") == 0
    [(_, _, closed)] = p2.c.drain_changes().sessions  # kept while repeats are recognised
    assert closed is not None and closed["closed"] and closed["closed_at"] == p2.now
    p2.tick(31)
    assert p2.c.drain_changes().sessions == [("acme", sid, None)]


def test_repeat_of_a_finished_call_after_a_restart_is_dropped() -> None:
    p = Phones()
    v = {"local": "103", "remote": "0711444", "call_id": "dr1"}
    p.send("incoming_call", **v)
    p.wait(1)
    p.send("establish_call", **v)
    p.wait(1)
    p.send("terminate_call", **v, duration="1")
    p2 = restarted(p, after=6)
    assert p2.c.open_sessions == 0 and p2.c.active_calls("acme") == []
    assert p2.send("terminate_call", **v, duration="1") == []
    assert p2.send("establish_call", **v) == []
    assert p2.c.presence("acme", "103")["sessions"] == []
    assert p2.tick(3600) == []
    assert p2.c.drain_changes().sessions == [("acme", p.one("call_start")["session_id"], None)]


def test_closed_calls_older_than_dedup_window_are_not_restored() -> None:
    p = Phones(max_closed_sessions=2)
    for i in range(3):
        v = {"local": "101", "remote": f"07110{i}", "call_id": f"k{i}"}
        p.send("terminate_call", **v, duration="5")
    states = [d for _, _, d in p.c.drain_changes().sessions if d is not None]
    assert len(states) == 2  # the first was forgotten (max_closed_sessions) before the drain
    p.wait(10)
    p.send("terminate_call", local="102", remote="0712", call_id="late", duration="5")
    states += [d for _, _, d in p.c.drain_changes().sessions if d is not None]
    p2 = restarted(p, after=25, states=states)  # k1, k2 closed 35 s ago: past dedup_window
    forgotten = {sid for _, sid, d in p2.c.drain_changes().sessions if d is None}
    assert forgotten == {d["session_id"] for d in states[:2]}
    assert p2.send("terminate_call", local="101", remote="071101", call_id="k1", duration="5")
    assert p2.send("terminate_call", local="102", remote="0712", call_id="late", duration="5") == []
    p3 = Phones(max_closed_sessions=1)
    p3.now = p.now
    p3.c.restore(states, [])
    assert len(p3.c._table._closed) == 1 and p3.c._table._closed[0].call_id == "late"
    assert len(p3.c.drain_changes().sessions) == 2  # the rest is deleted


def test_restart_without_call_ids_keeps_the_session() -> None:
    p = Phones()
    p.send("outgoing_call", local="101", remote="102")
    p.send("incoming_call", local="102", remote="101")
    changes = p.c.drain_changes()
    p2 = Phones()
    p2.c.restore([d for _, _, d in changes.sessions if d], [d for _, _, d in changes.presence])
    p2.send("establish_call", local="102", remote="101")
    p2.send("terminate_call", local="101", remote="102")
    p2.send("terminate_call", local="102", remote="101")
    assert p2.count("call_start") == 0 and p2.count("call_cdr") == 1
    assert p2.one("call_cdr")["session_id"] == p.one("call_start")["session_id"]


def test_oldest_sessions_are_evicted() -> None:
    p = Phones(max_sessions_per_tenant=3)
    for i in range(4):
        p.send("incoming_call", local="101", remote=f"0711{i}", call_id=f"e{i}")
    cdr = p.one("call_cdr")
    assert cdr["end_reason"] == "evicted" and cdr["call_id"] == "e0"
    assert len(p.c.active_calls("acme")) == 3


def test_legs_per_session_are_bounded() -> None:
    p = Phones(max_legs_per_session=4)
    for i in range(10):
        p.send("incoming_call", local=f"2{i:02}", remote="0711", call_id="same")
    assert p.count("target_add") == 4


def test_active_calls_view() -> None:
    p = Phones()
    p.send("outgoing_call", local="101", remote="102", call_id="a")
    p.send("incoming_call", local="102", remote="101", call_id="b")
    [call] = p.c.active_calls("acme")
    assert call["state"] == "ringing" and call["direction"] == "ext"
    assert (call["caller"], call["callee"]) == (uri("101"), uri("102"))
    assert call["start_time"] == str(int(T0)) and call["answer_time"] == ""
    assert sorted(call["extensions"]) == ["101", "102"]
    assert p.c.presence("acme", "102")["ringing"] is True
    assert p.c.presence("acme", "101")["status"] == "busy"


@pytest.mark.parametrize(
    "variables",
    [{}, {"local": ""}, {"remote": "101"}, {"call_id": "x"}, {"local": "101", "remote": "101"}],
)
@pytest.mark.parametrize(
    "event", ["incoming_call", "establish_call", "terminate_call", "missed_call", "hold_call"]
)
def test_odd_reports_never_raise(event: str, variables: dict[str, str]) -> None:
    p = Phones()
    p.c.feed(PhoneEvent("acme", event, variables))
    p.c.feed(PhoneEvent("unknown-tenant", event, variables))
    p.tick(10 * 3600)


def test_session_state_round_trips() -> None:
    from callhook.correlate.state import _SESSION_FIELDS, Leg, Session

    p = Phones()
    p.send("outgoing_call", local="101", remote="102", call_id="a")
    p.send("incoming_call", local="102", remote="101", call_id="b")
    p.send("hold_call", local="101", remote="102", call_id="a")
    [(_, _, state)] = p.c.drain_changes().sessions
    assert state is not None
    assert set(_SESSION_FIELDS) <= set(state)
    again = Session.from_dict(state).to_dict()
    assert again == state
    assert set(state["legs"][0]) == {f for f in Leg.__dataclass_fields__}


def test_memory_stays_bounded_without_ticks() -> None:
    p = Phones(max_closed_sessions=100, max_dedup_entries=50)
    stored: dict[str, dict[str, Any]] = {}  # the sessions table, as the pipeline keeps it
    for i in range(3000):
        v = {"local": "101", "remote": f"07{i}", "call_id": f"m{i}"}
        p.send("incoming_call", **v)
        p.send("terminate_call", **v, duration="3")
        p.send(None, local="101", foo=str(i))  # unrecognised: remembered for dedup
        p.wait(0.001)
        for _, sid, state in p.c.drain_changes().sessions:
            if state is None:
                stored.pop(sid, None)
            else:
                stored[sid] = state
    assert len(stored) <= 100
    table = p.c._table
    assert len(table._closed) <= 100 and len(table.by_call) <= 100
    assert len(table._heap) <= 2 * len(table) + 1024
    assert len(p.c._dedup) <= 50
    assert p.count("call_cdr") == 3000
