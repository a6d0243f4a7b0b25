"""The sample config that `serve --init` writes, with fresh random secrets."""

from __future__ import annotations

from pathlib import Path

from callhook import security

SAMPLE = """\
# callhook configuration. Every key can be overridden by CALLHOOK_<SECTION>_<KEY>.
# Reference: README.md "Configuration" and docs/configuration.md.

[server]
listen = "127.0.0.1:8080"           # ingest, REST API, /ws, dashboard, metrics
wsi_listen = "127.0.0.1:8885"       # PortSIP-style WebSocket listener ("" to disable)
database = "sqlite:///callhook.db"  # the event log and everything else (SQLite, WAL)
bus = "memory"                      # in-process; redis://HOST:6379/0 joins nodes
admin_key = "{admin_key}"
allow_private_targets = false       # webhooks to loopback/private ranges

[[tenant]]
name = "acme"
password = "{tenant_password}"      # WSI tenant auth
domain = "acme.example.com"         # SIP domain: addresses are sip:EXT@domain
ingest_token = "{ingest_token}"
open_ingest_networks = []           # e.g. ["192.168.40.0/24"]: token-less ingest from there

[[tenant.extension]]
number = "101"
password = "{password_101}"         # WSI extension auth
display_name = "Alice"
groups = ["sales"]

[[tenant.extension]]
number = "102"
password = "{password_102}"
display_name = "Bob"
groups = ["sales"]

[[tenant.extension]]
number = "103"
password = "{password_103}"
display_name = "Carol"
groups = ["support"]

[[tenant.queue]]
number = "8001"
members = ["101", "102"]
managers = ["103"]

[[tenant.trunk]]
name = "carrier1"
"""


def write_sample(path: str | Path) -> None:
    """Write a sample config with fresh random secrets (used by `serve --init`)."""
    import secrets

    text = SAMPLE.format(
        admin_key=secrets.token_urlsafe(24),
        tenant_password=secrets.token_urlsafe(12),
        ingest_token=security.new_ingest_token("gs-"),
        password_101=secrets.token_urlsafe(9),
        password_102=secrets.token_urlsafe(9),
        password_103=secrets.token_urlsafe(9),
    )
    Path(path).write_text(text, encoding="utf-8")
