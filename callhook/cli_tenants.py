"""`callhook tenants list|purge`: tenants on the database directly (no hub needed).

A tenant dropped from the config file is detached, not deleted (callhook/store/directory.py):
its data stays until the operator purges it here, or with the API's DELETE on a running hub.
"""

from __future__ import annotations

from typing import Any

import click

from callhook.cli_admin import _existing_db, _table, _with_store, config_option, load_settings
from callhook.store import Store

_BATCH = 5000


@click.group()
def tenants() -> None:
    """Tenants in the database, including those the config file no longer declares."""


@tenants.command("list")
@config_option
def tenants_list(config_path: str | None) -> None:
    """Every tenant in the database and where it comes from (config, api, detached)."""
    settings = load_settings(config_path)
    _existing_db(settings)

    async def op(store: Store) -> list[dict[str, Any]]:
        return await store.directory.list_tenants(limit=100_000)

    found = _with_store(settings, op)
    if not found:
        click.echo("no tenants")
        return
    declared = {t.name for t in settings.tenant}
    rows = []
    for t in found:
        source = t["source"]
        if source == "config" and t["name"] not in declared:
            source = "detached"  # at the hub's next start
        rows.append((t["name"], source, str(t.get("extensions", ""))))
    _table("tenants", ("name", "source", "extensions"), rows)


@tenants.command("purge")
@config_option
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def tenants_purge(config_path: str | None, name: str, yes: bool) -> None:
    """Delete tenant NAME and all its data (events, CDRs, devices, keys): no undo.

    Stop the hub first, or use `DELETE /api/v1/tenants/NAME` on a running hub.
    """
    settings = load_settings(config_path)
    if name in {t.name for t in settings.tenant}:
        raise click.ClickException(
            f"tenant {name!r} is declared in the config file: remove it there first"
        )
    _existing_db(settings)

    async def exists(store: Store) -> bool:
        return await store.directory.get_tenant(name) is not None

    if not _with_store(settings, exists):
        raise click.ClickException(f"no tenant {name!r} in the database")
    if not yes:
        click.confirm(f"Delete tenant {name!r} and all its data? There is no undo", abort=True)

    async def purge(store: Store) -> int:
        await store.directory.delete_tenant(name)
        total = 0
        while n := await store.maintenance.purge_batch(name, _BATCH):
            total += n
        return total

    removed = _with_store(settings, purge)
    click.echo(f"tenant {name!r} deleted, with {removed} rows of its data")
