"""The `callhook` command: serve, check-config, db upgrade (and more as they land)."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import click

from callhook import __version__, config, invocation
from callhook.cli_admin import (
    DEFAULT_CONFIG,
    config_option,
    keys,
    load_settings,
    phone_urls_command,
)
from callhook.cli_cluster import cluster
from callhook.cli_reload import reload
from callhook.cli_tenants import tenants
from callhook.demo import demo
from callhook.kamailio.command import kamailio_config
from callhook.listeners import StartupError
from callhook.simulate.command import simulate
from callhook.tail import tail


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="callhook")
def main() -> None:
    """callhook: phone Action URLs and PBX events in; correlated call events out."""


@main.command()
@config_option
@click.option("--init", is_flag=True, help="Write a sample config first if the file is missing.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Node processes on this machine (overrides [server] workers; >1 needs PostgreSQL"
    " and a Redis bus).",
)
@click.option("--worker", "worker", default=None, hidden=True)  # I/N: one of the N
def serve(config_path: str | None, init: bool, workers: int | None, worker: str | None) -> None:
    """Run the hub (ingest, REST API, WebSocket pub/sub, webhooks)."""
    from callhook import workers as workers_mod
    from callhook.ops import setup_logging
    from callhook.server import run

    path = config_path or DEFAULT_CONFIG
    if init and not Path(path).exists():
        config.write_sample(path)
        click.echo(f"wrote a sample config to {path} (edit it to add your tenants)")
    elif config_path is None and not Path(path).exists():
        click.echo(f"note: no {path} here; running on the defaults (--init writes one)", err=True)
    settings = load_settings(config_path)
    count = workers or settings.server.workers
    problem = workers_mod.check(settings, count)
    if problem:
        raise click.ClickException(problem)
    _check_admin_key(settings)
    _check_tls(settings)
    _open_database(settings)
    if count > 1 and worker is None:
        sys.exit(workers_mod.supervise(config_path or DEFAULT_CONFIG, count))
    if worker is not None:  # I/N: node NODE/I, sharing the ports with the others
        index, _, total = worker.partition("/")
        server = settings.server
        node = f"{server.node_id or config.default_node_id(server)}/{index}"
        new = server.model_copy(update={"node_id": node, "workers": int(total)})
        settings = settings.model_copy(update={"server": new})
    setup_logging(settings.server.log_level, settings.server.log_format)
    banner = worker is None or worker.startswith("1/")
    try:
        run(
            settings,
            on_started=lambda: _print_banner(settings) if banner else None,
            config_path=config_path,
        )
    except config.ConfigError as exc:  # the file clashes with the database (Hub.apply_config)
        raise click.ClickException(f"config error: {exc}") from None
    except StartupError as exc:  # a port in use, a database that cannot be opened
        raise click.ClickException(str(exc)) from None


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
    if loopback_only(settings.server.listen):
        click.echo(
            f"  note: listen = {settings.server.listen!r} takes connections from this machine"
            ' only; for real phones set listen = "0.0.0.0:PORT" and public_url (README,'
            ' "Point a real phone at the hub")'
        )
    click.echo(f"  URLs for every event and vendor: {invocation.command()} phone-urls --vendor all")


loopback_only = config.loopback_only


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _check_admin_key(settings: config.Settings) -> None:
    problem = config.admin_key_problem(settings.server)
    if problem is not None:
        raise click.ClickException(f"config error: {problem}")


def _open_database(settings: config.Settings) -> list[int]:
    """Open the database (applying pending migrations) before anything starts, so a path
    that cannot be one is a one-line error naming the key rather than a traceback."""
    from callhook import store

    url = settings.server.database
    try:
        return store.upgrade(url)
    except store.StoreError as exc:
        one_line = " ".join(str(exc).split())
        shown = config.redact_url(url)
        raise click.ClickException(f"server.database = {shown!r}: {one_line}") from None


def _check_tls(settings: config.Settings) -> None:
    """Load the WSI listener's certificate and key as it will (wsi/service.py), naming the
    key of a file that cannot be read instead of dying at start with a traceback."""
    server = settings.server
    if not server.tls_cert:  # the config loader wants both or neither
        return
    for key, path in (("tls_cert", server.tls_cert), ("tls_key", server.tls_key)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise click.ClickException(f"server.{key} = {path!r}: {exc.strerror}") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            server.tls_cert, server.tls_key
        )
    except (ssl.SSLError, OSError) as exc:
        raise click.ClickException(
            f"server.tls_cert = {server.tls_cert!r}, server.tls_key = {server.tls_key!r}:"
            f" not a PEM certificate and its private key ({exc})"
        ) from None


@main.command("check-config")
@config_option
def check_config(config_path: str | None) -> None:
    """Validate the config file (and CALLHOOK_* overrides); exit 1 with the reason if bad."""
    settings = load_settings(config_path)
    _check_admin_key(settings)
    n_ext = sum(len(t.extension) for t in settings.tenant)
    counts = f"{_plural(len(settings.tenant), 'tenant')}, {_plural(n_ext, 'extension')}"
    if config_path is None and not Path(DEFAULT_CONFIG).exists():
        click.echo(
            f"no {DEFAULT_CONFIG} here; the defaults and CALLHOOK_* overrides: ok ({counts})"
        )
    else:
        click.echo(f"{config_path or DEFAULT_CONFIG}: ok ({counts})")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@config_option
def db_upgrade(config_path: str | None) -> None:
    """Apply pending schema migrations."""
    applied = _open_database(load_settings(config_path))
    click.echo(f"applied migrations {applied}" if applied else "database is up to date")


@db.command("migrate-sqlite-to-postgres")
@click.argument("src")
@click.argument("dst")
def db_migrate_sqlite_to_postgres(src: str, dst: str) -> None:
    """Copy a SQLite hub's data (SRC: sqlite:///PATH) into an empty PostgreSQL database
    (DST: postgresql://USER:PASSWORD@HOST/DB). Stop the hub first."""
    from callhook.store import StoreError, scheme
    from callhook.store.copy import copy_database

    if scheme(src) != "sqlite" or scheme(dst) not in ("postgresql", "postgres"):
        raise click.ClickException("usage: SRC is sqlite:///PATH, DST is postgresql://...")
    if not Path(src.removeprefix("sqlite:///")).exists():
        raise click.ClickException(f"no SQLite database at {src.removeprefix('sqlite:///')}")
    try:
        copied = copy_database(src, dst)
    except StoreError as exc:
        raise click.ClickException(" ".join(str(exc).split())) from None
    except Exception as exc:  # the driver's own errors: one line, no password
        raise click.ClickException(
            f"copy failed, nothing copied: {' '.join(str(exc).split())}"
        ) from None
    total = sum(copied.values())
    click.echo(f"copied {total} rows into {config.redact_url(dst)}:")
    for table, n in copied.items():
        click.echo(f"  {table}: {n}")
    click.echo("now set [server] database to that URL and start the hub")


main.add_command(simulate)
main.add_command(tail)
main.add_command(phone_urls_command)
main.add_command(keys)
main.add_command(tenants)
main.add_command(demo)
main.add_command(kamailio_config)
main.add_command(cluster)
main.add_command(reload)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
