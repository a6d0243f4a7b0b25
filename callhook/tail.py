"""`callhook tail`: subscribe over WSI and print events as they happen (docs/wsi.md)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from typing import Any

import click
import orjson

from callhook.cli_admin import config_option

_STYLE = {
    "extension_events": "cyan",
    "cdr_events": "magenta",
    "queue_events": "yellow",
    "trunk_events": "green",
    "device_events": "blue",
}


def _summary(ev: dict[str, Any]) -> str:
    """The fields a person watching calls wants, in one line."""
    parts = []
    for field in ("extension", "aor", "caller", "callee", "call_target", "queue", "trunk"):
        value = ev.get(field)
        if value:
            parts.append(f"{field}={value}")
    for field in ("status", "reason", "fail_code", "end_reason", "talk_seconds"):
        if ev.get(field) not in (None, ""):
            parts.append(f"{field}={ev[field]}")
    if ev.get("session_id"):
        parts.append(f"session={ev['session_id']}")
    return " ".join(parts)


def _check_choices(topics: tuple[str, ...], keys: tuple[str, ...]) -> None:
    """Unknown topics and keys are usage errors, before anything else happens."""
    from callhook.events import KEY_TOPIC, TOPICS

    for topic in topics:
        if topic not in TOPICS:
            raise click.UsageError(f"unknown topic {topic!r} (topics: {', '.join(TOPICS)})")
    for key in keys:
        if key not in KEY_TOPIC:
            raise click.UsageError(
                f"unknown key {key!r}; keys are listed in docs/wsi.md, e.g. call_start, call_cdr"
            )


def _defaults(
    settings: Any, url: str | None, tenant: str | None, extension: str | None
) -> tuple[str, str | None, str | None]:
    """(url, tenant, password) filled in from the config file, where it has them."""
    if url is None:
        listen = settings.server.wsi_listen or ""
        host, _, port = listen.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = "127.0.0.1"
        scheme = "wss" if settings.server.tls_cert else "ws"
        url = f"{scheme}://{host}:{port}/" if listen else "ws://127.0.0.1:8885/"
    declared = {t.name: t for t in settings.tenant}
    if tenant is None and len(declared) == 1:
        tenant = next(iter(declared))
    password = None
    found = declared.get(tenant or "")
    if found is not None:
        if extension is None:
            password = found.password or None
        else:
            ext = next((e for e in found.extension if e.number == extension), None)
            password = (ext.password or None) if ext is not None else None
    return url, tenant, password


@click.command("tail")
@config_option
@click.option("--url", help="WSI URL [default: the config's wsi_listen, else ws://127.0.0.1:8885/]")
@click.option("--tenant", help="Tenant to log in as [default: the config's only tenant].")
@click.option("--extension", help="Extension to log in as.")
@click.option(
    "--password", help="Tenant or extension password [default: from the config, else asked]."
)
@click.option("--domain", help="SIP domain of the extension (default: the tenant name).")
@click.option("--topic", "topics", multiple=True, help="Topic to follow (repeatable).")
@click.option("--key", "keys", multiple=True, help="Event key to follow (repeatable).")
@click.option("--ext", "exts", multiple=True, help="Only these extensions (repeatable).")
@click.option("--queue", "queues", multiple=True, help="Only these queues (repeatable).")
@click.option("--since-seq", type=click.IntRange(min=0), help="Replay events after this seq.")
@click.option("--snapshot", is_flag=True, help="Print current presence and calls first.")
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many events.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Exit 1 when the hub cannot be reached for this long (0: keep trying).",
)
@click.option("--insecure", is_flag=True, help="wss:// without certificate checks.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def tail(
    config_path: str | None,
    url: str | None,
    tenant: str | None,
    extension: str | None,
    password: str | None,
    domain: str | None,
    topics: tuple[str, ...],
    keys: tuple[str, ...],
    exts: tuple[str, ...],
    queues: tuple[str, ...],
    since_seq: int | None,
    snapshot: bool,
    count: int | None,
    timeout: float,
    insecure: bool,
    as_json: bool,
) -> None:
    """Subscribe to a hub's events and print them; reconnects and resumes by itself.

    The URL, tenant and password default to what the config file (`--config`, else
    ./callhook.toml) says, as `phone-urls` does.
    """
    from callhook.cli_admin import load_settings
    from callhook.client import WsiClient, WsiError, WsiUnreachable, topics_for

    _check_choices(topics, keys)
    url, tenant, configured = _defaults(load_settings(config_path), url, tenant, extension)
    if not tenant and not extension:
        raise click.UsageError("give --tenant, --extension, or both")
    if password is None:
        password = configured or click.prompt("Password", hide_input=True)
    ctx: ssl.SSLContext | None = None
    if url.startswith("wss://") and insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    said: list[str] = []

    def retrying(exc: BaseException, delay: float) -> None:
        if not said:  # one line per outage, not one per attempt
            said.append(str(exc))
            limit = f", giving up after {timeout:.0f} s" if timeout else ""
            click.echo(
                f"cannot reach {url}: {exc or type(exc).__name__}; retrying{limit}", err=True
            )

    client = WsiClient(
        url,
        password=password,
        tenant=tenant,
        extension=extension,
        domain=domain,
        topics=topics_for(topics, keys, tenant=extension is None),
        extensions=list(exts) or None,
        queues=list(queues) or None,
        since_seq=since_seq,
        snapshot=snapshot,
        ssl_context=ctx,
        give_up_after=timeout or None,
        on_retry=retrying,
    )
    printer = _json_line if as_json else _pretty_printer()

    async def run() -> None:
        seen = 0
        waiting_for_snapshot = snapshot  # --count never cuts the asked-for snapshot off
        events = client.events()
        try:
            async for ev in events:
                if said:
                    click.echo(f"connected to {url}", err=True)
                    said.clear()
                printer(ev)
                if ev.get("event_type") == "snapshot":
                    waiting_for_snapshot = False
                elif "seq" in ev:
                    seen += 1
                if count is not None and seen >= count and not waiting_for_snapshot:
                    return
        finally:
            await events.aclose()
            await client.close()

    try:
        asyncio.run(run())
    except (WsiError, WsiUnreachable) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            sys.stdout.flush()


def _json_line(ev: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(ev) + b"\n")
    sys.stdout.flush()


def _pretty_printer() -> Any:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)

    def show(ev: dict[str, Any]) -> None:
        if ev.get("event_type") == "snapshot":
            for line in snapshot_lines(ev):
                console.print(escape(line), soft_wrap=True)
            return
        topic = str(ev.get("topic", ""))
        style = _STYLE.get(topic, "white")
        seq = ev.get("seq", ev.get("as_of_seq", ""))
        key = escape(str(ev.get("event_type", "")))
        console.print(
            f"[dim]{seq!s:>7}[/] [{style}]{key:<20}[/] {escape(_summary(ev))}", soft_wrap=True
        )

    return show


def snapshot_lines(snap: dict[str, Any]) -> list[str]:
    """A snapshot message as lines a person reads: presence, then active calls."""
    presence = snap.get("presence") or []
    calls = snap.get("active_calls") or []
    lines = [
        f"snapshot as of seq {snap.get('as_of_seq', '?')}:"
        f" {len(presence)} extensions, {len(calls)} active calls"
    ]
    for p in presence:
        flags = [str(p.get("status", ""))]
        flags += [name for name in ("dnd", "forward", "ringing") if p.get(name)]
        if p.get("registered"):
            flags.append("registered")
        lines.append(f"  {p.get('extension', '?'):>8} {' '.join(f for f in flags if f)}")
    for c in calls:
        lines.append(f"  call {_summary(c)}")
    return lines
