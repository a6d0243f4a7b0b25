"""SSRF guard with `allow_private_targets = false` (the default): refused at creation and
at send time, and nothing ever reaches the (loopback) sink."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.hub import Hub
from tests.support.phone import Phone
from tests.support.sink import Sink


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Sink]]:
    with Sink() as sink:
        # Declared in the file, so never checked with DNS at creation: the send-time guard
        # must stop it (as it would a name that later resolves to a private address).
        acme = f'[[tenant.webhook]]\nurl = "{sink.url("/cfg")}"\n'
        acme += f'[[tenant.webhook]]\nurl = "http://localhost:{sink.port}/name"\n'
        hub = Hub(tmp_path_factory.mktemp("ssrf"), acme_config=acme).start()
        try:
            yield hub, sink
        finally:
            hub.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/x",
        "http://localhost:{port}/x",
        "http://[::1]:{port}/x",
        "http://10.0.0.7/x",
        "http://192.168.40.207/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:{port}/x",
        # IPv6 spellings of private IPv4 addresses, and site-local IPv6
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[64:ff9b::7f00:1]:{port}/x",
        "http://[64:ff9b:1::a00:1]/x",
        "http://[2002:7f00:1::1]:{port}/x",
        "http://[2002:c0a8:101::1]/x",
        "http://[::127.0.0.1]:{port}/x",
        "http://[::a00:1]/x",
        "http://[::ffff:0:7f00:1]:{port}/x",
        "http://[::ffff:0:a9fe:a9fe]/x",
        "http://[fec0::1]/x",
        "ftp://example.com/x",
    ],
)
def test_refused_at_creation(env: tuple[Hub, Sink], url: str) -> None:
    hub, sink = env
    target = url.format(port=sink.port)
    status, err = hub.api("POST", "/api/v1/tenants/acme/webhooks", {"url": target})
    assert status == 422, err
    assert err["error"]["field"] == "url" and err["error"]["code"] == "target-refused"
    if not url.startswith("ftp:"):  # an address refusal says how to allow private targets
        assert "allow_private_targets" in err["error"]["message"], err
    rule = {"extension": "101", "event": "dial_in", "url": target}
    status, err = hub.api("POST", "/api/v1/tenants/acme/call-events", rule)
    assert status == 422 and err["error"]["code"] == "target-refused"


def test_refused_at_send_time_and_not_retried(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    assert Phone(hub.port, "gs-7f3a9c", "101").send("Off Hook").status in (200, 202)
    status, listed = hub.api("GET", "/api/v1/tenants/acme/webhooks")
    assert status == 200 and len(listed["webhooks"]) == 2
    for hook in listed["webhooks"]:
        path = f"/api/v1/tenants/acme/webhooks/{hook['id']}/deliveries?status=failed"
        deadline = time.monotonic() + 10
        while not (failed := hub.api("GET", path)[1]["deliveries"]):
            assert time.monotonic() < deadline, "no failed delivery"
            time.sleep(0.05)
        d = failed[0]
        assert d["attempts"] == 1 and d["last_status_code"] is None
        assert "private" in d["last_error"] or "localhost" in d["last_error"]
    assert sink.count() == 0
