"""Two real `callhook serve` nodes sharing one PostgreSQL and one Redis (the cluster).

Phones, REST clients and WSI subscribers talk to either node over loopback; the log in
PostgreSQL is checked for what was acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from callhook.events import TOPICS
from tests.e2e.test_crash import incoming_call
from tests.support import postgres, wsi
from tests.support import redis as redis_support
from tests.support.hub import Hub
from tests.support.phone import get
from tests.support.sink import Sink

# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = [pytest.mark.own_engines, pytest.mark.slow]

TENANT = {"name": "acme", "password": "tenant-secret"}
EVERYTHING = [{"topic": t} for t in TOPICS]
_calls = itertools.count(1)


class Cluster:
    def __init__(
        self,
        tmp_path: Path,
        database: str | None = None,
        server: str = "",
        extra: str = "",
        redis_users: bool = False,
        nodes: int = 2,
    ) -> None:
        """`nodes` nodes (a, b, c ...) on `database` (default: a new one on the session's
        PostgreSQL); `server` is added to [server], `extra` at the end of the config
        file; `redis_users`: each node logs in to Redis as a user of its own (`cut_off`)."""
        if database is None:
            database = postgres.fresh_database()
        self.redis = redis_support.start()
        self.nodes: list[Hub] = []
        for name in "abcdefgh"[:nodes]:
            workdir = tmp_path / name
            workdir.mkdir()
            url = self.redis.url
            if redis_users:
                with redis_lib.Redis.from_url(url) as r:
                    r.execute_command("ACL", "SETUSER", f"node-{name}", "on", f">pw-{name}",
                                      "~*", "&*", "+@all")  # fmt: skip
                url = f"redis://node-{name}:pw-{name}@127.0.0.1:{self.redis.port}/0"
            node = f'bus = "{url}"\nnode_id = "node-{name}"\n{server}'
            hub = Hub(workdir, extra, backend="sqlite", server_config=node)
            hub.use_database(database)
            self.nodes.append(hub)

    def start(self) -> Cluster:
        for hub in self.nodes:  # one after the other: each applies the same config file
            hub.start()
        return self

    def cut_off(self, node_id: str) -> None:
        """The node loses Redis (its user disabled, its connections closed); the others
        keep theirs. Needs `redis_users`."""
        with redis_lib.Redis.from_url(self.redis.url) as r:
            r.execute_command("ACL", "SETUSER", node_id, "off")
            r.execute_command("CLIENT", "KILL", "USER", node_id)

    def stop(self) -> None:
        for hub in self.nodes:
            hub.stop()
        self.redis.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c.start()
    finally:
        c.stop()


def ring(hub: Hub) -> tuple[str, int]:
    n = next(_calls)
    call_id = f"cluster-{n}"
    try:
        status = get(hub.port, incoming_call(call_id, f"0733{n:06d}")).status
    except OSError:
        status = 0
    return call_id, status


async def subscribe(hub: Hub, since: int | None = None) -> Any:
    ws = await wsi.login(hub.wsi_port, **TENANT)
    cmd: dict[str, Any] = {"command": "subscribe", "topics": EVERYTHING}
    if since is not None:
        cmd["since_seq"] = since
    assert await wsi.call(ws, cmd) == {"status": 0}
    return ws


def check_log(hub: Hub, acked: list[str], within: float = 15.0) -> list[dict[str, Any]]:
    """seq gap-free, event_id unique, every acknowledged call stored exactly once.

    A phone's `200` says its report is in the inbox: its events come when the owner of
    its partition has correlated it (milliseconds; seconds when an owner died). The log
    gets `within` seconds to hold them all."""
    deadline = time.monotonic() + within
    while True:
        events = hub.all_events()
        starts = {e.get("call_id") for e in events if e["event_type"] == "call_start"}
        if set(acked) <= starts or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "seq must be gap-free across nodes"
    assert len({e["event_id"] for e in events}) == len(events), "event_id must be unique"
    starts = [e.get("call_id") for e in events if e["event_type"] == "call_start"]
    missing = set(acked) - set(starts)
    assert not missing, f"{len(missing)} acknowledged calls lost, e.g. {sorted(missing)[:5]}"
    assert len(starts) == len(set(starts)), "a call stored twice"
    return events


async def test_an_event_acknowledged_on_a_reaches_a_subscriber_on_b(cluster: Cluster) -> None:
    a, b = cluster.nodes
    ws = await subscribe(b)
    try:
        call_id, status = ring(a)
        assert status == 200
        got = await wsi.events_until(ws, lambda evs: any(e.get("call_id") == call_id for e in evs))
        start = next(e for e in got if e.get("call_id") == call_id)
        assert start["event_type"] == "call_start"
        stored = [e for e in b.all_events() if e.get("call_id") == call_id]
        assert [e["event_id"] for e in stored][:1] == [start["event_id"]]
        # and the other way round
        call_id, status = ring(b)
        ws_a = await subscribe(a, since=start["seq"])
        got = await wsi.events_until(
            ws_a, lambda evs: any(e.get("call_id") == call_id for e in evs)
        )
        assert got[0]["seq"] == start["seq"] + 1  # resumed right after, on the other node
        await ws_a.close()
    finally:
        await ws.close()


async def test_entries_a_node_cannot_read_on_the_bus_do_not_stop_its_fan_out(
    cluster: Cluster,
) -> None:
    """Redis is shared: whatever else writes to the event streams (another version, a
    mistake) is skipped with a warning, and the node goes on reading the others' events."""
    a, b = cluster.nodes
    ws = await subscribe(b)
    try:
        with redis_lib.Redis.from_url(cluster.redis.url) as r:
            for p in range(16):
                r.xadd(f"callhook:events:{p}", {"n": "intruder", "t": "acme", "s": "x"})
                r.xadd(f"callhook:events:{p}", {"garbage": b"\xff\xfe"})
        call_id, status = ring(a)
        assert status == 200
        got = await wsi.events_until(ws, lambda evs: any(e.get("call_id") == call_id for e in evs))
        assert next(e for e in got if e.get("call_id") == call_id)["event_type"] == "call_start"
    finally:
        await ws.close()
    assert "cannot read bus entry" in b.logs()


