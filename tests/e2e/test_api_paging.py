"""Every list route pages the same way: `limit`, `cursor`, and the next page's cursor."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.support.hub import ADMIN_KEY, Hub
from tests.support.phone import Phone

TOKEN = "gs-7f3a9c"


def _get(hub: Hub, path: str) -> tuple[object, dict[str, str]]:
    req = urllib.request.Request(hub.base + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read()), {k.lower(): v for k, v in r.headers.items()}


def test_calls_page_with_limit_and_cursor(hub: Hub) -> None:
    for n, number in enumerate(("101", "102", "103")):
        phone = Phone(hub.port, TOKEN, number, mac=f"000B8255{n:04d}")
        assert phone.send("Incoming Call", remote=f"07{n}", call_id=f"pg-{n}").status == 200
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page, _ = _get(hub, f"/api/v1/tenants/acme/calls?limit=2{cursor}")
        assert isinstance(page, dict)
        assert len(page["calls"]) <= 2
        seen += [c["call_id"] for c in page["calls"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(seen) == ["pg-0", "pg-1", "pg-2"] and len(seen) == 3


def test_events_page_with_limit_and_cursor(hub: Hub) -> None:
    phone = Phone(hub.port, TOKEN, "101", mac="000B82556601")
    for _ in range(3):
        assert phone.send("DND On").status == 200
        assert phone.send("DND Off").status == 200
    everything, _ = _get(hub, "/api/v1/tenants/acme/events?since_seq=0")
    assert isinstance(everything, list)
    pages: list[int] = []
    path = "/api/v1/tenants/acme/events?limit=4"
    for _ in range(10):
        page, headers = _get(hub, path)
        assert isinstance(page, list) and len(page) <= 4
        pages += [e["seq"] for e in page]
        nxt = headers.get("x-next-cursor")
        if nxt is None:
            break
        assert int(nxt) == page[-1]["seq"]
        path = f"/api/v1/tenants/acme/events?limit=4&cursor={nxt}"
    assert pages == [e["seq"] for e in everything]


def test_presence_shows_reported_but_undeclared_extensions(hub: Hub) -> None:
    stranger = Phone(hub.port, TOKEN, "150", mac="000B82559150")
    assert stranger.send("Registration", phone_ip="192.0.2.150").status == 200
    caller = Phone(hub.port, TOKEN, "101", mac="000B82559101")
    assert caller.send("Incoming Call", remote="0711222333", call_id="un-1").status == 200
    body, _ = _get(hub, "/api/v1/tenants/acme/presence")
    assert isinstance(body, dict)
    rows = {e["extension"]: e for e in body["extensions"]}
    assert rows["150"]["configured"] is False and rows["150"]["registered"] is True
    assert rows["101"]["configured"] is True
    assert "0711222333" not in rows  # the other party of a call is not an extension
    one, _ = _get(hub, "/api/v1/tenants/acme/extensions/150/state")
    assert isinstance(one, dict) and one["configured"] is False


def test_webhooks_and_rules_page_with_limit_and_cursor(tmp_path: Path) -> None:
    hub = Hub(tmp_path, server_config="allow_private_targets = true").start()
    try:
        for i in range(3):
            body = {"url": f"http://127.0.0.1:9/hook{i}", "topics": ["cdr_events"]}
            assert hub.api("POST", "/api/v1/tenants/acme/webhooks", body)[0] == 201
            rule = {"extension": "101", "event": "dial_in", "url": f"http://127.0.0.1:9/pop{i}"}
            assert hub.api("POST", "/api/v1/tenants/acme/call-events", rule)[0] == 201
        for path, key in (("webhooks", "webhooks"), ("call-events", "rules")):
            seen: list[str] = []
            cursor = ""
            for _ in range(10):
                page, _ = _get(hub, f"/api/v1/tenants/acme/{path}?limit=2{cursor}")
                assert isinstance(page, dict) and len(page[key]) <= 2
                seen += [e["id"] for e in page[key]]
                if page["next_cursor"] is None:
                    break
                cursor = f"&cursor={page['next_cursor']}"
            everything, _ = _get(hub, f"/api/v1/tenants/acme/{path}")
            assert isinstance(everything, dict)
            assert len(seen) == 3 and seen == [e["id"] for e in everything[key]]
            assert seen == sorted(seen, key=int)  # creation order
    finally:
        hub.stop()
