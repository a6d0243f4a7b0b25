"""evapi against the shipped transport (mqueue + rtimer + http_client): which one costs
SIP processing less. Not in `make bench`; a measurement behind docs/kamailio.md's choice.

One run per mode, rounds alternating the order: Kamailio (pinned to core 0) with
`--no-reports`; with the shipped configuration; and with the same configuration where each
report is handed to `evapi_relay()` instead of `mq_add()` (evapi module, one dispatcher
process), read by bench/evapi_reader.py, which POSTs batches to the hub as the timer does.
SIPp as in bench/kamailio.py.

    RATIO kamailio_evapi = calls/s with evapi / calls/s with the shipped transport
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SERVER_CPU, free_port, python, start, stop, table, wait_http
from bench.kamailio import ADMIN, CALLS, CONFIG, cdrs, cpu_seconds, family, place_calls
from tests.support.kamailio import Kamailio, free_udp_port

ROUNDS = 3
MODES = ("off", "mqueue", "evapi")


def evapi_variant(text: str, port: int) -> str:
    """The shipped configuration, reports relayed by evapi instead of queued."""
    text = text.replace(
        'loadmodule "jansson.so"\n', 'loadmodule "jansson.so"\nloadmodule "evapi.so"\n'
    )
    text = text.replace(
        'modparam("mqueue", "mqueue"',
        f'modparam("evapi", "bind_addr", "127.0.0.1:{port}")\nmodparam("evapi", "workers", 1)\n'
        'modparam("mqueue", "mqueue"',
    )
    old = 'mq_add("callhook", "$var(ev)", "$var(j)");'
    assert old in text
    return text.replace(old, 'evapi_relay("$var(j)");')


def one_run(tmp: Path, hub_port: int, hub_pid: int, mode: str, before: int) -> list[float]:
    """[calls/s, Kamailio CPU µs/call, reader+hub CPU µs/call, CDRs at the hub, failed]"""
    port = free_udp_port()
    options = {"no_reports": ""} if mode == "off" else {}
    text = Kamailio.generate(tmp / "callhook.toml", f"http://127.0.0.1:{hub_port}", port,
                             key=ADMIN, **options)  # fmt: skip
    evapi_port = free_port()
    if mode == "evapi":
        text = evapi_variant(text, evapi_port)
    work = tmp / f"kam-{port}"
    work.mkdir()
    kam = Kamailio(work, text, port).start()
    reader = None
    try:
        if mode == "evapi":
            url = f"http://127.0.0.1:{hub_port}/api/v1/tenants/acme/kamailio"
            reader = subprocess.Popen([python(), str(Path(__file__).parent / "evapi_reader.py"),
                                       str(evapi_port), url, ADMIN])  # fmt: skip
            time.sleep(0.5)  # connected before the first call: evapi keeps nothing for later
        assert kam.proc is not None
        procs = family(kam.proc.pid)
        for pid in procs:
            os.sched_setaffinity(pid, {SERVER_CPU})
        side = [hub_pid] + ([reader.pid] if reader else [])
        k0, h0 = cpu_seconds(procs), cpu_seconds(side)
        elapsed, failed = place_calls(port, free_udp_port(), free_udp_port())
        arrived = before
        if mode != "off":
            deadline = time.monotonic() + 120
            while arrived < before + CALLS - failed and time.monotonic() < deadline:
                time.sleep(0.2)
                arrived = cdrs(hub_port)
        k1, h1 = cpu_seconds(procs), cpu_seconds(side)
    finally:
        kam.stop()
        if reader is not None:
            reader.kill()
            reader.wait()
    return [CALLS / elapsed, (k1 - k0) / CALLS * 1e6, (h1 - h0) / CALLS * 1e6,
            float(arrived - before), float(failed)]  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        hub_port = free_port()
        (tmp / "callhook.toml").write_text(CONFIG.format(port=hub_port, db=tmp / "bench.db"))
        serve = [python(), "-m", "callhook.cli", "serve", "--config", str(tmp / "callhook.toml")]
        hub = start(serve, cpu=None, cwd=tmp)
        got: dict[str, list[list[float]]] = {m: [] for m in MODES}
        try:
            wait_http(f"http://127.0.0.1:{hub_port}/readyz", hub)
            total = 0
            for r in range(ROUNDS):
                for mode in MODES[r % 3 :] + MODES[: r % 3]:  # rotate which goes first
                    row = one_run(tmp, hub_port, hub.pid, mode, total)
                    total += int(row[3]) if mode != "off" else 0
                    got[mode].append(row)
        finally:
            stop(hub)
    rows = []
    for m in MODES:
        for r, row in enumerate(got[m]):
            rows.append((m, f"{r + 1}", f"{row[0]:,.0f}", f"{row[1]:,.0f}", f"{row[2]:,.0f}",
                         f"{int(row[3])}/{CALLS - int(row[4])}" if m != "off" else "",
                         f"{int(row[4])}"))  # fmt: skip
    med = {m: statistics.median(x[0] for x in got[m]) for m in MODES}
    header = ["transport", "round", "calls/s", "Kamailio CPU µs/call",
              "hub (+reader) CPU µs/call", "CDRs at hub/answered", "SIPp failed"]  # fmt: skip
    print(table(f"Kamailio reports: evapi vs mqueue+http_client, {CALLS} calls/run", header, rows))
    for m in MODES:
        print(f"median calls/s {m}: {med[m]:,.0f}")
    print(f"RATIO kamailio_evapi {med['evapi'] / med['mqueue']:.3f}")


if __name__ == "__main__":
    main()
