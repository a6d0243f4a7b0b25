"""Grandstream phones' requests, byte for byte, against a real hub: what the hub keeps of
them and how it reads them (Grandstream's Event Notification and ActionURL guides).
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import Hub
from tests.support.phone import Phone, Response, get, parse_response, send_raw

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


# -- values as phones send them: raw '#', raw spaces on kept-alive connections, '/' pairs -------


def phone_line(target: str) -> bytes:
    """A request exactly as a phone writes it: the target byte for byte, nothing encoded."""
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Grandstream GXV3370\r\n\r\n"
    ).encode()


def read_one(sock: socket.socket) -> Response:
    """One response off a kept-alive connection (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return parse_response(head + b"\r\n\r\n" + body[:length])


def by_call(hub: Hub, call_id: str) -> list[dict[str, Any]]:
    return [e for e in hub.all_events() if e.get("call_id") == call_id]


@pytest.mark.parametrize(
    ("pair", "value"), [("remote=*72#", "*72#"), ("display_remote=Room#5", "Room#5")]
)
def test_a_raw_hash_keeps_the_rest_of_the_request(shared_hub: Hub, pair: str, value: str) -> None:
    call_id = f"hash-{len(value)}"
    target = (
        f"/token={TOKEN}&event=Outgoing%20Call&mac=000B82112241&local=101&{pair}"
        f"&remote2=x&call_id={call_id}"
    )
    closing = phone_line(target).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    reply = send_raw(shared_hub.port, closing)
    assert reply.status == 200, reply.body
    (start,) = [e for e in by_call(shared_hub, call_id) if e["event_type"] == "call_start"]
    key = pair.split("=")[0]
    assert start["phone"][key] == value and start["phone"]["call_id"] == call_id


def test_raw_spaces_on_every_request_of_a_kept_alive_connection(shared_hub: Hub) -> None:
    with socket.create_connection(("127.0.0.1", shared_hub.port), timeout=10) as sock:
        for n in range(3):
            target = (
                f"/token={TOKEN}&event=Incoming Call&mac=000B82112242&local=103"
                f"&remote=0711000{n}&display_remote=Jane Doe {n}&call_id=keep-{n}"
            )
            sock.sendall(phone_line(target))
            reply = read_one(sock)
            assert reply.status == 200, (n, reply.body)
            assert reply.json()["events"][0] == "call_start"
    for n in range(3):
        (start,) = [e for e in by_call(shared_hub, f"keep-{n}") if e["event_type"] == "call_start"]
        assert start["caller_display_name"] == f"Jane Doe {n}"


def test_pairs_separated_by_slashes_as_the_actionurl_guide_says(shared_hub: Hub) -> None:
    # GXV3240 guide: "separate the dynamic variables with a '/'"; it spells `$call-id`.
    reply = get(
        shared_hub.port,
        f"/token={TOKEN}/event=Incoming%20Call/mac=000B82112243/local=102"
        "/remote=0711555666/call-id=slash-1/program_version=1.0.3.24",
    )
    assert reply.status == 200, reply.body
    (start,) = [e for e in by_call(shared_hub, "slash-1") if e["event_type"] == "call_start"]
    assert start["callee_number"] == "102" and start["caller_number"] == "0711555666"
    assert start["phone"]["program_version"] == "1.0.3.24"


def test_the_actionurl_guide_s_on_unhold_example(shared_hub: Hub) -> None:
    # "On Unhold: 192.168.40.207/call-id=$call-id&program_version=$program_version": no token,
    # no event; taken from an open-ingest network and kept raw, with the call id.
    reply = get(shared_hub.port, "/call-id=unhold-1&program_version=1.0.3.24")
    assert reply.status in (200, 202), reply.body
    (raw,) = [
        e
        for e in shared_hub.all_events(key="action_url")
        if e["variables"].get("call_id") == "unhold-1"
    ]
    assert raw["pairs"] == {"call-id": "unhold-1", "program_version": "1.0.3.24"}
    assert raw["phone"] == {"call_id": "unhold-1", "program_version": "1.0.3.24"}
    assert "url-has-no-event-name" in raw["hints"]


# -- a caller learned late; transfers honour $calldirection ------------------------------------


def test_a_caller_learned_late_is_filled_in(shared_hub: Hub) -> None:
    phone = Phone(shared_hub.port, TOKEN, "101", mac="000B82112251")
    # The Incoming Call URL has no $remote; the Establish and Terminate Call URLs have it.
    assert phone.send("Incoming Call", call_id="late-a").status == 200
    time.sleep(0.3)  # another call to the same extension, 0.3 s later: its own session
    assert phone.send("Incoming Call", remote="0711444555", call_id="late-b").status == 200
    called = {"remote": "0722333444", "display_remote": "Zed Zeta", "call_id": "late-a"}
    assert phone.send("Establish Call", **called).status == 200
    assert phone.send("Terminate Call", duration="5", **called).status == 200
    a, b = by_call(shared_hub, "late-a"), by_call(shared_hub, "late-b")
    assert {e["session_id"] for e in a}.isdisjoint({e["session_id"] for e in b})
    later = [e for e in a if e["event_type"] in ("call_established", "call_ended", "call_cdr")]
    assert [e["caller"] for e in later] == ["sip:0722333444@acme.example.com"] * 3
    assert later[-1]["caller_display_name"] == "Zed Zeta"
    assert [e["caller_number"] for e in b if e["event_type"] == "call_start"] == ["0711444555"]


def test_an_incoming_call_being_transferred_stays_inbound(shared_hub: Hub) -> None:
    phone = Phone(shared_hub.port, TOKEN, "102", mac="000B82112252")
    v = {"remote": "103", "call_id": "xfer-in-1", "calldirection": "incoming"}
    assert phone.send("Blind Transferring", **v).status == 200
    events = by_call(shared_hub, "xfer-in-1")
    start = next(e for e in events if e["event_type"] == "call_start")
    assert (start["direction"], start["callee"]) == ("inbound", "sip:102@acme.example.com")
    assert start["caller"] != "sip:102@acme.example.com"
    reroute = next(e for e in events if e["event_type"] == "call_reroute")
    assert reroute["transferred_by"] == "sip:102@acme.example.com"
    assert reroute["call_target"] == "sip:103@acme.example.com"


def test_a_transfer_s_direction_corrects_a_first_guess(shared_hub: Hub) -> None:
    phone = Phone(shared_hub.port, TOKEN, "102", mac="000B82112253")
    # The Establish Call URL has no $calldirection: the hub first guesses 102 called out.
    assert phone.send("Establish Call", remote="0711666777", call_id="xfer-in-2").status == 200
    v = {"remote": "103", "call_id": "xfer-in-2", "calldirection": "incoming"}
    assert phone.send("Blind Transferring", **v).status == 200
    reroute = next(e for e in by_call(shared_hub, "xfer-in-2") if e["event_type"] == "call_reroute")
    assert (reroute["caller"], reroute["callee"]) == (
        "sip:0711666777@acme.example.com",
        "sip:102@acme.example.com",
    )


def test_the_devices_list_keeps_what_describes_the_phone(shared_hub: Hub) -> None:
    reply = get(
        shared_hub.port,
        f"/token={TOKEN}&event=Registration&mac=000B82112261&local=104&phone_ip=127.0.0.1"
        "&product=GXV3240&program_version=1.0.3.24&language=Deutsch&active_user=104"
        "&active_host=pbx.acme.example.com&display_local=Dora",
    )
    assert reply.status == 200
    status, body = shared_hub.api("GET", "/api/v1/tenants/acme/devices")
    assert status == 200, body
    (device,) = [d for d in body["devices"] if d["mac"] == "000B82112261"]
    assert (device["model"], device["firmware"], device["extension"]) == (
        "GXV3240",
        "1.0.3.24",
        "104",
    )
    assert device["details"] == {
        "language": "Deutsch",
        "active_user": "104",
        "active_host": "pbx.acme.example.com",
        "display_local": "Dora",
    }
