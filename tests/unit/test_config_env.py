"""Config: every key overridable by a `CALLHOOK_*` environment variable, a declared
tenant's keys included; the errors name the variable and never repeat a secret."""

from __future__ import annotations

import pytest

from callhook import config
from callhook.config import env as config_env


def _tenant(**keys: object) -> dict:
    return {"tenant": [{"name": "acme", **keys}]}


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


def test_an_empty_or_bracketed_env_value_is_a_string() -> None:
    s = config.parse(
        {},
        env={"CALLHOOK_SERVER_WSI_LISTEN": "", "CALLHOOK_SERVER_ADMIN_KEY": "[abc{SECRET"},
    )
    assert s.server.wsi_listen == ""
    assert s.server.admin_key == "[abc{SECRET"


def test_env_json_is_decoded_for_lists_only() -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.parse({}, env={"CALLHOOK_SERVER_TRUSTED_PROXIES": "[10.0.0.1"})
    assert "CALLHOOK_SERVER_TRUSTED_PROXIES='[10.0.0.1': not valid JSON" in str(exc.value)
    # It says what the JSON form is (a bare `10.0.0.1` is the usual first try).
    with pytest.raises(config.ConfigError) as exc:
        config.parse({}, env={"CALLHOOK_SERVER_TRUSTED_PROXIES": "10.0.0.1"})
    assert """e.g. CALLHOOK_SERVER_TRUSTED_PROXIES='["a", "b"]'""" in str(exc.value)
    schedule = config.parse({}, env={"CALLHOOK_DELIVERY_SCHEDULE": "[0, 1.5]"}).delivery.schedule
    assert schedule == [0, 1.5]
    assert config_env._takes_json(config.WebhookConfig.model_fields["schedule"].annotation)
    assert not config_env._takes_json(config.ServerConfig.model_fields["admin_key"].annotation)


def test_env_overrides_a_declared_tenant() -> None:
    doc = {
        "tenant": [
            {"name": "acme-eu", "ingest_token": "in-the-file", "extension": [{"number": "1"}]},
            {"name": "globex"},
        ]
    }
    s = config.parse(
        doc,
        env={
            "CALLHOOK_TENANT_ACME_EU_INGEST_TOKEN": "from-the-env",
            "CALLHOOK_TENANT_acme_eu_PASSWORD": "pw-from-env",
            "CALLHOOK_TENANT_GLOBEX_DOMAIN": "globex.example.com",
            "CALLHOOK_TENANT_GLOBEX_OPEN_INGEST_NETWORKS": '["10.1.0.0/16"]',
        },
    )
    acme, globex = s.tenant
    assert (acme.ingest_token, acme.password, acme.extension[0].number) == (
        "from-the-env",
        "pw-from-env",
        "1",
    )
    assert globex.domain == "globex.example.com"
    assert globex.open_ingest_networks == ["10.1.0.0/16"]
    assert doc["tenant"][0]["ingest_token"] == "in-the-file"  # the caller's data is untouched


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {"CALLHOOK_TENANT_NOPE_PASSWORD": "x"},
            "CALLHOOK_TENANT_NOPE_PASSWORD: no such tenant in the config file",
        ),
        (
            {"CALLHOOK_TENANT_ACME_COLOUR": "red"},
            "CALLHOOK_TENANT_ACME_COLOUR: unknown key 'colour'",
        ),
        ({"CALLHOOK_TENANT_ACME_NAME": "other"}, "CALLHOOK_TENANT_ACME_NAME: unknown key 'name'"),
        ({"CALLHOOK_TENANT_ACME_EXTENSION": "[]"}, "CALLHOOK_TENANT_ACME_EXTENSION: unknown key"),
        (
            {"CALLHOOK_TENANT_ACME_INGEST_TOKEN": "bad&SECRET"},
            "tenant[0].ingest_token = '***' (from CALLHOOK_TENANT_ACME_INGEST_TOKEN): expected",
        ),
        (
            {"CALLHOOK_TENANT_ACME_OPEN_INGEST_NETWORKS": "[SECRET"},
            "CALLHOOK_TENANT_ACME_OPEN_INGEST_NETWORKS='[SECRET': not valid JSON",
        ),
    ],
)
def test_tenant_env_errors_name_the_variable(env: dict, needle: str) -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.parse(_tenant(), env=env)
    assert needle in str(exc.value)
    if "INGEST_TOKEN" in needle:
        assert "SECRET" not in str(exc.value)


def test_two_tenants_spelled_alike_in_env_names_are_an_error() -> None:
    doc = {"tenant": [{"name": "a-b"}, {"name": "a_b"}]}
    with pytest.raises(config.ConfigError, match="CALLHOOK_TENANT_A_B_PASSWORD: names tenants"):
        config.parse(doc, env={"CALLHOOK_TENANT_A_B_PASSWORD": "x"})
