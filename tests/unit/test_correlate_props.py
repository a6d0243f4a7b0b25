"""Properties of the correlator under any interleaving, repetition or loss of phone reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given, note, settings
from hypothesis import strategies as st

from callhook.correlate import CorrelationSettings, Correlator
from callhook.directory import Extension, Tenant
from callhook.events import Event
from callhook.ingest.model import PHONE_EVENTS, PhoneEvent

LIFECYCLE = ("call_start", "call_established", "call_ended", "call_noanswer", "call_fail")
TENANT = Tenant(
    name="acme",
    tenant_id="1",
    domain="acme.example.com",
    extensions={n: Extension(n) for n in ("101", "102", "103")},
)
SETTINGS = CorrelationSettings(merge_window=5.0, session_timeout=3600, ring_timeout=180)
AFTER_ALL_TIMEOUTS = 2 * 3600.0


@dataclass(frozen=True)
class Report:
    phone: str
    event: str
    remote: str
    call_id: str


# One call, as each phone would report it: (phone, event, its remote, its own call id).
SCENARIOS: dict[str, list[Report]] = {
    "internal answered": [
        Report("101", "outgoing_call", "102", "a"),
        Report("101", "establish_call", "102", "a"),
        Report("101", "hold_call", "102", "a"),
        Report("101", "resume_call", "102", "a"),
        Report("101", "terminate_call", "102", "a"),
        Report("102", "incoming_call", "101", "b"),
        Report("102", "establish_call", "101", "b"),
        Report("102", "terminate_call", "101", "b"),
    ],
    "internal unanswered": [
        Report("101", "outgoing_call", "102", "a"),
        Report("101", "terminate_call", "102", "a"),
        Report("102", "incoming_call", "101", "b"),
        Report("102", "missed_call", "101", "b"),
    ],
    "ring group": [
        Report("101", "incoming_call", "0711555", "a"),
        Report("101", "establish_call", "0711555", "a"),
        Report("101", "terminate_call", "0711555", "a"),
        Report("102", "incoming_call", "0711555", "b"),
        Report("102", "missed_call", "0711555", "b"),
    ],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def correlator(clock: Clock) -> Correlator:
    return Correlator(lambda name: TENANT if name == "acme" else None, SETTINGS, clock)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, list[tuple[PhoneEvent, float]]]:
    """A scenario's reports, each lost, delivered or repeated, in any order, with or
    without call id and direction, a fraction of a second apart."""
    name = draw(st.sampled_from(sorted(SCENARIOS)))
    sent: list[PhoneEvent] = []
    for r in SCENARIOS[name]:
        for _ in range(draw(st.integers(0, 2))):
            v = {"local": r.phone, "remote": r.remote}
            if draw(st.booleans()):
                v["call_id"] = r.call_id
            if r.event in ("establish_call", "terminate_call") and draw(st.booleans()):
                v["calldirection"] = (
                    "outgoing" if r.call_id == "a" and name != "ring group" else "incoming"
                )
            sent.append(PhoneEvent("acme", r.event, v))
    order = draw(st.permutations(sent))
    gaps = draw(st.lists(st.floats(0, 0.3), min_size=len(order), max_size=len(order)))
    return name, list(zip(order, gaps, strict=True))


@settings(max_examples=300)
@given(deliveries())
def test_one_call_stays_one_session(case: tuple[str, list[tuple[PhoneEvent, float]]]) -> None:
    _, stream = case
    clock = Clock()
    c = correlator(clock)
    out: list[Event] = []
    for pe, gap in stream:
        clock.now += gap
        note(f"+{gap:.2f}s {pe.event} {pe.variables}")
        out.extend(c.feed(pe))  # an exception fails the test
    clock.now += AFTER_ALL_TIMEOUTS
    out.extend(c.tick())
    keys = Counter(e.key for e in out)
    assert all(keys[k] <= 1 for k in (*LIFECYCLE, "call_reroute")), keys
    assert keys["call_cdr"] == (1 if stream else 0), keys
    # One closing event per call: call_ended, call_noanswer or call_fail, never two.
    closing = keys["call_ended"] + keys["call_noanswer"] + keys["call_fail"]
    assert closing == keys["call_cdr"] == keys["call_start"]
    assert len({e.session_id for e in out}) <= 1
    times = [int(e.body["time"]) for e in out]
    assert times == sorted(times), times  # a call's events never go back in time
    targets = Counter(
        (e.key, e.body.get("call_target")) for e in out if e.key.startswith("target_")
    )
    assert all(n == 1 for n in targets.values()), targets
    assert c.active_calls("acme") == []
    if out:
        assert out[0].key == "call_start" and out[-1].key == "call_cdr"


NUMBERS = st.sampled_from(["101", "102", "103", "0711", "anonymous", ""])
actions = st.one_of(
    st.tuples(
        st.just("feed"),
        st.sampled_from([*PHONE_EVENTS, None]),
        st.fixed_dictionaries(
            {"local": NUMBERS, "remote": NUMBERS},
            optional={
                "call_id": st.sampled_from(["c1", "c2", "c3"]),
                "duration": st.sampled_from(["0", "12", "x"]),
                "calldirection": st.sampled_from(["incoming", "outgoing", "?"]),
                "mac": st.just("000B82112233"),
            },
        ),
    ),
    st.tuples(st.just("wait"), st.floats(0, 400), st.booleans()),
)


@settings(max_examples=150)
@given(st.lists(actions, max_size=40))
def test_any_stream_every_session_starts_and_ends_once(
    program: list[tuple[object, ...]],
) -> None:
    clock = Clock()
    c = correlator(clock)
    out: list[Event] = []
    for step in program:
        if step[0] == "feed":
            _, event, variables = step
            assert event is None or isinstance(event, str)
            assert isinstance(variables, dict)
            variables = {k: v for k, v in variables.items() if v}
            out.extend(c.feed(PhoneEvent("acme", event, variables)))
        else:
            _, seconds, tick = step
            assert isinstance(seconds, float)
            clock.now += seconds
            if tick:
                out.extend(c.tick())
    clock.now += AFTER_ALL_TIMEOUTS
    out.extend(c.tick())
    per_session: dict[str | None, Counter[str]] = {}
    for e in out:
        if e.session_id:
            per_session.setdefault(e.session_id, Counter())[e.key] += 1
    for counts in per_session.values():
        closing = counts["call_ended"] + counts["call_noanswer"] + counts["call_fail"]
        assert counts["call_start"] == closing == counts["call_cdr"] == 1, counts
        assert counts["call_established"] <= 1 and counts["call_noanswer"] <= 1, counts
    assert c.active_calls("acme") == [] and c.open_sessions == 0
    assert all(e.tenant == "acme" and e.body["event_type"] == e.key for e in out)
