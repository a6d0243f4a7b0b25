"""Device events and presence: registration, DND/forwarding, hook state, PBX-published events."""

from __future__ import annotations

from callhook.events import Event
from tests.support.correlator import DOMAIN, T0, Phones, uri

PHONE = {
    "local": "101",
    "mac": "000B82112233",
    "phone_ip": "192.168.1.20",
    "product": "GXV3370",
    "program_version": "1.0.1.28",
}


def test_registration_and_sign_off() -> None:
    p = Phones()
    assert p.send("registration", **PHONE) == ["extension_register"]
    body = p.log[-1].body
    assert set(body) == {
        "event_type",
        "extension",
        "extension_id",
        "registration_contacts",
        "tenant_id",
        "tenant_name",
        "time",
        "phone",  # every variable the phone sent
    }
    assert body["phone"] == {"local": "101", **PHONE}
    assert body["extension"] == uri("101") and body["time"] == str(int(T0))
    [c] = body["registration_contacts"]
    assert c["user_agent"] == "GXV3370 1.0.1.28" and c["public_address"] == "192.168.1.20"
    assert isinstance(c["expires"], int) and isinstance(c["reg_id"], int)
    assert p.log[-1].extensions == ("101",)
    state = p.c.presence("acme", "101")
    assert state["registered"] and state["status"] == "available"
    assert state["device"]["mac"] == "000B82112233"
    assert state["device"]["product"] == "GXV3370"
    assert p.send("registration", **PHONE) == []  # a repeat
    p.wait(1)
    assert p.send("sign_off", **PHONE) == ["extension_register"]
    body = p.log[-1].body
    assert "registration_contacts" not in body  # PortSIP: absent when none remain
    assert body["removed_contacts"][0]["instance"] == c["instance"]
    state = p.c.presence("acme", "101")
    assert not state["registered"] and state["status"] == "offline"


def test_two_devices_on_one_extension() -> None:
    p = Phones()
    p.send("registration", **PHONE)
    p.send("registration", **{**PHONE, "mac": "000B82445566", "phone_ip": "192.168.1.21"})
    assert len(p.log[-1].body["registration_contacts"]) == 2
    p.send("sign_off", **PHONE)
    body = p.log[-1].body
    assert len(body["removed_contacts"]) == 1 and len(body["registration_contacts"]) == 1
    assert p.c.presence("acme", "101")["registered"]


def test_toggles_and_their_repeats() -> None:
    p = Phones(dedup_window=30)
    assert p.send("dnd_on", local="101") == ["dnd_on"]
    assert p.log[-1].body == {
        "event_type": "dnd_on",
        "extension": uri("101"),
        "extension_id": "",
        "tenant_id": "42",
        "tenant_name": "acme",
        "time": str(int(T0)),
        "phone": {"local": "101"},
    }
    assert p.send("dnd_on", local="101") == []
    assert p.c.presence("acme", "101")["status"] == "dnd"
    assert p.send("dnd_off", local="101") == ["dnd_off"]
    assert p.send("forward_on", local="101") == ["forward_on"]
    assert p.c.presence("acme", "101")["forward"] is True
    assert p.send("off_hook", local="101", mac="000B82112233") == ["off_hook"]
    assert p.log[-1].body["mac"] == "000B82112233"
    assert p.send("off_hook", local="101") == []
    assert p.send("on_hook", local="101") == ["on_hook"]
    assert p.send("off_hook", local="101") == ["off_hook"]  # a new transition is not a repeat
    assert p.c.presence("acme", "101")["hook"] == "off_hook"
    p.wait(31)
    assert p.send("off_hook", local="101") == ["off_hook"]  # its on_hook was lost, likely


def test_device_events_and_their_repeats() -> None:
    p = Phones(dedup_window=30)
    assert p.send("booting_completed", **PHONE) == ["boot_completed"]
    assert p.log[-1].body["program_version"] == "1.0.1.28"
    assert p.send("booting_completed", **PHONE) == []
    p.wait(31)
    assert p.send("booting_completed", **PHONE) == ["boot_completed"]
    assert p.send("syslog_on", **PHONE) == ["syslog_on"]
    assert p.send("syslog_off", **PHONE) == ["syslog_off"]
    assert p.log[-1].topic == "device_events"


def test_unrecognised_report_is_kept_raw() -> None:
    p = Phones()
    from callhook.ingest.model import PhoneEvent

    pe = PhoneEvent(
        "acme",
        None,
        {"mac": "000B82112233"},
        pairs={"mac": "000B82112233", "x": "1"},
        hints=("the URL names no event",),
        source_ip="10.0.0.7",
    )
    [ev] = p.c.feed(pe)
    assert ev.key == "action_url" and ev.topic == "device_events"
    assert ev.body["pairs"] == {"mac": "000B82112233", "x": "1"}
    assert ev.body["hints"] == ["the URL names no event"]
    assert ev.body["source_ip"] == "10.0.0.7" and ev.extensions == ()
    # The same request again is stored again: raw reports are never dropped.
    assert [e.key for e in p.c.feed(pe)] == ["action_url"]


