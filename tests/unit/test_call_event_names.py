"""Call Events rule events and methods as VoipNow's page writes them (pure)."""

from __future__ import annotations

import pytest

from callhook.fields import check_call_event, upper_method


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("Dial-In", "dial_in"),
        ("Dial-Out", "dial_out"),
        ("Hangup", "hangup"),
        ("Hang up", "hangup"),
        ("Answer on incoming call", "answer_incoming"),
        ("Answer on outgoing call (by the other party)", "answer_outgoing"),
        ("Answer on outgoing call", "answer_outgoing"),
        ("dial_in", "dial_in"),
        ("DIAL_IN", "dial_in"),
        ("answer_outgoing", "answer_outgoing"),
        ("call_hold", "call_hold"),
        ("Call Hold", "call_hold"),
    ],
)
def test_voipnow_spellings(written: str, stored: str) -> None:
    assert check_call_event(written) == stored


@pytest.mark.parametrize("written", ["", "dial", "Answer", "ring", "x" * 65])
def test_unknown_events_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match="unknown event"):
        check_call_event(written)


@pytest.mark.parametrize(
    ("written", "stored"), [("get", "GET"), ("Post", "POST"), (" GET ", "GET"), (7, 7)]
)
def test_methods_in_any_case(written: object, stored: object) -> None:
    assert upper_method(written) == stored
