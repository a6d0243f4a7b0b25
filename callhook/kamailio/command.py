"""`callhook kamailio-config`: print a ready Kamailio configuration for one tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from callhook import config
from callhook.cli_admin import _ensure_tenant, _with_store, config_option, load_settings
from callhook.errors import BadRequest
from callhook.kamailio.config import KamailioConfig, render
from callhook.store import Store

KEY_NAME = "kamailio"


@click.command("kamailio-config")
@config_option
@click.option("--tenant", required=True, help="Tenant whose SIP domain Kamailio serves.")
@click.option("--hub", required=True, help="The hub's base URL as Kamailio reaches it.")
@click.option(
    "--key",
    envvar="CALLHOOK_KAMAILIO_KEY",
    default=None,
    help="Tenant API key Kamailio sends (env CALLHOOK_KAMAILIO_KEY); default: create one "
    f"named {KEY_NAME!r} in the database.",
)
@click.option("--domain", default=None, help="SIP domain (default: the tenant's domain).")
@click.option("--listen", default="udp:0.0.0.0:5060", show_default=True, help="SIP socket.")
@click.option("--children", default=4, show_default=True, help="SIP worker processes.")
@click.option(
    "--expiry-check",
    default=10,
    show_default=True,
    help="Seconds between scans for expired registrations.",
)
@click.option(
    "--min-expires", default=60, show_default=True, help="Shortest registration accepted (s)."
)
@click.option(
    "--reports/--no-reports",
    default=True,
    show_default=True,
    help="--no-reports: the same proxy without reports (a baseline to measure against).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
def kamailio_config(
    config_path: str | None,
    tenant: str,
    hub: str,
    key: str | None,
    domain: str | None,
    listen: str,
    children: int,
    expiry_check: int,
    min_expires: int,
    reports: bool,
    output: str | None,
) -> None:
    """Print a Kamailio 5.6 configuration that reports this tenant's calls to the hub."""
    settings = load_settings(config_path)
    known = {t.name: t for t in settings.tenant}
    if domain is None:
        if tenant not in known:
            raise click.ClickException(
                f"no tenant {tenant!r} in the config file: add it, or give --domain"
            )
        domain = known[tenant].domain
    if key is None:
        key = _create_key(settings, tenant)
        click.echo(
            f"created API key {KEY_NAME!r} for tenant {tenant} (it is in the file)", err=True
        )
    cfg = KamailioConfig(
        tenant=tenant,
        domain=domain,
        hub=hub,
        key=key,
        listen=listen,
        children=children,
        report=reports,
        expiry_check=expiry_check,
        min_expires=min_expires,
    )
    try:
        text = render(cfg)
    except BadRequest as exc:
        raise click.ClickException(exc.message) from None
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}: run it with  kamailio -f {output}", err=True)
    else:
        click.echo(text, nl=False)


def _create_key(settings: config.Settings, tenant: str) -> str:
    async def op(store: Store) -> dict[str, Any] | None:
        await _ensure_tenant(store, settings, tenant)
        return await store.directory.create_api_key(tenant, KEY_NAME)

    created = _with_store(settings, op)
    if created is None:
        raise click.ClickException(f"no tenant {tenant!r}")
    key: str = created["key"]
    return key
