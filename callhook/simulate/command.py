"""`callhook simulate`: the click command (registered in callhook.cli)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from callhook.cli_admin import config_option
from callhook.simulate.model import FLOWS


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[object], None] | None]:
    """A rich progress bar on stderr when it is a terminal; else no callback."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from callhook.simulate.runner import Progress as RunProgress

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("requests", total=None)

    def update(p: object) -> None:
        assert isinstance(p, RunProgress)
        label = f"requests ({p.errors} failed)" if p.errors else "requests"
        bar.update(task, completed=p.sent, total=p.total, description=label)

    with bar:
        yield update


@click.command("simulate")
@config_option
@click.option("--url", help="The hub [default: the config's listen, else http://127.0.0.1:8080].")
@click.option("--token", help="The tenant's ingest token [default: from the config file].")
@click.option("--tenant", help="Whose token to read from the config (if it declares several).")
@click.option("--phones", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--first-extension", type=click.IntRange(0), default=101, show_default=True)
@click.option("--calls", type=click.IntRange(0), default=100, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Wall seconds to run; sets --calls to rate x duration.",
)
@click.option(
    "--rate",
    type=click.FloatRange(0, min_open=True),
    default=5.0,
    show_default=True,
    help="New calls per wall-clock second.",
)
@click.option(
    "--speed",
    type=click.FloatRange(0, min_open=True),
    default=60.0,
    show_default=True,
    help="Time compression: simulated seconds per wall second (ring/talk scaled).",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--mix",
    default=None,
    help="Flow weights, e.g. inbound=3,missed=1 (flows not named: 0). Flows: "
    + ", ".join(FLOWS)
    + ". Default: a working day's mix with every flow.",
)
@click.option(
    "--vendors",
    default="grandstream",
    show_default=True,
    help="Dialects, comma-separated, given to phones in turn: grandstream, yealink, snom, fanvil.",
)
@click.option(
    "--min-ring",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="The hub's correlation.min_ring_seconds (wall): missed vs abandoned.",
)
@click.option(
    "--max-talk",
    type=click.FloatRange(4),
    default=900.0,
    show_default=True,
    help="Longest conversation, simulated seconds.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=10.0,
    show_default=True,
    help="Per-request timeout, seconds.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result (and every expected call) as JSON."
)
def simulate(
    config_path: str | None,
    url: str | None,
    token: str | None,
    tenant: str | None,
    phones: int,
    first_extension: int,
    calls: int,
    duration: float | None,
    rate: float,
    speed: float,
    seed: int,
    mix: str | None,
    vendors: str,
    min_ring: float,
    max_talk: float,
    timeout: float,
    as_json: bool,
) -> None:
    """Simulated phones sending real Action URL requests to a hub.

    The URL and token default to what the config file (`--config`, else ./callhook.toml)
    says, as `phone-urls` does.
    """
    from callhook.cli_admin import _token, load_settings
    from callhook.simulate.runner import SimulationError, run_simulation

    if url is None or token is None:
        settings = load_settings(config_path)
        if url is None:
            host, _, port = settings.server.listen.rpartition(":")
            if host in ("0.0.0.0", "::", "[::]", ""):
                host = "127.0.0.1"
            url = f"http://{host}:{port}"
        if token is None:
            token = _token(settings, tenant)[1]

    show_progress = not as_json and sys.stderr.isatty()
    try:
        with _progress(show_progress) as on_progress:
            result = asyncio.run(
                run_simulation(
                    url,
                    token,
                    phones=phones,
                    first_extension=first_extension,
                    calls=calls,
                    duration=duration,
                    rate=rate,
                    speed=speed,
                    seed=seed,
                    mix=mix,
                    vendors=[v.strip().lower() for v in vendors.split(",") if v.strip()],
                    min_ring=min_ring,
                    max_talk=max_talk,
                    request_timeout=timeout,
                    on_progress=on_progress,
                )
            )
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        from rich.console import Console

        from callhook.simulate.report import render

        render(result, Console())
    if result.failed:
        click.echo(f"{result.failed} of {result.requests} requests failed", err=True)
        sys.exit(1)
