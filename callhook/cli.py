"""The `callhook` command: serve, check-config, db upgrade (and more as they land)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from callhook import __version__, config
from callhook.cli_admin import keys, phone_urls_command
from callhook.demo import demo
from callhook.simulate.command import simulate
from callhook.tail import tail


def _load(path: str) -> config.Settings:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise click.ClickException(f"config error: {exc}") from None


config_option = click.option(
    "--config",
    "config_path",
    default=lambda: os.environ.get("CALLHOOK_CONFIG", "callhook.toml"),
    show_default="callhook.toml",
    help="TOML config file (env CALLHOOK_CONFIG).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="callhook")
def main() -> None:
    """callhook: phone Action URLs and PBX events in; correlated call events out."""


@main.command()
@config_option
@click.option("--init", is_flag=True, help="Write a sample config first if the file is missing.")
def serve(config_path: str, init: bool) -> None:
    """Run the hub (ingest, REST API, WebSocket pub/sub, webhooks)."""
    from callhook.ops import setup_logging
    from callhook.server import run

    if init and not Path(config_path).exists():
        config.write_sample(config_path)
        click.echo(f"wrote a sample config to {config_path} (edit it to add your tenants)")
    settings = _load(config_path)
    setup_logging(settings.server.log_level, settings.server.log_format)
    _print_banner(settings)
    run(settings)


def _print_banner(settings: config.Settings) -> None:
    base = settings.server.public_url or f"http://{settings.server.listen}"
    host = base.split("://", 1)[-1].rstrip("/")
    click.echo(f"callhook {__version__}: API and dashboard at {base}/, readiness at {base}/readyz")
    for t in settings.tenant:
        if t.ingest_token:
            click.echo(
                f"  tenant {t.name}: point a Grandstream phone (Maintenance -> Event Notify) at\n"
                f"    {host}/token={t.ingest_token}&event=Incoming%20Call&mac=$mac&local=$local"
                "&remote=$remote&call_id=$call_id"
            )
    if settings.server.admin_key == "change-me":
        click.echo("  warning: admin_key is the default 'change-me'; set a secret one", err=True)


@main.command("check-config")
@config_option
def check_config(config_path: str) -> None:
    """Validate the config file (and CALLHOOK_* overrides); exit 1 with the reason if bad."""
    if not Path(config_path).exists():
        raise click.ClickException(f"config error: {config_path}: no such file")
    settings = _load(config_path)
    n_ext = sum(len(t.extension) for t in settings.tenant)
    click.echo(f"{config_path}: ok ({len(settings.tenant)} tenants, {n_ext} extensions)")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@config_option
def db_upgrade(config_path: str) -> None:
    """Apply pending schema migrations."""
    from callhook.store import sqlite

    settings = _load(config_path)
    applied = sqlite.upgrade(settings.server.database)
    click.echo(f"applied migrations {applied}" if applied else "database is up to date")


main.add_command(simulate)
main.add_command(tail)
main.add_command(phone_urls_command)
main.add_command(keys)
main.add_command(demo)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
