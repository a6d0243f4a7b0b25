"""A node cut off from the network: its own host (a network namespace), its link taken down.

Node N runs in a network namespace and reaches PostgreSQL and Redis only through its veth
pair (tests/support/netns.py); node H runs on this machine. Phones load both (N's through
the veth, and one on N's own host that still reaches it while the link is down). Then N's
link goes down for about 9 s: silence, no reset. N must stop acknowledging (every report
sent to it during the cut is answered 503, in bounded time: a phone waits at most
PHONE_TIMEOUT), H must go on, N must come back by itself when the link does, and every
report a phone got a 2xx for must be in the log, once, with `seq` gap-free.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_cluster import check_log, wait_for
from tests.e2e.test_crash import incoming_call
from tests.support import netns, postgres
from tests.support import redis as redis_support
from tests.support.hub import Hub
from tests.support.phone import get

TIMEOUT = 2  # [server] database_timeout: seconds of silence before a connection is given up
# A phone on N's host waits this long for its answer: the writer gives its dead connection
# up after TIMEOUT, the next connect attempt fails after TIMEOUT, with room for a loaded
# machine. No answer within it fails the test.
PHONE_TIMEOUT = 5 * TIMEOUT
CUT = 9.0  # seconds N is cut off
KEY = "netns-test-admin-key-0123"  # N listens beyond loopback: a real key
_numbers = itertools.count(1)

# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = pytest.mark.own_engines


@dataclass(frozen=True)
class Answer:
    call_id: str
    node: str  # "H", "N" (through the veth) or "N-local" (from N's own host)
    sent_at: float
    answered_at: float
    status: int  # 0: no answer (refused, unreachable, timed out)


class Phones:
    """Phones sending Incoming Call reports in a loop; every answer is kept."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, node: str, send: Callable[[str], int], run: Callable[..., object]) -> None:
        """A phone calling `send(target)`, run by `run(loop)` on a new thread."""

        def loop() -> None:
            n = 0
            while not self.stop.is_set():
                n += 1
                number = next(_numbers)
                call_id = f"netns-{node}-{number}"
                sent = time.monotonic()
                status = send(incoming_call(call_id, f"0744{number:06d}"))
                with self._lock:
                    self.answers.append(Answer(call_id, node, sent, time.monotonic(), status))
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

    def acked(self) -> list[str]:
        with self._lock:
            return [a.call_id for a in self.answers if 200 <= a.status < 300]


def _send(port: int, host: str) -> Callable[[str], int]:
    def send(target: str) -> int:
        try:
            return get(port, target, host=host, timeout=PHONE_TIMEOUT).status
        except OSError:
            return 0

    return send


@dataclass
class Setup:
    ns: netns.Netns
    pg: postgres.PostgresServer
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
        try:  # its own server: it must also listen on the veth, and the fault stays here
            pg = postgres.PostgresServer(listen=[ns.host_ip], trust=[ns.network]).start()
        except postgres.Unavailable as exc:
            if postgres.IN_CI:
                pytest.fail(str(exc))
            pytest.skip(str(exc))
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
            hub = Hub(workdir, backend="sqlite", server_config=extra, host=host, admin_key=KEY)
            hub.use_database(pg.url_at(via, database))
            hubs.append(hub)
        h, n = hubs
        h.start()
        serve = [sys.executable, "-m", "callhook.cli", "serve", "--config", str(n.config_path)]
        n.start(command=ns.exec_prefix() + serve)
        yield Setup(ns, pg, redis, n, h)
    finally:
        for hub in hubs:
            hub.stop()
        ns.close()
        if redis is not None:
            redis.close()
        if pg is not None:
            pg.stop()


def test_a_node_cut_off_stops_acknowledging_and_comes_back_by_itself(setup: Setup) -> None:
    ns, n, h = setup.ns, setup.n, setup.h
    phones = Phones()
    try:
        for _ in range(2):
            phones.start("H", _send(h.port, "127.0.0.1"), lambda loop: loop())
            phones.start("N", _send(n.port, ns.ns_ip), lambda loop: loop())
        phones.start("N-local", _send(n.port, ns.ns_ip), ns.run_inside)

        def ok(node: str, after: float = 0.0) -> int:
            return sum(1 for a in phones.of(node) if a.status == 200 and a.sent_at > after)

        wait_for(lambda: ok("H") >= 30 and ok("N") >= 30 and ok("N-local") >= 10)
        cut_at = time.monotonic()
        ns.cut()
        time.sleep(CUT)
        restored_at = time.monotonic()
        ns.restore()
        wait_for(lambda: ok("N", restored_at) >= 20 and ok("N-local", restored_at) >= 5)
    finally:
        phones.join()

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

    # Every acknowledged report is in the log once; seq gap-free; nothing that no phone sent.
    acked = phones.acked()
    events = check_log(h, acked)
    stored = {e.get("call_id") for e in events if e["event_type"] == "call_start"}
    sent = {a.call_id for a in phones.answers}
    assert stored <= sent
    assert len(stored) >= len(set(acked))
    assert check_log(n, acked) == events  # N reads the same log, through its link