def test_the_same_device_report_from_another_phone_is_not_a_repeat() -> None:
    from callhook.ingest.model import PhoneEvent

    p = Phones(dedup_window=30)
    boot = {"product": "GXP2170"}  # no MAC: the source address tells the phones apart
    first = PhoneEvent("acme", "booting_completed", boot, boot, source_ip="10.0.0.2")
    again = PhoneEvent("acme", "booting_completed", boot, boot, source_ip="10.0.0.2")
    other = PhoneEvent("acme", "booting_completed", boot, boot, source_ip="10.0.0.9")
    assert [e.key for e in p.c.feed(first)] == ["boot_completed"]
    assert p.c.feed(again) == []
    assert [e.key for e in p.c.feed(other)] == ["boot_completed"]


def test_presence_follows_calls() -> None:
    p = Phones()
    p.send("incoming_call", local="101", remote="0711", call_id="c")
    state = p.c.presence("acme", "101")
    assert state["ringing"] and state["status"] == "ringing" and len(state["sessions"]) == 1
    p.send("establish_call", local="101", remote="0711", call_id="c")
    assert p.c.presence("acme", "101")["status"] == "busy"
    p.send("terminate_call", local="101", remote="0711", call_id="c")
    state = p.c.presence("acme", "101")
    assert state["sessions"] == [] and state["status"] == "available"


def test_presence_of_an_unknown_extension() -> None:
    state = Phones().c.presence("acme", "999")
    assert state["status"] == "offline" and state["sessions"] == []


def test_published_pbx_events_update_presence() -> None:
    p = Phones()
    contact = {
        "contact_uri": "<sip:102@113.246.194.98:10061>",
        "expires": 1632668422,
        "instance": "<urn:uuid:F36DDB5A>",
        "last_update": 1632668122,
        "public_address": "113.246.194.98:10061",
        "received_from": "113.246.194.98:10061",
        "reg_id": 0,
        "user_agent": "Test SIPMaster for IOS",
    }
    reg = Event(
        "acme",
        "extension_register",
        {"extension": f"sip:102@{DOMAIN}", "registration_contacts": [contact]},
        ("102",),
    )
    assert p.c.publish(reg) == [reg]
    assert p.c.presence("acme", "102")["contacts"] == [contact]
    gone = Event(
        "acme", "extension_register", {"extension": "sip:102@x", "removed_contacts": [contact]}
    )
    p.c.publish(gone)
    assert not p.c.presence("acme", "102")["registered"]
    p.c.publish(Event("acme", "dnd_on", {"extension": "sip:102@x"}))
    assert p.c.presence("acme", "102")["dnd"] is True
    queue = Event("acme", "queue_status", {"queue": "8001"}, queue="8001")
    assert p.c.publish(queue) == [queue]
    odd = Event("acme", "extension_register", {"extension": 5, "registration_contacts": "x"})
    assert p.c.publish(odd) == [odd]


def test_presence_changes_are_drained_and_restored() -> None:
    p = Phones()
    p.send("registration", **PHONE)
    p.send("dnd_on", local="101")
    changes = p.c.drain_changes()
    [(tenant, ext, state)] = changes.presence
    assert (tenant, ext) == ("acme", "101") and state["dnd"]
    assert p.c.drain_changes().presence == []
    p2 = Phones()
    p2.c.restore([], [state])
    restored = p2.c.presence("acme", "101")
    assert restored["dnd"] and restored["registered"]
    assert restored["contacts"] == state["contacts"]
    assert p2.send("dnd_on", local="101") == ["dnd_on"]  # after a restart: re-announced


def test_sign_off_of_a_phone_without_mac() -> None:
    p = Phones()
    p.send("registration", local="103", phone_ip="10.1.1.3")
    assert p.c.presence("acme", "103")["registered"]
    p.send("sign_off", local="103", phone_ip="10.1.1.3")
    assert not p.c.presence("acme", "103")["registered"]
    assert "registration_contacts" not in p.log[-1].body


def test_registration_right_after_sign_off_is_news() -> None:
    p = Phones(dedup_window=30)
    assert p.send("registration", **PHONE) == ["extension_register"]
    p.wait(2)
    assert p.send("sign_off", **PHONE) == ["extension_register"]
    assert p.send("sign_off", **PHONE) == []
    p.wait(2)
    assert p.send("registration", **PHONE) == ["extension_register"]
    assert p.send("registration", **PHONE) == []
    assert p.c.presence("acme", "101")["registered"]


def test_a_deleted_tenant_is_forgotten_without_a_word() -> None:
    """Its calls and presence go with it, so a new tenant of the same name starts empty."""
    p = Phones()
    p.send("dnd_on", local="101")
    p.send("incoming_call", local="102", remote="0711", call_id="open")
    p.send("incoming_call", local="103", remote="0712", call_id="done")
    p.send("terminate_call", local="103", remote="0712", call_id="done")
    p.c.drain_changes()
    p.send("dnd_off", local="104")  # a change not yet persisted
    p.c.keep_tenants(["globex"])
    assert p.c.open_sessions == 0 and p.c.active_calls("acme") == []
    assert not p.c.has_changes()  # nothing of it is written back after the purge
    assert not p.c.presence("acme", "101")["dnd"]
    assert p.tick(24 * 3600) == []  # its open call does not time out later either
    # The same call id is a new call now, not a late report of the forgotten one.
    assert p.send("incoming_call", local="103", remote="0712", call_id="done")[0] == "call_start"
    p.c.keep_tenants(["acme"])  # a tenant that stays keeps everything
    assert p.c.open_sessions == 1
