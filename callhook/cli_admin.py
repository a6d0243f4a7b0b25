"""Admin commands that need no running hub: `phone-urls` and `keys create|list|revoke`.

`phone-urls` reads the tenant's ingest token from the config file (or, for a tenant made
through the API, from the database). `keys` works on the database directly through the
store, the same code the REST API uses; a key revoked here stops working on a running hub
within 30 s (its lookup cache), one revoked through the API at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from callhook import config, phone_urls
from callhook.store import Store, StoreError, open_store
from callhook.store.sqlite import sqlite_path

T = TypeVar("T")

DEFAULT_CONFIG = "callhook.toml"

# Every command's --config. Unless given (here or as CALLHOOK_CONFIG) it is None, and
# ./callhook.toml is read if it exists, else the defaults are used; a named file must exist.
config_option = click.option(
    "--config",
    "config_path",
    envvar="CALLHOOK_CONFIG",
    default=None,
    show_default=DEFAULT_CONFIG,
    help="TOML config file (env CALLHOOK_CONFIG); if named, it must exist.",
)


def load_settings(path: str | None) -> config.Settings:
    """The settings of the config file `--config` names, or of ./callhook.toml if any."""
    try:
        if path is None:
            return config.load(DEFAULT_CONFIG, missing_ok=True)
        return config.load(path)
    except config.ConfigError as exc:
        raise click.ClickException(f"config error: {exc}") from None


def _db_path(settings: config.Settings) -> str:
    """The SQLite file, or the PostgreSQL URL without its password (for messages)."""
    url = settings.server.database
    if not url.startswith("sqlite:///"):
        return str(config.redact_url(url))
    return sqlite_path(url)


def _is_file(settings: config.Settings) -> bool:
    return settings.server.database.startswith("sqlite:///")


def _with_store(settings: config.Settings, op: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store (running migrations), run `op`, close it; errors as one line."""

    async def run() -> T:
        store = open_store(
            settings.server.database,
            durability=settings.server.durability,
            readers=settings.server.database_pool,
            timeout=settings.server.database_timeout,
        )
        await store.open()
        try:
            return await op(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (StoreError, OSError) as exc:
        raise click.ClickException(f"database {_db_path(settings)}: {exc}") from None


def _token(settings: config.Settings, tenant: str | None) -> tuple[str, str]:
    """(tenant, ingest token): from the config file, else from the database."""
    declared = {t.name: t.ingest_token for t in settings.tenant}
    if tenant is None:
        if len(declared) != 1:
            names = ", ".join(declared) or "none in the config"
            raise click.ClickException(f"which tenant? pass --tenant (tenants: {names})")
        tenant = next(iter(declared))
    token = declared.get(tenant)
    if token is None and (not _is_file(settings) or Path(_db_path(settings)).exists()):
        found = _with_store(settings, lambda s: s.directory.get_tenant(tenant))
        token = found["ingest_token"] if found else None
    if token is None:
        raise click.ClickException(f"no tenant {tenant!r} in the config file or the database")
    if not token:
        raise click.ClickException(f"tenant {tenant!r} has no ingest_token")
    return tenant, token


def _default_host(settings: config.Settings) -> str:
    if settings.server.public_url:
        return settings.server.public_url
    host, _, port = settings.server.listen.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]", "127.0.0.1", "localhost"):
        click.echo(
            "note: phones cannot reach the listen address; pass --host HOST:PORT"
            " (or set server.public_url)",
            err=True,
        )
    return f"{host}:{port}"


@click.command("phone-urls")
@config_option
@click.option("--tenant", help="Tenant name (default: the only tenant in the config).")
@click.option("--host", help="How phones reach the hub, e.g. 192.0.2.10:8080.")
@click.option(
    "--vendor",
    type=click.Choice([*phone_urls.URL_VENDORS, "all"]),
    default="grandstream",
    show_default=True,
)
@click.option(
    "--model",
    default="",
    help="Phone model whose guide names variables its own way (Grandstream GXV3240/GXV3275:"
    " $call-id; GXV3370/3350/3380: $call_id).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "provisioning", "list", "json"]),
    default="table",
    show_default=True,
    help="provisioning: Yealink .cfg lines, Snom XML, or a labelled list.",
)
def phone_urls_command(
    config_path: str | None,
    tenant: str | None,
    host: str | None,
    vendor: str,
    model: str,
    fmt: str,
) -> None:
    """Print the URL to paste on a phone for each event (no hub needed)."""
    if model and vendor == "all":
        raise click.ClickException("--model needs --vendor (the model's vendor)")
    settings = load_settings(config_path)
    tenant, token = _token(settings, tenant)
    where = host or _default_host(settings)
    vendors = phone_urls.URL_VENDORS if vendor == "all" else (vendor,)
    try:
        per_vendor = {v: phone_urls.phone_urls(v, where, token, model) for v in vendors}
    except phone_urls.PhoneUrlError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        out = {v: [dataclasses.asdict(u) for u in urls] for v, urls in per_vendor.items()}
        click.echo(json.dumps({"tenant": tenant, "host": where, "vendors": out}, indent=2))
        return
    for v, urls in per_vendor.items():
        if fmt == "provisioning":
            click.echo(phone_urls.provisioning(v, urls), nl=False)
        elif fmt == "list":
            for u in urls:
                click.echo(f"{u.setting}\t{u.url}")
        else:
            _table(
                f"{v}: tenant {tenant}",
                ("event", "setting or field", "URL"),
                [
                    (u.event, u.setting, u.url + ("  (too long)" if u.too_long else ""))
                    for u in urls
                ],
            )


