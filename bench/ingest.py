"""Phone ingest throughput with durable acknowledgement, as a ratio to a bare uvicorn endpoint.

Both servers run pinned to one core, the load generator (wrk, else asyncio) on the other.
The hub gets a realistic mix: for each call, Incoming Call, Establish Call, Terminate Call
with a unique call id, each acknowledged only after its group commit (durability = full).

    python bench/ingest.py            # or: make bench
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CpuMeter,
    database,
    free_port,
    load,
    python,
    start,
    stop,
    table,
    wait_http,
)

TOKEN = "bench-token"
EVENTS = ("Incoming%20Call", "Establish%20Call", "Terminate%20Call")
SECONDS = 8
CONNECTIONS = 64

WRK_SCRIPT = """
local n = 0
local events = {"Incoming%20Call", "Establish%20Call", "Terminate%20Call"}
request = function()
  n = n + 1
  local call = math.floor(n / 3)
  local ev = events[(n % 3) + 1]
  local ext = 100 + (call % 50)
  local path = "/token=TOKEN&event=" .. ev .. string.format(
    "&mac=000B8211%04d&local=%d&remote=0711%06d&call_id=b-%d&duration=12", ext, ext, call, call)
  return wrk.format("GET", path)
end
""".replace("TOKEN", TOKEN)


def target(i: int) -> str:
    call = i // 3
    ext = 100 + call % 50
    return (
        f"/token={TOKEN}&event={EVENTS[i % 3]}&mac=000B8211{ext:04d}&local={ext}"
        f"&remote=0711{call:06d}&call_id=b-{call}&duration=12"
    )


CONFIG = """
[server]
listen = "127.0.0.1:{port}"
wsi_listen = ""
database = "{database}"
admin_key = "bench"
durability = "full"
log_level = "warning"
log_format = "json"

[[tenant]]
name = "bench"
domain = "bench.example.com"
ingest_token = "{token}"
{extensions}
"""


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        bare = start([python(), str(Path(__file__).parent / "bare_app.py"), str(port)])
        try:
            wait_http(f"http://127.0.0.1:{port}/", bare)
            meter = CpuMeter({"server": bare.pid})
            meter.start()
            bare_rate, tool = load(
                "127.0.0.1",
                port,
                targets=target,
                wrk_script=WRK_SCRIPT,
                seconds=SECONDS,
                connections=CONNECTIONS,
            )
            bare_us = meter.stop()["server"] / (bare_rate * SECONDS) * 1e6
        finally:
            stop(bare)
        rows.append(("bare uvicorn endpoint (200)", f"{bare_rate:,.0f}", "1.00", f"{bare_us:.1f}"))

        port = free_port()
        exts = "\n".join(
            f'[[tenant.extension]]\nnumber = "{n}"\ndisplay_name = "Ext {n}"'
            for n in range(100, 150)
        )
        cfg = Path(tmp) / "callhook.toml"
        url, suffix = database(Path(tmp))
        cfg.write_text(CONFIG.format(port=port, database=url, token=TOKEN, extensions=exts))
        hub = start([python(), "-m", "callhook.cli", "serve", "--config", str(cfg)], cwd=Path(tmp))
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", hub)
            meter = CpuMeter({"server": hub.pid})
            meter.start()
            hub_rate, _ = load(
                "127.0.0.1",
                port,
                targets=target,
                wrk_script=WRK_SCRIPT,
                seconds=SECONDS,
                connections=CONNECTIONS,
            )
            hub_us = meter.stop()["server"] / (hub_rate * SECONDS) * 1e6
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/tenants/bench/events?key=call_cdr&limit=1",
                headers={"Authorization": "Bearer bench"},
            )
            with urllib.request.urlopen(req) as r:
                assert r.status == 200
        finally:
            stop(hub)
        ratio = hub_rate / bare_rate
        rows.append(
            ("callhook ingest, durable ack", f"{hub_rate:,.0f}", f"{ratio:.2f}", f"{hub_us:.1f}")
        )
    print(
        table(
            f"ingest ({tool}, {CONNECTIONS} connections, {SECONDS}s each)",
            ["server", "req/s", "ratio", "server CPU µs/req"],
            rows,
        )
    )
    # A busy machine moves req/s a lot (each server gets what CPU is left) and CPU time per
    # request far less: read this line beside the ratio when the load average is high.
    print(f"CPU per request, bare ÷ hub: {bare_us / hub_us:.3f} (load average {load_avg()})")
    print(f"RATIO ingest{suffix} {ratio:.3f}")


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
