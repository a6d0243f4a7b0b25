"""The vendor alias tables: event and variable names, folding, User-Agent sniffing."""

from __future__ import annotations

import pytest

from callhook.ingest.model import PHONE_EVENTS, VARIABLES
from callhook.ingest.vendors import (
    EVENT_BY_FOLDED,
    VARIABLE_ALIASES,
    VARIABLE_BY_FOLDED,
    VENDOR_EVENT_NAMES,
    VENDORS,
    event_from_name,
    fold,
    variable_from_name,
    vendor_from_user_agent,
)


@pytest.mark.parametrize(
    "name",
    [
        "Incoming Call",
        "incoming_call",
        "incoming-call",
        "IncomingCall",
        "INCOMING CALL",
        "in-com_ing call",
    ],
)
def test_fold_makes_spellings_equal(name: str) -> None:
    assert fold(name) == "incomingcall"


def test_fold_keeps_other_characters() -> None:
    assert fold("action_url.Call-Established") == "actionurl.callestablished"
    assert fold("") == ""


@pytest.mark.parametrize("event", PHONE_EVENTS)
def test_canonical_event_names_map_to_themselves(event: str) -> None:
    assert event_from_name(event) == event


VENDOR_NAME_CASES = [
    (vendor, canonical, name)
    for vendor, names in VENDOR_EVENT_NAMES.items()
    for canonical, name in names.items()
]


@pytest.mark.parametrize(("vendor", "canonical", "name"), VENDOR_NAME_CASES)
def test_vendor_event_names_map_back(vendor: str, canonical: str, name: str) -> None:
    assert event_from_name(name) == canonical
    assert event_from_name(name.upper()) == canonical
    assert event_from_name(name.replace(" ", "_").lower()) == canonical


def test_vendor_event_tables_cover_the_vendors_and_only_canonical_events() -> None:
    assert set(VENDOR_EVENT_NAMES) == {"grandstream", "yealink", "snom", "fanvil"}
    assert set(VENDOR_EVENT_NAMES) <= set(VENDORS)
    for names in VENDOR_EVENT_NAMES.values():
        assert set(names) <= set(PHONE_EVENTS)
    # Grandstream's 20 events are all Grandstream names.
    assert set(VENDOR_EVENT_NAMES["grandstream"]) == set(PHONE_EVENTS)
    # docs/vendors.md: Yealink and Snom have no syslog events; everything else they have.
    for vendor in ("yealink", "snom", "fanvil"):
        assert set(PHONE_EVENTS) - set(VENDOR_EVENT_NAMES[vendor]) == {"syslog_on", "syslog_off"}


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        # docs/vendors.md events table, one row each.
        ("Incoming Call", "incoming_call"),
        ("call_established", "establish_call"),
        ("action_url.call_established", "establish_call"),
        ("call_terminated", "terminate_call"),
        ("setup_completed", "booting_completed"),
        ("log_on", "registration"),
        ("log_off", "sign_off"),
        ("hold", "hold_call"),
        ("unhold", "resume_call"),
        ("On Unhold", "resume_call"),
        ("Unhold", "resume_call"),
        ("On Hold", "hold_call"),
        ("Call Forwarding On", "forward_on"),
        ("Call Forwarding Off", "forward_off"),
        ("busy_fwd_on", "forward_on"),
        ("no_answer_fwd_off", "forward_off"),
        ("action_incoming_url", "incoming_call"),
        ("action_connected_url", "establish_call"),
        ("action_disconnected_url", "terminate_call"),
        ("action_redirection_on_url", "forward_on"),
        ("action_redirection_off_url", "forward_off"),
        ("action_setup_url", "booting_completed"),
        ("action_log_on_url", "registration"),
        ("action_log_off_url", "sign_off"),
        ("action_hold", "hold_call"),
        ("action_unhold_url", "resume_call"),
        ("action_offhook_url", "off_hook"),
        ("action_dnd_on_url", "dnd_on"),
        ("Blind Transferring", "blind_transfer"),
        ("attended_transfer_call", "attended_transfer"),
        ("Syslog Off", "syslog_off"),
    ],
)
def test_event_aliases(name: str, canonical: str) -> None:
    assert event_from_name(name) == canonical


