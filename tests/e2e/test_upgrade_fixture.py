"""A SQLite file made by the release before the storage seam (schema version 3; made by
`callhook serve` at commit 1e239e1 with the test config: a call, a DND, an API key, an
API-made tenant) is upgraded in place, by `callhook db upgrade` and at start, with all
its data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_api_tenants import phone
from tests.support.hub import Hub

FIXTURE = Path(__file__).parent.parent / "fixtures" / "callhook-0.1-schema3.db"
FIXTURE_KEY = "chk_NRmTPjAhkbzycNqUJ-qbTdsLzpj98S3ujRxQZ4Dn0ak"  # made with the file


def test_db_upgrade_applies_only_the_new_migrations(tmp_path: Path) -> None:
    hub = Hub(tmp_path, backend="sqlite")
    shutil.copy(FIXTURE, hub.db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    done = subprocess.run(
        [sys.executable, "-m", "callhook", "db", "upgrade", "--config", str(hub.config_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("applied migrations [4"), done.stdout
    assert hub.sql("SELECT COUNT(*) FROM events")[0][0] == 8


def test_a_file_of_the_previous_release_starts_with_all_its_data(tmp_path: Path) -> None:
    hub = Hub(tmp_path, backend="sqlite")
    shutil.copy(FIXTURE, hub.db)
    hub.start()
    try:
        events = hub.events(limit=1000)
        assert [e["seq"] for e in events] == list(range(1, 9))
        keys = [e["event_type"] for e in events]
        assert "call_cdr" in keys and "dnd_on" in keys
        status, cdrs = hub.api("GET", "/api/v1/tenants/acme/cdrs")
        assert status == 200 and len(cdrs["cdrs"]) == 1
        assert cdrs["cdrs"][0]["call_id"] == "fx-1"
        assert hub.api("GET", "/api/v1/tenants/apitenant")[0] == 200
        assert hub.api("GET", "/api/v1/tenants/acme", key=FIXTURE_KEY)[0] == 200
        assert phone(hub, "gs-7f3a9c", "dnd_off", local="102") == 200
        assert hub.events(since_seq=8)[0]["seq"] == 9
    finally:
        hub.stop()
