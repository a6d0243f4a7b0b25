"""The config file as the real CLI meets it: a named file that is missing, values that
only fail at start (database, TLS files), and CALLHOOK_* overrides of a running hub."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.test_cli_admin import cli, one_line_error
from tests.support.hub import free_port

MISSING = "typo.toml"


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    return {**env, **overrides}


def _run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callhook.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(**env),
        cwd=cwd,
    )


_EVERY_COMMAND = [
    ["serve"],  # check-config: tests/e2e/test_cli_admin.py
    ["db", "upgrade"],
    ["phone-urls", "--tenant", "acme"],
    ["keys", "create", "--tenant", "acme"],
    ["keys", "list", "--tenant", "acme"],
    ["keys", "revoke", "1"],
]


def test_a_named_config_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    """`serve --config typo.toml` once started on the defaults (admin key change-me)."""
    runs = [((*command, "--config", MISSING), {}) for command in _EVERY_COMMAND]
    runs += [(tuple(command), {"CALLHOOK_CONFIG": MISSING}) for command in _EVERY_COMMAND]
    with ThreadPoolExecutor(4) as pool:  # a CLI start is mostly imports: run them side by side
        results = list(pool.map(lambda run: _run(*run[0], cwd=tmp_path, **run[1]), runs))
    for result in results:
        one_line_error(result, f"config error: {MISSING}: no such file")
    assert list(tmp_path.iterdir()) == []  # no database made either


def test_without_a_config_file_check_config_checks_the_defaults(tmp_path: Path) -> None:
    """As `serve` runs on them: without --config, a missing ./callhook.toml is no error,
    but the default admin key is (tests/e2e/test_attack_defaults.py)."""
    key = "CALLHOOK_SERVER_ADMIN_KEY"
    ok = _run("check-config", cwd=tmp_path, CALLHOOK_SERVER_WSI_LISTEN="", **{key: "k" * 16})
    assert ok.returncode == 0, ok.stderr
    assert "no callhook.toml here; the defaults and CALLHOOK_* overrides: ok" in ok.stdout
    default_key = _run("check-config", cwd=tmp_path)
    one_line_error(default_key, "server.admin_key is the default 'change-me'", "--init")
    bad = _run("check-config", cwd=tmp_path, CALLHOOK_SERVER_LISTEN="127.0.0.1:8885")
    one_line_error(bad, "server.wsi_listen: the same port as server.listen = '127.0.0.1:8885'")


def _serve_config(tmp_path: Path, server: str) -> Path:
    cfg = tmp_path / "callhook.toml"
    port = free_port()
    cfg.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nwsi_listen = ""\nadmin_key = "test-key"\n'
        f"{server}\n"
    )
    return cfg


def test_a_database_path_that_cannot_be_opened_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    url = f"sqlite:///{tmp_path / 'a-directory'}"
    cfg = _serve_config(tmp_path, f'database = "{url}"')
    for command in (["serve"], ["db", "upgrade"]):
        result = cli(*command, "--config", str(cfg), cwd=tmp_path)
        one_line_error(result, f"server.database = '{url}': cannot open", "unable to open")


def test_tls_files_that_cannot_be_loaded_are_a_clean_error(tmp_path: Path) -> None:
    missing = _serve_config(
        tmp_path, 'tls_cert = "/nonexistent/hub.pem"\ntls_key = "/nonexistent/hub.key"'
    )
    result = cli("serve", "--config", str(missing), cwd=tmp_path)
    one_line_error(result, "server.tls_cert = '/nonexistent/hub.pem': No such file or directory")

    (tmp_path / "hub.pem").write_text("not a certificate\n")
    (tmp_path / "hub.key").write_text("not a key\n")
    junk = _serve_config(tmp_path, 'tls_cert = "hub.pem"\ntls_key = "hub.key"')
    result = cli("serve", "--config", str(junk), cwd=tmp_path)
    one_line_error(result, "server.tls_cert = 'hub.pem', server.tls_key = 'hub.key': not a PEM")
    assert not (tmp_path / "callhook.db").exists()  # refused before anything started


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ('tls_cert = "hub.pem"', "server.tls_key: required with server.tls_cert = 'hub.pem'"),
        ('tls_key = "hub.key"', "server.tls_key = 'hub.key': needs server.tls_cert too"),
        (
            'listen = "127.0.0.1:18080"\nwsi_listen = "127.0.0.1:18080"',
            "server.wsi_listen = '127.0.0.1:18080': the same port as server.listen",
        ),
    ],
)
def test_server_values_that_cannot_run_together(tmp_path: Path, server: str, expected: str) -> None:
    cfg = tmp_path / "callhook.toml"
    cfg.write_text(f"[server]\n{server}\n")
    with ThreadPoolExecutor(2) as pool:
        runs = pool.map(
            lambda c: cli(c, "--config", str(cfg), cwd=tmp_path), ["check-config", "serve"]
        )
        for result in runs:
            one_line_error(result, expected)


def test_serve_init_writes_the_named_file_and_env_overrides_its_tenant(tmp_path: Path) -> None:
    """`make serve` runs `serve --config callhook.toml --init`; containers pass secrets and
    an empty wsi_listen through the environment."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "callhook.cli", "serve", "--config", "new.toml", "--init"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=_env(
            CALLHOOK_SERVER_LISTEN=f"127.0.0.1:{port}",
            CALLHOOK_SERVER_WSI_LISTEN="",
            CALLHOOK_SERVER_LOG_LEVEL="warning",
            CALLHOOK_TENANT_ACME_INGEST_TOKEN="tk-from-env",
        ),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "hub never ready"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "wrote a sample config to new.toml" in out
    assert "/token=tk-from-env&event=" in out  # the banner shows the token in use
    assert (tmp_path / "new.toml").exists() and (tmp_path / "callhook.db").exists()


def test_a_webhook_secret_the_signer_cannot_use_stops_the_load(tmp_path: Path) -> None:
    """A 100-byte secret once loaded, and the webhook's requests went out unsigned."""
    secret = "whsec_" + base64.b64encode(b"k" * 100).decode()
    config = tmp_path / "callhook.toml"
    config.write_text(
        '[[tenant]]\nname = "acme"\n\n[[tenant.webhook]]\nurl = "https://crm.example/a"\n'
        f'\n[[tenant.webhook]]\nurl = "https://crm.example/b"\nsecret = "{secret}"\n'
    )
    expected = ("tenant 'acme', webhook to https://crm.example/b", "24 to 64 bytes")
    with ThreadPoolExecutor(2) as pool:
        runs = [("check-config", "--config", str(config)), ("serve", "--config", str(config))]
        results = list(pool.map(lambda args: _run(*args, cwd=tmp_path), runs))
    for result in results:
        one_line_error(result, *expected)
        assert secret[6:30] not in result.stderr  # a secret is never repeated
    assert not (tmp_path / "callhook.db").exists()
