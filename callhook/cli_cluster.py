"""`callhook cluster status`: the nodes sharing this config's database and Redis bus."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click

from callhook import config
from callhook.bus import clustered
from callhook.cli_admin import config_option, load_settings


@click.group()
def cluster() -> None:
    """Several nodes on one PostgreSQL database and one Redis (docs/scaling.md)."""


@cluster.command("status")
@config_option
def status(config_path: str | None) -> None:
    """List the nodes alive (heartbeat at most 5 s old) and how far behind each reads,
    who owns each partition (its lease in PostgreSQL) and its inbox entries waiting, and
    the webhook deliveries pending by the node holding them."""
    settings = load_settings(config_path)
    url = settings.server.bus
    if not clustered(url):
        click.echo('one node: [server] bus = "memory" (no cluster; docs/scaling.md)')
        return
    from redis.exceptions import RedisError

    try:
        nodes = asyncio.run(_nodes(url))
    except (RedisError, OSError) as exc:
        shown = config.redact_url(url)
        raise click.ClickException(f"server.bus = {shown!r}: cannot reach Redis: {exc}") from None
    if not nodes:
        click.echo("no node alive (no heartbeat in the last 5 s)")
    else:
        _show_nodes(nodes)
    from callhook.store import StoreError

    try:
        rows, lag = asyncio.run(_leases(settings.server.database, settings.cluster.lease_ttl))
        backlog = asyncio.run(_backlog(settings.server.database))
    except StoreError as exc:
        shown = config.redact_url(settings.server.database)
        raise click.ClickException(f"server.database = {shown!r}: {exc}") from None
    click.echo("")
    click.echo(f"{'partition':>9} {'owner':<32} {'epoch':>6} {'expires in':>10} {'inbox lag':>9}")
    for r in rows:
        owner = r.owner if r.expires_in > 0 else f"- (last: {r.owner or 'never owned'})"
        left = f"{r.expires_in:.1f}s" if r.expires_in > 0 else "free"
        behind = lag.get(r.partition, 0)
        click.echo(f"{r.partition:>9} {owner:<32} {r.epoch:>6} {left:>10} {behind:>9}")
    click.echo("")
    if not backlog:
        click.echo("no webhook delivery pending")
        return
    click.echo(f"{'deliveries held by':<32} {'pending':>8} {'due':>8} {'oldest due':>10}")
    for d in backlog:
        oldest = "-" if d["oldest_due_s"] is None else f"{d['oldest_due_s']:.1f}s"
        who = d["claimed_by"] or "(not claimed yet)"
        click.echo(f"{who:<32} {d['pending']:>8} {d['due']:>8} {oldest:>10}")


def _show_nodes(nodes: list[dict[str, Any]]) -> None:
    now = time.time()
    click.echo(f"{'node':<32} {'up':>8} {'seen':>6} {'bus':<5} {'lag ms':>7} {'unsent':>7}")
    for n in nodes:
        up = _age(now - float(n.get("started_at", now)))
        seen = f"{now - float(n.get('seen_at', now)):.1f}s"
        bus = "ok" if n.get("bus_connected") else "down"
        click.echo(
            f"{n.get('node_id')!s:<32} {up:>8} {seen:>6} {bus:<5}"
            f" {int(n.get('lag_ms', 0)):>7} {int(n.get('unsent', 0)):>7}"
        )


async def _leases(url: str, ttl: float) -> tuple[list[Any], dict[int, int]]:
    from callhook.store.postgres.leases import LeaseTable

    table = LeaseTable(url, timeout=5)
    try:
        rows, _ = await table.status(ttl)
        return rows, await table.inbox_lag()
    finally:
        await table.close()


async def _backlog(url: str) -> list[dict[str, Any]]:
    from callhook.store.postgres.claims import ClaimTable

    table = ClaimTable(url, "cluster-status", ttl=0, timeout=5)
    try:
        return await table.backlog(time.time())
    finally:
        await table.close()


async def _nodes(url: str) -> list[dict[str, Any]]:
    from redis.asyncio import Redis

    from callhook.bus.redis import read_nodes

    redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        return await read_nodes(redis)
    finally:
        await redis.aclose()


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h"
