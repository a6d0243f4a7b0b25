"""Webhooks sent once by the cluster: two real nodes on one PostgreSQL and one Redis claim
deliveries in the database, whichever node stored the event.

Phones ring both nodes; a recording sink stands for the receiver. What is checked is what
the sink received (each event once, a call's events in order) and what the nodes' APIs
and the database say (who holds a claim, an endpoint disabled).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_cluster import Cluster, wait_for
from tests.support import postgres
from tests.support.hub import Hub
from tests.support.phone import Phone
from tests.support.sink import Recorded, Sink

pytestmark = pytest.mark.own_engines

TOKEN = "gs-7f3a9c"
MACS = {"101": "000B82000101", "102": "000B82000102"}
# Short claims so that a dead node's are taken over quickly; an attempt lasts less.
DELIVERY = "[delivery]\nschedule = [0, 0.3, 0.5, 1]\ntotal_timeout = 3\nclaim_ttl = 4\n"
_calls = itertools.count(1)


def database() -> str:
    return postgres.fresh_database()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Sink]]:
    """One cluster for the module (starting two nodes takes seconds); each test has its
    own webhook and sink path, and the test that kills a node comes last."""
    with Sink() as sink:
        cluster = Cluster(
            tmp_path_factory.mktemp("cw"),
            database(),
            server="allow_private_targets = true",
            extra=DELIVERY,
        )
        try:
            yield cluster.start(), sink
        finally:
            cluster.stop()


def webhook(cluster: Cluster, sink: Sink, path: str, **fields: Any) -> dict[str, Any]:
    """Created on node A; returns once node B has it too (directory notice)."""
    a, b = cluster.nodes
    status, body = a.api("POST", "/api/v1/tenants/acme/webhooks", {"url": sink.url(path), **fields})
    assert status == 201, body
    wait_for(lambda: b.api("GET", f"/api/v1/tenants/acme/webhooks/{body['id']}")[0] == 200, 5)
    return dict(body)


def call(hub: Hub, ext: str, call_id: str) -> None:
    """A whole answered inbound call on one phone: ring, answer, hang up."""
    phone = Phone(hub.port, TOKEN, ext, mac=MACS[ext])
    v = {"remote": f"07{next(_calls):08d}", "call_id": call_id}
    for what in ("Incoming Call", "Establish Call", "Terminate Call"):
        assert phone.send(what, **v).status == 200


def received(sink: Sink, path: str) -> list[Recorded]:
    return [r for r in sink.requests(path) if r.answered == 200]


def test_each_event_sent_once_in_session_order_with_phones_on_both_nodes(
    env: tuple[Cluster, Sink],
) -> None:
    cluster, sink = env
    a, _b = cluster.nodes
    webhook(cluster, sink, "/all", topics=["extension_events", "cdr_events"])
    # A slow receiver: several events of a call are pending at once on both nodes.
    sink.program("/all", delay=0.02)

    def phone(n: int) -> None:
        for i in range(6):
            call(cluster.nodes[(n + i) % 2], "101" if n % 2 else "102", f"cw-{n}-{i}")

    threads = [threading.Thread(target=phone, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Acknowledged means stored; the partition's owner correlates right after.
    wait_for(lambda: sum(e["event_type"] == "call_cdr" for e in a.all_events()) == 24, 15)
    logged = [e for e in a.all_events() if e["topic"] in ("extension_events", "cdr_events")]
    assert len({e.get("call_id") for e in logged}) == 24
    wait_for(lambda: len(received(sink, "/all")) >= len(logged), 30)
    time.sleep(1.0)  # anything sent twice would arrive by now
    got = received(sink, "/all")
    ids = [r.headers["webhook-id"] for r in got]
    assert sorted(ids) == sorted(e["event_id"] for e in logged), "each event exactly once"
    seq_of = {e["event_id"]: e["seq"] for e in logged}
    by_session: dict[str, list[int]] = defaultdict(list)
    for r in sorted(got, key=lambda r: r.at):
        body = r.json()
        by_session[body["session_id"]].append(seq_of[body["event_id"]])
    for session, seqs in by_session.items():
        assert seqs == sorted(seqs), f"session {session} delivered out of order: {seqs}"
    # Each went out under a node's claim (the database says whose, last).
    senders = {r[0] for r in a.sql("SELECT DISTINCT claimed_by FROM deliveries")}
    assert senders and senders <= {"node-a", "node-b"}, senders


def test_an_endpoint_disabled_by_one_node_is_disabled_on_both(
    env: tuple[Cluster, Sink],
) -> None:
    cluster, sink = env
    a, b = cluster.nodes
    hook = webhook(cluster, sink, "/gone", keys=["call_start"])
    sink.program("/gone", status=410)
    Phone(b.port, TOKEN, "102", mac=MACS["102"]).send(
        "Incoming Call", remote="0711000077", call_id="gone-1"
    )
    path = f"/api/v1/tenants/acme/webhooks/{hook['id']}"

    def disabled_on(hub: Hub) -> bool:
        status, shown = hub.api("GET", path)
        return status == 200 and shown["status"] == "disabled"

    wait_for(lambda: disabled_on(a) and disabled_on(b), 15)
    assert len(sink.requests("/gone")) == 1
    # Calls on either node now keep their deliveries held, and nothing is sent.
    for n, hub in enumerate((a, b)):
        Phone(hub.port, TOKEN, "101", mac=MACS["101"]).send(
            "Incoming Call", remote=f"071100008{n}", call_id=f"gone-after-{n}"
        )

    def held() -> int:
        status, body = a.api("GET", f"{path}/deliveries?status=held")
        return len(body["deliveries"]) if status == 200 else 0

    wait_for(lambda: held() == 2, 10)
    time.sleep(1.0)
    assert len(sink.requests("/gone")) == 1


def test_a_node_killed_mid_delivery_leaves_it_to_the_other_in_order(
    env: tuple[Cluster, Sink],
) -> None:
    cluster, sink = env
    a, b = cluster.nodes
    keys = ["call_start", "call_established", "call_ended"]
    hook = webhook(cluster, sink, "/held", keys=keys, extensions=["101"])
    sink.program("/held", hang=True)  # the receiver holds the first request
    v = {"remote": "0711000099", "call_id": "held-1"}
    assert Phone(a.port, TOKEN, "101", mac=MACS["101"]).send("Incoming Call", **v).status == 200
    first = sink.wait_for(1, "/held")[0]
    assert first.json()["event_type"] == "call_start"
    # The call goes on, reported to the other node: its next events wait behind the held
    # one, whichever node would send them (one in flight per endpoint and call).
    phone_b = Phone(b.port, TOKEN, "101", mac=MACS["101"])
    for what in ("Establish Call", "Terminate Call"):
        assert phone_b.send(what, **v).status == 200

    def rows() -> list[tuple[Any, ...]]:
        return a.sql(
            "SELECT key, delivery_id, claimed_by FROM deliveries WHERE endpoint_id = ?"
            " ORDER BY seq",
            (hook["id"],),
        )

    wait_for(lambda: len(rows()) == 3, 15)
    time.sleep(0.5)
    assert len(sink.requests("/held")) == 1, "nothing after the held one may go out"
    (_k, delivery_id, holder), *_rest = rows()
    assert holder in ("node-a", "node-b"), holder  # claimed by the node sending it
    # Any node's status shows the held one with its sender and the two waiting behind it.
    status, shown = b.api("GET", "/api/v1/cluster")
    assert status == 200, shown
    by = {d["claimed_by"]: d for d in shown["deliveries"]}
    assert by[holder]["pending"] >= 1 and by[""]["pending"] >= 2, shown["deliveries"]
    cmd = [sys.executable, "-m", "callhook.cli", "cluster", "status", "--config"]
    done = subprocess.run([*cmd, str(b.config_path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    held = done.stdout.split("\n\n")[-1].splitlines()  # the deliveries, last
    assert held[0].split()[:2] == ["deliveries", "held"], done.stdout
    assert {ln.split()[0] for ln in held[1:]} >= {holder, "(not"}, done.stdout
    dead, other = (a, b) if holder == "node-a" else (b, a)
    killed_at = time.monotonic()
    dead.kill()
    sink.clear("/held")  # the receiver answers again (the dead node's request is gone)
    wait_for(lambda: len(sink.requests("/held")) >= 2, 20)
    taken_after = time.monotonic() - killed_at
    wait_for(lambda: len(sink.requests("/held")) >= 4, 20)
    time.sleep(0.5)
    again = sink.requests("/held")[1:]
    assert [r.json()["event_type"] for r in again] == keys, "in order, each once"
    assert again[0].headers["webhook-id"] == first.headers["webhook-id"]
    # Not before the claim (4 s, renewed until the kill) expired: never two at once.
    assert taken_after > 2.5, taken_after
    status, shown = other.api("GET", f"/api/v1/tenants/acme/deliveries/{delivery_id}")
    assert status == 200 and shown["status"] == "succeeded", shown
    assert [x["status_code"] for x in shown["attempt_log"]] == [200]
    survivor = "node-b" if dead is a else "node-a"
    assert {r[2] for r in rows()} == {survivor}
