"""A SQLite hub grows onto PostgreSQL: `callhook db migrate-sqlite-to-postgres` copies
everything, and the hub goes on there with the same seq, ids, keys and webhooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_api_tenants import phone
from tests.support import postgres
from tests.support.hub import Hub

# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = pytest.mark.own_engines


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "callhook", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_sqlite_hub_moves_to_postgresql_with_its_history(tmp_path: Path) -> None:
    hub = Hub(tmp_path, backend="sqlite").start()
    try:
        for event in ("dnd_on", "dnd_off", "off_hook"):
            assert phone(hub, "gs-7f3a9c", event) == 200
        status, key = hub.api("POST", "/api/v1/tenants/acme/api-keys", {"name": "crm"})
        assert status == 201
        status, _ = hub.api(
            "POST", "/api/v1/tenants/acme/webhooks", {"url": "http://127.0.0.1:9/x"}
        )
        assert status in (201, 422)  # a private target may be refused: either is stored as is
        before = hub.events(limit=1000)
    finally:
        hub.stop()
    dst = postgres.server().new_database()
    done = _cli("db", "migrate-sqlite-to-postgres", f"sqlite:///{hub.db}", dst, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"events: {len(before)}" in done.stdout, done.stdout
    # Again into the same database: refused, nothing doubled.
    again = _cli("db", "migrate-sqlite-to-postgres", f"sqlite:///{hub.db}", dst, cwd=tmp_path)
    assert again.returncode == 1 and "not empty" in again.stderr

    hub.use_database(dst)
    hub.start()
    try:
        assert hub.events(limit=1000) == before
        assert phone(hub, "gs-7f3a9c", "dnd_on") == 200
        after = hub.events(limit=1000)
        assert [e["seq"] for e in after] == [e["seq"] for e in before] + [before[-1]["seq"] + 1]
        status, _ = hub.api("GET", "/api/v1/tenants/acme", key=key["key"])
        assert status == 200  # the key made on SQLite works on PostgreSQL
    finally:
        hub.stop()
