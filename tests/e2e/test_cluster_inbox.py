"""One session per call across nodes: the inbox and its partition's owner.

Two real `callhook serve` nodes on one PostgreSQL and one Redis. A call's legs are
reported to different nodes (caller's phone to one, callee's to the other, in either
order, with duplicates); every report goes to the PostgreSQL inbox and is correlated by
the owner of the tenant's partition, so the call is one session wherever its reports
land. A node that does not own the tenant answers presence and open calls from what the
owner committed. The owner SIGKILLed under load loses nothing it acknowledged.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from callhook.cluster.partitions import partition_of
from tests.e2e.test_cluster import Cluster, check_log, cluster, phones_on_both, ring, wait_for
from tests.e2e.test_crash import incoming_call
from tests.e2e.test_kamailio_api import CONTACT, batch, post, tenant_key
from tests.support.hub import Hub
from tests.support.phone import Phone, get

__all__ = ["cluster"]  # the fixture, used by name

# A cluster runs on its own PostgreSQL and Redis whatever the pass: run once.
pytestmark = [pytest.mark.own_engines, pytest.mark.slow]

TOKEN = "gs-7f3a9c"


def owner_of(c: Cluster, tenant: str = "acme") -> tuple[Hub, Hub]:
    """(the node owning `tenant`'s partition, the other one), once one owns it."""
    p = partition_of(tenant)
    ids = {f"node-{n}": hub for n, hub in zip("ab", c.nodes, strict=True)}

    def owner() -> str:
        rows = c.nodes[0].sql(
            "SELECT owner FROM partition_leases WHERE partition = ? AND expires_at > now()", (p,)
        )
        return str(rows[0][0]) if rows else ""

    wait_for(lambda: owner() in ids, 15)
    mine = ids[owner()]
    return mine, next(h for h in c.nodes if h is not mine)


def sessions_of(hub: Hub, *call_ids: str) -> set[str]:
    return {
        str(e["session_id"])
        for e in hub.all_events()
        if (e.get("phone") or {}).get("call_id") in call_ids and e.get("session_id")
    }


def test_the_legs_of_a_call_on_different_nodes_make_one_session(cluster: Cluster) -> None:
    owner, other = owner_of(cluster)
    for n, (first, second) in enumerate([(owner, other), (other, owner)]):
        caller = Phone(first.port, TOKEN, "101", mac="000B82000101")
        callee = Phone(second.port, TOKEN, "102", mac="000B82000102")
        a, b = f"a-{n}", f"b-{n}"
        if n == 0:  # the caller's report first, on one node; the callee's on the other
            assert caller.send("Outgoing Call", remote="102", call_id=a).status == 200
            assert callee.send("Incoming Call", remote="101", call_id=b).status == 200
        else:  # the callee's first; each report twice, the copy to the other node
            assert callee.send("Incoming Call", remote="101", call_id=b).status == 200
            assert caller.send("Outgoing Call", remote="102", call_id=a).status == 200
            again = Phone(first.port, TOKEN, "102", mac="000B82000102")
            assert again.send("Incoming Call", remote="101", call_id=b).status == 200
        time.sleep(0.3)
        assert callee.send("Establish Call", remote="101", call_id=b).status == 200
        assert caller.send("Establish Call", remote="102", call_id=a).status == 200
        wait_for(lambda a=a, b=b: "call_established" in keys_of(owner, a, b), 10)
        # Both nodes see the one open call: the owner live, the other from PostgreSQL.
        for hub in (owner, other):
            status, body = hub.api("GET", "/api/v1/tenants/acme/calls")
            assert status == 200, body
            assert [c["state"] for c in body["calls"]] == ["established"], (hub.port, body)
            status, state = hub.api("GET", "/api/v1/tenants/acme/extensions/102/state")
            assert status == 200 and state["status"] == "busy", state
        (sid,) = sessions_of(owner, a, b)
        assert body["calls"][0]["session_id"] == sid
        time.sleep(1.1)
        assert caller.send("Terminate Call", remote="102", call_id=a, duration="1").status == 200
        assert callee.send("Terminate Call", remote="101", call_id=b, duration="1").status == 200
        wait_for(lambda sid=sid: any(e["event_type"] == "call_cdr" and e["session_id"] == sid
                                     for e in other.all_events()), 10)  # fmt: skip
        assert sessions_of(other, a, b) == {sid}, "one session for the call, on any node"
        cdrs = [e for e in other.all_events() if e["event_type"] == "call_cdr"]
        assert [c["session_id"] for c in cdrs].count(sid) == 1
        wait_for(lambda: other.api("GET", "/api/v1/tenants/acme/calls")[1]["calls"] == [], 10)


def keys_of(hub: Hub, *call_ids: str) -> list[str]:
    """The event types of the sessions these phone call ids belong to."""
    sessions = sessions_of(hub, *call_ids)
    return [e["event_type"] for e in hub.all_events() if e.get("session_id") in sessions]


def test_rest_and_kamailio_go_through_the_owner_from_any_node(cluster: Cluster) -> None:
    owner, other = owner_of(cluster)
    # Published on the node that does not own the tenant: the answer names what the owner
    # committed (seq and event_id as stored), not a guess.
    body = {"event_type": "queue_member_state", "queue": "8001", "extension": "102",
            "state": "ready"}  # fmt: skip
    status, reply = other.api("POST", "/api/v1/tenants/acme/events", body)
    assert status == 201, reply
    ((published),) = reply["events"]
    stored = {e["seq"]: e for e in owner.all_events()}
    assert stored[published["seq"]]["event_id"] == published["event_id"]
    # End a call by hand on either node.
    for n, hub in enumerate((other, owner)):
        call_id, status = ring(owner if n else other)
        assert status == 200
        wait_for(lambda c=call_id, h=hub: any(e.get("call_id") == c for e in h.all_events()), 10)
        sid = next(e["session_id"] for e in hub.all_events() if e.get("call_id") == call_id)
        status, ended = hub.api("POST", f"/api/v1/tenants/acme/calls/{sid}/end")
        assert status == 200, ended
        assert ended["events"][-1]["event_type"] == "call_cdr"
        status, again = hub.api("POST", f"/api/v1/tenants/acme/calls/{sid}/end")
        assert status == 404 and again["error"]["code"] == "unknown-call", again
    # A Kamailio batch sent again to the other node is stored once.
    key = tenant_key(owner)
    sent = batch(
        ("k9.1", "register", {"tu": "102", "src": "127.0.0.1:5070", "after": [CONTACT]}),
        ("k9.2", "invite", {"ci": "kam-1@h"}),
    )
    for hub in (owner, other, owner):
        assert post(hub, sent, key)[0] == 200
    wait_for(lambda: any(e.get("report_id") == "k9.2" for e in owner.all_events()), 10)
    time.sleep(0.5)  # a copy, if one were stored, would be correlated by now
    events = owner.all_events()
    assert sorted(e.get("report_id") for e in events if e.get("source") == "kamailio") == [
        "k9.1",
        "k9.2",
    ], json.dumps(events[-6:])


def test_the_owner_killed_under_load_loses_no_acknowledged_report(cluster: Cluster) -> None:
    owner, other = owner_of(cluster)
    stop = threading.Event()
    acked: list[str] = []
    threads = phones_on_both(cluster, stop, acked)
    try:
        wait_for(lambda: len(acked) >= 100)
        owner.kill()  # SIGKILL: between or inside its fenced transactions
        killed = time.monotonic()
        mark = len(acked)
        wait_for(lambda: len(acked) >= mark + 20)  # the survivor still takes reports
        target = acked[mark + 10]  # acknowledged after the kill, by the survivor

        def correlated() -> bool:
            return bool(other.sql(
                "SELECT 1 FROM events WHERE tenant = 'acme' AND key = 'call_start'"
                " AND position(? in convert_from(body, 'UTF8')) > 0", (f'"{target}"',)
            ))  # fmt: skip

        wait_for(correlated, 20)
        took = time.monotonic() - killed
        assert took < 10, f"the partition was served again only after {took:.1f} s"
    finally:
        stop.set()
        for t in threads:
            t.join()
    check_log(other, acked)  # every acknowledged call once, seq gap-free


def test_a_new_owner_restores_open_calls_and_runs_their_timers(tmp_path: Path) -> None:
    """The owner stops (its partitions handed back); the other node takes the tenant's
    partition, restores the ringing call from PostgreSQL, recognises its late report as
    the same call, and ends it at its ring timeout: the timers run on the owner."""
    c = Cluster(tmp_path)
    for hub in c.nodes:
        text = hub.config_path.read_text()
        hub.config_path.write_text(
            text.replace("tick_interval = 0.2", "tick_interval = 0.2\nring_timeout = 4")
        )
    c.start()
    try:
        owner, other = owner_of(c)
        phone = Phone(other.port, TOKEN, "101", mac="000B82000101")
        assert phone.send("Incoming Call", remote="0711000001", call_id="rt-1").status == 200
        wait_for(lambda: any(e.get("call_id") == "rt-1" for e in other.all_events()), 10)
        assert owner.stop() == 0  # hands its partitions back at once
        assert owner_of(c)[0] is other
        calls = other.api("GET", "/api/v1/tenants/acme/calls")[1]["calls"]
        assert [x["call_id"] for x in calls] == ["rt-1"]  # restored, still ringing
        assert phone.send("Incoming Call", remote="0711000001", call_id="rt-1").status == 200

        def ended() -> list[str]:
            return [e["event_type"] for e in other.all_events() if e.get("call_id") == "rt-1"]

        wait_for(lambda: "call_cdr" in ended(), 15)
        assert ended().count("call_start") == 1, ended()
        assert "call_noanswer" in ended(), ended()
        (cdr,) = [e for e in other.all_events() if e["event_type"] == "call_cdr"]
        assert (cdr["status"], cdr["end_reason"]) == ("missed", "ring_timeout")
    finally:
        c.stop()


def test_an_entry_the_owner_cannot_process_is_set_aside_not_retried_forever(
    cluster: Cluster,
) -> None:
    """An inbox entry written by another version (or broken some other way) fails on
    every try: retrying it would hold every later report of its partition back forever.
    The owner logs it whole and goes on; the reports after it are correlated."""
    owner, other = owner_of(cluster)
    p = partition_of("acme")
    for kind, body in (("phone", b"not json"), ("phone", b"[1, 2]"), ("publish", b"{}")):
        other.sql(
            "INSERT INTO inbox (partition, tenant, kind, body, received_at)"
            " VALUES (?, 'acme', ?, ?, 0)",
            (p, kind, body),
        )
    call_id, status = ring(other)
    assert status == 200
    wait_for(lambda: any(e.get("call_id") == call_id for e in owner.all_events()), 15)
    assert other.sql("SELECT COUNT(*) FROM inbox WHERE partition = ?", (p,)) == [(0,)]
    assert owner.logs().count("inbox entry set aside") == 3
    assert owner.metric("callhook_inbox_set_aside_total") == 3  # what an alert watches


def test_metrics_say_what_the_owner_and_the_bus_did(cluster: Cluster) -> None:
    """The owner's passes and the other node's bus reads, as Prometheus sees them."""
    owner, other = owner_of(cluster)
    calls = [ring(other)[0] for _ in range(5)]
    wait_for(lambda: stored(owner, *calls), 15)
    stored_events = len(owner.all_events())
    # The other node reads every event the owner committed from the bus (its own
    # subscribers would get them): all of them, soon.
    wait_for(lambda: (other.metric("callhook_bus_received_total") or 0) >= stored_events, 10)
    assert (owner.metric("callhook_inbox_passes_total") or 0) >= 1
    for hub in (owner, other):
        assert hub.metric("callhook_inbox_pass_failures_total") == 0
        assert hub.metric("callhook_inbox_set_aside_total") == 0
        assert hub.metric("callhook_bus_connected") == 1
        assert hub.metric("callhook_bus_lag_ms") is not None
        assert hub.metric("callhook_bus_filled_total") is not None
    wait_for(lambda: owner.metric("callhook_bus_unsent") == 0, 10)
    assert other.metric("callhook_inbox_passes_total") is not None  # owns other partitions


def refuse(hub: Hub, table: str, column: str) -> None:
    """From inside PostgreSQL, refuse to store a row of `table` whose `column` names
    `refuse-me`: as a constraint, or a value the database cannot take, would on every
    try."""
    hub.sql(
        f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF position('refuse-me' in convert_from(NEW.{column}, 'UTF8')) > 0 THEN"
        " RAISE EXCEPTION 'refused by the test' USING ERRCODE = '23514'; END IF;"
        " RETURN NEW; END $$"
    )
    hub.sql(
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT OR UPDATE ON {table}"
        f" FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
    )


def stored(hub: Hub, *call_ids: str) -> bool:
    events = hub.all_events()
    return all(any(e.get("call_id") == c for e in events) for c in call_ids)


def test_a_report_whose_events_the_database_refuses_is_set_aside(cluster: Cluster) -> None:
    """The owner's commit is refused because of one report's events: the others of the
    pass are stored, and that report is logged whole (set aside)."""
    owner, other = owner_of(cluster)
    refuse(owner, "events", "body")
    before, status = ring(other)
    assert status == 200
    assert get(other.port, incoming_call("refuse-me-1", "0733999999")).status == 200  # inbox
    after = [ring(other)[0] for _ in range(3)]
    wait_for(lambda: stored(owner, before, *after), 20)
    logs = owner.logs()
    assert logs.count("inbox entry set aside") == 1 and "refuse-me-1" in logs, logs[-3000:]
    assert owner.metric("callhook_inbox_set_aside_total") == 1
    assert other.sql("SELECT COUNT(*) FROM inbox") == [(0,)]
    assert not any("refuse-me" in json.dumps(e) for e in owner.all_events())


def test_a_pass_the_database_refuses_as_a_whole_is_retried_one_entry_at_a_time(
    cluster: Cluster,
) -> None:
    """What the database refuses is written for the pass as a whole (a call's session
    snapshot): the same pass would be refused forever, holding back every later report
    of the partition. The owner takes its entries one at a time, sets aside the one
    refused every time, and stores the others."""
    owner, other = owner_of(cluster)
    refuse(owner, "sessions", "state")
    first = [ring(other)[0] for _ in range(2)]
    assert get(other.port, incoming_call("refuse-me-3", "0733999997")).status == 200
    then = [ring(other)[0] for _ in range(3)]
    wait_for(lambda: stored(owner, *first, *then), 30)
    logs = owner.logs()
    assert "processed one at a time" in logs, logs[-3000:]
    assert logs.count("inbox entry set aside") == 1 and "refuse-me-3" in logs, logs[-3000:]
    assert owner.metric("callhook_inbox_set_aside_total") == 1
    assert (owner.metric("callhook_inbox_pass_failures_total") or 0) >= 3  # refused passes
    assert other.sql("SELECT COUNT(*) FROM inbox") == [(0,)]
    assert not any("refuse-me" in json.dumps(e) for e in owner.all_events())
    # Back to whole passes, and the reports after it are stored.
    wait_for(lambda: "in whole passes again" in owner.logs(), 10)
    later = [ring(owner)[0] for _ in range(3)]
    wait_for(lambda: stored(owner, *later), 20)


def test_an_entry_set_aside_while_the_database_blinks_leaves_the_owner_running(
    cluster: Cluster,
) -> None:
    """The commit that sets a refused entry aside fails for a passing reason (here a
    serialization failure, on the try and the writer's retry): the owner tries again and
    goes on with the reports after it. It used to end the owner's task, leaving every
    partition of the node to nobody while its leases were still renewed."""
    owner, other = owner_of(cluster)
    refuse(owner, "sessions", "state")
    owner.sql("CREATE SEQUENCE blinks")  # not rolled back with the failed transaction
    owner.sql(
        "CREATE FUNCTION blink_twice() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF position('refuse-me' in convert_from(OLD.body, 'UTF8')) > 0 THEN"
        " IF nextval('blinks') <= 2 THEN"  # the batch, then its op alone
        " RAISE EXCEPTION 'the database blinked' USING ERRCODE = '40001'; END IF; END IF;"
        " RETURN OLD; END $$"
    )
    owner.sql(
        "CREATE TRIGGER blink_twice BEFORE DELETE ON inbox"
        " FOR EACH ROW EXECUTE FUNCTION blink_twice()"
    )
    assert get(other.port, incoming_call("refuse-me-5", "0733999995")).status == 200
    then = [ring(other)[0] for _ in range(3)]
    wait_for(lambda: stored(owner, *then), 30)
    logs = owner.logs()
    assert "the database blinked" in logs, logs[-3000:]
    assert logs.count("inbox entry set aside") == 1 and "refuse-me-5" in logs, logs[-3000:]
    assert other.sql("SELECT COUNT(*) FROM inbox") == [(0,)]
