"""A node cut off from the network: its own host (a network namespace), its link taken down.

Node N runs in a network namespace and reaches PostgreSQL and Redis only through its veth
pair (tests/support/netns.py); node H runs on this machine. Phones load both (N's through
the veth, and one on N's own host that still reaches it while the link is down), for two
tenants: one in a partition N owns, one in a partition H owns. Then N's link goes down
for about 10 s: silence, no reset. N must stop acknowledging (every report sent to it
during the cut is answered 503, in bounded time: a phone waits at most PHONE_TIMEOUT), H
must take N's partitions (as `GET /api/v1/cluster` on H shows) and go on, N must come back
by itself when the link does and get its share back, never write under a lease it lost
(fencing: an audit trigger in PostgreSQL records, for every event row, which node wrote
it and who held the partition's lease in that transaction), and every report a phone got
a 2xx for must be in the log, once, with `seq` gap-free.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from callhook.cluster.partitions import PARTITIONS, partition_of
from tests.e2e.test_cluster import wait_for
from tests.support import netns, postgres
from tests.support import redis as redis_support
from tests.support.hub import Hub
from tests.support.phone import get, pairs

TIMEOUT = 2  # [server] database_timeout: seconds of silence before a connection is given up
# A phone on N's host waits this long for its answer: the writer gives its dead connection
# up after TIMEOUT, the next connect attempt fails after TIMEOUT, with room for a loaded
# machine. No answer within it fails the test.
PHONE_TIMEOUT = 5 * TIMEOUT
CUT = 10.0  # seconds N is cut off: more than a lease lasts, so H takes N's partitions
LEASE = "[cluster]\nlease_ttl = 4.0\nlease_renew = 1.0\n"
KEY = "netns-test-admin-key-0123"  # N listens beyond loopback: a real key
_numbers = itertools.count(1)


def _tenant_names() -> dict[int, str]:
    """A tenant name for each partition (the phones use the ones the nodes own)."""
    names: dict[int, str] = {}
    for k in itertools.count():
        names.setdefault(partition_of(f"part{k}"), f"part{k}")
        if len(names) == PARTITIONS:
            return names
    raise AssertionError("unreachable")


TENANTS = _tenant_names()
TENANT_CONFIG = "".join(
    f'\n[[tenant]]\nname = "{t}"\ningest_token = "tok-{t}"\n'
    f'\n[[tenant.extension]]\nnumber = "101"\n'
    for t in TENANTS.values()
)


def incoming_call(tenant: str, call_id: str, remote: str) -> str:
    """An Incoming Call to 101 of `tenant`, as a Grandstream phone sends it."""
    values = {"token": f"tok-{tenant}", "event": "Incoming Call", "local": "101"}
    return "/" + pairs({**values, "remote": remote, "call_id": call_id})


# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = pytest.mark.own_engines


@dataclass(frozen=True)
class Answer:
    call_id: str
    tenant: str
    node: str  # "H", "N" (through the veth) or "N-local" (from N's own host)
    sent_at: float
    answered_at: float
    status: int  # 0: no answer (refused, unreachable, timed out)


class Phones:
    """Phones sending Incoming Call reports in a loop, for `tenants` in turn; every answer
    is kept."""

    def __init__(self, tenants: list[str]) -> None:
        self.tenants = tenants
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, node: str, send: Callable[[str], int], run: Callable[..., object]) -> None:
        """A phone calling `send(target)`, run by `run(loop)` on a new thread."""

        def loop() -> None:
            while not self.stop.is_set():
                number = next(_numbers)
                tenant = self.tenants[number % len(self.tenants)]
                call_id = f"netns-{node}-{number}"
                sent = time.monotonic()
                status = send(incoming_call(tenant, call_id, f"0744{number:06d}"))
                answer = Answer(call_id, tenant, node, sent, time.monotonic(), status)
                with self._lock:
                    self.answers.append(answer)
                time.sleep(0.005 if status == 200 else 0.05)

        thread = threading.Thread(target=run, args=(loop,))
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join()

    def of(self, node: str) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.node == node]

    def acked(self, tenant: str) -> list[str]:
        with self._lock:
            return [a.call_id for a in self.answers if a.tenant == tenant and a.status == 200]


def _send(port: int, host: str) -> Callable[[str], int]:
    def send(target: str) -> int:
        try:
            return get(port, target, host=host, timeout=PHONE_TIMEOUT).status
        except OSError:
            return 0

    return send


def readyz(hub: Hub) -> int:
    try:
        return get(hub.port, "/readyz", host=hub.host, timeout=PHONE_TIMEOUT).status
    except OSError:
        return 0


def partitions(hub: Hub) -> list[dict[str, Any]]:
    """Every partition's row of `GET /api/v1/cluster` on `hub` (asked again when PostgreSQL
    did not answer the node in time: a loaded machine; the node says so)."""
    rows: list[dict[str, Any]] = []

    def answered() -> bool:
        nonlocal rows
        status, body = hub.api("GET", "/api/v1/cluster")
        assert status == 200, body
        rows = body["partitions"] if body["leases_reachable"] else []
        return len(rows) == PARTITIONS

    wait_for(answered)
    return rows


def owners(hub: Hub) -> dict[int, tuple[str | None, int]]:
    """partition -> (owner or None, epoch)."""
    return {p["partition"]: (p["owner"], p["epoch"]) for p in partitions(hub)}


def inbox_lag(hub: Hub) -> int:
    """Reports stored in the inbox and not processed by their partition's owner yet (a
    partition with none is left out of the lag: null)."""
    return sum(p["inbox_lag"] or 0 for p in partitions(hub))


# Every event row: the node whose transaction wrote it (its connections' application_name)
# and the partition's lease as that transaction saw it. A fenced write holds the lease row
# (FOR SHARE) from its fence check to COMMIT, so a row written under a lease still held
# shows its writer as owner, at an unexpired lease; a stale writer would show up here.
AUDIT = """
CREATE TABLE fence_audit (tenant text, seq bigint, writer text, owner text, epoch bigint,
                          unexpired boolean);