def phones_on_both(
    cluster: Cluster, stop: threading.Event, acked: list[str]
) -> list[threading.Thread]:
    lock = threading.Lock()

    def phone(n: int) -> None:
        while not stop.is_set():
            call_id, status = ring(cluster.nodes[n % 2])
            if status == 200:
                with lock:
                    acked.append(call_id)
            time.sleep(0.002)

    threads = [threading.Thread(target=phone, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    return threads


def settle(cond: Any, within: float) -> None:
    """Wait until `cond()` or `within` seconds, whichever first (the caller checks)."""
    deadline = time.monotonic() + within
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)


def wait_for(cond: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


async def test_seq_is_gap_free_and_since_seq_resumes_on_any_node(cluster: Cluster) -> None:
    a, b = cluster.nodes
    stop = threading.Event()
    acked: list[str] = []
    threads = phones_on_both(cluster, stop, acked)
    try:
        wait_for(lambda: len(acked) >= 300)
    finally:
        stop.set()
        for t in threads:
            t.join()
    events = check_log(a, acked)
    assert events == check_log(b, acked)  # both nodes read the same log
    middle = events[len(events) // 2]["seq"]
    for hub in (a, b):
        ws = await subscribe(hub, since=middle)
        want = [e["seq"] for e in events if e["seq"] > middle]
        got = await wsi.events_until(ws, lambda evs, n=len(want): len(evs) >= n)
        assert [e["seq"] for e in got] == want
        assert await wsi.until_pong(ws) == []  # nothing more, nothing twice
        await ws.close()


async def test_a_node_redis_refuses_to_read_says_so_and_backs_off(tmp_path: Path) -> None:
    """A node's Redis user may not XREAD (an ACL too narrow): the node says what to check,
    tries again less and less often instead of every half second (each try reads every
    tenant from the log and reloads the directory), its subscribers still get the other
    node's events (from the log), and it reads the streams again once allowed."""
    cluster = Cluster(tmp_path, redis_users=True).start()
    a, b = cluster.nodes
    try:
        ws = await subscribe(b)
        with redis_lib.Redis.from_url(cluster.redis.url) as r:
            r.execute_command("ACL", "SETUSER", "node-b", "-xread")
            r.execute_command("CLIENT", "KILL", "USER", "node-b")  # its blocked XREAD too
        started = time.monotonic()
        call_id, status = ring(a)
        assert status == 200
        got = await wsi.events_until(  # from the log, at B's next try (1 s after the first)
            ws, lambda evs: any(e.get("call_id") == call_id for e in evs), within=10
        )
        assert [e["event_type"] for e in got if e.get("call_id") == call_id][:1] == ["call_start"]
        await asyncio.sleep(max(0.0, 3.5 - (time.monotonic() - started)))
        refusals = b.logs().count("Redis refuses the bus's reads")
        assert 1 <= refusals <= 3, b.logs()[-3000:]  # at 0, 1 and 3 s: not every 0.5 s
        assert "may read the callhook:* streams" in b.logs()

        with redis_lib.Redis.from_url(cluster.redis.url) as r:
            r.execute_command("ACL", "SETUSER", "node-b", "+xread")
        allowed = lambda: "Redis allows the bus's reads again" in b.logs()  # noqa: E731
        await asyncio.to_thread(wait_for, allowed, 40)
        # at start, and after the kill (its connection went); not at each try in between
        assert b.logs().count("bus connected") <= 2
        call_id, status = ring(a)
        assert status == 200
        await wsi.events_until(ws, lambda evs: any(e.get("call_id") == call_id for e in evs))
        await ws.close()
    finally:
        cluster.stop()


async def test_redis_stopped_under_load_leaves_no_gap_and_no_duplicate(
    cluster: Cluster,
) -> None:
    a, b = cluster.nodes
    subscribers = [await subscribe(a, since=0), await subscribe(b, since=0)]
    received: list[list[int]] = [[], []]

    async def read(i: int) -> None:
        while True:
            msg = await wsi.recv_json(subscribers[i], 60)
            received[i].append(msg["seq"])

    readers = [asyncio.create_task(read(i)) for i in range(2)]
    stop = threading.Event()
    acked: list[str] = []
    threads = phones_on_both(cluster, stop, acked)
    try:
        await asyncio.to_thread(wait_for, lambda: len(acked) >= 100)
        cluster.redis.stop()
        await asyncio.sleep(4)  # phones go on; nodes cannot reach Redis
        during = len(acked)
        cluster.redis.start()
        await asyncio.to_thread(wait_for, lambda: len(acked) >= during + 100)
    finally:
        stop.set()
        for t in threads:
            await asyncio.to_thread(t.join)
    for hub in (a, b):  # the outage was seen, and the node went on
        assert "bus lost Redis" in hub.log_path.read_text(), hub.logs()
    events = check_log(a, acked)
    last = events[-1]["seq"]
    try:
        for i in range(2):
            await asyncio.to_thread(settle, lambda i=i: len(received[i]) >= last, 30)
            await asyncio.sleep(0.5)  # anything sent twice would have arrived by now
            missing = sorted(set(range(1, last + 1)) - set(received[i]))
            assert received[i] == list(range(1, last + 1)), (
                f"subscriber on node {'ab'[i]}: {len(received[i])} events for {last} stored,"
                f" missing {missing[:10]}"
            )
    finally:
        for r in readers:
            r.cancel()
        for ws in subscribers:
            await ws.close()


def test_workers_on_sqlite_are_refused_with_what_to_configure(tmp_path: Path) -> None:
    hub = Hub(tmp_path, backend="sqlite")
    cmd = [sys.executable, "-m", "callhook.cli", "serve", "--config", str(hub.config_path)]
    done = subprocess.run([*cmd, "--workers", "2"], capture_output=True, timeout=60, text=True)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--workers 2:" in lines[0]
    assert 'database = "postgresql://..."' in lines[0]
    assert 'bus = "redis://HOST:6379/0"' in lines[0]
    assert not hub.db.exists()  # refused before anything was opened


def test_cluster_status_lists_every_node_alive(cluster: Cluster) -> None:
    a, b = cluster.nodes
    for hub in (a, b):
        wait_for(lambda hub=hub: len(hub.api("GET", "/api/v1/cluster")[1]["nodes"]) == 2, 10)
        status, body = hub.api("GET", "/api/v1/cluster")
        assert status == 200, body
        assert body["clustered"] is True
        assert body["node_id"] == f"node-{'ab'[cluster.nodes.index(hub)]}"
        assert body["bus"] == cluster.redis.url
        assert [n["node_id"] for n in body["nodes"]] == ["node-a", "node-b"]
        assert all(n["bus_connected"] and n["lag_ms"] >= 0 for n in body["nodes"])
        assert isinstance(body["deliveries"], list)  # by holder (test_cluster_webhooks.py)
    _, key = a.api("POST", "/api/v1/tenants/acme/api-keys", {"name": "probe"})
    assert a.api("GET", "/api/v1/cluster", key=key["key"])[0] == 403  # admin only
    cmd = [sys.executable, "-m", "callhook.cli", "cluster", "status", "--config"]
    done = subprocess.run([*cmd, str(a.config_path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n\n")[0].splitlines()  # then the partitions' owners
    assert [ln.split()[0] for ln in lines[1:]] == ["node-a", "node-b"], done.stdout
    assert all(ln.split()[3] == "ok" for ln in lines[1:]), done.stdout


def test_a_key_revoked_on_a_is_refused_on_b(cluster: Cluster) -> None:
    a, b = cluster.nodes
    status, created = a.api("POST", "/api/v1/tenants/acme/api-keys", {"name": "crm"})
    assert status == 201, created
    path = "/api/v1/tenants/acme/extensions"
    assert b.api("GET", path, key=created["key"])[0] == 200  # B knows the key (cached)
    assert a.api("DELETE", f"/api/v1/tenants/acme/api-keys/{created['key_id']}")[0] == 204
    assert a.api("GET", path, key=created["key"])[0] == 401
    wait_for(lambda: b.api("GET", path, key=created["key"])[0] == 401, 10)


def test_a_tenant_created_on_a_takes_phones_on_b(cluster: Cluster) -> None:
    a, b = cluster.nodes
    target = "/" + "&".join(
        ["token=tk-cluster-1", "event=Incoming Call", "local=301", "remote=0744", "call_id=c1"]
    ).replace(" ", "%20")
    assert get(b.port, target).status != 200  # no such tenant yet
    body = {"name": "initech", "ingest_token": "tk-cluster-1",
            "open_ingest_networks": ["127.0.0.0/8"]}  # fmt: skip
    status, reply = a.api("POST", "/api/v1/tenants", body)
    assert status == 201, reply
    wait_for(lambda: get(b.port, target).status == 200, 10)
    wait_for(lambda: len(a.all_events("initech")) > 0, 10)  # correlated by its owner
    assert [e["event_type"] for e in a.all_events("initech")][:1] == ["call_start"]


def test_workers_share_the_ports_as_nodes_of_the_cluster(tmp_path: Path) -> None:
    database = postgres.fresh_database()
    redis = redis_support.start()
    hub = Hub(tmp_path, backend="sqlite", server_config=f'bus = "{redis.url}"\nworkers = 2')
    hub.use_database(database)
    try:
        hub.start()

        def nodes() -> list[str]:
            status, body = hub.api("GET", "/api/v1/cluster")
            return [n["node_id"] for n in body["nodes"]] if status == 200 else []

        wait_for(lambda: len(nodes()) == 2, 20)
        assert [n.rsplit("/", 1)[1] for n in nodes()] == ["1", "2"]
        acked = [c for c, s in (ring(hub) for _ in range(40)) if s == 200]
        assert len(acked) == 40
        check_log(hub, acked)
        assert hub.stop() == 0  # SIGTERM reaches both workers; a clean stop
    finally:
        hub.stop()
        redis.close()


def test_a_webhook_created_on_a_gets_the_calls_of_b(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, server="allow_private_targets = true").start()
    a, b = cluster.nodes
    try:
        with Sink() as sink:
            body = {"url": sink.url("/hook"), "topics": ["extension_events"]}
            status, created = a.api("POST", "/api/v1/tenants/acme/webhooks", body)
            assert status == 201, created

            rung: list[str] = []

            def delivered() -> bool:
                call_id, status = ring(b)  # B took the call: B's outbox makes the delivery
                assert status == 200
                rung.append(call_id)
                bodies = [r.body.decode(errors="replace") for r in sink.requests("/hook")]
                if any(f'"{c}"' in body for c in rung for body in bodies):
                    return True
                time.sleep(0.3)
                return False

            wait_for(delivered, 15)
    finally:
        cluster.stop()
