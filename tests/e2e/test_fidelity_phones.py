"""Grandstream phones' requests, byte for byte, against a real hub: what the hub keeps of
them and how it reads them (Grandstream's Event Notification and ActionURL guides).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.hub import Hub
from tests.support.phone import get

TOKEN = "gs-7f3a9c"
SAMPLES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "portsip_examples.json").read_text()
)["events"]


def state(hub: Hub, number: str) -> dict[str, Any]:
    status, body = hub.api("GET", f"/api/v1/tenants/acme/extensions/{number}/state")
    assert status == 200, body
    return dict(body)


# -- registration contacts like PortSIP's ------------------------------------------------------


def test_registration_contact_has_the_phone_port_and_interval(shared_hub: Hub) -> None:
    reply = get(
        shared_hub.port,
        f"/token={TOKEN}&event=Registration&mac=000B82112201&local=102"
        "&phone_ip=127.0.0.1:5062&product=GXV3370&program_version=1.0.1.28&expires=300",
    )
    assert reply.status == 200
    registers = shared_hub.all_events(key="extension_register")
    register = [e for e in registers if e["extension"] == "sip:102@acme.example.com"][-1]
    (c,) = register["registration_contacts"]
    sample = SAMPLES[0]["registration_contacts"][0]
    assert set(c) == set(sample)  # PortSIP's fields, no more, no fewer
    assert c["public_address"] == "127.0.0.1:5062" and c["received_from"] == "127.0.0.1:5062"
    assert c["contact_uri"].startswith("<sip:102@127.0.0.1:5062>")
    assert c["expires"] - c["last_update"] == 300
    assert state(shared_hub, "102")["contacts"] == [c]


def test_registration_without_port_or_interval(shared_hub: Hub) -> None:
    reply = get(shared_hub.port, f"/token={TOKEN}&event=Registration&mac=000B82112203&local=103")
    assert reply.status == 200
    (c,) = state(shared_hub, "103")["contacts"]
    assert c["public_address"] == "127.0.0.1" and c["received_from"] == "127.0.0.1"
    assert c["expires"] - c["last_update"] == 3600


# -- every $variable of Grandstream's table is kept ------------------------------------------

# Grandstream's "Supported dynamic variables" table: all fifteen, with values a GXV3370 sends.
EVERY_VARIABLE = {
    "phone_ip": "192.168.40.31",
    "mac": "000B82112231",
    "product": "GXV3370",
    "program_version": "1.0.1.28",
    "hardware_version": "V1.2A",
    "language": "English",
    "local": "101",
    "display_local": "Alice",
    "remote": "0711222999",
    "display_remote": "Bob Smith",
    "call_id": "gs-every-1",
    "active_user": "101",
    "active_host": "pbx.acme.example.com",
    "duration": "12",
    "calldirection": "incoming",
}


def test_every_variable_is_kept_on_the_event_and_the_device(shared_hub: Hub) -> None:
    pairs = "&".join(f"{k}={v.replace(' ', '%20')}" for k, v in EVERY_VARIABLE.items())
    reply = get(shared_hub.port, f"/token={TOKEN}&event=Terminate%20Call&{pairs}")
    assert reply.status == 200
    events = [e for e in shared_hub.all_events() if e.get("call_id") == "gs-every-1"]
    assert [e["event_type"] for e in events][-2:] == ["call_ended", "call_cdr"]
    for e in events:
        assert e["phone"] == EVERY_VARIABLE, e["event_type"]
    device = state(shared_hub, "101")["device"]
    for name in ("mac", "phone_ip", "product", "program_version", "hardware_version"):
        assert device[name] == EVERY_VARIABLE[name], name
    for name in ("language", "active_user", "active_host", "display_local"):
        assert device[name] == EVERY_VARIABLE[name], name


def test_a_device_event_keeps_its_variables(shared_hub: Hub) -> None:
    reply = get(
        shared_hub.port,
        f"/token={TOKEN}&event=Booting%20Completed&mac=000B82112232&local=103"
        "&product=GXV3370&program_version=1.0.1.28&hardware_version=V1.2A&language=Deutsch",
    )
    assert reply.status == 200
    (boot,) = [
        e
        for e in shared_hub.all_events(key="boot_completed")
        if e["phone"].get("mac") == "000B82112232"
    ]
    assert boot["phone"]["language"] == "Deutsch" and boot["phone"]["hardware_version"] == "V1.2A"
