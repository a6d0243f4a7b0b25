"""Property: for any seed and mix, every simulated call is a plausible timeline that ends
(or is a deliberate reboot), and no phone is ever on two calls at once."""

from __future__ import annotations

import itertools
from collections import defaultdict

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from callhook.simulate import FLOWS, ScenarioConfig, generate
from callhook.simulate.model import Plan, Step

_START = frozenset({"incoming_call", "outgoing_call"})
_END = frozenset({"terminate_call", "missed_call"})

configs = st.builds(
    ScenarioConfig,
    phones=st.integers(1, 8),
    calls=st.integers(0, 60),
    rate=st.sampled_from([0.5, 5.0, 50.0]),
    speed=st.sampled_from([1.0, 10.0, 60.0, 300.0]),
    seed=st.integers(0, 2**32 - 1),
    mix=st.dictionaries(st.sampled_from(FLOWS), st.floats(0.1, 5.0), min_size=1),
    vendors=st.sampled_from([("grandstream",), ("yealink", "snom", "fanvil")]),
    min_ring=st.sampled_from([0.0, 1.0, 5.0]),
    max_talk=st.sampled_from([30.0, 900.0]),
    causal_gap=st.sampled_from([0.0, 0.5]),
)


def _plan(cfg: ScenarioConfig) -> Plan:
    try:
        return generate(cfg)
    except ValueError:
        assume(False)
        raise


def _legs(plan: Plan) -> dict[tuple[str, str], list[Step]]:
    legs: dict[tuple[str, str], list[Step]] = defaultdict(list)
    for s in plan.steps:
        cid = dict(s.variables).get("call_id")
        if cid:
            legs[(s.phone, cid)].append(s)
    return legs


def _check_leg(steps: list[Step]) -> None:
    events = [s.event for s in steps]
    assert events[0] in _START, events
    ended = established = held = False
    for s in steps:
        assert not ended, f"{s.event} after the leg ended: {events}"
        if s.event == "establish_call":
            assert not established, events
            established = True
        elif s.event in ("hold_call", "resume_call"):
            assert established and held == (s.event == "resume_call"), events
            held = s.event == "hold_call"
        elif s.event in ("blind_transfer", "attended_transfer"):
            assert established, events
        elif s.event in _END:
            ended = True
            if s.event == "terminate_call":
                duration = dict(s.variables)["duration"]
                assert duration.isdigit()
                start = next((x.at for x in steps if x.event == "establish_call"), None)
                want = 0 if start is None else max(0, round(s.at - start))
                assert int(duration) == want, (events, duration, want)
            else:
                assert not established, events


@settings(max_examples=150, deadline=None)
@given(configs)
def test_every_call_is_a_plausible_timeline(cfg: ScenarioConfig) -> None:
    plan = _plan(cfg)
    assert all(a.at <= b.at for a, b in itertools.pairwise(plan.steps))
    all_ids = [cid for c in plan.calls for cid in c.call_ids]
    assert len(all_ids) == len(set(all_ids)), "call ids are unique"

    legs = _legs(plan)
    by_call: dict[int, list[list[Step]]] = defaultdict(list)
    for (_, _), steps in legs.items():
        _check_leg(steps)
        assert len({s.call for s in steps}) == 1
        by_call[steps[0].call].append(steps)

    for c in plan.calls:
        call_legs = by_call[c.index]
        assert len(call_legs) == len(c.call_ids) >= 1
        events = {s.event for leg in call_legs for s in leg}
        assert (c.status == "answered") == ("establish_call" in events), (c, events)
        if c.flow == "reboot":
            (leg,) = call_legs
            assert leg[-1].event == "establish_call"
            boot = [s for s in plan.steps if s.call == c.index and s.event == "booting_completed"]
            assert len(boot) == 1 and boot[0].at > leg[-1].at and boot[0].phone == leg[0].phone
        else:
            assert all(leg[-1].event in _END for leg in call_legs), (c, call_legs)
            durations = [
                int(dict(s.variables)["duration"])
                for leg in call_legs
                for s in leg
                if s.event == "terminate_call"
            ]
            if c.status == "answered":
                assert c.talk_seconds == max(durations)


@settings(max_examples=150, deadline=None)
@given(configs)
def test_phones_are_never_on_two_calls_and_end_in_the_planned_state(cfg: ScenarioConfig) -> None:
    plan = _plan(cfg)
    parts = {c.index: c.part for c in plan.calls}
    spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for (phone, _), steps in _legs(plan).items():
        spans[phone].append((steps[0].at, steps[-1].at, steps[0].call))
    for phone, intervals in spans.items():
        intervals.sort()
        for (_, end, call), (start, _, nxt) in itertools.pairwise(intervals):
            # Only the attended transfer's transferor holds one line while dialling another.
            same_transfer = parts.get(nxt) == "consult" and nxt == call + 1
            assert start > end or same_transfer, (phone, call, nxt)

    dnd = {p.extension: False for p in plan.phones}
    fwd = dict(dnd)
    registered = dict.fromkeys(dnd, False)
    for s in plan.steps:
        if s.event in ("dnd_on", "dnd_off"):
            dnd[s.phone] = s.event == "dnd_on"
        elif s.event in ("forward_on", "forward_off"):
            fwd[s.phone] = s.event == "forward_on"
        elif s.event in ("registration", "sign_off"):
            registered[s.phone] = s.event == "registration"
        elif s.event == "incoming_call":
            assert not dnd[s.phone] and not fwd[s.phone] and registered[s.phone]
    for ext, state in plan.presence.items():
        assert (state.dnd, state.forward, state.registered) == (dnd[ext], fwd[ext], registered[ext])
