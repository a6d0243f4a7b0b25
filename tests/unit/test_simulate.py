"""The simulator's planning: seeded generator, flows, mix, timing, verification."""

from __future__ import annotations

from collections import Counter

import pytest

from callhook.simulate import (
    CALL_FLOWS,
    FLOWS,
    ExpectedCall,
    PhoneState,
    ScenarioConfig,
    check,
    generate,
    hub_settings,
    parse_mix,
)
from callhook.simulate.model import Plan
from callhook.simulate.timing import Timing


def plan_of(flow: str, n: int = 20, **kw: object) -> Plan:
    cfg = ScenarioConfig(phones=6, calls=n, mix={flow: 1}, seed=3, **kw)  # type: ignore[arg-type]
    return generate(cfg)


def events_of(plan: Plan, call: int) -> list[tuple[str, str]]:
    return [(s.phone, s.event) for s in plan.steps if s.call == call]


def test_same_seed_same_plan() -> None:
    cfg = ScenarioConfig(phones=10, calls=200, seed=42)
    a, b = generate(cfg), generate(cfg)
    assert a.steps == b.steps
    assert a.calls == b.calls
    assert a.phones == b.phones
    assert a.presence == b.presence


def test_other_seed_other_plan() -> None:
    a = generate(ScenarioConfig(phones=10, calls=50, seed=1))
    b = generate(ScenarioConfig(phones=10, calls=50, seed=2))
    assert a.steps != b.steps


def test_default_mix_makes_every_flow() -> None:
    plan = generate(ScenarioConfig(phones=20, calls=1500, seed=7))
    assert all(plan.flows[f] > 0 for f in FLOWS), plan.flows
    assert sum(plan.flows[f] for f in CALL_FLOWS) == 1500
    # An attended transfer is two calls (the original and the consultation), and so is a
    # shared line (two calls from one number at once).
    assert len(plan.calls) == 1500 + plan.flows["attended_transfer"] + plan.flows["shared_line"]
    assert {c.status for c in plan.calls} == {"answered", "missed", "abandoned", "no_answer"}


def test_phones_have_identities() -> None:
    plan = generate(ScenarioConfig(phones=4, calls=0, vendors=("grandstream", "yealink")))
    assert [p.extension for p in plan.phones] == ["101", "102", "103", "104"]
    assert [p.vendor for p in plan.phones] == ["grandstream", "yealink"] * 2
    assert plan.phones[0].mac.startswith("000B82") and len(plan.phones[0].mac) == 12
    assert plan.phones[1].mac.startswith("805EC0")
    assert len({p.ip for p in plan.phones}) == 4
    # Phones register in the morning, and nothing else happens without calls.
    assert [s.event for s in plan.steps] == ["registration"] * 4


def test_inbound() -> None:
    plan = plan_of("inbound")
    c = plan.calls[0]
    assert (c.status, c.flow, len(c.call_ids)) == ("answered", "inbound", 1)
    events = [e for _, e in events_of(plan, 0)]
    assert events == ["incoming_call", "establish_call", "terminate_call"]
    term = next(s for s in plan.steps if s.call == 0 and s.event == "terminate_call")
    assert dict(term.variables)["duration"] == str(c.talk_seconds)


def test_internal_both_phones_report_with_their_own_call_ids() -> None:
    plan = plan_of("internal")
    c = plan.calls[0]
    caller, callee = c.caller, c.callee
    assert len(set(c.call_ids)) == 2 and set(c.extensions) == {caller, callee}
    ev = events_of(plan, 0)
    assert ev[:2] == [(caller, "outgoing_call"), (callee, "incoming_call")]
    assert sorted(ev[2:4]) == sorted([(caller, "establish_call"), (callee, "establish_call")])
    assert sorted(e for _, e in ev[4:]) == ["terminate_call", "terminate_call"]


def test_ring_group_one_answers_others_stop_ringing() -> None:
    plan = plan_of("ring_group", n=40)
    for c in plan.calls:
        ev = events_of(plan, c.index)
        rang = [p for p, e in ev if e == "incoming_call"]
        assert 2 <= len(rang) <= 4 and len(c.call_ids) == len(rang)
        answered = [p for p, e in ev if e == "establish_call"]
        missed = [p for p, e in ev if e == "missed_call"]
        if c.status == "answered":
            assert len(answered) == 1 and sorted(missed + answered) == sorted(rang)
        else:
            assert c.status == "missed" and not answered and sorted(missed) == sorted(rang)
    assert {c.status for c in plan.calls} == {"answered", "missed"}


