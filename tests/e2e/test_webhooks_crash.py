"""SIGKILL mid-delivery, then restart: every logged event is delivered, duplicates only as
at-least-once allows, and a duplicate is the same message (same webhook-id, same body)."""

from __future__ import annotations

import time
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from tests.support.hub import Hub
from tests.support.phone import Phone
from tests.support.sink import Sink

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEYS = ("call_start", "call_ended", "call_cdr")
CALLS = 50


def test_sigkill_mid_delivery_loses_nothing(tmp_path: Path) -> None:
    with Sink() as sink:
        sink.program("/crash", delay=0.03)  # slow enough that deliveries are in flight
        acme = (
            f'[[tenant.webhook]]\nurl = "{sink.url("/crash")}"\nsecret = "{SECRET}"\n'
            f"keys = {list(KEYS)!r}\n".replace("'", '"')
        )
        hub = Hub(
            tmp_path,
            server_config="allow_private_targets = true",
            acme_config=acme,
            extra_config="\n[delivery]\nschedule = [0, 0.2, 0.5, 1, 1, 1]\n",
        ).start()
        try:
            phone = Phone(hub.port, "gs-7f3a9c", "101")
            for n in range(CALLS):
                v = {"remote": f"0733{n:06d}", "call_id": f"crash-{n}"}
                assert phone.send("Incoming Call", **v).status == 200
                assert phone.send("Terminate Call", **v).status == 200
            sink.wait_for(30, "/crash")
            hub.kill()  # mid-delivery: most are still queued or in flight
            received_before = sink.count("/crash")
            assert received_before < CALLS * len(KEYS), "too late: everything was already sent"

            hub.start()
            want = {e["event_id"]: e for e in hub.all_events() if e["event_type"] in KEYS}
            assert len(want) == CALLS * len(KEYS)
            deadline = time.monotonic() + 30
            while True:
                ok = {r.headers["webhook-id"] for r in sink.requests("/crash") if r.answered == 200}
                if ok >= want.keys():
                    break
                assert time.monotonic() < deadline, f"{len(want.keys() - ok)} never delivered"
                time.sleep(0.05)
        finally:
            hub.stop()

    requests = sink.requests("/crash")
    duplicates = len(requests) - len({r.headers["webhook-id"] for r in requests})
    # At-least-once: only what was in flight or not yet recorded at the kill comes twice.
    assert duplicates <= received_before
    verifier = Webhook(SECRET)
    for r in requests:
        body = verifier.verify(r.body, r.headers)
        assert r.headers["webhook-id"] == body["event_id"]
        assert body == want[body["event_id"]]  # a duplicate is the very same message