CREATE FUNCTION fence_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fence_audit
    SELECT NEW.tenant, NEW.seq, current_setting('application_name'), l.owner, l.epoch,
           l.expires_at > transaction_timestamp()
    FROM partition_leases l WHERE l.partition = (SELECT partition FROM fence_tenants
                                                 WHERE tenant = NEW.tenant);
    RETURN NEW;
END $$;
CREATE TABLE fence_tenants (tenant text PRIMARY KEY, partition int);
CREATE TRIGGER fence_audit AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION fence_audit();
"""


@dataclass
class Setup:
    ns: netns.Netns
    pg: postgres.PostgresServer
    database: str  # its URL on loopback
    redis: redis_support.RedisServer
    n: Hub  # in the namespace
    h: Hub  # on this machine


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    ns = netns.require()
    pg: postgres.PostgresServer | None = None
    redis: redis_support.RedisServer | None = None
    hubs: list[Hub] = []
    try:
        # its own server: it must also listen on the veth, and the fault stays here
        pg = postgres.start(listen=[ns.host_ip], trust=[ns.network])
        redis = redis_support.start(bind=[ns.host_ip])
        database = pg.new_database()
        for name, host in (("h", "127.0.0.1"), ("n", ns.ns_ip)):
            workdir = tmp_path / name
            workdir.mkdir()
            via = "127.0.0.1" if name == "h" else ns.host_ip  # N reaches us through the veth
            extra = (
                f'bus = "{redis.url_at(via)}"\nnode_id = "node-{name}"\n'
                f"database_timeout = {TIMEOUT}\n"
            )
            hub = Hub(
                workdir,
                TENANT_CONFIG + LEASE,
                backend="sqlite",
                server_config=extra,
                host=host,
                admin_key=KEY,
            )
            # Each node's sessions named after it: the audit trigger tells writers apart.
            hub.use_database(pg.url_at(via, database) + f"?application_name=node-{name}")
            hubs.append(hub)
        h, n = hubs
        h.start()
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(AUDIT)
            for p, tenant in TENANTS.items():
                conn.execute("INSERT INTO fence_tenants VALUES (%s, %s)", (tenant, p))
        serve = [sys.executable, "-m", "callhook.cli", "serve", "--config", str(n.config_path)]
        n.start(command=ns.exec_prefix() + serve)
        yield Setup(ns, pg, database, redis, n, h)
    finally:
        for hub in hubs:
            hub.stop()
        ns.close()
        if redis is not None:
            redis.close()
        if pg is not None:
            pg.stop()


def check_log(hub: Hub, tenant: str, acked: list[str], sent: set[str]) -> list[dict[str, Any]]:
    """seq gap-free, event_id unique, every acknowledged call stored once, and nothing that
    no phone sent."""
    events = hub.all_events(tenant)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"{tenant}: seq must be gap-free"
    assert len({e["event_id"] for e in events}) == len(events), "event_id must be unique"
    starts = [e.get("call_id") for e in events if e["event_type"] == "call_start"]
    missing = set(acked) - set(starts)
    assert not missing, f"{len(missing)} acknowledged calls lost, e.g. {sorted(missing)[:5]}"
    assert len(starts) == len(set(starts)), "a call stored twice"
    assert set(starts) <= sent
    return events


def test_a_node_cut_off_stops_acknowledging_loses_its_partitions_and_comes_back(
    setup: Setup,
) -> None:
    ns, n, h = setup.ns, setup.n, setup.h

    def settled() -> bool:  # every partition owned, each node its share
        held = [owner for owner, _ in owners(h).values()]
        return held.count("node-n") == held.count("node-h") == PARTITIONS // 2

    wait_for(settled)
    before = owners(h)
    p_n = min(p for p, (owner, _) in before.items() if owner == "node-n")
    p_h = min(p for p, (owner, _) in before.items() if owner == "node-h")
    tenant_n, tenant_h = TENANTS[p_n], TENANTS[p_h]
    of_n: dict[int, int] = {}  # partition -> epoch, N's when the link goes down
    phones = Phones([tenant_n, tenant_h])
    taken: dict[int, tuple[str | None, int]] = {}
    not_ready: int | None = None  # N's /readyz during the cut
    try:
        for _ in range(2):
            phones.start("H", _send(h.port, "127.0.0.1"), lambda loop: loop())
            phones.start("N", _send(n.port, ns.ns_ip), lambda loop: loop())
        phones.start("N-local", _send(n.port, ns.ns_ip), ns.run_inside)

        def ok(node: str, after: float = 0.0) -> int:
            return sum(1 for a in phones.of(node) if a.status == 200 and a.sent_at > after)

        def n_wrote() -> bool:  # N processed reports of its partition under its lease
            of_n.clear()
            of_n.update((p, e) for p, (owner, e) in owners(h).items() if owner == "node-n")
            if p_n not in of_n:  # (lost and not taken again yet: only on a loaded machine)
                return False
            with psycopg.connect(setup.database, autocommit=True) as conn:
                query = "SELECT 1 FROM fence_audit WHERE tenant = %s AND writer = 'node-n'"
                return bool(conn.execute(query, (tenant_n,)).fetchone())

        wait_for(lambda: ok("H") >= 30 and ok("N") >= 30 and ok("N-local") >= 10 and n_wrote())
        ns.cut()
        cut_at = time.monotonic()  # what was sent before may still be answered, later
        deadline = cut_at + CUT
        while True:  # H takes N's partitions, at a higher epoch
            now = owners(h)
            if all(now[p][0] == "node-h" and now[p][1] > e for p, e in of_n.items()):
                taken = now
            if time.monotonic() >= deadline:  # checked once more after the last wait
                break
            if not_ready is None and time.monotonic() > cut_at + 2 * TIMEOUT:
                # what a load balancer's health check on N's host sees
                not_ready = ns.run_inside(lambda: readyz(n))
            time.sleep(0.2)
        restored_at = time.monotonic()
        ns.restore()
        wait_for(lambda: ok("N", restored_at) >= 20 and ok("N-local", restored_at) >= 5)
        wait_for(settled)  # and N gets its share again
    finally:
        phones.join()
    assert taken, f"H did not take N's partitions {sorted(of_n)} while N was cut off"
    assert not_ready == 503, not_ready  # N said it could not serve
    wait_for(lambda: readyz(n) == 200)  # and says it can again

    # N stopped acknowledging: what its own host sent it during the cut was answered 503
    # (never 200: nothing could be stored), each within PHONE_TIMEOUT.
    local = phones.of("N-local")
    during = [a for a in local if a.sent_at > cut_at and a.answered_at < restored_at]
    assert len(during) >= 2, during
    assert {a.status for a in during} == {503}, during
    # Every request it had in flight when the link went down was answered too (200 if it
    # was committed before, 503 if not), within PHONE_TIMEOUT: no phone was left hanging.
    assert all(a.status in (200, 503) for a in local), [a for a in local if a.status == 0]
    # Nothing reached N from this machine while cut off.
    through = phones.of("N")
    assert not [a for a in through if cut_at < a.sent_at < restored_at and a.status == 200]
    # H went on while N was away.
    assert sum(1 for a in phones.of("H") if cut_at < a.answered_at < restored_at
               and a.status == 200) > 0  # fmt: skip

    # Every acknowledged report is in the log once, seq gap-free, on both nodes (once the
    # owners have processed their inboxes).
    wait_for(lambda: inbox_lag(h) == 0)
    sent = {a.call_id for a in phones.answers}
    for tenant in (tenant_n, tenant_h):
        events = check_log(h, tenant, phones.acked(tenant), sent)
        assert check_log(n, tenant, phones.acked(tenant), sent) == events

    # Fencing: every event row was written by the node that held its partition's lease,
    # unexpired, in that transaction.
    with psycopg.connect(setup.database, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tenant, seq, writer, owner, epoch, unexpired FROM fence_audit"
        ).fetchall()
    stale = [r for r in rows if r[2] != r[3] or not r[5]]
    assert not stale, f"{len(stale)} rows written without the lease, e.g. {stale[:5]}"
    # In commit order (seq), a partition's epochs never go back: nothing N wrote under the
    # lease it held before the cut came after H's first write under the epoch it took.
    written = sorted((seq, writer, epoch) for tenant, seq, writer, _, epoch, _ in rows
                     if tenant == tenant_n)  # fmt: skip
    epochs = [epoch for _, _, epoch in written]
    assert epochs == sorted(epochs), "a write under an older epoch came after a newer one"
    assert any(w == "node-n" and e <= of_n[p_n] for _, w, e in written)  # N wrote, then
    assert ("node-h", taken[p_n][1]) in {(w, e) for _, w, e in written}  # H, after the cut
