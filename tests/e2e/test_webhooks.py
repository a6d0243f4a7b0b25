"""Signed JSON webhooks through a real hub to a real recording sink.

Signatures are checked with the independent `standardwebhooks` package. Each test creates
its own webhooks over the API, filtered to an extension of its own, and looks only at
requests for its own calls.
"""

from __future__ import annotations

import itertools
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.hub import Hub
from tests.support.phone import Phone
from tests.support.sink import Recorded, Sink

TOKEN = "gs-7f3a9c"
MACS = {"101": "000B82000101", "102": "000B82000102", "103": "000B82000103"}
_callers = itertools.count(1)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Sink]]:
    with Sink() as sink:
        hub = Hub(
            tmp_path_factory.mktemp("wh"),
            server_config="allow_private_targets = true",
            extra_config=(
                "\n[delivery]\nschedule = [0, 0.2, 0.5]\ntotal_timeout = 2\n"
                "max_in_flight_per_endpoint = 4\njitter = 0.1\n"
            ),
        ).start()
        try:
            yield hub, sink
        finally:
            hub.stop()


def until(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.03)


def webhook(hub: Hub, sink: Sink, path: str, **fields: Any) -> dict[str, Any]:
    status, body = hub.api(
        "POST", "/api/v1/tenants/acme/webhooks", {"url": sink.url(path), **fields}
    )
    assert status == 201, body
    return dict(body)


def call(hub: Hub, ext: str, call_id: str, *, answer: bool = True) -> None:
    """A whole inbound call on one phone: ring, (answer,) hang up."""
    phone = Phone(hub.port, TOKEN, ext, mac=MACS[ext])
    # A distinct caller per call: the same number ringing two phones at once is one call.
    v = {"remote": f"07{next(_callers):08d}", "call_id": call_id}
    assert phone.send("Incoming Call", **v).status == 200
    if answer:
        assert phone.send("Establish Call", **v).status == 200
    assert phone.send("Terminate Call", **v).status == 200


def ok(sink: Sink, path: str, call_id: str | None = None) -> list[Recorded]:
    """Requests under `path` answered 200, for one call if given."""
    return [
        r
        for r in sink.requests(path)
        if r.answered == 200 and (call_id is None or r.json().get("call_id") == call_id)
    ]


def events_of(hub: Hub, call_id: str) -> list[dict[str, Any]]:
    return [e for e in hub.all_events() if e.get("call_id") == call_id]


