"""Brute-force limits hold per cluster: failures on two real nodes (one PostgreSQL, one
Redis) add up to the configured total; with Redis away each node counts its own.

Each test uses its own client addresses (127.0.0.0/8) and accounts, so they share one
cluster; the limits are small so each attack takes a moment.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.test_attack_auth import TOO_MANY, WRONG, _api, attempt, key
from tests.e2e.test_cluster import Cluster
from tests.support.hub import ADMIN_KEY, Hub
from tests.support.phone import send_raw

# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = pytest.mark.own_engines

PER_ACCOUNT = 4
PER_SOURCE = 6
API_PER_SOURCE = 4
TOKENS_PER_SOURCE = 4
AUTH = f"""
[auth]
window = 60
wsi_max_failures_per_account = {PER_ACCOUNT}
wsi_max_failures_per_source = {PER_SOURCE}
api_max_failures_per_source = {API_PER_SOURCE}
ingest_max_unknown_tokens_per_source = {TOKENS_PER_SOURCE}
hash_queue = 1000
"""
OK = {"status": 0}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("limits"), extra=AUTH)
    try:
        yield c.start()
    finally:
        c.stop()


def logins(tries: list[tuple[Hub, str, dict[str, str]]]) -> Counter[str]:
    async def run() -> list[dict[str, object]]:
        return await asyncio.gather(*(attempt(hub, src, auth) for hub, src, auth in tries))

    return Counter(key(r) for r in asyncio.run(run()))


def phone(hub: Hub, source: str, token: str) -> int:
    """A phone's GET with `token`, sent from `source`."""
    target = f"/token={token}&event=Incoming%20Call&local=101&remote=0700&call_id=lim-{token}"
    req = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\n"
        "User-Agent: Grandstream GXP2170 1.0.11.3\r\nConnection: close\r\n\r\n"
    ).encode()
    return send_raw(hub.port, req, source=source).status


def test_api_key_failures_on_both_nodes_add_up_to_the_limit(cluster: Cluster) -> None:
    a, b = cluster.nodes
    got = [_api((a, b)[i % 2], f"chk_guess{i}", "127.0.7.1") for i in range(10)]
    assert got == [401] * API_PER_SOURCE + [429] * (10 - API_PER_SOURCE)
    assert _api(a, ADMIN_KEY, "127.0.7.1") == 429 and _api(b, ADMIN_KEY, "127.0.7.1") == 429
    assert _api(a, ADMIN_KEY, "127.0.7.2") == 200 and _api(b, ADMIN_KEY, "127.0.7.2") == 200

    async def parallel() -> list[int]:
        return await asyncio.gather(
            *(asyncio.to_thread(_api, (a, b)[i % 2], f"chk_p{i}", "127.0.7.3") for i in range(30))
        )

    assert Counter(asyncio.run(parallel())) == {401: API_PER_SOURCE, 429: 30 - API_PER_SOURCE}


def test_parallel_wsi_guesses_on_both_nodes_share_the_account_limit(cluster: Cluster) -> None:
    a, b = cluster.nodes
    tries = [
        ((a, b)[i % 2], f"127.0.8.{i % 5 + 1}", {"extension": "102", "domain": "acme",
                                                  "password": f"g{i}"})
        for i in range(30)
    ]  # fmt: skip
    assert logins(tries) == {key(WRONG): PER_ACCOUNT, key(TOO_MANY): 30 - PER_ACCOUNT}
    right = {"extension": "102", "domain": "acme", "password": "secret102"}
    assert logins([(b, "127.0.8.9", right), (a, "127.0.8.9", right)]) == {key(TOO_MANY): 2}


def test_wallboards_behind_one_address_all_log_in_on_both_nodes(cluster: Cluster) -> None:
    a, b = cluster.nodes
    accounts = [{"name": "globex", "password": "globex-secret"},
                {"extension": "201", "domain": "globex", "password": "secret201"}]  # fmt: skip
    tries = [((a, b)[i % 2], "127.0.9.1", accounts[i % 2]) for i in range(4 * PER_SOURCE)]
    assert logins(tries) == {key(OK): 4 * PER_SOURCE}
    wrong = [
        ((a, b)[i % 2], "127.0.9.1", {"extension": f"6{i:03}", "domain": "acme", "password": "x"})
        for i in range(PER_SOURCE + 4)
    ]
    assert logins(wrong) == {key(WRONG): PER_SOURCE, key(TOO_MANY): 4}


def test_unknown_tokens_on_both_nodes_add_up_and_then_even_a_right_one_waits(
    cluster: Cluster,
) -> None:
    """Phones are answered without waiting for Redis: the node whose count reaches the
    limit tells the others at once (pub/sub), which the pause between requests covers."""
    a, b = cluster.nodes
    got = []
    for i in range(8):
        got.append(phone((a, b)[i % 2], "127.0.10.1", f"guess{i}"))
        time.sleep(0.05)
    assert got == [404] * TOKENS_PER_SOURCE + [429] * (8 - TOKENS_PER_SOURCE)
    assert phone(a, "127.0.10.1", "gs-7f3a9c") == 429 and phone(b, "127.0.10.1", "gs-7f3a9c") == 429
    assert phone(b, "127.0.10.2", "gs-7f3a9c") == 200  # other addresses are not affected


def test_with_redis_away_each_node_still_limits_on_its_own(cluster: Cluster) -> None:
    a, b = cluster.nodes
    cluster.redis.stop()
    try:
        for hub in (a, b):
            got = [_api(hub, f"chk_down{i}", "127.0.11.1") for i in range(API_PER_SOURCE + 2)]
            assert got == [401] * API_PER_SOURCE + [429, 429], got
            assert _api(hub, ADMIN_KEY, "127.0.11.2") == 200  # legit clients go on
            right = {"extension": "103", "domain": "acme", "password": "secret103"}
            assert logins([(hub, "127.0.11.3", right)]) == {key(OK): 1}
        for hub in (a, b):
            assert "rate limits: Redis unreachable" in hub.log_path.read_text(), hub.logs()
    finally:
        cluster.redis.start()
    for hub in (a, b):  # back: each node finds Redis again at its next check
        deadline = time.monotonic() + 20
        while "limits are per cluster again" not in hub.log_path.read_text():
            assert time.monotonic() < deadline, hub.logs()
            _api(hub, ADMIN_KEY, "127.0.11.2")
            time.sleep(0.2)
    got = [_api((a, b)[i % 2], f"chk_up{i}", "127.0.11.4") for i in range(API_PER_SOURCE + 2)]
    assert got == [401] * API_PER_SOURCE + [429, 429], got


def test_a_dashboard_ticket_from_one_node_opens_the_live_channel_on_the_other(
    cluster: Cluster,
) -> None:
    """Behind a round-robin balancer the dashboard's ticket request and its WebSocket may
    reach different nodes; a ticket unknown there would count as a failed login of the
    tenant (for the whole cluster) and leave the dashboard polling."""
    a, b = cluster.nodes
    for issuer, redeemer in ((a, b), (b, a)):
        status, body = issuer.api("POST", "/api/v1/tenants/acme/dashboard-ticket")
        assert status == 201, body
        ticket = {"name": "acme", "password": body["ticket"]}
        assert logins([(redeemer, "127.0.12.1", ticket)]) == {key(OK): 1}
        assert logins([(issuer, "127.0.12.1", ticket)]) == {key(WRONG): 1}  # used up
