"""Config: typed, loud, env overrides, and idempotent application to the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from callhook import config
from callhook.store import directory, schema


def test_defaults_match_spec() -> None:
    s = config.parse({}, env={})
    assert s.server.listen == "127.0.0.1:8080"
    assert s.server.wsi_listen == "127.0.0.1:8885"
    assert s.server.database == "sqlite:///callhook.db"
    assert s.server.bus == "memory"
    assert s.server.allow_private_targets is False


@pytest.mark.parametrize(
    ("data", "env", "needle"),
    [
        ({"server": {"listen": "nope"}}, {}, "server.listen = 'nope'"),
        ({"server": {"lisen": "x"}}, {}, "server.lisen = 'x': unknown key"),
        ({"server": {"database": "mysql://x"}}, {}, "server.database = 'mysql://x'"),
        ({}, {"CALLHOOK_SERVER_NOPE": "1"}, "CALLHOOK_SERVER_NOPE: unknown key server.nope"),
        ({}, {"CALLHOOK_WHATEVER": "1"}, "CALLHOOK_WHATEVER: unknown setting"),
        ({}, {"CALLHOOK_CORRELATION_MERGE_WINDOW": "abc"}, "correlation.merge_window = 'abc'"),
        ({"tenant": [{"name": "a b"}]}, {}, "tenant[0].name = 'a b'"),
        ({"tenant": [{"name": "a"}, {"name": "a"}]}, {}, "declared twice"),
        (
            {"tenant": [{"name": "a", "open_ingest_networks": ["10.0.0.0/33"]}]},
            {},
            "open_ingest_networks",
        ),
        (
            {"tenant": [{"name": "a", "extension": [{"number": "1", "pin": 2}]}]},
            {},
            "tenant[0].extension[0].pin = 2: unknown key",
        ),
    ],
)
def test_errors_name_key_and_value(data: dict, env: dict, needle: str) -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.parse(data, env=env)
    assert needle in str(exc.value)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (
            {"server": {"database": "postgresql://hub:s3cret@db/callhook"}},
            "server.database = 'postgresql://hub:***@db/callhook': PostgreSQL storage is not",
        ),
        ({"server": {"database": "postgres://db/x"}}, "PostgreSQL storage is not available"),
        ({"server": {"bus": "redis://:s3cret@cache:6379/0"}}, "'redis://:***@cache:6379/0'"),
        ({"server": {"bus": "rediss://cache"}}, "the Redis bus is not available"),
        ({"server": {"bus": "kafka"}}, "server.bus = 'kafka': expected \"memory\""),
        ({"server": {"database": "sqlite:///:memory:"}}, "expected a file path"),
        ({"server": {"database": "sqlite:///file:x?mode=memory"}}, "expected a file path"),
    ],
)
def test_storage_the_hub_cannot_honour_is_refused(data: dict, needle: str) -> None:
    """Scale-out URLs are refused, not taken for a SQLite file name (SPEC §5 not built)."""
    with pytest.raises(config.ConfigError) as exc:
        config.parse(data, env={})
    assert needle in str(exc.value)
    assert "s3cret" not in str(exc.value)


_HOOK = {"url": "https://crm.example/hook"}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"server": {"admin_key": 1234567}}, "server.admin_key = '***': "),
        ({"tenant": [{"name": "a", "password": 1234567}]}, "tenant[0].password = '***': "),
        (
            {"tenant": [{"name": "a", "extension": [{"number": "1", "password": 1234567}]}]},
            "tenant[0].extension[0].password = '***': ",
        ),
        ({"tenant": [{"name": "a", "ingest_token": 1234567}]}, "tenant[0].ingest_token = '***'"),
        (
            {"tenant": [{"name": "a", "webhook": [{**_HOOK, "secret": "whsec_1234567"}]}]},
            "tenant[0].webhook[0].secret = '***': expected whsec_",
        ),
        (
            {"tenant": [{"name": "a", "webhook": [{**_HOOK, "secrets": ["x", 1234567]}]}]},
            "tenant[0].webhook[0].secrets[1] = '***'",
        ),
        ({"server": {"database": "mysql://root:1234567@db/x"}}, "'mysql://root:***@db/x'"),
    ],
)
def test_errors_never_repeat_a_secret(data: dict, needle: str) -> None:
    """They name the key, not the value (SPEC §7: secrets are never logged)."""
    with pytest.raises(config.ConfigError) as exc:
        config.parse(data, env={})
    assert needle in str(exc.value) and "1234567" not in str(exc.value)


def test_env_overrides_file() -> None:
    s = config.parse(
        {"server": {"listen": "127.0.0.1:1"}},
        env={
            "CALLHOOK_SERVER_LISTEN": "0.0.0.0:9000",
            "CALLHOOK_SERVER_ALLOW_PRIVATE_TARGETS": "true",
            "CALLHOOK_SERVER_TRUSTED_PROXIES": '["10.0.0.1"]',
            "CALLHOOK_CORRELATION_MERGE_WINDOW": "2.5",
        },
    )
    assert s.server.listen == "0.0.0.0:9000"
    assert s.server.allow_private_targets is True
    assert s.server.trusted_proxies == ["10.0.0.1"]
    assert s.correlation.merge_window == 2.5


def test_bad_toml_is_a_clean_error(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[server\nlisten=")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(p, env={})


def test_sample_config_is_valid(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    config.write_sample(p)
    s = config.load(p, env={})
    assert s.tenant[0].name == "acme"
    assert s.server.admin_key != "change-me"


def _apply(conn: sqlite3.Connection, s: config.Settings) -> directory.ApplyReport:
    hashes = directory.hash_passwords(s, conn)
    conn.execute("BEGIN IMMEDIATE")
    report = directory.apply_config(conn, s, hashes)
    conn.execute("COMMIT")
    return report


def test_apply_is_idempotent_and_removes_what_the_file_dropped(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    schema.upgrade(conn)
    doc = {
        "tenant": [
            {
                "name": "acme",
                "password": "pw",
                "ingest_token": "t1",
                "extension": [
                    {"number": "101", "password": "a", "groups": ["sales"]},
                    {"number": "102", "password": "b"},
                ],
                "queue": [{"number": "8001", "members": ["101"]}],
                "trunk": [{"name": "carrier1"}],
            },
            {"name": "other"},
        ]
    }
    first = _apply(conn, config.parse(doc, env={}))
    assert "tenant acme" in first.added and "tenant acme extension 102" in first.added
    ids = dict(conn.execute("SELECT number, extension_id FROM extensions").fetchall())
    again = _apply(conn, config.parse(doc, env={}))
    assert again.unchanged, again
    assert dict(conn.execute("SELECT number, extension_id FROM extensions").fetchall()) == ids

    doc["tenant"][0]["extension"] = [{"number": "101", "password": "a2", "groups": ["sales"]}]
    doc["tenant"][0]["trunk"] = []
    doc["tenant"].pop()
    third = _apply(conn, config.parse(doc, env={}))
    assert "tenant acme extension 102" in third.removed
    assert "tenant acme trunk carrier1" in third.removed
    assert "tenant other" in third.removed
    assert "tenant acme extension 101" in third.changed  # new password
    tenants = directory.load_tenants(conn)
    assert set(tenants) == {"acme"}
    assert set(tenants["acme"].extensions) == {"101"}
    assert tenants["acme"].extensions["101"].extension_id == ids["101"]
    assert tenants["acme"].queues["8001"].members == ("101",)
