"""A Python client for callhook's WSI pub/sub: connect, auth, subscribe, iterate events.

    async with WsiClient("ws://127.0.0.1:8885/", tenant="acme", password="...") as client:
        async for event in client:
            print(event["seq"], event["event_type"])

It reconnects with capped, jittered exponential backoff and resumes from the last `seq` it
yielded (`since_seq`), so a dropped connection or a slow-consumer disconnect loses nothing
and repeats nothing. Credentials or subscriptions the server refuses are not retried.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from callhook.events import KEY_TOPIC, TOPICS

Topics = Mapping[str, Sequence[str]]


class Backoff:
    """Capped, jittered, exponential pauses between connection attempts.

    A connection that stayed up `stable` seconds (by default the longest pause) starts the
    series again; one dropped sooner does not. Starting again at every successful
    subscription, as this client did, let a hub or a proxy that accepts and then closes at
    once (a restart loop, an idle timeout set too short) be reconnected to at the shortest
    pause for ever, by every client at once.
    """

    def __init__(self, low: float, cap: float, stable: float | None = None) -> None:
        self.low = low
        self.cap = cap
        self.stable = cap if stable is None else stable
        self.failures = 0
        self._up_since: float | None = None

    def connected(self, now: float) -> None:
        """A connection is up (subscribed) since `now`."""
        self._up_since = now

    def pause(self, now: float) -> float:
        """Seconds to wait before the next attempt, after a failure at `now`."""
        if self._up_since is not None and now - self._up_since >= self.stable:
            self.failures = 0
        self._up_since = None
        self.failures += 1
        step = min(self.cap, self.low * 2.0 ** min(self.failures - 1, 16))
        return step * random.uniform(0.5, 1.0)


class WsiUnreachable(Exception):
    """No connection to the hub for `give_up_after` seconds."""


class WsiError(Exception):
    """The server answered a command with `status: -1` (not retried)."""

    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"{command} refused: {error}")
        self.command = command
        self.error = error


def topics_for(
    topics: Sequence[str] = (), keys: Sequence[str] = (), *, tenant: bool = True
) -> Topics:
    """`--topic`/`--key` style choices -> {topic: keys}; keys alone imply their topics.

    Nothing chosen means every topic the account may follow.
    """
    out: dict[str, list[str]] = {t: [] for t in topics}
    for key in keys:
        out.setdefault(KEY_TOPIC.get(key, key), []).append(key)
    if not out:
        out = {t: [] for t in TOPICS if tenant or t not in ("trunk_events", "webhook_events")}
    return out


class WsiClient:
    """One logical subscription that survives reconnects."""

    def __init__(
        self,
        url: str,
        *,
        password: str,
        tenant: str | None = None,
        extension: str | None = None,
        domain: str | None = None,
        topics: Topics | None = None,
        extensions: Sequence[str] | None = None,
        queues: Sequence[str] | None = None,
        since_seq: int | None = None,
        snapshot: bool = False,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.2, 30.0),
        ssl_context: ssl.SSLContext | None = None,
        give_up_after: float | None = None,
        on_retry: Callable[[BaseException, float], None] | None = None,
    ) -> None:
        """`give_up_after`: raise WsiUnreachable after that many seconds without a
        connection (None: retry for ever); `on_retry(error, delay)` is told each retry."""
        if tenant is None and extension is None:
            raise ValueError("give a tenant, an extension, or both (the tenant as its domain)")
        self.url = url
        self._auth: dict[str, Any] = {"command": "auth", "password": password}
        if extension is not None:
            self._auth.update(extension=extension, domain=domain or tenant or "")
        else:
            self._auth["name"] = tenant
        self.topics = topics or topics_for(tenant=extension is None)
        self.extensions = extensions
        self.queues = queues
        self.last_seq = since_seq
        self.snapshot = snapshot
        self.reconnect = reconnect
        self.backoff = backoff
        self.ssl_context = ssl_context
        self.give_up_after = give_up_after
        self.on_retry = on_retry
        self.connects = 0  # successful subscriptions so far (1 + reconnects)
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> WsiClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self.events()

    def _subscribe_command(self) -> dict[str, Any]:
        cmd: dict[str, Any] = {
            "command": "subscribe",
            "topics": [{"topic": t, "keys": list(k)} for t, k in self.topics.items()],
        }
        if self.extensions is not None:
            cmd["extensions"] = list(self.extensions)
        if self.queues is not None:
            cmd["queues"] = list(self.queues)
        if self.last_seq is not None:
            cmd["since_seq"] = self.last_seq
        if self.snapshot and self.connects == 0:
            cmd["snapshot"] = True
        return cmd

    async def _command(self, ws: ClientConnection, cmd: dict[str, Any]) -> None:
        await ws.send(orjson.dumps(cmd).decode())
        reply = orjson.loads(await ws.recv())
        if reply.get("status") != 0:
            raise WsiError(str(cmd["command"]), str(reply.get("error", "")))

    async def events(self) -> AsyncGenerator[dict[str, Any], None]:
        """Events (and a snapshot message if asked), each once, in order, across reconnects."""
        backoff = Backoff(*self.backoff)
        down_since = time.monotonic()
        while True:
            try:
                async with connect(
                    self.url,
                    ssl=self.ssl_context,
                    compression=None,
                    max_size=None,
                    open_timeout=10,
                    close_timeout=2,  # a client that is done does not wait 10 s to exit
                ) as ws:
                    self._ws = ws
                    await self._command(ws, self._auth)
                    await self._command(ws, self._subscribe_command())
                    self.connects += 1
                    backoff.connected(time.monotonic())
                    down_since = 0.0
                    async for raw in ws:
                        msg = orjson.loads(raw)
                        seq = msg.get("seq")
                        if isinstance(seq, int) and "event_type" in msg:
                            if self.last_seq is not None and seq <= self.last_seq:
                                continue  # already yielded before a reconnect
                            self.last_seq = seq
                        yield msg
                    # Closed cleanly by the hub (shutting down) or a proxy: a drop like any
                    # other, told to on_retry and waited for (a peer closing every
                    # connection at once must not get a reconnect loop without pause).
                    why = f"{ws.close_code} {ws.close_reason or ''}".strip()
                    raise ConnectionError(f"the hub closed the connection ({why})")
            except (ConnectionClosed, OSError, TimeoutError, InvalidHandshake) as exc:
                if not self.reconnect:
                    raise
                now = time.monotonic()
                down_since = down_since or now
                if self.give_up_after is not None and now - down_since >= self.give_up_after:
                    raise WsiUnreachable(
                        f"no hub at {self.url} for {now - down_since:.0f} s: {exc}"
                    ) from None
                delay = backoff.pause(now)
                if self.give_up_after is not None:
                    delay = min(delay, max(0.05, down_since + self.give_up_after - now))
                if self.on_retry is not None:
                    self.on_retry(exc, delay)
                await asyncio.sleep(delay)
            finally:
                self._ws = None