def _table(title: str, columns: tuple[str, ...], data: Sequence[tuple[str, ...]]) -> None:
    from rich.console import Console  # imported here: rich costs ~0.1 s of CLI start-up
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped: never wrap a URL that someone will copy
        widths = [max(len(str(r[i])) for r in [columns, *data]) for i in range(len(columns))]
        console = Console(width=max(80, sum(widths) + 3 * len(widths) + 1))
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, overflow="fold")
    for r in data:
        table.add_row(*r)
    console.print(table)


# keys ----------------------------------------------------------------------------------
@click.group()
def keys() -> None:
    """Tenant API keys, on the database directly (no hub needed)."""


async def _ensure_tenant(store: Store, settings: config.Settings, tenant: str) -> None:
    """Tenant rows come from the config at hub start; do the same here if it never ran."""
    if await store.directory.get_tenant(tenant) is not None:
        return
    if tenant not in {t.name for t in settings.tenant}:
        raise click.ClickException(f"no tenant {tenant!r} in the database or the config file")
    hashes = await store.directory.hash_passwords(settings)
    report = await store.directory.apply_config(settings, hashes)
    if report.refused:
        raise click.ClickException(f"config error: {'; '.join(report.refused)}")


@keys.command("create")
@config_option
@click.option("--tenant", required=True, help="Tenant the key belongs to.")
@click.option("--name", default="", help="What the key is for (shown in lists).")
def keys_create(config_path: str | None, tenant: str, name: str) -> None:
    """Create a tenant API key; it is printed once and stored only as a hash."""
    settings = load_settings(config_path)

    async def op(store: Store) -> dict[str, Any] | None:
        await _ensure_tenant(store, settings, tenant)
        return await store.directory.create_api_key(tenant, name)

    created = _with_store(settings, op)
    if created is None:
        raise click.ClickException(f"no tenant {tenant!r}")
    click.echo(f"key_id {created['key_id']} for tenant {tenant} (shown once, keep it secret):")
    click.echo(created["key"])


def _existing_db(settings: config.Settings) -> None:
    path = _db_path(settings)
    if _is_file(settings) and not Path(path).exists():
        raise click.ClickException(f"no database at {path}; start the hub once (callhook serve)")


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@keys.command("list")
@config_option
@click.option("--tenant", required=True, help="Tenant whose keys to list.")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
def keys_list(config_path: str | None, tenant: str, include_revoked: bool) -> None:
    """List a tenant's API keys (never the keys themselves)."""
    settings = load_settings(config_path)
    _existing_db(settings)
    found = _with_store(
        settings,
        lambda s: s.directory.list_api_keys(tenant, limit=100_000, include_revoked=include_revoked),
    )
    if not found:
        click.echo(f"tenant {tenant}: no API keys")
        return
    data = [(k["key_id"], k["name"], _when(k["created_at"]), _when(k["revoked_at"])) for k in found]
    _table(f"API keys of tenant {tenant}", ("key_id", "name", "created", "revoked"), data)


@keys.command("revoke")
@config_option
@click.argument("key_id")
@click.option("--tenant", help="Only if the key belongs to this tenant.")
def keys_revoke(config_path: str | None, key_id: str, tenant: str | None) -> None:
    """Revoke an API key (a running hub notices within 30 s; the REST API revokes at once)."""
    settings = load_settings(config_path)
    _existing_db(settings)
    done = _with_store(settings, lambda s: s.directory.revoke_api_key(key_id, tenant))
    if not done:
        where = f" of tenant {tenant!r}" if tenant else ""
        raise click.ClickException(f"no API key {key_id!r}{where}")
    click.echo(f"revoked {key_id}")
