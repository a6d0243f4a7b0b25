"""`callhook tail`: subscribe over WSI and print events as they happen (docs/wsi.md)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from typing import Any

import click
import orjson

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


@click.command("tail")
@click.option("--url", default="ws://127.0.0.1:8885/", show_default=True, help="WSI URL.")
@click.option("--tenant", help="Tenant to log in as (or the extension's tenant).")
@click.option("--extension", help="Extension to log in as.")
@click.option("--password", prompt=True, hide_input=True, help="Tenant or extension password.")
@click.option("--domain", help="SIP domain of the extension (default: the tenant name).")
@click.option("--topic", "topics", multiple=True, help="Topic to follow (repeatable).")
@click.option("--key", "keys", multiple=True, help="Event key to follow (repeatable).")
@click.option("--ext", "exts", multiple=True, help="Only these extensions (repeatable).")
@click.option("--queue", "queues", multiple=True, help="Only these queues (repeatable).")
@click.option("--since-seq", type=click.IntRange(min=0), help="Replay events after this seq.")
@click.option("--snapshot", is_flag=True, help="Print current presence and calls first.")
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many events.")
@click.option("--insecure", is_flag=True, help="wss:// without certificate checks.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def tail(
    url: str,
    tenant: str | None,
    extension: str | None,
    password: str,
    domain: str | None,
    topics: tuple[str, ...],
    keys: tuple[str, ...],
    exts: tuple[str, ...],
    queues: tuple[str, ...],
    since_seq: int | None,
    snapshot: bool,
    count: int | None,
    insecure: bool,
    as_json: bool,
) -> None:
    """Subscribe to a hub's events and print them; reconnects and resumes by itself."""
    from callhook.client import WsiClient, WsiError, topics_for

    if not tenant and not extension:
        raise click.UsageError("give --tenant, --extension, or both")
    ctx: ssl.SSLContext | None = None
    if url.startswith("wss://") and insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
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
    )
    printer = _json_line if as_json else _pretty_printer()

    async def run() -> None:
        seen = 0
        async with client:
            async for ev in client:
                printer(ev)
                seen += "seq" in ev
                if count is not None and seen >= count:
                    return

    try:
        asyncio.run(run())
    except WsiError as exc:
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
        topic = str(ev.get("topic", ""))
        style = _STYLE.get(topic, "white")
        seq = ev.get("seq", ev.get("as_of_seq", ""))
        key = escape(str(ev.get("event_type", "")))
        console.print(
            f"[dim]{seq!s:>7}[/] [{style}]{key:<20}[/] {escape(_summary(ev))}", soft_wrap=True
        )

    return show
