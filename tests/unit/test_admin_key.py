"""The admin key rule (pure): one function for `serve` and `check-config`."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from callhook import config, security


@pytest.mark.parametrize(
    ("listen", "key", "problem"),
    [
        ("127.0.0.1:8080", "change-me", "is the default 'change-me'"),
        ("0.0.0.0:8080", "change-me", "is the default 'change-me'"),
        ("127.0.0.1:8080", "", "is empty"),
        ("[::]:8080", " \t", "is empty"),
        ("0.0.0.0:8080", "fifteen-chars-k", "shorter than 16 characters"),
        ("192.168.1.5:8080", "short", "shorter than 16 characters"),
        ("0.0.0.0:8080", "sixteen-chars-ok", None),
        ("127.0.0.1:8080", "short", None),
        ("127.8.9.1:8080", "short", None),
        ("[::1]:8080", "short", None),
        ("localhost:8080", "short", None),
    ],
)
def test_admin_key_problem(listen: str, key: str, problem: str | None) -> None:
    server = config.ServerConfig(listen=listen, wsi_listen="", admin_key=key)
    found = config.admin_key_problem(server)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and "serve --init" in found
        assert "\n" not in found


def test_ingest_tokens_carry_128_random_bits() -> None:
    tokens = {security.new_ingest_token("gs-") for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert re.fullmatch(r"gs-[A-Za-z0-9_-]{22}", token), token
        assert len(base64.urlsafe_b64decode(token[3:] + "==")) * 8 == 128


def test_the_sample_config_passes_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "callhook.toml"
    config.write_sample(path)
    settings = config.load(path, env={})
    assert config.admin_key_problem(settings.server) is None
    assert all(len(t.ingest_token) >= 25 for t in settings.tenant)