@pytest.mark.parametrize(
    "name",
    ["", "transfer_finished", "register_failed", "action_reg_failed", "Incoming", "mute"],
)
def test_names_that_are_no_canonical_event(name: str) -> None:
    assert event_from_name(name) is None


def test_every_canonical_variable_has_an_alias_entry() -> None:
    assert tuple(VARIABLE_ALIASES) == VARIABLES
    assert set(VARIABLE_BY_FOLDED.values()) == set(VARIABLES)
    assert set(EVENT_BY_FOLDED.values()) == set(PHONE_EVENTS)


VARIABLE_CASES = [
    # docs/vendors.md variables table, every alias.
    ("mac", "mac"),
    ("phone_ip", "phone_ip"),
    ("ip", "phone_ip"),
    ("LOCALIP", "phone_ip"),
    ("product", "product"),
    ("model", "product"),
    ("program_version", "program_version"),
    ("firmware", "program_version"),
    ("hardware_version", "hardware_version"),
    ("language", "language"),
    ("call_id", "call_id"),
    ("call-id", "call_id"),
    ("callid", "call_id"),
    ("callId", "call_id"),
    ("CallID", "call_id"),
    ("local", "local"),
    ("localNumber", "local"),
    ("display_local", "display_local"),
    ("localName", "display_local"),
    ("remote", "remote"),
    ("remoteNumber", "remote"),
    ("REMOTENUMBER", "remote"),
    ("display_remote", "display_remote"),
    ("remoteName", "display_remote"),
    ("DISPLAYNAME", "display_remote"),
    ("INCOMINGNAME", "display_remote"),
    ("active_user", "active_user"),
    ("account", "active_user"),
    ("SIPUSERNAME", "active_user"),
    ("active_host", "active_host"),
    ("sipServer", "active_host"),
    ("duration", "duration"),
    ("CALLDURATION", "duration"),
    ("calldirection", "calldirection"),
    ("callDirection", "calldirection"),
    ("CALLDIRECTION", "calldirection"),
    ("callType", "calldirection"),
    # Folding: case, `_` and `-` do not matter.
    ("Phone-IP", "phone_ip"),
    ("local_number", "local"),
    ("Display-Remote", "display_remote"),
]


@pytest.mark.parametrize(("name", "canonical"), VARIABLE_CASES)
def test_variable_aliases(name: str, canonical: str) -> None:
    assert variable_from_name(name) == canonical


@pytest.mark.parametrize("name", ["token", "event", "vendor", "active_url", "csta_id", ""])
def test_names_that_are_no_variable(name: str) -> None:
    assert variable_from_name(name) is None


@pytest.mark.parametrize(
    ("ua", "vendor"),
    [
        ("Grandstream GXV3370 1.0.1.28", "grandstream"),
        ("Grandstream Model HW GRP2614 SW 1.0.5.33 DevId c074ad000000", "grandstream"),
        ("Yealink SIP-T46S 66.86.0.15", "yealink"),
        ("Mozilla/4.0 (compatible; snom760-SIP 10.1.46.16)", "snom"),
        ("Fanvil X4U 2.12.1", "fanvil"),
        ("Aastra6731i MAC:00-08-5D-00-00-00 V:3.3.1.4305-SIP", "aastra"),
        ("Mitel6867i MAC:00-08-5D-00-00-00 V:5.1.0", "aastra"),
        ("Sangoma P330 1.0", "yealink"),
        ("curl/8.5.0", None),
        ("", None),
    ],
)
def test_vendor_from_user_agent(ua: str, vendor: str | None) -> None:
    assert vendor_from_user_agent(ua) == vendor
