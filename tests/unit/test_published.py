"""What a PBX's published call event stands for, as phone reports (pure)."""

from __future__ import annotations

import pytest

from callhook.correlate.published import number, read


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("sip:102@sipiw.com", "102"),
        ("<sips:102@sipiw.com;transport=tls>", "102"),
        ("0711222333", "0711222333"),
        ("tel:+4930123", "+4930123"),
        (None, ""),
        (102, ""),
    ],
)
def test_number(address: object, expected: str) -> None:
    assert number(address) == expected


CALL = {"call_id": "c", "caller": "sip:102@d", "callee": "sip:103@d"}


@pytest.mark.parametrize(
    ("key", "extra", "phases", "close"),
    [
        ("call_start", {}, [("dial", "102", "caller")], ""),
        ("target_ringing", {}, [("dial", "102", "caller"), ("ring", "103", "target")], ""),
        (
            "call_established",
            {"call_target": "sip:104@d"},
            [("dial", "102", "caller"), ("answer", "104", "target"), ("answer", "102", "caller")],
            "",
        ),
        ("call_ended", {}, [("dial", "102", "caller")], "hangup"),
        (
            "call_noanswer",
            {},
            [("dial", "102", "caller"), ("missed", "103", "target")],
            "no_answer",
        ),
        ("call_fail", {}, [("dial", "102", "caller"), ("hangup", "103", "target")], "failed"),
        ("call_reroute", {"call_target": "105"}, [("transfer", "102", "")], ""),
    ],
)
def test_call_events(
    key: str, extra: dict[str, str], phases: list[tuple[str, str, str]], close: str
) -> None:
    call = read(key, {**CALL, **extra})
    assert call is not None
    assert [(r.phase, r.own, r.role) for r in call.reports] == phases
    assert call.close == close and call.call_id == "c"


def test_hold_is_the_aor_s_phone() -> None:
    call = read("call_hold", {"call_id": "h", "aor": "sip:102@d", "peer_aor": "sip:103@d"})
    assert call is not None
    ((rep),) = call.reports
    assert (rep.phase, rep.own, rep.remote) == ("hold", "102", "103")


def test_fail_code_is_kept_and_defaults_to_zero() -> None:
    with_code = read("call_fail", {**CALL, "fail_code": 480})
    without = read("call_fail", CALL)
    assert with_code is not None and without is not None
    assert with_code.fail_code == 480 and with_code.reports[-1].fail_code == 480
    assert without.fail_code is None and without.reports[-1].fail_code == 0


@pytest.mark.parametrize("key", ["queue_status", "extension_register", "trunk_connected"])
def test_not_about_a_call(key: str) -> None:
    assert read(key, CALL) is None


def test_hosts_of_parties() -> None:
    call = read(
        "call_start",
        {"call_id": "c", "caller": "sip:0711@carrier.example.net", "callee": "<sip:101@d;x=y>"},
    )
    assert call is not None
    assert call.hosts == (("0711", "carrier.example.net"), ("101", "d"))
    bare = read("call_start", {"call_id": "c", "caller": "0711", "callee": "101"})
    assert bare is not None and bare.hosts == ()
