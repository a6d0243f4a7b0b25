"""Kamailio reports -> phone-style reports and registration events (pure), and the
configuration template."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callhook.directory import Tenant
from callhook.errors import BadRequest
from callhook.kamailio.config import KamailioConfig, render
from callhook.kamailio.reports import BadReport, translate
from callhook.kamailio.seen import SeenReports

TENANT = Tenant("acme", "1", "acme.example.com")
BASE = {"t": "1700000000.250000", "ci": "abc@h", "fu": "101", "tu": "102"}


def report(ev: str, **more: Any) -> dict[str, Any]:
    return {"ev": ev, "dom": "acme.example.com", **BASE, **more}


def said(ev: str, **more: Any) -> list[tuple[str | None, dict[str, str], dict[str, str]]]:
    return [(p.event, p.variables, p.pairs) for p in translate(report(ev, **more), TENANT).calls]


def test_invite_is_the_callers_outgoing_call() -> None:
    assert said("invite", fn="Alice") == [
        (
            "outgoing_call",
            {"local": "101", "remote": "102", "call_id": "abc@h", "display_local": "Alice"},
            {},
        )
    ]


def test_ringing_and_answer_are_told_from_the_callee() -> None:
    assert said("ringing", code=180)[0][:2] == (
        "incoming_call",
        {"local": "102", "remote": "101", "call_id": "abc@h"},
    )
    events = [(e, v["local"], v["calldirection"]) for e, v, _ in said("answer")]
    assert events == [("establish_call", "102", "incoming"), ("establish_call", "101", "outgoing")]


@pytest.mark.parametrize(("by", "first"), [("102", "102"), ("101", "101"), ("", "101")])
def test_end_carries_talk_time_from_kamailios_clock(by: str, first: str) -> None:
    got = said("end", t="1700000012.700000", at="1700000002.300000", by=by)
    assert [v["local"] for _, v, _ in got] == [first, "102" if first == "101" else "101"]
    assert {v["duration"] for _, v, _ in got} == {"10"}  # 10.4 s rounds to 10
    assert translate(report("end", t="1700000012.7", at="1700000002.3"), TENANT).talk_seconds == 10


def test_end_of_a_call_never_answered_has_no_duration() -> None:
    assert all("duration" not in v for _, v, _ in said("end"))


@pytest.mark.parametrize(
    ("code", "event", "pairs"),
    [
        (486, "terminate_call", {"fail_code": "486"}),
        (480, "terminate_call", {"fail_code": "480"}),
        (603, "terminate_call", {"fail_code": "603"}),
        (487, "missed_call", {}),
        (408, "missed_call", {}),
    ],
)
def test_failure_codes(code: int, event: str, pairs: dict[str, str]) -> None:
    ((got_event, variables, got_pairs),) = said("fail", code=code)
    assert (got_event, variables["local"], got_pairs) == (event, "102", pairs)


def test_hold_is_reported_by_the_party_that_held() -> None:
    assert said("hold", by="102", peer="101")[0][:2] == (
        "hold_call",
        {"local": "102", "remote": "101", "call_id": "abc@h"},
    )
    assert said("unhold", by="102", peer="101")[0][0] == "resume_call"


def contact(addr: str, **more: Any) -> dict[str, Any]:
    return {"addr": addr, "expires": 1700003600, "ua": "Yealink", "received": "",
            "instance": "<null>", "reg_id": 0, "modified": 1700000000, **more}  # fmt: skip


def test_register_lists_current_contacts_and_what_it_removed() -> None:
    a, b = contact("sip:102@10.0.0.2:5060"), contact("sip:102@10.0.0.3:5060")
    got = translate(report("register", src="10.0.0.3:5060", before=[a, b], after=[a]), TENANT)
    reg = got.register
    assert reg is not None and got.calls == []
    assert reg["extension"] == "102"
    (current,) = reg["registration_contacts"]
    assert current == {
        "contact_uri": "<sip:102@10.0.0.2:5060>",
        "expires": 1700003600,
        "instance": "",
        "last_update": 1700000000,
        "public_address": "10.0.0.3:5060",
        "received_from": "10.0.0.3:5060",
        "reg_id": 0,
        "user_agent": "Yealink",
    }
    (removed,) = reg["removed_contacts"]
    assert removed["contact_uri"] == "<sip:102@10.0.0.3:5060>;expires=0"
    assert removed["expires"] == 1700000000


def test_contact_behind_nat_shows_where_it_came_from() -> None:
    c = contact("sip:102@192.168.1.5:5060", received="sip:203.0.113.9:41000", instance="<urn:x>")
    reg = translate(report("register", src="203.0.113.9:41000", after=[c]), TENANT).register
    assert reg is not None
    (got,) = reg["registration_contacts"]
    assert got["public_address"] == "203.0.113.9:41000"
    assert got["contact_uri"] == '<sip:102@192.168.1.5:5060>;+sip.instance="<urn:x>"'


def test_expiry_removes_the_expired_contact_only() -> None:
    a, b = contact("sip:102@10.0.0.2:5060"), contact("sip:102@10.0.0.3:5060")
    reg = translate(report("expired", gone=[a], after=[a, b]), TENANT).register
    assert reg is not None
    assert [c["contact_uri"] for c in reg["registration_contacts"]] == ["<sip:102@10.0.0.3:5060>"]
    assert [c["contact_uri"] for c in reg["removed_contacts"]] == [
        "<sip:102@10.0.0.2:5060>;expires=0"
    ]


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ([1, 2], "JSON object"),
        ({"ev": "invite", "dom": "globex.example.com", **BASE}, "not tenant"),
        (report("bogus"), "unknown report"),
        (report("invite", ci=""), "needs ci"),
        (report("invite", fu=5), "must be a string"),
        (report("invite", fn="x" * 300), "longer than"),
        (report("end", at="soon"), "not seconds"),
        (report("fail", code=200), "SIP final status"),
        (report("fail", code="486"), "SIP final status"),
        (report("hold"), "needs by"),
        (report("register", tu="", after=[]), "needs tu"),
        (report("register", after={"addr": "x"}), "JSON arrays"),
        (report("register", after=["x"]), "JSON object"),
    ],
)
def test_unusable_reports_say_why(bad: Any, why: str) -> None:
    with pytest.raises(BadReport, match=why):
        translate(bad, TENANT)


FIELDS = ["ev", "dom", "t", "ci", "fu", "tu", "code", "by", "at", "before", "after", "gone"]
VALUES = (
    st.none()
    | st.integers()
    | st.text(max_size=20)
    | st.floats()
    | st.lists(st.dictionaries(st.text(max_size=8), st.text(max_size=8)))
)


@given(st.dictionaries(st.sampled_from(FIELDS), VALUES))
def test_any_report_is_used_or_refused_with_a_reason(raw: dict[str, Any]) -> None:
    raw.setdefault("dom", "acme.example.com")
    try:
        translate(raw, TENANT)
    except BadReport as exc:
        assert str(exc)


def config(**kw: Any) -> KamailioConfig:
    base: dict[str, Any] = {
        "tenant": "acme",
        "domain": "acme.example.com",
        "hub": "http://10.0.0.5:8080",
        "key": "ck_0123456789abcdef",
    }
    return KamailioConfig(**{**base, **kw})


def test_config_is_filled_in_completely() -> None:
    text = render(config(listen="udp:127.0.0.1:5070"))
    assert "@@" not in text
    assert (
        '#!define CALLHOOK_EVENTS_URL "http://10.0.0.5:8080/api/v1/tenants/acme/kamailio"' in text
    )
    assert '"Authorization: Bearer ck_0123456789abcdef"' in text
    assert "listen=udp:127.0.0.1:5070" in text
    assert "#!define WITH_CALLHOOK" in text
    assert re.search(r"route\[CALLHOOK_CONTACTS_(before|after|exp)\]", text)
    assert "#!define WITH_CALLHOOK" not in render(config(report=False))


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"tenant": "a b"}, "tenant"),
        ({"domain": ""}, "domain"),
        ({"hub": "10.0.0.5:8080"}, "hub"),
        ({"hub": "http://h/x?y=1"}, "hub"),
        ({"hub": 'http://h/"'}, "hub"),
        ({"key": 'k"; exit; "'}, "key"),
        ({"listen": "0.0.0.0"}, "listen"),
        ({"batch": 0}, "batch"),
        ({"batch": 500}, "batch"),
    ],
)
def test_config_refuses_values_that_would_break_it(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as err:
        render(config(**kw))
    assert err.value.field == field


@pytest.mark.parametrize(
    ("target", "user"),
    [
        ("<sip:104@acme.example.com>", "104"),
        ('"Bob" <sip:104@10.0.0.9:5060;transport=udp>;expires=60', "104"),
        ("sip:104;ext=1@h", "104"),
        ("<tel:+4930123>", "+4930123"),
    ],
)
def test_redirect_is_a_reroute_told_from_the_callee_to_the_contacts_user(
    target: str, user: str
) -> None:
    assert said("redirect", target=target, code=302) == [
        (
            "blind_transfer",
            {"local": "102", "remote": user, "call_id": "abc@h"},
            {"reason": "redirect"},
        )
    ]


@pytest.mark.parametrize("target", ["", "<sip:acme.example.com>", "<http://x/104>"])
def test_redirect_without_a_user_to_go_to_is_skipped(target: str) -> None:
    with pytest.raises(BadReport, match="target"):
        translate(report("redirect", target=target, code=302), TENANT)


def test_seen_report_ids_are_per_tenant_and_bounded() -> None:
    seen = SeenReports(log=None, keep=3)  # type: ignore[arg-type]  # load() is not used here
    seen.add("acme", ["a", "b", "c", "d"])
    assert [seen.seen("acme", i) for i in "abcd"] == [False, True, True, True]
    assert not seen.seen("globex", "d")
