"""Brute force against a real hub: WSI logins and REST API keys, in parallel, from one
address and from many, with the account's domain spelt every way.

An attempt counts before its check, so parallel guesses cannot overrun a limit; the
per-account limit holds whatever the spelling and source; the per-source limit holds over
accounts; Argon2 never runs in more threads than `hash_concurrency`. Limits are small here
so each attack takes a second or two.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.support.hub import ADMIN_KEY, Hub

PER_ACCOUNT = 5
PER_SOURCE = 8
API_PER_SOURCE = 5
AUTH = f"""
[auth]
window = 60
wsi_max_failures_per_account = {PER_ACCOUNT}
wsi_max_failures_per_source = {PER_SOURCE}
api_max_failures_per_source = {API_PER_SOURCE}
hash_concurrency = 1
hash_queue = 1000
"""
WRONG = {"status": -1, "error": "name or password error"}
TOO_MANY = {"status": -1, "error": "too many failed attempts, try again later"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("brute"), extra_config=AUTH).start()
    try:
        yield h
    finally:
        h.stop()


def metric(hub: Hub, name: str, **labels: str) -> float:
    with urllib.request.urlopen(hub.base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    m = re.search("^" + pattern + "$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def attempt(hub: Hub, source: str, auth: dict[str, str]) -> dict[str, Any]:
    """One WSI login on its own connection from `source` (any 127.0.0.0/8 address)."""
    async with connect(
        f"ws://127.0.0.1:{hub.wsi_port}/",
        compression=None,
        open_timeout=20,
        local_addr=(source, 0),
    ) as ws:
        await ws.send(json.dumps({"command": "auth", **auth}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert isinstance(reply, dict)
        return reply


def replies(hub: Hub, tries: list[tuple[str, dict[str, str]]]) -> Counter[str]:
    async def run() -> list[dict[str, Any]]:
        return await asyncio.gather(*(attempt(hub, src, auth) for src, auth in tries))

    got = asyncio.run(run())
    return Counter(json.dumps(r, sort_keys=True) for r in got)


def key(reply: dict[str, Any]) -> str:
    return json.dumps(reply, sort_keys=True)


def test_parallel_guesses_for_one_account_are_checked_up_to_the_limit(hub: Hub) -> None:
    checks = metric(hub, "callhook_auth_checks_total", via="wsi")
    spellings = ["acme.example.com", "ACME.example.com", "acme", "Acme.Example.Com"]
    tries = [
        ("127.0.0.2", {"extension": "101", "domain": spellings[i % 4], "password": f"g{i}"})
        for i in range(60)
    ]
    got = replies(hub, tries)
    assert got == {key(WRONG): PER_ACCOUNT, key(TOO_MANY): 60 - PER_ACCOUNT}, got
    assert metric(hub, "callhook_auth_checks_total", via="wsi") - checks == PER_ACCOUNT
    # The account stays locked from any other address, even with the right password.
    right = {"extension": "101", "domain": "acme", "password": "secret101"}
    assert replies(hub, [("127.0.0.3", right)]) == {key(TOO_MANY): 1}


def test_guesses_spread_over_forty_addresses_share_the_account_limit(hub: Hub) -> None:
    checks = metric(hub, "callhook_auth_checks_total", via="wsi")
    tries = [
        (f"127.0.1.{i % 40 + 1}", {"extension": "102", "domain": d, "password": f"g{i}"})
        for i, d in enumerate(["acme.example.com", "ACME.EXAMPLE.COM", "acme"] * 40)
    ]
    got = replies(hub, tries)
    assert got[key(WRONG)] == PER_ACCOUNT and got[key(TOO_MANY)] == 120 - PER_ACCOUNT, got
    assert metric(hub, "callhook_auth_checks_total", via="wsi") - checks == PER_ACCOUNT


def test_one_address_trying_many_accounts_hits_the_source_limit(hub: Hub) -> None:
    checks = metric(hub, "callhook_auth_checks_total", via="wsi")
    tries = [
        ("127.0.2.1", {"extension": f"9{i:03}", "domain": "acme", "password": "x"})
        for i in range(40)
    ]
    got = replies(hub, tries)
    assert got == {key(WRONG): PER_SOURCE, key(TOO_MANY): 40 - PER_SOURCE}, got
    assert metric(hub, "callhook_auth_checks_total", via="wsi") - checks == PER_SOURCE
    # Another address is not affected, and a right password works there.
    ok = {"extension": "103", "domain": "acme.example.com", "password": "secret103"}
    assert replies(hub, [("127.0.2.2", ok)]) == {key({"status": 0}): 1}


def test_a_locked_account_still_lets_its_clients_reconnect(hub: Hub) -> None:
    """An attacker locking 103 out must not lock out 103's own client reconnecting with the
    password it logged in with a moment ago (test above); new guesses stay refused."""
    wrong = [
        ("127.0.5.1", {"extension": "103", "domain": "acme", "password": f"g{i}"})
        for i in range(PER_ACCOUNT + 3)
    ]
    got = replies(hub, wrong)
    assert got == {key(WRONG): PER_ACCOUNT, key(TOO_MANY): 3}, got
    ok = {"extension": "103", "domain": "acme.example.com", "password": "secret103"}
    assert replies(hub, [("127.0.5.2", ok)]) == {key({"status": 0}): 1}
    assert replies(hub, [("127.0.5.2", {**ok, "password": "again"})]) == {key(TOO_MANY): 1}


def test_argon2_never_runs_in_more_threads_than_configured(hub: Hub) -> None:
    tries = [
        (f"127.0.3.{i % 50 + 1}", {"extension": f"8{i:03}", "domain": "acme", "password": "x"})
        for i in range(100)
    ]
    got = replies(hub, tries)
    assert got == {key(WRONG): 100}, got  # each a different account and within its source
    assert metric(hub, "callhook_auth_hash_peak") == 1


def _api(hub: Hub, key: str, source: str) -> int:
    """GET /api/v1/tenants with `key`, sent from `source`."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", "/api/v1/tenants", headers={"Authorization": f"Bearer {key}"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_parallel_bad_api_keys_are_checked_up_to_the_limit(hub: Hub) -> None:
    checks = metric(hub, "callhook_auth_checks_total", via="api")

    async def run() -> list[int]:
        return await asyncio.gather(
            *(asyncio.to_thread(_api, hub, f"chk_guess{i}", "127.0.4.1") for i in range(60))
        )

    got = Counter(asyncio.run(run()))
    assert got == {401: API_PER_SOURCE, 429: 60 - API_PER_SOURCE}, got
    assert metric(hub, "callhook_auth_checks_total", via="api") - checks == API_PER_SOURCE
    assert _api(hub, ADMIN_KEY, "127.0.4.1") == 429  # that address waits out the window
    assert _api(hub, ADMIN_KEY, "127.0.4.2") == 200  # nobody else is locked out
    try:
        urllib.request.urlopen(hub.base + "/api/v1/tenants", timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 401  # no key: no guess, not counted


def test_many_simultaneous_right_logins_from_one_address_all_get_in(hub: Hub) -> None:
    """Wallboards behind one NAT all reconnecting after a restart: three times the
    per-source limit (and four times the per-account one) logging in at once with the
    right passwords. Only failures count: checks in flight only wait for each other."""
    accounts = [
        {"name": "acme", "password": "tenant-secret"},
        {"name": "globex", "password": "globex-secret"},
        {"extension": "201", "domain": "globex.example.com", "password": "secret201"},
    ]
    tries = [("127.0.6.1", accounts[i % 3]) for i in range(3 * PER_SOURCE)]
    assert replies(hub, tries) == {key({"status": 0}): 3 * PER_SOURCE}
    # The failures of that address still count, up to its limit, in parallel too.
    wrong = [("127.0.6.1", {"extension": f"7{i:03}", "domain": "acme", "password": "x"})
             for i in range(PER_SOURCE + 4)]  # fmt: skip
    assert replies(hub, wrong) == {key(WRONG): PER_SOURCE, key(TOO_MANY): 4}
