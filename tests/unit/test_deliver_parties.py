"""The delivery side's memory of each call's parties (callhook/deliver/parties.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callhook.deliver.parties import FIELDS, Parties

START = {
    "caller": "0711888",
    "callee": "sip:101@acme.example.com",
    "direction": "inbound",
    "caller_display_name": "Jürgen M",
    "event_type": "call_start",
}
ESTABLISHED = {"caller": "0711888", "callee": "sip:101@acme.example.com", "call_target": "x"}
HOLD = {"aor": "sip:101@acme.example.com", "event_type": "call_hold"}


def test_later_events_get_what_they_lack() -> None:
    p = Parties()
    p.note("s1", START, start=True)
    p.note("s1", ESTABLISHED)
    assert p.whole("s1")
    assert p.missing("s1", ESTABLISHED) == {
        "direction": "inbound",
        "caller_display_name": "Jürgen M",
    }
    assert p.missing("s1", HOLD) == {
        "caller": "0711888",
        "callee": "sip:101@acme.example.com",
        "direction": "inbound",
        "caller_display_name": "Jürgen M",
    }
    assert p.missing("other", HOLD) == {}


def test_newer_events_win_and_the_recalled_start_only_fills_gaps() -> None:
    p = Parties()
    p.note("s1", {"caller": "0711888", "callee": "sip:102@acme.example.com"})
    assert not p.whole("s1")  # seen after a restart: ask the log for the start
    p.recall("s1", START)
    assert p.whole("s1")
    got = p.missing("s1", HOLD)
    assert got["callee"] == "sip:102@acme.example.com"  # the newer view
    assert got["caller_display_name"] == "Jürgen M"  # from the start
    p.recall("s2", None)  # not in the log either: asked once
    assert p.whole("s2") and p.missing("s2", HOLD) == {}


def test_bounded() -> None:
    p = Parties(limit=2)
    for sid in ("a", "b", "c"):
        p.note(sid, START, start=True)
    assert not p.whole("a") and p.whole("b") and p.whole("c")


_VALUES = st.sampled_from(["", "0711888", "101", "inbound", "Jürgen", 7, None])


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["s1", "s2"]),
            st.dictionaries(st.sampled_from(FIELDS), _VALUES, max_size=5),
            st.booleans(),
        ),
        max_size=12,
    )
)
def test_note_merges_as_the_rule_says(notes: list[tuple[str, dict[str, object], bool]]) -> None:
    """Whatever bodies come in (the same again, none of the fields, new values), each
    field is the newest non-empty text said, and a call is whole once a start was seen."""
    p = Parties()
    expected: dict[str, tuple[dict[str, str], bool]] = {}
    for session, body, start in notes:
        p.note(session, body, start=start)
        fields, whole = expected.get(session, ({f: "" for f in FIELDS}, False))
        said = {f: v for f, v in body.items() if isinstance(v, str) and v}
        expected[session] = ({**fields, **said}, whole or start)
    for session, (fields, whole) in expected.items():
        assert p.whole(session) == whole
        assert p.missing(session, {}) == {f: v for f, v in fields.items() if v}
