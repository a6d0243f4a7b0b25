"""`callhook demo`: a throwaway hub with a demo tenant and simulated phones making calls.

It writes a config with fresh secrets into a temporary directory (or `--dir`), runs the
hub in this process, waits until it is ready, prints where to look (dashboard, WSI, a
ready `callhook tail` command), then keeps simulated phones calling through it
(`callhook.simulate`) until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from callhook import config, invocation, security

NAMES = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(wanted: int) -> int:
    """`wanted` if free, else any free port (the demo should just start)."""
    if wanted and _free(wanted):
        return wanted
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(workdir: Path, port: int, wsi_port: int, phones: int) -> tuple[str, dict[str, str]]:
    """The demo's config file text, and the secrets it holds."""
    secrets_ = {
        "admin_key": secrets.token_urlsafe(18),
        "tenant_password": secrets.token_urlsafe(9),
        "ingest_token": security.new_ingest_token("demo-"),
    }
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        f'wsi_listen = "127.0.0.1:{wsi_port}"',
        f'database = "sqlite:///{workdir / "callhook.db"}"',
        f'admin_key = "{secrets_["admin_key"]}"',
        'durability = "normal"',
        'log_level = "warning"',
        "",
        "[[tenant]]",
        'name = "demo"',
        f'password = "{secrets_["tenant_password"]}"',
        'domain = "demo.example.com"',
        f'ingest_token = "{secrets_["ingest_token"]}"',
    ]
    for i in range(phones):
        lines += [
            "",
            "[[tenant.extension]]",
            f'number = "{101 + i}"',
            f'password = "{secrets_["tenant_password"]}-{101 + i}"',
            f'display_name = "{NAMES[i % len(NAMES)]}"',
            f'groups = ["{"sales" if i % 2 == 0 else "support"}"]',
        ]
    members = ", ".join(f'"{101 + i}"' for i in range(min(phones, 4)))
    lines += ["", "[[tenant.queue]]", 'number = "8001"', f"members = [{members}]", ""]
    return "\n".join(lines), secrets_


def _ready(base: str) -> bool:
    import urllib.request  # imported here: it costs CLI start-up ~50 ms

    try:
        with urllib.request.urlopen(base + "/readyz", timeout=1) as r:
            return int(r.status) == 200
    except OSError:
        return False


async def _wait_ready(base: str, server: asyncio.Task[None], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.done():
            server.result()  # re-raises why the hub stopped
            raise click.ClickException("the hub stopped during start")
        if await asyncio.to_thread(_ready, base):
            return
        await asyncio.sleep(0.1)
    raise click.ClickException(f"the hub was not ready after {within:.0f} s")


async def _simulate(
    base: str,
    token: str,
    phones: int,
    calls: int | None,
    rate: float,
    speed: float,
    echo: Callable[[str], None],
) -> None:
    from callhook.simulate import SimulationError, run_simulation

    done, seed = 0, 1
    while calls is None or done < calls:
        batch = 20 if calls is None else min(20, calls - done)
        try:
            result = await run_simulation(
                base, token, phones=phones, calls=batch, rate=rate, speed=speed, seed=seed
            )
        except SimulationError as exc:
            echo(f"simulation stopped: {exc}")
            return
        done += batch
        seed += 1
        echo(f"  simulated {done} calls ({result.requests} phone requests, {result.failed} failed)")
    echo("  simulation finished; the hub keeps running (Ctrl-C to stop)")


async def run_demo(
    workdir: Path,
    port: int,
    wsi_port: int,
    phones: int,
    calls: int | None,
    rate: float,
    speed: float,
) -> None:
    from callhook.ops import setup_logging
    from callhook.server import serve

    text, keys = demo_config(workdir, port, wsi_port, phones)
    cfg_path = workdir / "callhook.toml"
    cfg_path.write_text(text, encoding="utf-8")
    settings = config.load(cfg_path)
    setup_logging(settings.server.log_level, settings.server.log_format)
    base = f"http://127.0.0.1:{port}"
    server = asyncio.create_task(serve(settings))
    await _wait_ready(base, server)
    tail = (
        invocation.command()
        + " "
        + shlex.join(
            [
                "tail",
                "--url",
                f"ws://127.0.0.1:{wsi_port}/",
                "--tenant",
                "demo",
                "--password",
                keys["tenant_password"],
            ]
        )
    )
    auth = f"Authorization: Bearer {keys['admin_key']}"
    for line in (
        f"callhook demo: a hub with tenant 'demo' and {phones} simulated phones ({workdir})",
        f"  dashboard:  {base}/",
        f"  REST API:   {base}/docs   ({auth})",
        f"  WSI:        ws://127.0.0.1:{wsi_port}/  (tenant demo, password "
        f"{keys['tenant_password']})",
        f"  follow it:  {tail}",
        f"  events:     curl -H '{auth}' {base}/api/v1/tenants/demo/events",
        "  Ctrl-C stops the demo.",
    ):
        click.echo(line)
    sim = asyncio.create_task(
        _simulate(base, keys["ingest_token"], phones, calls, rate, speed, click.echo)
    )
    try:
        await server  # returns after SIGINT/SIGTERM, once the hub has shut down
    finally:
        sim.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim


@click.command("demo")
@click.option("--port", default=8080, show_default=True, help="HTTP port (a free one if taken).")
@click.option("--wsi-port", default=8885, show_default=True, help="WSI port (a free one if taken).")
@click.option("--phones", type=click.IntRange(2, 50), default=6, show_default=True)
@click.option("--calls", type=click.IntRange(min=1), help="Stop simulating after this many calls.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.01),
    default=0.5,
    show_default=True,
    help="New calls per second.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1),
    default=20.0,
    show_default=True,
    help="Simulated seconds per second.",
)
@click.option(
    "--dir", "workdir", type=click.Path(file_okay=False), help="Keep config and data here."
)
def demo(
    port: int,
    wsi_port: int,
    phones: int,
    calls: int | None,
    rate: float,
    speed: float,
    workdir: str | None,
) -> None:
    """Run a demo hub with simulated phones making calls (for a first look)."""
    chosen = pick_port(port), pick_port(wsi_port)
    for name, wanted, got in (("port", port, chosen[0]), ("WSI port", wsi_port, chosen[1])):
        if wanted and got != wanted:
            click.echo(f"{name} {wanted} is taken: the demo uses {got} instead")
    port, wsi_port = chosen
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="callhook-demo-"))
        Path(workdir).mkdir(parents=True, exist_ok=True)
        try:
            asyncio.run(
                run_demo(Path(workdir).resolve(), port, wsi_port, phones, calls, rate, speed)
            )
        except KeyboardInterrupt:
            pass
        except config.ConfigError as exc:
            raise click.ClickException(f"config error: {exc}") from None
    sys.stdout.flush()
