"""Unsafe defaults: a guessable admin key, short ingest tokens, unlimited token guessing.

- `admin_key` empty or the default `change-me` is refused by `serve` and `check-config`
  with a one-line hint; one shorter than 16 characters too, unless `listen` is loopback;
- `serve --init` writes ingest tokens of at least 128 bits;
- phone requests with unknown tokens are throttled per source address (40,000 guesses in
  2.9 s were possible), while phones elsewhere are answered as before.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.test_cli_admin import one_line_error
from tests.support.hub import Hub, free_port
from tests.support.phone import send_raw

GOOD_KEY = "k" * 12 + "-a-long-one"


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "callhook.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
        cwd=cwd,
    )


def _config(tmp: Path, name: str, listen: str, key: str | None) -> Path:
    path = tmp / name
    lines = ["[server]", f'listen = "{listen}"', 'wsi_listen = ""']
    if key is not None:
        lines.append(f'admin_key = "{key}"')
    path.write_text("\n".join(lines) + "\n")
    return path


ANY = "0.0.0.0:8080"  # only checked here, never bound
HERE = "127.0.0.1:8080"


@pytest.mark.parametrize(
    ("listen", "key", "refused"),
    [
        (HERE, None, "is the default 'change-me'"),  # not set: the default
        (HERE, "change-me", "is the default 'change-me'"),
        (HERE, "", "is empty"),
        (ANY, "change-me", "is the default 'change-me'"),
        (ANY, "   ", "is empty"),
        (ANY, "short-key", "shorter than 16 characters"),
        (ANY, GOOD_KEY, None),
        (HERE, "short-key", None),  # loopback: only this machine can try it
        ("[::1]:8080", "short-key", None),
        ("localhost:8080", "short-key", None),
    ],
)
def test_check_config_applies_the_admin_key_rule(
    tmp_path: Path, listen: str, key: str | None, refused: str | None
) -> None:
    path = _config(tmp_path, "c.toml", listen, key)
    result = _cli("check-config", "--config", str(path), cwd=tmp_path)
    if refused is None:
        assert result.returncode == 0, result.stderr
    else:
        one_line_error(result, "server.admin_key", refused, "--init")
        if key and key.strip() and key != "change-me":
            assert key not in result.stderr  # a secret is never repeated


def test_serve_refuses_the_default_key_before_listening(tmp_path: Path) -> None:
    port = free_port()
    runs = [
        ("serve", "--config", str(_config(tmp_path, "a.toml", f"127.0.0.1:{port}", None))),
        ("serve", "--config", str(_config(tmp_path, "b.toml", f"127.0.0.1:{port}", ""))),
    ]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda args: _cli(*args, cwd=tmp_path), runs))
    for result in results:
        one_line_error(result, "server.admin_key")
    # and the environment can set a good one instead
    env_ok = _cli(
        "check-config",
        "--config",
        str(tmp_path / "a.toml"),
        cwd=tmp_path,
        CALLHOOK_SERVER_ADMIN_KEY=GOOD_KEY,
    )
    assert env_ok.returncode == 0, env_ok.stderr


def test_serve_init_writes_128_bit_ingest_tokens_that_work(tmp_path: Path) -> None:
    port, wsi = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    env = {
        **base,
        "CALLHOOK_SERVER_LISTEN": f"127.0.0.1:{port}",
        "CALLHOOK_SERVER_WSI_LISTEN": f"127.0.0.1:{wsi}",
    }
    path = tmp_path / "callhook.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "callhook.cli", "serve", "--init", "--config", str(path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "serve --init exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < deadline, "not ready"
                time.sleep(0.1)
        written = tomllib.loads(path.read_text())
        for tenant in written["tenant"]:
            token = tenant["ingest_token"]
            random_part = token.split("-", 1)[1]
            assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", random_part), token  # 16+ bytes
            assert 6 * len(random_part) >= 128
            reply = send_raw(
                port,
                f"GET /token={token}&event=Off%20Hook&mac=000B82112233&local=101 HTTP/1.1\r\n"
                f"Host: x\r\nConnection: close\r\n\r\n".encode(),
            )
            assert reply.status == 200, reply
        assert len(written["server"]["admin_key"]) >= 16
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


GUESSES = 5


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(
        tmp_path_factory.mktemp("tokens"),
        extra_config=f"\n[auth]\ningest_max_unknown_tokens_per_source = {GUESSES}\n",
    ).start()
    try:
        yield h
    finally:
        h.stop()


def _phone(hub: Hub, token: str, source: str) -> int:
    request = (
        f"GET /token={token}&event=Off%20Hook&mac=000B82112233&local=101 HTTP/1.1\r\n"
        "Host: x\r\nUser-Agent: Grandstream GXP2170\r\nConnection: close\r\n\r\n"
    ).encode()
    return send_raw(hub.port, request, source=source).status


def test_unknown_tokens_are_throttled_per_source(throttled: Hub) -> None:
    hub = throttled
    assert _phone(hub, "gs-7f3a9c", "127.0.0.20") == 200  # a real phone counts for nothing
    with ThreadPoolExecutor(8) as pool:
        got = Counter(pool.map(lambda i: _phone(hub, f"gs-guess{i:04}", "127.0.0.20"), range(40)))
    assert got == {404: GUESSES, 429: 40 - GUESSES}, got
    # The throttled address cannot tell a right token from a wrong one any more ...
    assert _phone(hub, "gs-7f3a9c", "127.0.0.20") == 429
    # ... while phones at other addresses are answered as before.
    assert _phone(hub, "gs-7f3a9c", "127.0.0.21") == 200
    assert _phone(hub, "gs-nope", "127.0.0.21") == 404
    raw = send_raw(
        hub.port, b"GET /token=gs-x1&event=x HTTP/1.1\r\nHost: x\r\n\r\n", source="127.0.0.20"
    )
    assert raw.status == 429 and b"too-many-unknown-tokens" in raw.body
    with urllib.request.urlopen(hub.base + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    refused = re.search(
        r'^callhook_auth_refused_total\{reason="rate-limited",via="ingest"\} (\S+)$', metrics, re.M
    )
    assert refused is not None and float(refused.group(1)) == 40 - GUESSES + 2, metrics[-2000:]
