"""deploy/: the example nginx front, run for real in front of two nodes on loopback.

The file is used as shipped, with only its addresses changed: the three nodes become two
running nodes and one port where nothing listens (a node that is down), and the
listeners become free loopback ports. Phones and WSI subscribers go through it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cluster import Cluster, ring, subscribe
from tests.support import wsi
from tests.support.hub import ADMIN_KEY, free_port
from tests.support.proxy import nginx_binary

# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = pytest.mark.own_engines

ROOT = Path(__file__).resolve().parents[2]


class Front:
    """nginx with deploy/nginx/callhook.conf in its `http { }`."""

    def __init__(self, workdir: Path, cluster: Cluster) -> None:
        a, b = cluster.nodes
        self.dir = workdir
        self.port = free_port()
        self.wsi_port = free_port()
        dead = free_port()  # the third node is down
        site = (ROOT / "deploy" / "nginx" / "callhook.conf").read_text()
        for old, new in (
            ("10.0.0.11:8080", f"127.0.0.1:{a.port}"),
            ("10.0.0.12:8080", f"127.0.0.1:{b.port}"),
            ("10.0.0.13:8080", f"127.0.0.1:{dead}"),
            ("10.0.0.11:8885", f"127.0.0.1:{a.wsi_port}"),
            ("10.0.0.12:8885", f"127.0.0.1:{b.wsi_port}"),
            ("10.0.0.13:8885", f"127.0.0.1:{dead}"),
            ("listen 80;", f"listen 127.0.0.1:{self.port};"),
            ("listen 8885;", f"listen 127.0.0.1:{self.wsi_port};"),
        ):
            assert old in site, old
            site = site.replace(old, new)
        (workdir / "site.conf").write_text(site)
        temp = " ".join(
            f"{k}_temp_path {workdir}/{k};" for k in ("proxy", "fastcgi", "uwsgi", "scgi")
        )
        (workdir / "nginx.conf").write_text(
            f"daemon off; master_process off; worker_processes 1; pid {workdir}/nginx.pid;\n"
            f"error_log {workdir}/error.log warn; events {{ worker_connections 256; }}\n"
            f"http {{ access_log off; client_body_temp_path {workdir}/body; {temp}\n"
            f"include {workdir}/site.conf; }}\n"
        )
        self.proc = subprocess.Popen(
            [nginx_binary(), "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
             "-e", str(workdir / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        time.sleep(0.3)
        assert self.proc.poll() is None, (workdir / "error.log").read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def front(tmp_path: Path) -> Iterator[tuple[Cluster, Front]]:
    cluster = Cluster(tmp_path).start()
    (tmp_path / "nginx").mkdir()
    proxy = Front(tmp_path / "nginx", cluster)
    try:
        yield cluster, proxy
    finally:
        proxy.stop()
        cluster.stop()


async def test_the_example_nginx_front_spreads_phones_and_subscribers(
    front: tuple[Cluster, Front],
) -> None:
    cluster, proxy = front
    a = cluster.nodes[0]
    # The proxy as a hub: same admin API, any node behind it.
    via = type(a).__new__(type(a))
    via.__dict__.update(a.__dict__)
    via.port, via.wsi_port = proxy.port, proxy.wsi_port
    answered_by = {
        via.api("GET", "/api/v1/cluster", key=ADMIN_KEY)[1]["node_id"] for _ in range(12)
    }
    assert answered_by == {"node-a", "node-b"}  # round-robin over the nodes that are up
    ws = await subscribe(via, since=0)
    try:
        acked = [c for c, s in (ring(via) for _ in range(20)) if s == 200]
        assert len(acked) == 20  # the dead third node costs nothing to the phones
        got = await wsi.events_until(ws, lambda evs: {e.get("call_id") for e in evs} >= set(acked))
        seqs = [e["seq"] for e in got]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        await ws.close()
