"""Every repository of the store, one set of tests run on both backends (SQLite, PostgreSQL).

Through the same methods the hub calls; the `store_url` fixture gives a fresh database of
each backend (tests/conftest.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callhook import config
from callhook.deliver import rules
from callhook.deliver.outbox import Outbox
from callhook.deliver.rules import Index
from callhook.events import Event, new_id
from callhook.store import Append, CdrFilter, Store, TenantValues, open_store
from callhook.store.records import Attempt, DeviceSeen, EndpointState, Update

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = open_store(store_url)
    await s.open()
    settings = config.parse(
        {
            "tenant": [
                {
                    "name": "acme",
                    "password": "pw-acme",
                    "ingest_token": "gs-7f3a9c",
                    "extension": [
                        {"number": "101", "display_name": "Alice", "groups": ["sales"]},
                        {"number": "102", "display_name": "Bob", "groups": ["sales"]},
                        {"number": "103", "display_name": "Carol"},
                    ],
                    "queue": [{"number": "8001", "members": ["101"], "managers": ["102"]}],
                    "trunk": [{"name": "carrier1"}],
                }
            ]
        },
        env={},
    )
    hashes = await s.directory.hash_passwords(settings)
    report = await s.directory.apply_config(settings, hashes)
    assert not report.refused and "tenant acme" in report.added
    try:
        yield s
    finally:
        await s.close()


async def test_directory_round_trip(store: Store) -> None:
    d = store.directory
    tenants = await d.load()
    assert set(tenants["acme"].extensions) == {"101", "102", "103"}
    assert tenants["acme"].queues["8001"].members == ("101",)
    assert tenants["acme"].trunks == ("carrier1",)
    assert await d.password_hash("acme", None)  # an Argon2 hash, not the password
    assert await d.password_hash("acme", "101") == ""

    assert await d.create_tenant("beta", TenantValues(ingest_token="tk-b")) == "ok"
    assert await d.create_tenant("beta", TenantValues()) == "exists"
    assert await d.create_tenant("gamma", TenantValues(ingest_token="tk-b")) == "token-taken"
    names = [t["name"] for t in await d.list_tenants()]
    assert names == ["acme", "beta"]
    assert [t["name"] for t in await d.list_tenants(search="BET")] == ["beta"]  # any case
    assert [t["name"] for t in await d.list_tenants(after="acme", limit=1)] == ["beta"]
    assert await d.update_tenant("beta", TenantValues(domain="b.example")) == "ok"
    got = await d.get_tenant("beta")
    assert got is not None and got["domain"] == "b.example"

    assert await d.create_extension("beta", "201", "Dan", "", ["ops"]) == "ok"
    assert await d.create_extension("nobody", "201", "", "", []) == "missing"
    assert [e["number"] for e in await d.list_extensions("acme", search="carol")] == ["103"]
    assert [e["number"] for e in await d.list_extensions("acme", group="sales")] == [
        "101",
        "102",
    ]
    assert await d.update_extension("acme", "103", groups=["sales"]) == "ok"
    assert (await d.groups("acme"))["sales"] == ["101", "102", "103"]
    assert await d.set_group("acme", "sales", ["101", "999"]) == ["999"]  # nothing changed
    assert await d.set_group("acme", "sales", ["101"]) == []
    assert (await d.groups("acme"))["sales"] == ["101"]
    assert await d.delete_extension("acme", "103") and not await d.delete_extension("acme", "103")

    assert await d.save_queue("acme", "8002", ["101"], None, create=True) == "ok"
    assert [q["number"] for q in await d.list_queues("acme", member="102")] == ["8001"]
    assert await d.delete_queue("acme", "8002")
    assert await d.create_trunk("acme", "carrier2") == "ok"
    assert [t["name"] for t in await d.list_trunks("acme")] == ["carrier1", "carrier2"]

    key = await d.create_api_key("acme", "crm")
    assert key is not None
    assert await d.tenant_of_api_key(key["key"]) == "acme"
    assert [k["key_id"] for k in await d.list_api_keys("acme")] == [key["key_id"]]
    assert await d.revoke_api_key(key["key_id"], "acme")
    assert await d.tenant_of_api_key(key["key"]) is None

    assert await d.delete_tenant("beta")
    assert await store.maintenance.pending_purges() == ["beta"]


def _ev(key: str, body: dict[str, Any], session: str | None = None) -> Event:
    return Event("acme", key, body, ("101",), None, session)


async def test_log_queries_and_retention(store: Store) -> None:
    log = store.log
    device = DeviceSeen("acme", "000B82112233", vendor="grandstream", extension="101")
    cdr = {"cdr_id": "c1", "session_id": "s1", "status": "answered", "start_time": "100",
           "extensions": ["101"]}  # fmt: skip
    done = await log.append(
        Append(
            [_ev("call_start", {"session_id": "s1"}, "s1"), _ev("call_cdr", cdr, "s1")],
            devices=[device],
        )
    )
    assert [e.seq for e in done.events] == [1, 2]
    assert await log.last_seq("acme") == 2
    assert len(await log.read("acme", key="call_cdr")) == 1
    assert len(await log.read("acme", extension="101")) == 2
    assert await log.read("acme", extension="10") == []  # whole numbers only
    page = await log.read_stored("acme", 0, ["call_start"], 10)
    assert [(r.seq, r.key, r.extensions) for r in page] == [(1, "call_start", ("101",))]

    cdrs = await store.queries.cdrs("acme", CdrFilter(extension="101", status="answered"))
    assert [seq for seq, _ in cdrs] == [2]
    assert await store.queries.cdrs("acme", CdrFilter(start_from=101)) == []
    (dev,) = await store.queries.devices("acme")
    assert dev["mac"] == "000B82112233" and dev["vendor"] == "grandstream"
    # A later report that does not name the vendor keeps it.
    await log.append(Append([], devices=[DeviceSeen("acme", "000B82112233", ip="10.0.0.9")]))
    (dev,) = await store.queries.devices("acme")
    assert dev["vendor"] == "grandstream" and dev["ip"] == "10.0.0.9"

    # Retention: everything older than the cutoff but each tenant's newest event.
    assert await store.maintenance.prune_events(time.time() + 60, 1000) == 1
    assert [e.seq for e in (await log.append(Append([_ev("dnd_on", {})]))).events] == [3]

    await store.directory.delete_tenant("acme")
    while await store.maintenance.purge_batch("acme", 1):
        pass
    assert await log.read("acme") == [] and await store.queries.devices("acme") == []
    assert await store.maintenance.pending_purges() == []


async def test_deliveries_outbox_attempts_and_health(store: Store) -> None:
    now = time.time()
    ep = rules.build(endpoint_id=new_id(), tenant="acme", kind="webhook",
                     url="http://127.0.0.1:9/hook", secrets=(SECRET,), created_at=now,
                     updated_at=now)  # fmt: skip
    dl = store.deliveries
    await dl.insert_endpoint(ep)
    (loaded,) = await dl.load_endpoints()
    assert loaded == ep
    index = Index([loaded])
    outbox = Outbox(lambda: index)
    store.log.tx_hooks.append(outbox.tx_hook)
    done = await store.log.append(Append([_ev("call_start", {"session_id": "s1"}, "s1")]))
    (row,) = done.deliveries
    assert row.endpoint_id == ep.endpoint_id and row.status == "pending"
    assert await dl.pending_endpoints() == [ep.endpoint_id]
    (item,) = await dl.load_pending(ep.endpoint_id)
    assert item.delivery_id == row.delivery_id and item.wire == done.events[0].wire_bytes()

    later = now + 1
    await dl.record(
        [Update(item.delivery_id, "failed", 1, later, 500, "HTTP 500", later)],
        [Attempt(item.delivery_id, 1, later, 500, 12.5, "", "oops")],
    )
    got = await dl.get_delivery("acme", item.delivery_id)
    assert got is not None and got["status"] == "failed"
    assert [(a["n"], a["status_code"]) for a in got["attempt_log"]] == [(1, 500)]
    assert [d["id"] for d in await dl.list_deliveries(ep.endpoint_id, status="failed")] == [
        item.delivery_id
    ]
    counts, attempts = await dl.recent_health("acme", now - 10, 100)
    assert counts == [(ep.endpoint_id, "failed", 1)] and attempts[0].status_code == 500

    assert await dl.requeue_one("acme", item.delivery_id, later) == ep.endpoint_id
    assert await dl.requeue_one("globex", item.delivery_id, later) is None
    state = EndpointState(ep.endpoint_id, "failing", now, "failing")
    await dl.set_endpoint_state(state, hold=True, now=later)
    (held,) = await dl.list_deliveries(ep.endpoint_id)
    assert held["status"] == "held"
    n = await dl.requeue_range(ep.endpoint_id, since=0, until=later, statuses=["held"], now=later)
    assert n == 1
    await dl.record([Update(item.delivery_id, "succeeded", 2, later, 200, "", later)], [])
    assert await dl.prune(later + 100) == 1
    assert await dl.get_delivery("acme", item.delivery_id) is None
    await dl.delete_endpoint(ep.endpoint_id)
    assert await dl.load_endpoints() == []
