"""The hub's listening sockets, bound before anything starts.

Binding first means a port in use (or an address the machine does not have) stops the
start with one line naming the setting, e.g.
`server.wsi_listen 127.0.0.1:8885: address already in use (...)`, before the banner is printed
and before the database, workers or listeners have started.

Each socket listens as soon as it is bound: with SO_REUSEADDR two processes may both
bind a port nobody listens on yet (two hubs started at the same moment), and the one to
listen second would otherwise find out only in the event loop, which leaves such a
server without its socket and no error (a hub that answers nothing).
"""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass

from callhook.config import Settings


class StartupError(Exception):
    """The hub cannot start; the message names the setting and says why, in one line."""


def host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


BACKLOG = 4096  # connections waiting to be accepted (the servers set theirs again)


def bind(setting: str, listen: str, *, reuse_port: bool = False) -> socket.socket:
    """A bound, listening TCP socket for `listen`, or StartupError naming it."""
    host, port = host_port(listen)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise StartupError(f"{setting} {listen}: {(exc.strerror or str(exc)).lower()}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # `serve --workers N`: the kernel spreads connections over them
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        if exc.errno == errno.EADDRINUSE:  # the commonest first-start surprise: say what to do
            section, _, key = setting.partition(".")
            env = f"CALLHOOK_{section}_{key}".upper()
            reason += (
                f" (another program, or a hub already running, listens there: stop it, or"
                f' set {key} = "HOST:PORT" under [{section}] in the config file, or {env})'
            )
        raise StartupError(f"{setting} {listen}: {reason}") from None
    return sock


@dataclass
class Sockets:
    """The main port's socket and the WSI listener's (None when `wsi_listen` is "")."""

    main: socket.socket
    wsi: socket.socket | None

    def close(self) -> None:
        for sock in (self.main, self.wsi):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


def bind_all(settings: Settings) -> Sockets:
    shared = settings.server.workers > 1
    main = bind("server.listen", settings.server.listen, reuse_port=shared)
    wsi = None
    if settings.server.wsi_listen:
        try:
            wsi = bind("server.wsi_listen", settings.server.wsi_listen, reuse_port=shared)
        except StartupError:
            main.close()
            raise
    return Sockets(main, wsi)
