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
