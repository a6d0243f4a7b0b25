"""`callhook reload`: make the running node of this config apply its file again."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import click

from callhook.cli_admin import config_option, load_settings
from callhook.config import Settings


def _base(settings: Settings) -> str:
    """The node's own API, from this machine (a wildcard listen address is reached on
    loopback)."""
    host, _, port = settings.server.listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


@click.command("reload")
@config_option
def reload(config_path: str | None) -> None:
    """Apply the config file's tenants to the running node now (as `kill -HUP`); in a
    cluster every node sees them within a second. A bad file changes nothing."""
    settings = load_settings(config_path)  # a file that does not load: said here, at once
    url = _base(settings) + "/api/v1/config/reload"
    req = urllib.request.Request(url, data=b"", method="POST")
    req.add_header("Authorization", f"Bearer {settings.server.admin_key}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            done = json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise click.ClickException(message) from None
    except OSError as exc:
        raise click.ClickException(f"no node answers at {url}: {exc}") from None
    changes = [f"{what} {', '.join(done[what])}" for what in
               ("added", "changed", "removed", "detached") if done.get(what)]  # fmt: skip
    click.echo("reloaded: " + ("; ".join(changes) if changes else "no change"))
    for section in done.get("restart_needed", []):
        click.echo(f"  note: [{section}] changed; it takes effect at the next restart")
