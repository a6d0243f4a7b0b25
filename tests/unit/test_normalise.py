"""normalise: each phone event's one-phone meaning (docs/wsi.md's table), as parameter tables."""

from __future__ import annotations

import pytest

from callhook.events import KEY_TOPIC
from callhook.ingest.model import PHONE_EVENTS, PhoneEvent
from callhook.normalise import (
    CALL_RULES,
    DEVICE_KEYS,
    CallReport,
    DeviceReport,
    contact,
    normalise,
    phone_identity,
)

NOW = 1_700_000_000.0


def pe(event: str | None, **variables: str) -> PhoneEvent:
    return PhoneEvent(tenant="acme", event=event, variables=variables, source_ip="10.0.0.9")


def test_every_phone_event_has_a_meaning() -> None:
    assert set(CALL_RULES) | set(DEVICE_KEYS) == set(PHONE_EVENTS)
    assert not set(CALL_RULES) & set(DEVICE_KEYS)


@pytest.mark.parametrize(
    ("event", "phase", "role", "keys"),
    [
        ("incoming_call", "ring", "target", ("call_start", "target_add", "target_ringing")),
        ("outgoing_call", "dial", "caller", ("call_start",)),
        ("establish_call", "answer", "", ("call_established",)),
        ("terminate_call", "hangup", "", ("call_ended", "call_cdr")),
        ("missed_call", "missed", "target", ("call_noanswer", "target_noanswer", "call_cdr")),
        ("hold_call", "hold", "", ("call_hold",)),
        ("resume_call", "unhold", "", ("call_unhold",)),
        ("blind_transfer", "transfer", "", ("call_reroute",)),
        ("attended_transfer", "transfer", "", ("call_reroute",)),
    ],
)
def test_call_events(event: str, phase: str, role: str, keys: tuple[str, ...]) -> None:
    rep = normalise(pe(event, local="101", remote="0711", call_id="c1"), NOW)
    assert isinstance(rep, CallReport)
    assert (rep.phase, rep.role, rep.own, rep.remote, rep.call_id) == (
        phase,
        role,
        "101",
        "0711",
        "c1",
    )
    assert CALL_RULES[event].keys == keys
    assert all(k in KEY_TOPIC for k in keys)


@pytest.mark.parametrize(
    ("event", "key", "topic"),
    [
        ("registration", "extension_register", "extension_events"),
        ("sign_off", "extension_register", "extension_events"),
        ("dnd_on", "dnd_on", "extension_events"),
        ("dnd_off", "dnd_off", "extension_events"),
        ("forward_on", "forward_on", "extension_events"),
        ("forward_off", "forward_off", "extension_events"),
        ("off_hook", "off_hook", "device_events"),
        ("on_hook", "on_hook", "device_events"),
        ("booting_completed", "boot_completed", "device_events"),
        ("syslog_on", "syslog_on", "device_events"),
        ("syslog_off", "syslog_off", "device_events"),
        (None, "action_url", "device_events"),
    ],
)
def test_device_events(event: str | None, key: str, topic: str) -> None:
    rep = normalise(pe(event, local="101", mac="000B82112233"), NOW)
    assert isinstance(rep, DeviceReport)
    assert rep.key == key
    assert KEY_TOPIC[key] == topic
    assert rep.device["mac"] == "000B82112233"
    assert rep.device["source_ip"] == "10.0.0.9"


@pytest.mark.parametrize(
    ("direction", "role"),
    [("incoming", "target"), ("outgoing", "caller"), ("OUTGOING", "caller"), ("", ""), ("x", "")],
)
def test_calldirection_gives_the_role_of_neutral_events(direction: str, role: str) -> None:
    rep = normalise(pe("establish_call", local="101", calldirection=direction), NOW)
    assert isinstance(rep, CallReport)
    assert rep.role == role


@pytest.mark.parametrize(
    ("variables", "phone", "own"),
    [
        ({"local": "101", "active_user": "999"}, "101", "101"),
        ({"active_user": "102"}, "102", "102"),
        ({"mac": "000B82112233"}, "mac:000B82112233", ""),
        ({"phone_ip": "10.1.1.1"}, "ip:10.1.1.1", ""),
        ({}, "ip:10.0.0.9", ""),
    ],
)
def test_phone_identity(variables: dict[str, str], phone: str, own: str) -> None:
    assert phone_identity(variables, "10.0.0.9") == (phone, own)


@pytest.mark.parametrize(
    ("duration", "parsed"),
    [("75", 75), ("0", 0), ("", None), ("-3", None), ("1.5", None), ("²", None), ("9" * 40, None)],
)
def test_duration_is_parsed_safely(duration: str, parsed: int | None) -> None:
    rep = normalise(pe("terminate_call", local="101", duration=duration), NOW)
    assert isinstance(rep, CallReport)
    assert rep.duration == parsed


