"""Run a Hub behind uvicorn until a signal, then shut down in order (uvicorn's way)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

import uvicorn

from callhook import traffic_log
from callhook.app import Hub
from callhook.config import ConfigError, Settings
from callhook.connections import raise_file_limit
from callhook.http_protocol import Guard
from callhook.ingest import fastpath
from callhook.listeners import bind_all, host_port

log = logging.getLogger("callhook")


class _Server(uvicorn.Server):
    """uvicorn's Server, except that it does not re-raise SIGINT/SIGTERM after shutting
    down: a re-raised SIGTERM kills the process before `Hub.stop()` drains and closes."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


async def serve(
    settings: Settings,
    *,
    fast_ingest: bool = True,
    on_started: Callable[[], None] | None = None,
    config_path: str | None = None,
) -> None:
    """Start the hub and its listeners; return after a clean shutdown (SIGINT/SIGTERM).

    Both ports are bound first: one in use stops the start with a StartupError naming the
    setting, before anything else has started. `on_started` runs once everything has
    (the CLI prints its banner there).

    `config_path`: the file SIGHUP (and `POST /api/v1/config/reload`) reads again
    (callhook/reload.py); None: ./callhook.toml if there is one.

    `fast_ingest`: phone GETs are answered on uvicorn's own protocol, without an ASGI task
    per request (ingest/fastpath.py); False serves them through ASGI, as on a uvicorn
    without the hook.
    """
    nofile = raise_file_limit()
    sockets = bind_all(settings)
    try:
        hub = Hub(settings, config_path)
        hub.connections.cap_to_file_limit(nofile)
        await hub.start(sockets.wsi)
    except BaseException:
        sockets.close()
        raise
    host, port = host_port(settings.server.listen)
    c = settings.connections
    guard = Guard(
        hub.connections,
        c.max_header_bytes,
        c.header_timeout,
        c.body_timeout,
        c.send_timeout,
        websocket=hub.wsi.upgraded,  # `/ws`: the WSI listener's own protocol
    )
    fast = fast_ingest and fastpath.AVAILABLE
    hub.metrics.fast_path.set(1 if fast else 0)
    if not fast:
        why = "switched off" if not fast_ingest else "this uvicorn has no _start_asgi_task"
        log.warning(
            "phone fast path off (%s): phones are served through ASGI, same answers, about"
            " a third more CPU each",
            why,
            extra={"uvicorn": uvicorn.__version__},
        )
    http = fastpath.protocol_for(hub.ingest, guard) if fast else fastpath.plain_protocol(guard)
    config = uvicorn.Config(
        hub.asgi,
        host=host,
        port=port,
        loop="none",
        interface="asgi3",  # a bound method: uvicorn's auto-detection would pick asgi2
        http=http,
        ws="websockets-sansio",
        ws_max_size=1024 * 1024,  # `/ws`: WSI commands are small (64 KiB answered with an error)
        ws_per_message_deflate=False,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # trusted_proxies is ours to apply, not every peer's header
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    addresses = traffic_log.addresses(settings)
    traffic_log.started(
        addresses,
        file_limit=nofile,
        max_connections=hub.connections.max_open,
        fast_path=fast,
    )
    if on_started is not None:
        on_started()
    reload_on_sighup(hub)
    try:
        await server.serve(sockets=[sockets.main])
    finally:
        await hub.stop()
        traffic_log.stopped(addresses)


def reload_on_sighup(hub: Hub) -> None:
    """SIGHUP: reload the config file (a bad one is logged and changes nothing)."""
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[object]] = set()

    async def reload() -> None:
        try:
            await hub.reload_config()
        except ConfigError:
            pass  # logged by the reload, with the reason
        except Exception:
            log.exception("config reload failed; the node goes on with what it had")

    def on_signal() -> None:
        task: asyncio.Task[object] = loop.create_task(reload())
        running.add(task)
        task.add_done_callback(running.discard)

    if threading.current_thread() is threading.main_thread():
        loop.add_signal_handler(signal.SIGHUP, on_signal)


def run(
    settings: Settings,
    on_started: Callable[[], None] | None = None,
    config_path: str | None = None,
) -> None:
    main = serve(settings, on_started=on_started, config_path=config_path)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(main)
    else:
        uvloop.run(main)
