"""Tenants declared in the config file, applied to the database of a real hub at start."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

from tests.e2e.test_api_tenants import phone
from tests.support.hub import Hub

GLOBEX = '\n[[tenant]]\nname = "globex"'


def _dump(hub: Hub) -> list[str]:
    db = sqlite3.connect(f"file:{hub.db}?mode=ro", uri=True)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def test_a_tenant_dropped_from_the_file_is_purged_like_an_api_delete(hub: Hub) -> None:
    assert phone(hub, "gx-1234", "dnd_on", local="201", mac="000B82AABB02") == 200
    old = hub.api("GET", "/api/v1/tenants/globex")[1]
    assert [e["event_type"] for e in hub.events("globex")] == ["dnd_on"]
    assert hub.api("GET", "/api/v1/tenants/globex/devices")[1]["devices"]
    hub.stop()
    text = hub.config_path.read_text()
    hub.config_path.write_text(text[: text.index(GLOBEX)])  # globex is the file's last tenant
    hub.start()

    deadline = time.monotonic() + 10
    while (created := hub.api("POST", "/api/v1/tenants", {"name": "globex"}))[0] == 409:
        assert created[1]["error"]["code"] == "tenant-being-deleted", created
        assert time.monotonic() < deadline, "the dropped tenant's data is never removed"
        time.sleep(0.05)
    status, new = created
    assert status == 201 and new["tenant_id"] != old["tenant_id"], new
    assert hub.events("globex") == []
    assert hub.api("GET", "/api/v1/tenants/globex/devices")[1]["devices"] == []
    assert hub.api("POST", "/api/v1/tenants/globex/extensions", {"number": "201"})[0] == 201
    state = hub.api("GET", "/api/v1/tenants/globex/extensions/201/state")[1]
    assert not state["dnd"], state  # the old tenant's presence did not come back either


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
