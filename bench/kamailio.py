"""Kamailio with and without reports to the hub: SIP calls/s through it, and what they cost.

One run, alternating: Kamailio (pinned to core 0) runs the configuration
`callhook kamailio-config` prints, once with `--no-reports` (the same proxy, no reporting)
and once reporting to a real `callhook serve`; SIPp (pinned to core 1) places CALLS calls
(INVITE, 180, 200, ACK, BYE, no talk time) as fast as Kamailio lets it, at most CONCURRENT
at once, to a SIPp callee. Reported: calls/s, Kamailio's CPU per call (every process), the
hub's CPU per call, and that every call reached the hub as one CDR.

    RATIO kamailio = calls/s with reports / calls/s without (goal >= 0.9)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CLIENT_CPU, SERVER_CPU, free_port, python, start, stop, table, wait_http
from tests.support.kamailio import (
    DOMAIN,
    SCENARIOS,
    Kamailio,
    _stat,
    free_udp_port,
    register,
)

CALLS = int(os.environ.get("BENCH_KAMAILIO_CALLS", "2000"))
CONCURRENT = 100
# A loaded machine drops UDP datagrams: a call whose 200 OK was lost after its 100 Trying
# would wait forever (SIPp stops resending the INVITE) and, 100 of them, stall the run.
LOSSY = ["-recv_timeout", "10000", "-buff_size", "4194304"]
RING_MS = 20  # the callee rings this long: its 180 and 200 never swap places on the way
ROUNDS = 2
ADMIN = "bench-admin-key"
TICK = os.sysconf("SC_CLK_TCK")

CONFIG = f"""
[server]
listen = "127.0.0.1:{{port}}"
wsi_listen = ""
database = "sqlite:///{{db}}"
admin_key = "{ADMIN}"
log_level = "warning"

