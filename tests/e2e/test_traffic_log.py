"""What a real hub logs about phone traffic and logins (issue 16: the hub said nothing)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from tests.support.hub import Hub
from tests.support.phone import get, send_raw

TOKEN = "gs-7f3a9c"


def _lines(hub: Hub) -> list[dict[str, Any]]:
    out = []
    for line in hub.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _wait_for(hub: Hub, message: str, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in _lines(hub) if r["message"] == message]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_phone_refusals_logins_and_start_stop_are_logged(tmp_path: Path) -> None:
    hub = Hub(tmp_path, server_config='log_level = "debug"').start()
    try:
        started = _wait_for(hub, "callhook started")
        assert started and started[0]["listen"] == f"127.0.0.1:{hub.port}"
        assert started[0]["wsi_listen"] == f"127.0.0.1:{hub.wsi_port}"

        # A wrong token, many times from one phone: one line, at info, with the source.
        for _ in range(5):
            assert get(hub.port, "/token=gs-wrong99&event=Incoming%20Call&local=101").status == 404
        # No token from outside open ingest is its own reason; an unreadable URL too.
        assert get(hub.port, "/ingest/%ZZ/incoming_call?local=101").status in (400, 404)
        # A form POST too large for a phone is refused and said too.
        big = b"mac=" + b"A" * 70_000
        req = (
            f"POST /token={TOKEN}&event=Incoming%20Call HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(big)}\r\nConnection: close\r\n\r\n"
        ).encode() + big
        assert send_raw(hub.port, req).status == 413
        # An unknown event name is stored (202) and said at info.
        assert get(hub.port, f"/token={TOKEN}&event=Frobnicate&local=101").status == 202
        # An accepted request at debug, with what it became.
        ok = get(hub.port, f"/token={TOKEN}&event=Incoming%20Call&local=101&remote=0711&call_id=l1")
        assert ok.status == 200
        # A failed API login and a failed WSI login: warnings, never the secret tried.
        status, _ = hub.api("GET", "/api/v1/tenants", key="chk_not-a-real-key-123")
        assert status == 401
        with connect(f"ws://127.0.0.1:{hub.wsi_port}/") as ws:
            ws.send('{"command":"auth","name":"acme","password":"wrong-password-42"}')
            assert json.loads(ws.recv(10))["status"] == -1

        refused = _wait_for(hub, "phone request refused")
        wrong = [r for r in refused if r["reason"] == "unknown-token"]
        assert len(wrong) == 1, refused
        assert wrong[0]["level"] == "info" and wrong[0]["source_ip"] == "127.0.0.1"
        assert wrong[0]["status"] == 404 and wrong[0]["event"] == "Incoming Call"

        assert any(r["reason"] == "body-too-large" and r["status"] == 413 for r in refused)
        unknown = _wait_for(hub, "unknown phone event name")
        assert unknown[0]["level"] == "info" and unknown[0]["event_name"] == "Frobnicate"
        assert unknown[0]["tenant"] == "acme"

        accepted = _wait_for(hub, "phone request accepted")
        assert accepted[0]["level"] == "debug" and accepted[0]["event"] == "incoming_call"
        assert "call_start" in accepted[0]["events"]

        logins = _wait_for(hub, "login failed", 2)
        assert {(r["via"], r["reason"]) for r in logins} >= {
            ("api", "unknown-key"),
            ("wsi", "wrong-password"),
        }
        assert all(r["level"] == "warning" and r["source_ip"] == "127.0.0.1" for r in logins)
    finally:
        assert hub.stop() == 0
    stopped = [r for r in _lines(hub) if r["message"] == "callhook stopped"]
    assert stopped and stopped[0]["listen"] == f"127.0.0.1:{hub.port}"
    # The banner shows the phone URL (to stdout); the log lines never hold a secret.
    text = "\n".join(line for line in hub.log_path.read_text().splitlines() if line[:1] == "{")
    for secret in ("gs-wrong99", TOKEN, "chk_not-a-real-key-123", "wrong-password-42"):
        assert secret not in text, secret


def test_info_level_hides_accepted_requests(tmp_path: Path) -> None:
    hub = Hub(tmp_path).start()
    try:
        for i in range(20):
            target = f"/token={TOKEN}&event=Incoming%20Call&local=101&remote=07&call_id=q{i}"
            assert get(hub.port, target).status == 200
        assert get(hub.port, "/token=gs-wrong99&event=Incoming%20Call").status == 404
        assert _wait_for(hub, "phone request refused")
        assert not [r for r in _lines(hub) if r["message"] == "phone request accepted"]
    finally:
        hub.stop()
