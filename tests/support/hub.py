"""Start a real `callhook serve` subprocess on free ports and wait until it is ready."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port

ADMIN_KEY = "test-admin-key"
# The storage backend the hubs of this test run use: `sqlite` (default) or `postgresql`
# (`make test` runs the end-to-end suite once with each).
BACKEND = os.environ.get("TEST_DATABASE_BACKEND", "sqlite")


BASE_CONFIG = """
[server]
listen = "{host}:{port}"
wsi_listen = "{host}:{wsi_port}"
database = "{database}"
admin_key = "{admin_key}"
durability = "{durability}"
log_format = "json"
{server_extra}

[correlation]
tick_interval = 0.2

[[tenant]]
name = "acme"
password = "tenant-secret"
domain = "acme.example.com"
ingest_token = "gs-7f3a9c"
open_ingest_networks = ["127.0.0.0/8"]

[[tenant.extension]]
number = "101"
password = "secret101"
display_name = "Alice"
groups = ["sales"]

[[tenant.extension]]
number = "102"
password = "secret102"
display_name = "Bob"
groups = ["sales"]

[[tenant.extension]]
number = "103"
password = "secret103"
display_name = "Carol"
groups = ["support"]

[[tenant.queue]]
number = "8001"
members = ["101", "102"]
managers = []  # a manager must be a declared extension; none here

[[tenant.trunk]]
name = "carrier1"
{acme_extra}

[[tenant]]
name = "globex"
password = "globex-secret"
domain = "globex.example.com"
ingest_token = "gx-1234"

[[tenant.extension]]
number = "201"
password = "secret201"
display_name = "Homer"
"""


class Hub:
    """A running `callhook serve` process."""

    def __init__(
        self,
        workdir: Path,
        extra_config: str = "",
        durability: str = "normal",
        *,
        server_config: str = "",
        acme_config: str = "",
        backend: str | None = None,
        host: str = "127.0.0.1",
        admin_key: str = ADMIN_KEY,
    ) -> None:
        """`server_config` is added to [server], `acme_config` after acme's tables (e.g.
        `[[tenant.call_event]]` entries), `extra_config` at the end of the file. `host`: the
        address it listens on (a network namespace's, tests/support/netns.py)."""
        self.workdir = workdir
        self.host = host
        self.admin_key = admin_key  # 16 characters at least when not listening on loopback
        self.port = free_port()
        self.wsi_port = free_port()
        self.db = workdir / "callhook.db"
        self.backend = backend or BACKEND
        self.database = f"sqlite:///{self.db}"
        if self.backend == "postgresql":
            from tests.support import postgres

            self.database = postgres.server().new_database()
        self.config_path = workdir / "callhook.toml"
        self.config_path.write_text(
            BASE_CONFIG.format(
                host=host,
                port=self.port,
                wsi_port=self.wsi_port,
                database=self.database,
                admin_key=admin_key,
                durability=durability,
                server_extra=server_config,
                acme_extra=acme_config,
            )
            + extra_config
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "hub.log"

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0, command: list[str] | None = None) -> Hub:
        """Run `callhook serve` (or `command`, which must serve this config) until ready."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
        serve = [sys.executable, "-m", "callhook.cli", "serve", "--config", str(self.config_path)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command or serve,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"hub not ready after {timeout}s:\n{self.logs()}")

    def use_database(self, url: str) -> None:
        """Point the (stopped) hub's config at another database."""
        text = self.config_path.read_text()
        self.config_path.write_text(
            text.replace(f'database = "{self.database}"', f'database = "{url}"')
        )
        self.database = url
        self.backend = "postgresql" if url.startswith("postgresql") else "sqlite"

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the hub's database, whichever backend, outside the hub
        (to look at what it stored, or to stage a fault); `?` parameters."""
        if self.backend == "postgresql":
            import psycopg

            with psycopg.connect(self.database, autocommit=True) as pg:
                cur = pg.execute(query.replace("?", "%s"), params or None)
                return [tuple(r) for r in cur.fetchall()] if cur.description else []
        import sqlite3

        db = sqlite3.connect(self.db, isolation_level=None)
        try:
            return [tuple(r) for r in db.execute(query, params).fetchall()]
        finally:
            db.close()

    def dump(self) -> list[tuple[Any, ...]]:
        """Every row of every table (but the migrations'), in a stable order."""
        tables = ("tenants", "extensions", "queues", "trunks", "api_keys", "devices", "events",
                  "sessions", "presence", "cdrs", "tenant_purges", "endpoints", "deliveries",
                  "delivery_attempts")  # fmt: skip
        out: list[tuple[Any, ...]] = []
        for table in tables:
            out += [(table, *r) for r in sorted(self.sql(f"SELECT * FROM {table}"), key=repr)]
        return out

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    # REST helpers ----------------------------------------------------------------------
    def api(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        """`key`: the admin key unless given ("": no Authorization header)."""
        key = self.admin_key if key is None else key
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw = e.read()
            status = e.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample of `GET /metrics` (its full name, e.g. with `_total`;
        `labels` must all match); None when the hub serves no such sample."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return None

    def events(self, tenant: str = "acme", **params: Any) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        status, body = self.api("GET", f"/api/v1/tenants/{tenant}/events?{query}")
        assert status == 200, body
        assert isinstance(body, list)
        return body

    def all_events(self, tenant: str = "acme", **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        since = 0
        while True:
            page = self.events(tenant, since_seq=since, limit=1000, **params)
            out.extend(page)
            if len(page) < 1000:
                return out
            since = page[-1]["seq"]
