"""Carriers and housekeeping: TLS, `/ws` on the main port, pings, auth limits, `callhook tail`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import wsi
from tests.support.hub import Hub
from tests.support.phone import Phone

TENANT = {"name": "acme", "password": "tenant-secret"}
EXT_SUB = {"command": "subscribe", "topics": [{"topic": "extension_events"}]}
_calls = itertools.count(1)


@pytest.fixture
def wsi_hub(request: pytest.FixtureRequest) -> Hub:
    return wsi.session_hub(request)  # one hub for all WSI modules


def ring(hub: Hub, number: str = "101") -> str:
    n = next(_calls)
    call_id = f"tr-{n}"
    phone = Phone(hub.port, "gs-7f3a9c", number, mac=f"000B8244{number:0>4}")
    assert phone.send("Incoming Call", remote=f"0733{n:06d}", call_id=call_id).status == 200
    return call_id


def last_seq(hub: Hub) -> int:
    events = hub.all_events()
    return int(events[-1]["seq"]) if events else 0


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Path]]:
    """A hub whose WSI listener speaks TLS with a self-signed certificate made here."""
    work = Path(tmp_path_factory.mktemp("wsi-tls"))
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    # A window far longer than the test: on a loaded machine its 31 failed logins may take
    # more than the default minute, and the first ones would no longer count.
    extra = "[connections]\nheader_timeout = 2.0\n\n[auth]\nwindow = 3600\n"
    h = Hub(work, extra_config=extra)
    text = h.config_path.read_text()
    h.config_path.write_text(
        text.replace("[server]\n", f'[server]\ntls_cert = "{cert}"\ntls_key = "{key}"\n', 1)
    )
    h.start()
    try:
        yield h, cert
    finally:
        h.stop()


def test_a_tls_handshake_never_started_is_dropped_after_header_timeout(
    tls_hub: tuple[Hub, Path],
) -> None:
    hub, _ = tls_hub
    with socket.create_connection(("127.0.0.1", hub.wsi_port), timeout=8) as s:
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(100) == b""  # closed, not held for asyncio's 60 s
        assert time.monotonic() - started < 6


async def test_tls_listener(tls_hub: tuple[Hub, Path]) -> None:
    hub, cert = tls_hub
    ctx = ssl.create_default_context(cafile=str(cert))
    async with await wsi.open_ws(hub.wsi_port, ssl_context=ctx) as ws:
        assert await wsi.call(ws, {"command": "auth", **TENANT}) == {"status": 0}
        assert await wsi.call(ws, EXT_SUB) == {"status": 0}
        call_id = ring(hub)
        got = await wsi.until_pong(ws)
    assert {e["call_id"] for e in got} == {call_id}
    with pytest.raises((ConnectionClosed, OSError, asyncio.TimeoutError, Exception)):
        async with await wsi.open_ws(hub.wsi_port) as plain:  # no TLS: no WebSocket
            await wsi.call(plain, {"command": "ping"})


async def test_ws_path_on_the_main_port(wsi_hub: Hub) -> None:
    async with await wsi.open_ws(wsi_hub.port, "/ws") as ws:
        reply = json.loads(await wsi.send_raw(ws, json.dumps(EXT_SUB)))
        assert reply == {"error": "not authenticated: send auth first", "status": -1}
        assert await wsi.call(ws, {"command": "auth", **TENANT}) == {"status": 0}
        assert await wsi.call(ws, EXT_SUB) == {"status": 0}
        reply = json.loads(await wsi.send_raw(ws, "{bad"))
        assert reply == {"error": "malformed JSON", "status": -1}
        call_id = ring(wsi_hub, "103")
        got = await wsi.until_pong(ws)
    assert [e["event_type"] for e in got] == ["call_start", "target_add", "target_ringing"]
    assert {e["call_id"] for e in got} == {call_id}


async def test_unauthenticated_connections_time_out(wsi_hub: Hub) -> None:
    async with await wsi.open_ws(wsi_hub.wsi_port) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await wsi.recv_json(ws)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "authentication timeout")


async def test_idle_clients_are_pinged_and_silent_ones_dropped(wsi_hub: Hub) -> None:
    live = await wsi.login(wsi_hub.wsi_port, **TENANT)  # websockets answers pings itself
    silent = wsi.RawClient(wsi_hub.wsi_port)
    try:
        silent.send_text(json.dumps({"command": "auth", **TENANT}))
        frames = []
        while not frames or frames[-1][0] != 0x8:  # read until the close frame
            frames.append(await asyncio.to_thread(silent.recv_frame))
        assert frames[0] == (0x1, b'{"status":0}')
        assert (0x9, b"") in frames  # it was pinged before being dropped
        code, reason = int.from_bytes(frames[-1][1][:2], "big"), frames[-1][1][2:]
        assert (code, reason) == (1008, b"ping timeout")
        # the live client, idle for as long, is still there
        assert await wsi.call(live, {"command": "ping"}) == {"status": 0, "pong": True}
    finally:
        silent.close()
        await live.close()


def _tail(hub: Hub, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callhook.cli",
            "tail",
            "--url",
            f"ws://127.0.0.1:{hub.wsi_port}/",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"tail did not finish: {out}\n{err}") from None
    assert proc.returncode == 0, err
    return out, err


async def test_tail_json_lines(wsi_hub: Hub) -> None:
    base = last_seq(wsi_hub)
    proc = _tail(
        wsi_hub,
        *("--tenant", "acme", "--password", "tenant-secret", "--json"),
        *("--key", "call_start", "--key", "target_ringing", "--since-seq", str(base)),
        *("--count", "2"),
    )
    call_id = ring(wsi_hub, "102")
    out, _ = await asyncio.to_thread(_finish, proc)
    events: list[Any] = [json.loads(line) for line in out.splitlines()]
    assert [e["event_type"] for e in events] == ["call_start", "target_ringing"]
    assert {e["call_id"] for e in events} == {call_id}


async def test_tail_pretty_as_an_extension(wsi_hub: Hub) -> None:
    base = last_seq(wsi_hub)
    proc = _tail(
        wsi_hub,
        *("--tenant", "acme", "--extension", "101", "--password", "secret101"),
        *("--topic", "extension_events", "--ext", "102", "--since-seq", str(base), "--count", "1"),
    )
    ring(wsi_hub, "101")  # not asked for
    call_id = ring(wsi_hub, "102")
    out, _ = await asyncio.to_thread(_finish, proc)
    assert "call_start" in out and "sip:102@acme.example.com" in out
    assert call_id in out or "session=" in out


async def test_tail_refused_is_a_clean_error(wsi_hub: Hub) -> None:
    proc = _tail(wsi_hub, "--tenant", "acme", "--password", "nope", "--json")
    _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 1
    assert "auth refused: name or password error" in err


async def test_failed_auth_is_rate_limited_per_account_and_address(
    tls_hub: tuple[Hub, Path],
) -> None:
    # Last in this module: it leaves 127.0.0.1 locked out of this hub for a minute.
    hub, cert = tls_hub
    ctx = ssl.create_default_context(cafile=str(cert))
    bad = {"command": "auth", "extension": "101", "domain": "acme.example.com", "password": "x"}
    good = {**bad, "password": "secret101"}
    async with await wsi.open_ws(hub.wsi_port, ssl_context=ctx) as ws:
        assert await wsi.call(ws, good) == {"status": 0}  # 101's client logs in first
    for _ in range(10):
        async with await wsi.open_ws(hub.wsi_port, ssl_context=ctx) as ws:
            assert await wsi.call(ws, bad) == {"error": "name or password error", "status": -1}
    too_many = {"error": "too many failed attempts, try again later", "status": -1}
    async with await wsi.open_ws(hub.wsi_port, ssl_context=ctx) as ws:
        assert await wsi.call(ws, {**bad, "password": "y"}) == too_many  # locked for now
        # ... but not for its own client: its password was verified moments ago
        # (tests/e2e/test_attack_auth.py)
        assert await wsi.call(ws, good) == {"status": 0}
    async with await wsi.open_ws(hub.wsi_port, ssl_context=ctx) as ws:
        other = {"command": "auth", "extension": "102", "domain": "acme.example.com"}
        assert await wsi.call(ws, {**other, "password": "secret102"}) == {"status": 0}
    # Per address: failures spread over many accounts still add up.
    for n in range(20):
        async with await wsi.open_ws(hub.wsi_port, ssl_context=ctx) as ws:
            cmd = {"command": "auth", "name": f"nobody{n}", "password": "x"}
            assert (await wsi.call(ws, cmd))["status"] == -1
    async with await wsi.open_ws(hub.wsi_port, ssl_context=ctx) as ws:
        wrong = {"command": "auth", "extension": "103", "domain": "acme", "password": "x"}
        assert await wsi.call(ws, wrong) == too_many