def test_missed_and_abandoned_ring_times() -> None:
    timing = Timing(speed=60.0, min_ring=1.0)
    missed = plan_of("missed", n=30, speed=60.0, min_ring=1.0)
    abandoned = plan_of("abandoned", n=30, speed=60.0, min_ring=1.0)
    assert {c.status for c in missed.calls} == {"missed"}
    assert {c.status for c in abandoned.calls} == {"abandoned"}
    assert min(c.ring_seconds for c in missed.calls) / 60 >= 1.3 * timing.min_ring
    assert max(c.ring_seconds for c in abandoned.calls) <= 2.0  # "within about 2 s"
    # Both shapes: an external caller, or an internal caller whose phone reports too.
    assert {len(c.call_ids) for c in missed.calls} == {1, 2}


def test_outbound_answered_or_not() -> None:
    plan = plan_of("outbound", n=60)
    assert Counter(c.status for c in plan.calls).keys() == {"answered", "no_answer"}
    for c in plan.calls:
        events = [e for _, e in events_of(plan, c.index)]
        assert events[0] == "outgoing_call" and events[-1] == "terminate_call"
        assert ("establish_call" in events) == (c.status == "answered")


def test_blind_transfer_is_one_call() -> None:
    plan = plan_of("blind_transfer")
    c = plan.calls[0]
    a, b = c.extensions
    ev = events_of(plan, 0)
    assert [e for p, e in ev if p == a] == [
        "incoming_call",
        "establish_call",
        "blind_transfer",
        "terminate_call",
    ]
    assert [e for p, e in ev if p == b] == ["incoming_call", "establish_call", "terminate_call"]
    transfer = next(s for s in plan.steps if s.call == 0 and s.event == "blind_transfer")
    assert dict(transfer.variables)["remote"] == b  # $remote is the transfer target


def test_attended_transfer_is_two_calls() -> None:
    plan = plan_of("attended_transfer", n=5)
    assert len(plan.calls) == 10
    original, consult = plan.calls[0], plan.calls[1]
    assert (original.part, consult.part) == ("original", "consult")
    assert consult.caller == original.callee
    a_events = [e for p, e in events_of(plan, 0)]
    assert "hold_call" in a_events and a_events[-1] == "terminate_call"
    consult_events = events_of(plan, 1)
    assert (consult.caller, "attended_transfer") in consult_events
    assert consult_events[-1] == (consult.callee, "terminate_call")