def test_signed_webhook_verifies_with_the_reference_library(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    hook = webhook(hub, sink, "/sig", extensions=["101"], keys=["call_start", "call_cdr"])
    secret = hook["secret"]
    assert secret.startswith("whsec_") and hook["secrets"] == [secret[:10] + "..."]
    status, shown = hub.api("GET", f"/api/v1/tenants/acme/webhooks/{hook['id']}")
    assert status == 200 and secret not in str(shown) and "secret" not in shown

    call(hub, "101", "sig-1")
    got = until(lambda: len(ok(sink, "/sig", "sig-1")) >= 2 and ok(sink, "/sig", "sig-1"))
    logged = {e["event_id"]: e for e in events_of(hub, "sig-1")}
    assert sorted(r.json()["event_type"] for r in got) == ["call_cdr", "call_start"]
    for r in got:
        assert r.method == "POST" and r.headers["content-type"] == "application/json"
        body = Webhook(secret).verify(r.body, r.headers)
        assert r.headers["webhook-id"] == body["event_id"]  # idempotency key
        assert body == logged[body["event_id"]]  # exactly the canonical event's wire JSON
        assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60

    # Rotation: the new and the previous secret both sign, so receivers can switch over.
    status, rotated = hub.api("POST", f"/api/v1/tenants/acme/webhooks/{hook['id']}/secret")
    assert status == 200 and len(rotated["secrets"]) == 2
    call(hub, "101", "sig-2")
    r = until(lambda: ok(sink, "/sig", "sig-2"))[0]
    assert len(r.headers["webhook-signature"].split(" ")) == 2
    Webhook(secret).verify(r.body, r.headers)
    Webhook(rotated["secret"]).verify(r.body, r.headers)


def test_filters_topics_keys_extensions(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    webhook(hub, sink, "/f/cdr", topics=["cdr_events"], extensions=["101"])
    webhook(hub, sink, "/f/other-ext", extensions=["102"], keys=["call_start"])
    webhook(hub, sink, "/f/all-101", extensions=["101"])
    call(hub, "101", "flt-1")
    expected = {e["event_type"] for e in events_of(hub, "flt-1")}
    assert {"call_start", "call_established", "call_ended", "call_cdr"} <= expected
    until(lambda: {r.json()["event_type"] for r in ok(sink, "/f/all-101", "flt-1")} == expected)
    assert [r.json()["event_type"] for r in ok(sink, "/f/cdr", "flt-1")] == ["call_cdr"]
    assert ok(sink, "/f/other-ext", "flt-1") == []


def test_endpoint_down_then_back_everything_in_session_order(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    sink.program("/down", status=503)
    hook = webhook(hub, sink, "/down", extensions=["102"], schedule=[0] + [0.25] * 20)

    def announced(key: str) -> bool:
        return any(e["endpoint_id"] == hook["id"] for e in hub.events(key=key))

    calls = [f"down-{i}" for i in range(3)]
    for c in calls:
        call(hub, "102", c)
    until(lambda: sink.count("/down") >= 6, what="failed attempts")
    until(lambda: announced("endpoint_failing"), what="endpoint_failing event")
    sink.clear("/down")  # the endpoint comes back
    for c in calls:
        want = [e["event_id"] for e in events_of(hub, c)]
        until(lambda c=c, w=want: {r.headers["webhook-id"] for r in ok(sink, "/down", c)} == set(w))
        # order within the session: no event attempted before the previous was delivered
        delivered_upto = 0
        for r in sink.requests("/down"):
            if r.json().get("call_id") != c:
                continue
            seq = r.json()["seq"]
            assert seq >= delivered_upto, f"{c}: seq {seq} sent before {delivered_upto} arrived"
            if r.answered == 200:
                delivered_upto = seq
        assert [r.json()["seq"] for r in ok(sink, "/down", c)] == sorted(
            e["seq"] for e in events_of(hub, c)
        )
    until(lambda: announced("endpoint_recovered"), what="endpoint_recovered event")


def test_gone_disables_then_enable_and_replay(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    t0 = time.time() - 1
    sink.program("/gone", status=410)
    hook = webhook(hub, sink, "/gone", extensions=["103"], keys=["call_start"])
    path = f"/api/v1/tenants/acme/webhooks/{hook['id']}"
    call(hub, "103", "gone-1", answer=False)
    until(lambda: hub.api("GET", path)[1]["status"] == "disabled", what="disabled by 410")
    shown = hub.api("GET", path)[1]
    assert shown["disabled_reason"] == "gone"
    disabled = until(lambda: hub.events(key="endpoint_disabled"))
    assert any(e["endpoint_id"] == hook["id"] for e in disabled)
    assert disabled[0]["topic"] == "webhook_events"

    call(hub, "103", "gone-2", answer=False)  # arrives while disabled: held, not sent
    held = until(
        lambda: hub.api("GET", f"{path}/deliveries?status=held")[1]["deliveries"], what="held"
    )
    assert len(held) == 1 and sink.count("/gone") == 1

    sink.clear("/gone")
    status, enabled = hub.api("POST", f"{path}/enable")
    assert status == 200 and enabled["status"] == "enabled"
    status, replayed = hub.api("POST", f"{path}/replay", {"since": t0})
    assert status == 200 and replayed["queued"] == 2  # the 410'd one and the held one
    until(lambda: {r.json()["call_id"] for r in ok(sink, "/gone")} == {"gone-1", "gone-2"})


def test_429_retry_after_is_honoured(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    sink.program("/busy", status=429, retry_after="1", times=1)
    hook = webhook(hub, sink, "/busy", extensions=["101"], keys=["call_start"])
    call(hub, "101", "busy-1", answer=False)
    until(lambda: ok(sink, "/busy", "busy-1"))
    first, second = [r for r in sink.requests("/busy") if r.json()["call_id"] == "busy-1"]
    assert first.answered == 429 and second.answered == 200
    assert second.at - first.at >= 0.95  # the schedule alone would say 0.2 s
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    page = hub.api("GET", f"/api/v1/tenants/acme/webhooks/{hook['id']}/deliveries")[1]
    url = f"/api/v1/tenants/acme/deliveries/{page['deliveries'][0]['id']}"

    def succeeded() -> dict[str, Any] | None:
        d: dict[str, Any] = hub.api("GET", url)[1]
        return d if d["status"] == "succeeded" else None

    d = until(succeeded, what="delivery recorded as succeeded")
    assert [a["status_code"] for a in d["attempt_log"]] == [429, 200]


def test_short_or_past_retry_after_never_shortens_the_schedule(env: tuple[Hub, Sink]) -> None:
    # Retries honour Retry-After, yet last the whole schedule. A Retry-After
    # shorter than the scheduled delay (0, 1 s, a date already past) must not make the
    # remaining attempts go out back to back. One call, three endpoints side by side.
    hub, sink = env
    cases = {"/soon0": "0", "/soon1": "1", "/past": "Wed, 21 Oct 2015 07:28:00 GMT"}
    hooks = {}
    for path, retry_after in cases.items():
        sink.program(path, status=503, retry_after=retry_after)
        hooks[path] = webhook(hub, sink, path, extensions=["101"], keys=["call_start"],
                              schedule=[0, 1.5, 1.5, 1.5])  # fmt: skip
    call_id = "short-retry-after"
    call(hub, "101", call_id, answer=False)
    for path, hook in hooks.items():

        def mine(path: str = path) -> list[Recorded]:
            return [r for r in sink.requests(path) if r.json()["call_id"] == call_id]

        got = until(lambda: len(mine()) >= 4 and mine(), timeout=20, what=f"{path}: 4 tries")
        gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
        # jitter (10 % here) only lengthens a delay: the schedule's total is a minimum, so
        # the last attempt of the default schedule lands after 24 h whatever the draws
        assert all(g >= 1.5 - 0.05 for g in gaps), (path, gaps)
        page = f"/api/v1/tenants/acme/webhooks/{hook['id']}/deliveries?status=failed"
        (d,) = until(lambda p=page: hub.api("GET", p)[1]["deliveries"], what="failed delivery")
        assert d["attempts"] == 4 and d["last_status_code"] == 503, path
        assert len(mine()) == 4, path


def test_other_4xx_fails_without_retry(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    sink.program("/bad", status=400)
    hook = webhook(hub, sink, "/bad", extensions=["101"], keys=["call_start"])
    path = f"/api/v1/tenants/acme/webhooks/{hook['id']}/deliveries?status=failed"
    call(hub, "101", "bad-1", answer=False)
    (d,) = until(lambda: hub.api("GET", path)[1]["deliveries"], what="failed delivery")
    assert d["attempts"] == 1 and d["last_status_code"] == 400
    assert sink.count("/bad") == 1
    with urllib.request.urlopen(hub.base + "/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert 'callhook_webhook_attempts_total{kind="webhook",result="failed"}' in metrics


def test_hung_endpoint_does_not_slow_the_nine_others(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    hooks = [webhook(hub, sink, f"/iso/{i}/", extensions=["103"], keys=["call_start"])
             for i in range(10)]  # fmt: skip
    assert len(hooks) == 10

    def run(tag: str, healthy: range) -> float:
        t = time.monotonic()
        ids = [f"{tag}-{n}" for n in range(30)]
        for c in ids:
            call(hub, "103", c, answer=False)
        for i in healthy:
            until(
                lambda i=i: {r.json()["call_id"] for r in ok(sink, f"/iso/{i}/")} >= set(ids),
                what=f"endpoint {i}",
            )
        return time.monotonic() - t

    baseline = run("iso-a", range(10))
    sink.program("/iso/9/", hang=True)  # endpoint 9 stops answering
    with_hang = run("iso-b", range(9))
    assert with_hang < baseline * 2 + 1.0, (baseline, with_hang)
    sink.clear("/iso/9/")
