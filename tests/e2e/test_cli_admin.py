"""The admin commands, run for real: phone-urls, check-config, keys, demo."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.hub import Hub, free_port
from tests.support.wsi import call, open_ws

CONFIG = """
[server]
listen = "0.0.0.0:8080"
database = "sqlite:///{db}"
admin_key = "a-long-test-admin-key-0123"

[[tenant]]
name = "acme"
ingest_token = "gs-7f3a9c"

[[tenant.extension]]
number = "101"
"""


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "callhook.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_help_lists_every_command() -> None:
    out = cli("--help").stdout
    for name in ("serve", "demo", "simulate", "phone-urls", "tail", "db", "check-config", "keys"):
        assert re.search(rf"^\s+{name}\s", out, re.M), (name, out)
    assert "create" in cli("keys", "--help").stdout


def test_phone_urls(tmp_path: Path) -> None:
    cfg = tmp_path / "callhook.toml"
    cfg.write_text(CONFIG.format(db=tmp_path / "x.db"))
    table = cli("phone-urls", "--config", str(cfg), "--host", "192.0.2.10:8080")
    assert table.returncode == 0, table.stderr
    # Piped output is never wrapped: each URL is whole on its line, ready to copy.
    assert (
        "192.0.2.10:8080/token=gs-7f3a9c&event=Terminate%20Call&mac=$mac&local=$local"
        "&remote=$remote&display_remote=$display_remote&call_id=$call_id"
        "&calldirection=$calldirection&duration=$duration"
    ) in table.stdout

    # The GXV3240/3275 ActionURL guide spells the call id `$call-id`.
    gxv = cli(
        "phone-urls", "--config", str(cfg), "--host", "h", "--model", "GXV3240", "--format", "list"
    )  # fmt: skip
    assert gxv.returncode == 0, gxv.stderr
    assert "call_id=$call-id&" in gxv.stdout and "$call_id" not in gxv.stdout
    one_line_error(
        cli("phone-urls", "--config", str(cfg), "--host", "h", "--model", "GXP9"), "GXV3240"
    )
    one_line_error(
        cli("phone-urls", "--config", str(cfg), "--vendor", "all", "--model", "GXV3240"), "--vendor"
    )

    yealink = cli(
        "phone-urls", "--config", str(cfg), "--vendor", "yealink", "--format", "provisioning",
        "--host", "hub.example.com",
    )  # fmt: skip
    lines = yealink.stdout.splitlines()
    assert lines[0] == "#!version:1.0.0.1" and len(lines) == 19
    assert lines[1].startswith(
        "action_url.incoming_call = http://hub.example.com/ingest/gs-7f3a9c/incoming_call?"
    )

    out = cli(
        "phone-urls", "--config", str(cfg), "--vendor", "all", "--format", "json", "--host", "h"
    )
    data = json.loads(out.stdout)
    assert set(data["vendors"]) == {"grandstream", "yealink", "snom", "fanvil"}
    assert data["vendors"]["snom"][0]["setting"] == "action_incoming_url"

    # Without --host the listen address is used, with a note that phones cannot reach it.
    default = cli("phone-urls", "--config", str(cfg), "--format", "list")
    assert default.returncode == 0 and "pass --host" in default.stderr
    assert default.stdout.startswith("Incoming Call\t0.0.0.0:8080/token=gs-7f3a9c&")

    one_line_error(cli("phone-urls", "--config", str(cfg), "--tenant", "nope"), "'nope'")
    one_line_error(cli("phone-urls", "--config", str(cfg), "--host", "bad host"), "host")
    one_line_error(cli("phone-urls", "--config", str(tmp_path / "missing.toml")), "no such file")
    (empty := tmp_path / "empty").mkdir()
    one_line_error(cli("phone-urls", cwd=empty), "which tenant")  # no ./callhook.toml there


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(CONFIG.format(db=tmp_path / "x.db"))
    result = cli("check-config", "--config", str(good))
    assert result.returncode == 0 and "ok (1 tenant, 1 extension)" in result.stdout
    bad = {
        "unknown.toml": ('[server]\nlisten = "127.0.0.1:1"\ncolour = "red"\n', "colour"),
        "value.toml": ('[server]\nlisten = "nope"\n', "server.listen"),
        "syntax.toml": ("[server\n", "not valid TOML"),
        "mysql.toml": (
            '[server]\ndatabase = "mysql://hub:s3cret@db/callhook"\n',
            "server.database = 'mysql://hub:***@db/callhook': expected sqlite:///PATH or",
        ),
    }
    for name, (text, expected) in bad.items():
        path = tmp_path / name
        path.write_text(text)
        one_line_error(cli("check-config", "--config", str(path)), expected)
    one_line_error(cli("check-config", "--config", str(tmp_path / "none.toml")), "no such file")


def test_serve_on_a_postgresql_it_cannot_reach_is_a_clean_error(tmp_path: Path) -> None:
    """A PostgreSQL URL once became a SQLite file named after it (password included)."""
    cfg = tmp_path / "callhook.toml"
    url = f"postgresql://u:s3cret@127.0.0.1:{free_port()}/x"
    key = "k" * 24
    cfg.write_text(f'[server]\nlisten = "127.0.0.1:0"\nadmin_key = "{key}"\ndatabase = "{url}"\n')
    result = cli("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(result, "cannot connect to PostgreSQL")
    assert "s3cret" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["callhook.toml"]


def test_keys_on_the_database_of_a_running_hub(hub: Hub) -> None:
    cfg = str(hub.config_path)
    made = cli("keys", "create", "--config", cfg, "--tenant", "acme", "--name", "crm")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    key_id = re.search(r"key_id (\d+)", made.stdout)
    assert key.startswith("chk_") and key_id
    assert hub.api("GET", "/api/v1/tenants/acme/events", key=key)[0] == 200
    assert hub.api("GET", "/api/v1/tenants/globex/events", key=key)[0] == 403

    other = cli("keys", "create", "--config", cfg, "--tenant", "acme").stdout
    spare, spare_id = other.splitlines()[-1], re.search(r"key_id (\d+)", other)
    assert spare_id
    listed = cli("keys", "list", "--config", cfg, "--tenant", "acme")
    assert listed.returncode == 0 and "crm" in listed.stdout
    assert key_id.group(1) in listed.stdout and spare_id.group(1) in listed.stdout
    assert key not in listed.stdout and spare not in listed.stdout

    # A key never used is not in the hub's lookup cache: revoking it in the database is
    # immediate (a cached one takes up to 30 s; the REST API revokes at once).
    revoked = cli("keys", "revoke", spare_id.group(1), "--config", cfg)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert hub.api("GET", "/api/v1/tenants/acme/events", key=spare)[0] == 401
    active = cli("keys", "list", "--config", cfg, "--tenant", "acme").stdout
    assert spare_id.group(1) not in active and key_id.group(1) in active
    everything = cli("keys", "list", "--config", cfg, "--tenant", "acme", "--all").stdout
    assert spare_id.group(1) in everything

    one_line_error(cli("keys", "revoke", "12345", "--config", cfg), "'12345'")
    one_line_error(cli("keys", "create", "--config", cfg, "--tenant", "nope"), "'nope'")
    # phone-urls finds a tenant made through the API in the database.
    assert (
        hub.api("POST", "/api/v1/tenants", {"name": "viaapi", "ingest_token": "tk-viaapi"})[0]
        == 201
    )
    urls = cli(
        "phone-urls", "--config", cfg, "--tenant", "viaapi", "--host", "h", "--format", "list"
    )
    assert urls.returncode == 0 and "h/token=tk-viaapi&event=Incoming%20Call" in urls.stdout

    usage = cli("keys", "list", "--config", cfg)  # click's usage errors exit 2
    assert usage.returncode == 2 and "Missing option '--tenant'" in usage.stderr


def test_keys_on_a_fresh_database(tmp_path: Path) -> None:
    cfg = tmp_path / "callhook.toml"
    cfg.write_text(CONFIG.format(db=tmp_path / "fresh.db"))
    one_line_error(cli("keys", "list", "--config", str(cfg), "--tenant", "acme"), "start the hub")
    made = cli("keys", "create", "--config", str(cfg), "--tenant", "acme")
    assert made.returncode == 0 and (tmp_path / "fresh.db").exists(), made.stderr
    assert (
        "acme: no API keys"
        not in cli("keys", "list", "--config", str(cfg), "--tenant", "acme").stdout
    )


def _read_banner(proc: subprocess.Popen[str], within: float) -> dict[str, str]:
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    deadline = time.monotonic() + within
    while "events" not in lines:
        assert time.monotonic() < deadline and proc.poll() is None, lines
        line = proc.stdout.readline()
        name, sep, rest = line.strip().partition(":")
        if sep:
            lines[name] = rest.strip()
    return lines


def test_demo_serves_simulated_calls(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    args = ["--port", "0", "--wsi-port", "0", "--calls", "3", "--rate", "5", "--speed", "300"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "callhook.cli", "demo", *args, "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        banner = _read_banner(proc, 60)
        base = banner["dashboard"].rstrip("/")
        key = re.search(r"Bearer (\S+)'", banner["events"])
        tail = banner["follow it"].split()
        assert key and "tail" in tail
        # The command is printed the way this one was started, so it runs as printed.
        prefix = tail[: tail.index("tail")]
        version = subprocess.run([*prefix, "--version"], capture_output=True, text=True, env=env)
        assert version.returncode == 0 and "callhook" in version.stdout, (prefix, version)
        ws_url, password = tail[tail.index("--url") + 1], tail[tail.index("--password") + 1]

        def cdrs() -> list[Any]:
            req = urllib.request.Request(f"{base}/api/v1/tenants/demo/cdrs")
            req.add_header("Authorization", f"Bearer {key.group(1)}")
            with urllib.request.urlopen(req, timeout=10) as r:
                return list(json.loads(r.read())["cdrs"])

        deadline = time.monotonic() + 60
        while len(cdrs()) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "no CDRs from the demo"
            time.sleep(0.2)
        with urllib.request.urlopen(base + "/", timeout=10) as r:
            assert r.status == 200  # the dashboard

        async def wsi_login() -> dict[str, Any]:
            ws = await open_ws(int(ws_url.rsplit(":", 1)[1].strip("/")))
            try:
                return await call(ws, {"command": "auth", "name": "demo", "password": password})
            finally:
                await ws.close()

        assert asyncio.run(wsi_login()) == {"status": 0}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert (tmp_path / "callhook.toml").exists()


def test_demo_says_when_a_port_is_taken(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["--port", str(port), "--wsi-port", "0", "--calls", "1"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "callhook", "demo", *args, "--dir", str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            banner = _read_banner(proc, 60)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
    moved = banner[f"port {port} is taken"]
    assert moved.startswith("the demo uses ") and moved.endswith(" instead"), banner
    other = int(moved.split()[3])
    assert other != port and banner["dashboard"].startswith(f"http://127.0.0.1:{other}/")
