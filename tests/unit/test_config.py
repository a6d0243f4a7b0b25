"""Config: typed, loud, and idempotent application to the database (environment
overrides: test_config_env.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from callhook import config
from callhook.api import models
from callhook.api import webhooks as webhooks_api
from callhook.store.records import ApplyReport
from callhook.store.sql import directory
from callhook.store.sqlite import schema


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
        ({"server": {"lisen": "x"}}, {}, "server.lisen: unknown key"),
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
            "tenant[0].extension[0].pin: unknown key",
        ),
    ],
)
def test_errors_name_key_and_value(data: dict, env: dict, needle: str) -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.parse(data, env=env)
    assert needle in str(exc.value)


_CLUSTERED = {"database": "postgresql://db/callhook", "bus": "redis://cache:6379/0"}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (
            {"server": {"database": "mysql://hub:s3cret@db/callhook"}},
            "server.database = 'mysql://hub:***@db/callhook': expected sqlite:///PATH or",
        ),
        ({"server": {"bus": "redis://:s3cret@cache:6379/0"}}, "'redis://:***@cache:6379/0'"),
        ({"server": {"bus": "rediss://cache"}}, 'set server.database = "postgresql://..." too'),
        ({"server": {"bus": "kafka"}}, "server.bus = 'kafka': expected \"memory\" or redis://"),
        ({"server": {"workers": 2}}, "server.workers = 2: several worker processes are"),
        (
            {
                "server": {**_CLUSTERED, "database_timeout": 30},
                "cluster": {"lease_ttl": 10, "lease_renew": 2},
            },
            "cluster: lease_ttl = 10 is shorter than server.database_timeout = 30: a node cut",
        ),
        ({"server": {"database": "sqlite:///:memory:"}}, "expected a file path"),
        ({"server": {"database": "sqlite:///file:x?mode=memory"}}, "expected a file path"),
    ],
)
def test_storage_the_hub_cannot_honour_is_refused(data: dict, needle: str) -> None:
    """Storage the hub cannot use is refused, never taken for a SQLite file name."""
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
            "tenant[0].webhook[0].secret = '***' (tenant 'a', webhook to https://crm.example/hook)"
            ": expected whsec_",
        ),
        (
            {"tenant": [{"name": "a", "webhook": [{**_HOOK, "secrets": ["x", 1234567]}]}]},
            "tenant[0].webhook[0].secrets[1] = '***'",
        ),
        ({"server": {"database": "mysql://root:1234567@db/x"}}, "'mysql://root:***@db/x'"),
    ],
)
def test_errors_never_repeat_a_secret(data: dict, needle: str) -> None:
    """They name the key, not the value (secrets are never logged)."""
    with pytest.raises(config.ConfigError) as exc:
        config.parse(data, env={})
    assert needle in str(exc.value) and "1234567" not in str(exc.value)


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


def _apply(conn: sqlite3.Connection, s: config.Settings) -> ApplyReport:
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
                "ingest_token": "tk-acme1",
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
    # A tenant dropped from the file is detached, not deleted: its data stays.
    assert third.detached == ["other"] and third.kept == ["other"]
    assert "tenant other" not in third.removed
    assert "tenant acme extension 101" in third.changed  # new password
    tenants = directory.load_tenants(conn)
    assert set(tenants) == {"acme", "other"}
    assert tenants["other"].ingest_token == ""  # its phones are refused
    assert set(tenants["acme"].extensions) == {"101"}
    assert tenants["acme"].extensions["101"].extension_id == ids["101"]
    assert tenants["acme"].queues["8001"].members == ("101",)


def test_apply_refuses_an_api_tenants_token_and_frees_a_removed_tenants(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    schema.upgrade(conn)
    conn.execute(
        "INSERT INTO tenants (name, tenant_id, ingest_token, source, created_at)"
        " VALUES ('zeta', 'z1', 'zz-999999', 'api', 0)"
    )
    old = {"tenant": [{"name": "old", "ingest_token": "gs-111111"}]}
    _apply(conn, config.parse(old, env={}))
    # Renamed in the file, keeping its token: the old tenant is detached with its data and
    # gives its token up to the new name; nothing is purged, no clash.
    renamed = {"tenant": [{"name": "new", "ingest_token": "gs-111111"}]}
    report = _apply(conn, config.parse(renamed, env={}))
    assert report.detached == ["old"] and not report.removed and not report.refused
    assert conn.execute("SELECT name FROM tenant_purges").fetchall() == []
    assert conn.execute("SELECT source, ingest_token FROM tenants WHERE name='old'").fetchall() == [
        ("detached", "")
    ]

    before = list(conn.iterdump())
    clash = {"tenant": [{"name": "zed", "ingest_token": "zz-999999"}]}
    report = _apply(conn, config.parse(clash, env={}))
    assert report.refused == [
        "tenant[0].ingest_token: already used by tenant 'zeta' (made through the API)"
    ]
    assert list(conn.iterdump()) == before  # not even `new` was removed
    # Taking over the API tenant itself (same name) is no clash.
    own = {"tenant": [{"name": "zeta", "ingest_token": "zz-999999"}]}
    assert not _apply(conn, config.parse(own, env={})).refused


# One set of rules for the file and the admin API (callhook/fields.py) --------------------
def _file_accepts(doc: dict) -> bool:
    try:
        config.parse(doc, env={})
    except config.ConfigError:
        return False
    return True


def _api_accepts(model: type[BaseModel], body: dict) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


def _tenant(**keys: object) -> dict:
    return {"tenant": [{"name": "acme", **keys}]}


_HOOK_URL = "https://crm.example/hook"
# (what, API model, the API body for a value, the file document for a value, values)
_SAME_RULES = [
    (
        "ingest_token",
        models.TenantCreate,
        lambda v: {"name": "acme", "ingest_token": v},
        lambda v: _tenant(ingest_token=v),
        ["gs-7f3a9c", "ab&c=d/e", "a/b/c/d", "100%25", "short", "x" * 128, "x" * 129],
    ),
    (
        "domain",
        models.TenantCreate,
        lambda v: {"name": "acme", "domain": v},
        lambda v: _tenant(domain=v),
        ["acme.example.com", "not a domain!", "-acme.example", "a" * 253, "a" * 254],
    ),
    (
        "tenant name",
        models.TenantCreate,
        lambda v: {"name": v},
        lambda v: {"tenant": [{"name": v}]},
        ["acme", "acme-eu.2", "", "a b", "_x", "a" * 64, "a" * 65],
    ),
    (
        "open_ingest_networks",
        models.TenantCreate,
        lambda v: {"name": "acme", "open_ingest_networks": [v]},
        lambda v: _tenant(open_ingest_networks=[v]),
        ["192.168.40.0/24", "10.0.0.1", "fe80::/10", "10.0.0.0/33", "10.0.0.0/255.0.0.0", "x"],
    ),
    (
        "tenant password",
        models.TenantCreate,
        lambda v: {"name": "acme", "password": v},
        lambda v: _tenant(password=v),
        ["pw", "p" * 256, "p" * 257, "nul\x00"],
    ),
    (
        "extension number",
        models.ExtensionCreate,
        lambda v: {"number": v},
        lambda v: _tenant(extension=[{"number": v}]),
        ["101", "*97", "", "10 1", "1/2", "9" * 33],
    ),
    (
        "display_name",
        models.ExtensionCreate,
        lambda v: {"number": "101", "display_name": v},
        lambda v: _tenant(extension=[{"number": "101", "display_name": v}]),
        ["Alice", "A" * 128, "A" * 129, "nul\x00"],
    ),
    (
        "group",
        models.ExtensionCreate,
        lambda v: {"number": "101", "groups": [v]},
        lambda v: _tenant(extension=[{"number": "101", "groups": [v]}]),
        ["sales", "", "two words", "a" * 65],
    ),
    (
        "queue number",
        models.QueueCreate,
        lambda v: {"number": v},
        lambda v: _tenant(queue=[{"number": v}]),
        ["8001", "80 01/x", ""],
    ),
    (
        "queue member",
        models.QueueCreate,
        lambda v: {"number": "8001", "members": [v]},
        # (the member declared, as it must be: this compares the number rule only)
        lambda v: _tenant(extension=[{"number": v}], queue=[{"number": "8001", "members": [v]}]),
        ["101", "1 01", ""],
    ),
    (
        "trunk name",
        models.TrunkCreate,
        lambda v: {"name": v},
        lambda v: _tenant(trunk=[{"name": v}]),
        ["carrier1", "", "carrier 1", "c/1"],
    ),
    (
        "webhook schedule",
        webhooks_api.WebhookCreate,
        lambda v: {"url": _HOOK_URL, "schedule": v},
        lambda v: _tenant(webhook=[{"url": _HOOK_URL, "schedule": v}]),
        [[0, 5], [], [-5], [0] * 30, [0] * 31, [7 * 86400], [7 * 86400 + 1]],
    ),
]


def test_the_file_accepts_what_the_api_accepts() -> None:
    """api/common.py promised "the same rules as the config file"; now they are one set."""
    disagree = [
        f"{what} = {value!r}: file {'accepts' if file_ok else 'refuses'}, API does not"
        for what, model, body, doc, values in _SAME_RULES
        for value in values
        if (file_ok := _file_accepts(doc(value))) != _api_accepts(model, body(value))
    ]
    assert disagree == []


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (_tenant(ingest_token="ab&c=d/e"), "tenant[0].ingest_token = '***': expected 6 to 128"),
        (_tenant(domain="not a domain!"), "tenant[0].domain = 'not a domain!': expected a domain"),
        (_tenant(queue=[{"number": "80 01/x"}]), "tenant[0].queue[0].number = '80 01/x'"),
        (_tenant(trunk=[{"name": ""}]), "tenant[0].trunk[0].name = ''"),
        (
            _tenant(extension=[{"number": "1", "groups": ["sales", ""]}]),
            "tenant[0].extension[0].groups[1] = ''",
        ),
        (_tenant(call_event=[{"extension": "1 0", "event": "dial_in", "url": _HOOK_URL}]), "'1 0'"),
        ({"delivery": {"schedule": []}}, "delivery.schedule: expected 1 to 30 delays"),
        ({"delivery": {"schedule": [-5]}}, "delivery.schedule: expected 1 to 30 delays"),
        (_tenant(webhook=[{"url": _HOOK_URL, "schedule": [-5]}]), "expected 1 to 30 delays"),
    ],
)
def test_values_the_api_refuses_are_config_errors(doc: dict, needle: str) -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.parse(doc, env={})
    assert needle in str(exc.value)
    assert "ab&c" not in str(exc.value)  # the ingest token is a secret


@pytest.mark.parametrize(
    ("table", "entries", "needle"),
    [
        ("queue", [{"number": "8001"}, {"number": "8002"}, {"number": "8001"}], "number '8001'"),
        ("trunk", [{"name": "carrier1"}, {"name": "carrier1"}], "name 'carrier1'"),
        ("extension", [{"number": "101"}, {"number": "101"}], "number '101'"),
    ],
)
def test_an_entry_declared_twice_in_a_tenant_is_an_error(
    table: str, entries: list, needle: str
) -> None:
    """The last one silently won for queues and trunks; the database keeps one of each."""
    with pytest.raises(config.ConfigError) as exc:
        config.parse(_tenant(**{table: entries}), env={})
    assert str(exc.value) == f"tenant[0].{table}: {needle} declared twice"
    # Two tenants may each have one.
    doc = {"tenant": [{"name": "a", table: entries[:1]}, {"name": "b", table: entries[:1]}]}
    assert len(config.parse(doc, env={}).tenant) == 2


# [server] values that would fail only at start ------------------------------------------
@pytest.mark.parametrize(
    ("server", "needle", "meant"),
    [
        (
            {"tls_cert": "/etc/hub.pem"},
            "server.tls_key: required with server.tls_cert = '/etc/hub.pem'",
            {"tls_cert": "/etc/hub.pem", "tls_key": "/etc/hub.key"},
        ),
        (
            {"tls_key": "/etc/hub.key"},
            "server.tls_key = '/etc/hub.key': needs server.tls_cert",
            {"tls_key": ""},
        ),
        (
            {"listen": "127.0.0.1:9000", "wsi_listen": "127.0.0.1:9000"},
            "server.wsi_listen = '127.0.0.1:9000': the same port as server.listen = '127.0.0",
            {"listen": "127.0.0.1:0", "wsi_listen": "127.0.0.1:0"},  # each gets a free port
        ),
        (
            {"listen": "0.0.0.0:9000", "wsi_listen": "127.0.0.1:9000"},
            "server.wsi_listen = '127.0.0.1:9000': the same port as server.listen",
            {"listen": "127.0.0.1:9000", "wsi_listen": "127.0.0.2:9000"},
        ),
        (
            {"listen": "127.0.0.1:8885"},
            "server.wsi_listen: the same port as server.listen",
            {"listen": "127.0.0.1:8885", "wsi_listen": ""},
        ),
    ],
)
def test_server_values_that_cannot_run_together(server: dict, needle: str, meant: dict) -> None:
    """They passed check-config, then failed at start or ran the WSI listener without TLS."""
    with pytest.raises(config.ConfigError) as exc:
        config.parse({"server": server}, env={})
    assert needle in str(exc.value)
    config.parse({"server": meant}, env={})


def test_errors_never_repeat_a_mistyped_keys_value() -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.parse({"server": {"admin_kye": "supersecretvalue"}}, env={})
    assert str(exc.value) == "server.admin_kye: unknown key"


def test_a_missing_file_is_an_error_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"typo\.toml: no such file"):
        config.load(tmp_path / "typo.toml", env={})
    assert config.load(tmp_path / "typo.toml", env={}, missing_ok=True).tenant == []


def test_queue_members_and_managers_must_be_declared_extensions() -> None:
    def tenant(**queue: list[str]) -> dict[str, Any]:
        return {
            "tenant": [
                {
                    "name": "acme",
                    "extension": [{"number": "101"}, {"number": "103"}],
                    "queue": [{"number": "8001", **queue}],
                }
            ]
        }

    ok = config.parse(tenant(members=["101"], managers=["103"]), env={})
    assert ok.tenant[0].queue[0].managers == ["103"]
    for field in ("members", "managers"):
        with pytest.raises(config.ConfigError) as exc:
            config.parse(tenant(**{field: ["100"]}), env={})
        assert f"tenant[0].queue: queue '8001' {field}: no extension 100" in str(exc.value)


def test_a_cluster_is_postgresql_plus_redis() -> None:
    """Nodes share one PostgreSQL database and one Redis; then workers > 1 is allowed."""
    s = config.parse(
        {
            "server": {
                "database": "postgresql://hub@db/callhook",
                "bus": "redis://cache:6379/0",
                "node_id": "node-1",
                "workers": 4,
            }
        },
        env={},
    )
    assert (s.server.bus, s.server.node_id, s.server.workers) == (
        "redis://cache:6379/0",
        "node-1",
        4,
    )