def test_hold_resume_pairs() -> None:
    plan = plan_of("hold", n=20)
    for c in plan.calls:
        events = [e for _, e in events_of(plan, c.index) if e in ("hold_call", "resume_call")]
        assert events and events == ["hold_call", "resume_call"] * (len(events) // 2)


def test_reboot_never_terminates() -> None:
    plan = plan_of("reboot", n=10)
    for c in plan.calls:
        events = [e for _, e in events_of(plan, c.index)]
        assert events[-2:] == ["booting_completed", "registration"]
        assert "terminate_call" not in events
        assert (c.end_reason, c.status, c.talk_seconds) == ("timeout", "answered", None)


def test_toggles_set_final_presence() -> None:
    plan = generate(
        ScenarioConfig(phones=8, calls=30, seed=5, mix={"inbound": 1, "dnd": 2, "forward": 2})
    )
    dnd = {p.extension: False for p in plan.phones}
    fwd = dict(dnd)
    for s in plan.steps:
        if s.event.startswith("dnd_"):
            dnd[s.phone] = s.event == "dnd_on"
        if s.event.startswith("forward_"):
            fwd[s.phone] = s.event == "forward_on"
        if s.event == "incoming_call":
            assert not dnd[s.phone] and not fwd[s.phone], "a PBX does not ring DND phones"
    assert {e: (st.dnd, st.forward) for e, st in plan.presence.items()} == {
        e: (dnd[e], fwd[e]) for e in dnd
    }
    assert any(st.dnd for st in plan.presence.values())
    # Enough phones stay reachable.
    assert sum(st.dnd or st.forward for st in plan.presence.values()) <= 4


def test_registration_flow_signs_off_and_back_on() -> None:
    plan = generate(
        ScenarioConfig(phones=3, calls=5, seed=2, mix={"inbound": 1, "registration": 5})
    )
    assert plan.flows["registration"] > 0
    offs = [s for s in plan.steps if s.event == "sign_off"]
    for off in offs:
        back = [s for s in plan.steps if s.phone == off.phone and s.at > off.at]
        assert back[0].event == "registration"
    assert all(st.registered for st in plan.presence.values())


def test_one_phone_only_makes_one_phone_flows() -> None:
    plan = generate(ScenarioConfig(phones=1, calls=30, seed=1))
    assert all(len(c.extensions) == 1 for c in plan.calls)
    assert plan.flows["internal"] == plan.flows["ring_group"] == 0


def test_busy_phones_make_calls_wait() -> None:
    plan = generate(ScenarioConfig(phones=2, calls=50, rate=50, speed=10, mix={"inbound": 1}))
    assert plan.notes and "phones were busy" in plan.notes[0]


@pytest.mark.parametrize(
    ("text", "weights"),
    [
        ("inbound=3,missed=1", {"inbound": 3.0, "missed": 1.0}),
        (" ring-group = 2 , dnd", {"ring_group": 2.0, "dnd": 1.0}),
        ("", {}),
    ],
)
def test_parse_mix(text: str, weights: dict[str, float]) -> None:
    assert parse_mix(text) == weights


@pytest.mark.parametrize(("text", "error"), [("bogus=1", "unknown flow"), ("inbound=x", "bad mix")])
def test_parse_mix_errors(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_mix(text)


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"phones": 0}, "phones"),
        ({"rate": 0}, "rate"),
        ({"speed": -1}, "speed"),
        ({"vendors": ("nokia",)}, "unknown vendor"),
        ({"mix": {"inbound": -1}}, "bad mix"),
        ({"mix": {"dnd": 1}}, "no call flow"),
        ({"phones": 1, "mix": {"internal": 1}}, "no call flow"),
    ],
)
def test_config_errors(kw: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        generate(ScenarioConfig(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("speed", [1.0, 20.0, 60.0, 300.0])
@pytest.mark.parametrize("min_ring", [0.0, 0.3, 1.0, 5.0])
def test_ring_times_straddle_the_threshold(speed: float, min_ring: float) -> None:
    import random

    t, rng = Timing(speed, min_ring), random.Random(0)
    for _ in range(200):
        missed, abandoned = t.missed_ring(rng), t.abandoned_ring(rng)
        assert t.unanswered_status(missed) == "missed"
        # Even counted in whole seconds (round), the hub sees the same side of the threshold.
        assert round(missed / speed) >= min_ring
        if min_ring > 0:
            assert t.unanswered_status(abandoned) == "abandoned"
            assert round(abandoned / speed) < min_ring
            assert abandoned <= 2.0


def test_hub_settings_scale_with_speed() -> None:
    assert hub_settings(1.0) == {
        "min_ring_seconds": 5.0,
        "merge_window": 5.0,
        "session_timeout": 1351.0,
    }
    fast = hub_settings(60.0, max_talk=120.0)
    assert fast["min_ring_seconds"] == 1.0 and fast["merge_window"] == 1.0
    assert fast["session_timeout"] > 120.0 / 60.0


def _call(index: int, status: str = "answered", *ids: str) -> ExpectedCall:
    return ExpectedCall(index, "inbound", status, "0711", "101", 0.0, ids or (f"c{index}",))


def test_check_matches_cdrs_to_calls() -> None:
    calls = [_call(0), _call(1, "missed"), _call(2, "answered", "a", "b"), _call(3)]
    calls[0].talk_seconds = 30
    cdrs = [
        {"call_id": "c0", "status": "answered", "talk_seconds": 32},
        {"call_id": "c1", "status": "abandoned"},
        {"call_id": "a", "status": "answered"},
        {"call_id": "b", "status": "answered"},
        {"call_id": "zzz", "status": "answered", "cdr_id": "9"},
    ]
    v = check(calls, cdrs)
    assert v.matched == 3
    assert [c.index for c in v.missing] == [3]
    assert [(c.index, n) for c, n in v.duplicated] == [(2, 2)]
    assert [d["call_id"] for d in v.unknown] == ["zzz"]
    assert {(c.index, what) for c, what, _, _ in v.wrong} == {(0, "talk_seconds"), (1, "status")}
    assert len(v.problems) == 5
    assert not check(calls[:2], cdrs[:2], talk=False).wrong[1:]
    cdrs[0]["talk_seconds"] = 31  # phones round their own durations: 1 s either way is fine
    assert [what for _, what, _, _ in check(calls[:1], cdrs[:1]).wrong] == []


def test_check_presence() -> None:
    want = {"101": PhoneState(dnd=True), "102": PhoneState()}
    got = {"101": {"dnd": True, "forward": False, "registered": True}, "102": {"dnd": True}}
    v = check([], [], want, got)
    assert [(e, what) for e, what, _, _ in v.presence] == [
        ("102", "dnd"),
        ("102", "forward"),
        ("102", "registered"),
    ]


def test_check_tells_a_shared_lines_two_calls_apart_by_who_answered() -> None:
    """The first call's CDR may carry the call id of the phone that rang first (then split
    off into its own call): it belongs to the call its answering extension was in."""
    first = ExpectedCall(0, "shared_line", "answered", "0711", "101", 0.0, ("a",))
    second = ExpectedCall(1, "shared_line", "answered", "0711", "102", 0.0, ("b",))
    first.extensions, second.extensions = ("101",), ("102",)
    cdrs = [
        {"call_id": "b", "status": "answered", "call_target": "sip:101@acme.example.com"},
        {"call_id": "b", "status": "answered", "call_target": "sip:102@acme.example.com"},
    ]
    v = check([first, second], cdrs)
    assert v.problems == [] and v.matched == 2
