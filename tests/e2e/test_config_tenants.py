"""Tenants declared in the config file, applied to the database of a real hub at start."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from tests.e2e.test_api_tenants import phone
from tests.support.hub import Hub

GLOBEX = '\n[[tenant]]\nname = "globex"'


def _dump(hub: Hub) -> list[tuple[Any, ...]]:
    return hub.dump()


def _cli(hub: Hub, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "callhook", *args, "--config", str(hub.config_path)],
        cwd=hub.workdir,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _drop_globex(hub: Hub) -> str:
    hub.stop()
    text = hub.config_path.read_text()
    hub.config_path.write_text(text[: text.index(GLOBEX)])  # globex is the file's last tenant
    return text


def test_a_tenant_dropped_from_the_file_keeps_its_data_and_says_so(hub: Hub) -> None:
    assert phone(hub, "gx-1234", "dnd_on", local="201", mac="000B82AABB02") == 200
    old = hub.api("GET", "/api/v1/tenants/globex")[1]
    full = _drop_globex(hub)
    hub.start()

    # Loud, at every start, with what to do about it.
    warned = [
        line
        for line in hub.log_path.read_text().splitlines()
        if '"level":"warning"' in line and "globex" in line
    ]
    assert warned and "callhook tenants purge globex" in warned[0], hub.logs()
    # Its data is all there; its phones are refused (the token is free for another tenant).
    assert [e["event_type"] for e in hub.events("globex")] == ["dnd_on"]
    assert hub.api("GET", "/api/v1/tenants/globex/devices")[1]["devices"]
    tenant = hub.api("GET", "/api/v1/tenants/globex")[1]
    assert tenant["source"] == "detached" and tenant["tenant_id"] == old["tenant_id"]
    assert phone(hub, "gx-1234", "dnd_off", local="201") == 404

    # Declared again (as it was): the same tenant, its data, its phones accepted.
    hub.stop()
    hub.config_path.write_text(full)
    hub.start()
    back = hub.api("GET", "/api/v1/tenants/globex")[1]
    assert back["source"] == "config" and back["tenant_id"] == old["tenant_id"]
    assert phone(hub, "gx-1234", "dnd_off", local="201", mac="000B82AABB02") == 200
    assert [e["event_type"] for e in hub.events("globex")] == ["dnd_on", "dnd_off"]


def test_a_renamed_tenant_keeps_the_old_data_and_the_new_name_gets_the_token(hub: Hub) -> None:
    assert phone(hub, "gx-1234", "dnd_on", local="201", mac="000B82AABB02") == 200
    hub.stop()
    text = hub.config_path.read_text()
    hub.config_path.write_text(text.replace('name = "globex"', 'name = "globex2"'))
    hub.start()
    assert phone(hub, "gx-1234", "dnd_off", local="201", mac="000B82AABB02") == 200
    assert [e["event_type"] for e in hub.events("globex2")] == ["dnd_off"]
    assert [e["event_type"] for e in hub.events("globex")] == ["dnd_on"]


def test_tenants_purge_deletes_a_dropped_tenant_and_its_data(hub: Hub) -> None:
    assert phone(hub, "gx-1234", "dnd_on", local="201", mac="000B82AABB02") == 200
    full = _drop_globex(hub)

    # Declared in the file: refused. Unknown: refused. Asked, and not confirmed: nothing.
    hub.config_path.write_text(full)
    declared = _cli(hub, "tenants", "purge", "globex", "--yes")
    assert declared.returncode == 1 and "declared in the config file" in declared.stderr
    _drop_globex(hub)
    assert _cli(hub, "tenants", "purge", "nobody", "--yes").returncode == 1
    assert _cli(hub, "tenants", "purge", "globex", stdin="n\n").returncode == 1
    listed = _cli(hub, "tenants", "list")
    assert listed.returncode == 0 and "detached" in listed.stdout, listed

    purged = _cli(hub, "tenants", "purge", "globex", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert "tenant 'globex' deleted" in purged.stdout
    hub.start()
    assert hub.api("GET", "/api/v1/tenants/globex")[0] == 404
    status, new = hub.api("POST", "/api/v1/tenants", {"name": "globex"})
    assert status == 201, new
    assert hub.events("globex") == []
    assert hub.api("GET", "/api/v1/tenants/globex/devices")[1]["devices"] == []


def test_a_file_tenant_may_not_take_an_api_tenants_ingest_token(hub: Hub) -> None:
    body = {"name": "zeta", "ingest_token": "zz-999999"}
    assert hub.api("POST", "/api/v1/tenants", body)[0] == 201
    hub.stop()
    before = _dump(hub)
    good = hub.config_path.read_text()
    hub.config_path.write_text(good + '\n[[tenant]]\nname = "zed"\ningest_token = "zz-999999"\n')

    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    cli = [sys.executable, "-m", "callhook.cli"]
    serve = subprocess.run(
        [*cli, "serve", "--config", str(hub.config_path)],
        cwd=hub.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert serve.returncode == 1, (serve.stdout, serve.stderr)
    errors = [line for line in serve.stderr.splitlines() if not line.startswith("{")]
    assert errors == [
        "Error: config error: tenant[2].ingest_token: already used by tenant 'zeta'"
        " (made through the API)"
    ], serve.stderr
    assert "zz-999999" not in serve.stderr
    assert _dump(hub) == before  # nothing applied: no `zed`, zeta's token untouched

    hub.config_path.write_text(good)
    hub.start()
    assert phone(hub, "zz-999999", "dnd_on") == 200
    assert [e["event_type"] for e in hub.events("zeta")] == ["dnd_on"]
