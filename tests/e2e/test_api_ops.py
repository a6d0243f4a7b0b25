"""REST API plumbing on a real hub: body limit, CORS, error shape, metrics, docs coverage."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.hub import ADMIN_KEY, Hub

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 1_048_576  # server.max_body_bytes default


def request(
    hub: Hub,
    method: str,
    path: str,
    body: bytes | Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
    try:
        conn.request(
            method,
            path,
            body=body,
            headers={"Authorization": f"Bearer {ADMIN_KEY}", **(headers or {})},
            encode_chunked=chunked,
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_body_over_the_limit_is_refused_with_413(shared_hub: Hub) -> None:
    big = b'{"name": "' + b"x" * (LIMIT + 10) + b'"}'
    status, headers, body = request(
        shared_hub, "POST", "/api/v1/tenants", big, {"Content-Type": "application/json"}
    )
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "body-too-large"

    # Chunked, so no length is announced: read up to the limit, then dropped, then 413.
    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(total // 65536):
            yield b"y" * 65536
        yield b'"}'

    status, _, body = request(
        shared_hub,
        "POST",
        "/api/v1/tenants",
        chunks(LIMIT + 65536),
        {"Content-Type": "application/json"},
        chunked=True,
    )
    assert status == 413 and json.loads(body)["error"]["code"] == "body-too-large"
    # A chunked body under the limit reaches the route whole.
    ok = iter([b'{"name": ', b'"chunky"}'])
    status, _, body = request(
        shared_hub, "POST", "/api/v1/tenants", ok, {"Content-Type": "application/json"}, True
    )
    assert status == 201, body
    assert shared_hub.api("GET", "/api/v1/tenants/chunky")[0] == 200


def test_cors_is_off_by_default(shared_hub: Hub) -> None:
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    status, headers, _ = request(shared_hub, "OPTIONS", "/api/v1/tenants", headers=origin)
    assert status in (401, 405) and "access-control-allow-origin" not in headers
    status, headers, _ = request(shared_hub, "GET", "/api/v1/tenants", headers=origin)
    assert status == 200 and "access-control-allow-origin" not in headers


def test_framework_errors_have_our_error_shape(shared_hub: Hub) -> None:
    status, _, body = request(shared_hub, "GET", "/api/v1/nothing-here")
    assert status == 404 and json.loads(body)["error"]["code"] == "not-found"
    status, headers, body = request(shared_hub, "PUT", "/api/v1/tenants")
    assert status == 405 and json.loads(body)["error"]["code"] == "method-not-allowed"
    assert headers["allow"] == "GET, POST"  # every method of the path, not one route's
    status, headers, _ = request(shared_hub, "PUT", "/api/v1/tenants/acme")
    assert status == 405 and headers["allow"] == "DELETE, GET, PATCH"
    # A body that is not JSON cannot be read: 400, as docs/api.md says (not 422).
    for bad in (b"\xff\xfe{", b"name=acme", b'{"name": "x"'):
        status, _, body = request(
            shared_hub, "POST", "/api/v1/tenants", bad, {"Content-Type": "application/json"}
        )
        assert status == 400, (bad, body)
        assert json.loads(body)["error"]["code"] == "bad-request"
    # JSON of the wrong shape is still invalid input.
    status, _, body = request(
        shared_hub, "POST", "/api/v1/tenants", b"[]", {"Content-Type": "application/json"}
    )
    assert status == 422 and json.loads(body)["error"]["code"] == "invalid"


def scrape(hub: Hub) -> dict[str, list[Any]]:
    status, _, body = request(hub, "GET", "/metrics")
    assert status == 200
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


def test_metrics_count_tenants_and_requests_by_route(shared_hub: Hub) -> None:
    h = shared_hub
    tenants = len(h.api("GET", "/api/v1/tenants?limit=1000")[1]["tenants"])
    for _ in range(3):
        assert h.api("GET", "/api/v1/tenants/acme/extensions/101")[0] == 200
    assert h.api("GET", "/api/v1/tenants/acme/extensions/999")[0] == 404
    families = scrape(h)
    assert families["callhook_tenants"][0].value == tenants
    by_labels = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in families["callhook_api_requests"]
        if s.name == "callhook_api_requests_total"
    }
    route = "/api/v1/tenants/{tenant}/extensions/{number}"
    assert by_labels[("GET", route, "200")] >= 3
    assert by_labels[("GET", route, "404")] >= 1
    # Paths are never labels: unknown ones share one series.
    request(h, "GET", "/api/v1/no/such/path/12345")
    labels = {s.labels["route"] for s in scrape(h)["callhook_api_requests"] if "route" in s.labels}
    assert "other" in labels and not any("12345" in r for r in labels)
    assert "callhook_retention_pruned" in families
    latency = families["callhook_api_request_seconds"]
    assert any(s.labels.get("route") == route for s in latency)


def test_every_route_is_in_the_api_docs(shared_hub: Hub) -> None:
    status, _, body = request(shared_hub, "GET", "/openapi.json")
    assert status == 200
    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)", doc))
    missing = [
        f"{method.upper()} {path}"
        for path, ops in json.loads(body)["paths"].items()
        for method in ops
        if (method.upper(), path) not in documented
    ]
    assert not missing, f"routes missing from docs/api.md: {missing}"