@pytest.mark.parametrize(
    ("code", "parsed"), [("486", 486), ("302", 302), ("200", None), ("x", None), ("700", None)]
)
def test_fail_code_from_the_url(code: str, parsed: int | None) -> None:
    event = PhoneEvent("acme", "terminate_call", {"local": "101"}, pairs={"fail_code": code})
    rep = normalise(event, NOW)
    assert isinstance(rep, CallReport)
    assert rep.fail_code == parsed


def test_registration_contact_matches_portsip_shape() -> None:
    variables = {
        "local": "101",
        "mac": "000B82112233",
        "phone_ip": "192.168.1.20",
        "product": "GXV3370",
        "program_version": "1.0.1.28",
    }
    c = contact("101", variables, "192.168.1.20", NOW, removed=False)
    assert c == {
        "contact_uri": '<sip:101@192.168.1.20>;+sip.instance="'
        '<urn:uuid:00000000-0000-1000-8000-000b82112233>"',
        "expires": int(NOW) + 3600,
        "instance": "<urn:uuid:00000000-0000-1000-8000-000b82112233>",
        "last_update": int(NOW),
        "public_address": "192.168.1.20",
        "received_from": "192.168.1.20",
        "reg_id": 0,
        "user_agent": "GXV3370 1.0.1.28",
    }
    gone = contact("101", variables, "", NOW, removed=True)
    assert ";expires=0" in gone["contact_uri"]
    assert gone["expires"] == gone["last_update"] == int(NOW)


def test_sign_off_is_a_removed_contact() -> None:
    rep = normalise(pe("sign_off", local="101", phone_ip="10.1.1.1"), NOW)
    assert isinstance(rep, DeviceReport)
    assert rep.removed and rep.contact is not None
    assert rep.contact["instance"] == ""  # no MAC, no instance id


def test_unrecognised_event_keeps_the_raw_pairs_and_hints() -> None:
    event = PhoneEvent(
        "acme",
        None,
        {"local": "101"},
        pairs={"local": "101", "foo": "bar"},
        event_name=None,
        hints=("the URL names no event",),
    )
    rep = normalise(event, NOW)
    assert isinstance(rep, DeviceReport)
    assert rep.key == "action_url"
    assert rep.raw is not None
    assert rep.raw["pairs"] == {"local": "101", "foo": "bar"}
    assert rep.raw["hints"] == ["the URL names no event"]
    assert rep.raw["event_name"] == ""


def test_long_values_are_clipped() -> None:
    rep = normalise(pe("incoming_call", local="1" * 5000, remote="2" * 5000), NOW)
    assert isinstance(rep, CallReport)
    assert len(rep.own) <= 256 and len(rep.remote) <= 256


@pytest.mark.parametrize(
    ("phone_ip", "source", "pairs", "public", "received", "interval"),
    [
        ("192.168.1.20", "192.168.1.20", {}, "192.168.1.20", "192.168.1.20", 3600),
        ("192.168.1.20:5062", "192.168.1.20", {}, "192.168.1.20:5062", "192.168.1.20:5062", 3600),
        ("192.168.1.20", "192.168.1.20", {"port": "5060"}, "192.168.1.20:5060",
         "192.168.1.20:5060", 3600),
        # behind NAT: where the request came from has no known port
        ("192.168.1.20:5062", "203.0.113.9", {}, "192.168.1.20:5062", "203.0.113.9", 3600),
        ("[fe80::1]:5060", "fe80::1", {"expires": "300"}, "[fe80::1]:5060", "[fe80::1]:5060", 300),
        ("192.168.1.20", "192.168.1.20", {"expires": "0", "port": "99999"}, "192.168.1.20",
         "192.168.1.20", 3600),
    ],
)  # fmt: skip
def test_registration_contact_ports_and_expiry(
    phone_ip: str, source: str, pairs: dict[str, str], public: str, received: str, interval: int
) -> None:
    c = contact("101", {"phone_ip": phone_ip}, source, 1000.0, False, pairs)
    assert (c["public_address"], c["received_from"]) == (public, received)
    assert c["expires"] - c["last_update"] == interval
    assert c["contact_uri"] == f"<sip:101@{public}>"


@pytest.mark.parametrize(
    ("event", "reason", "read"),
    [
        ("blind_transfer", "redirect", "redirect"),
        ("blind_transfer", "other", "blind_transfer"),
        ("attended_transfer", "redirect", "redirect"),
        ("terminate_call", "redirect", ""),
    ],
)
def test_a_transfer_may_say_it_was_a_redirect(event: str, reason: str, read: str) -> None:
    rep = normalise(PhoneEvent("acme", event, {"local": "102"}, pairs={"reason": reason}), NOW)
    assert isinstance(rep, CallReport)
    assert rep.reason == read