[[tenant]]
name = "acme"
domain = "{DOMAIN}"
ingest_token = "bench-token"
"""


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def family(pid: int) -> list[int]:
    """`pid` and its children (Kamailio forks its workers from the main process)."""
    out = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def pinned(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def place_calls(kam_port: int, uac_port: int, uas_port: int) -> tuple[float, int]:
    """Seconds SIPp needed for CALLS calls through Kamailio, and how many failed."""
    register(kam_port, uas_port, "102", 3600)
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "uas_answer.xml"), "-i", "127.0.0.1", "-p",
         str(uas_port), "-nostdin", "-m", str(CALLS), "-d", str(RING_MS), "-timeout", "300s",
         *LOSSY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: pinned(CLIENT_CPU),
    )  # fmt: skip
    time.sleep(0.5)
    cmd = ["sipp", "-sf", str(SCENARIOS / "uac_call.xml"), "-i", "127.0.0.1", "-p", str(uac_port),
           "-nostdin", "-key", "dom", DOMAIN, "-key", "from", "101", "-key", "name", "Bench",
           "-s", "102", "-m", str(CALLS), "-l", str(CONCURRENT), "-r", "5000", "-d", "0",
           "-timeout", "300s", *LOSSY, f"127.0.0.1:{kam_port}"]  # fmt: skip
    t0 = time.monotonic()
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, preexec_fn=lambda: pinned(CLIENT_CPU)
        )
        elapsed = time.monotonic() - t0
    finally:
        try:
            uas.wait(5)  # done unless a call failed on its side
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.wait()
    failed = _stat(done.stdout, "Failed call")
    if _stat(done.stdout, "Successful call") + failed != CALLS:
        raise RuntimeError(f"SIPp failed ({done.returncode}): {done.stdout[-1500:]}")
    return elapsed, failed


def cdrs(port: int) -> int:
    n, since = 0, 0
    while True:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/tenants/acme/events?key=call_cdr&limit=1000"
            f"&since_seq={since}",
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            page = json.loads(r.read())
        n += len(page)
        if len(page) < 1000:
            return n
        since = page[-1]["seq"]


def one_run(tmp: Path, hub_port: int, hub_pid: int, reports: bool, before: int) -> list[float]:
    """[calls/s, Kamailio CPU µs per call, hub CPU µs per call, CDRs at the hub, failed calls]"""
    port = free_udp_port()
    options = {} if reports else {"no_reports": ""}
    text = Kamailio.generate(tmp / "callhook.toml", f"http://127.0.0.1:{hub_port}", port,
                             key=ADMIN, **options)  # fmt: skip
    work = tmp / f"kam-{port}"
    work.mkdir()
    kam = Kamailio(work, text, port)
    kam.start()
    try:
        assert kam.proc is not None
        procs = family(kam.proc.pid)
        for pid in procs:
            os.sched_setaffinity(pid, {SERVER_CPU})
        k0, h0 = cpu_seconds(procs), cpu_seconds([hub_pid])
        elapsed, failed = place_calls(port, free_udp_port(), free_udp_port())
        arrived = before
        if reports:
            deadline = time.monotonic() + 120
            while arrived < before + CALLS - failed and time.monotonic() < deadline:
                time.sleep(0.2)
                arrived = cdrs(hub_port)
        k1, h1 = cpu_seconds(procs), cpu_seconds([hub_pid])
    finally:
        kam.stop()
    rate = CALLS / elapsed
    cpu = [(k1 - k0) / CALLS * 1e6, (h1 - h0) / CALLS * 1e6]
    return [rate, *cpu, float(arrived - before), float(failed)]


def main() -> None:
    if shutil.which("kamailio") is None or shutil.which("sipp") is None:
        print("kamailio or sipp not installed (make sip-tools): skipped")
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        hub_port = free_port()
        (tmp / "callhook.toml").write_text(CONFIG.format(port=hub_port, db=tmp / "bench.db"))
        serve = [python(), "-m", "callhook.cli", "serve", "--config", str(tmp / "callhook.toml")]
        hub = start(serve, cpu=None, cwd=tmp)
        try:
            wait_http(f"http://127.0.0.1:{hub_port}/readyz", hub)
            offs, ons = [], []
            total = 0
            for r in range(ROUNDS):  # which goes first alternates: no order bias
                for reports in (False, True) if r % 2 == 0 else (True, False):
                    got = one_run(tmp, hub_port, hub.pid, reports, total)
                    if reports:
                        total += int(got[3])
                        ons.append(got)
                    else:
                        offs.append(got)
        finally:
            stop(hub)
    rows = []
    for r in range(ROUNDS):
        off, on = offs[r], ons[r]
        rows.append((f"round {r + 1}", f"{off[0]:,.0f}", f"{on[0]:,.0f}", f"{on[0] / off[0]:.2f}",
                     f"{off[1]:,.0f}", f"{on[1]:,.0f}", f"{on[2]:,.0f}",
                     f"{int(on[3])}/{CALLS - int(on[4])}",
                     f"{int(off[4])}/{int(on[4])}"))  # fmt: skip
    ratio = statistics.median(on[0] / off[0] for on, off in zip(ons, offs, strict=True))
    hub_us = statistics.median(on[2] for on in ons)
    rows.append(("median", f"{statistics.median(o[0] for o in offs):,.0f}",
                 f"{statistics.median(o[0] for o in ons):,.0f}", f"{ratio:.2f}",
                 f"{statistics.median(o[1] for o in offs):,.0f}",
                 f"{statistics.median(o[1] for o in ons):,.0f}", f"{hub_us:,.0f}",
                 "", ""))  # fmt: skip
    header = ["", "calls/s off", "calls/s on", "on/off", "Kamailio CPU µs/call off",
              "on", "hub CPU µs/call", "CDRs at hub/answered", "failed off/on"]  # fmt: skip
    title = (
        f"Kamailio 5.6 proxy + registrar, {CALLS} SIPp calls per run (INVITE/180/200/ACK/BYE),"
        f" at most {CONCURRENT} at once: reports to the hub off (--no-reports) and on"
    )
    print(table(title, header, rows))
    print(f"hub CPU per call: {hub_us:,.0f} µs")
    print(f"RATIO kamailio {ratio:.3f}")


if __name__ == "__main__":
    main()
