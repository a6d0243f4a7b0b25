"""Phone URLs from the API, pasted into simulated phones of every vendor: all accepted."""

from __future__ import annotations

import re
import socket
from urllib.parse import quote, urlsplit

import pytest

from tests.support.hub import Hub

URLS = "/api/v1/tenants/acme/phone-urls"
VALUES = {
    "local": "101",
    "remote": "0711222333",
    "display_remote": "Renée",
    "call_id": "c-1",
    "call-id": "c-1",
    "duration": "12",
    "ip": "192.0.2.5",
    "phone_ip": "192.0.2.5",
    "model": "T46U",
    "product": "GXP2170",
    "firmware": "66.86",
    "program_version": "1.0.11",
    "hardware_version": "V1",
    "active_user": "101",
    "active_host": "pbx.example.com",
    "calldirection": "incoming",
    "language": "English",
    "display_local": "Alice",
}


def send_like_a_phone(port: int, target: str) -> int:
    """GET `target` exactly as written on the request line (no client-side quoting)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("vendor", ["grandstream", "yealink", "snom", "fanvil"])
def test_every_url_is_accepted_by_the_hub(shared_hub: Hub, vendor: str) -> None:
    h = shared_hub
    status, body = h.api("GET", f"{URLS}?vendor={vendor}&host=127.0.0.1:{h.port}")
    assert status == 200, body
    assert body["vendor"] == vendor and body["tenant"] == "acme" and len(body["urls"]) >= 18
    mac = {"grandstream": "000B82000001", "yealink": "001565000002"}.get(vendor, "0004130000F3")
    for u in body["urls"]:
        url = u["url"].replace("$mac", mac)
        url = re.sub(r"\$([a-z_-]+)", lambda m: quote(VALUES[m.group(1)], safe=""), url)
        if vendor == "grandstream":
            assert url.startswith(f"127.0.0.1:{h.port}/token=gs-7f3a9c&event=")
            target = url.split("/", 1)[1]
            target = "/" + target
        else:
            parts = urlsplit(url)
            assert parts.scheme == "http" and parts.query.endswith(f"vendor={vendor}")
            target = f"{parts.path}?{parts.query}"
        # 200: accepted as the event it is meant to be (202 would mean "unknown event").
        assert send_like_a_phone(h.port, target) == 200, (u["event"], target)
    devices = h.api("GET", "/api/v1/tenants/acme/devices")[1]["devices"]
    assert mac in {d["mac"] for d in devices}


def test_defaults_and_errors(shared_hub: Hub) -> None:
    h = shared_hub
    status, body = h.api("GET", URLS)
    assert status == 200 and body["vendor"] == "grandstream"
    assert body["host"] == f"127.0.0.1:{h.port}"  # the Host the caller used
    assert body["urls"][0]["url"].startswith(f"127.0.0.1:{h.port}/token=gs-7f3a9c&event=Incoming")
    status, err = h.api("GET", f"{URLS}?vendor=cisco")
    assert status == 422 and err["error"]["field"] == "vendor"
    status, err = h.api("GET", f"{URLS}?host=ftp://x")
    assert status == 422 and err["error"]["field"] == "host"
    status, https = h.api("GET", f"{URLS}?vendor=snom&host=https://hub.example.com")
    assert https["urls"][0]["url"].startswith("https://hub.example.com/ingest/gs-7f3a9c/")
    assert h.api("GET", "/api/v1/tenants/nosuch/phone-urls")[0] == 404
    globex = h.api("POST", "/api/v1/tenants/globex/api-keys", {})[1]["key"]
    assert h.api("GET", URLS, key=globex)[0] == 403
    own = h.api("GET", "/api/v1/tenants/globex/phone-urls?vendor=yealink", key=globex)[1]
    assert "/ingest/gx-1234/incoming_call?" in own["urls"][0]["url"]


def test_model_asks_for_its_guide_s_names(shared_hub: Hub) -> None:
    h = shared_hub
    status, body = h.api("GET", f"{URLS}?vendor=grandstream&model=GXV3240&host=h")
    assert status == 200 and body["model"] == "GXV3240"
    calls = [u["url"] for u in body["urls"] if "call_id=" in u["url"]]
    assert calls and all("call_id=$call-id&" in u for u in calls)
    status, body = h.api("GET", f"{URLS}?vendor=grandstream&model=GXV3370&host=h")
    assert status == 200 and all("$call-id" not in u["url"] for u in body["urls"])
    status, err = h.api("GET", f"{URLS}?vendor=grandstream&model=GXP9999")
    assert status == 422 and err["error"]["field"] == "model"
