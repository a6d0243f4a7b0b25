"""What the hub tells its operator about traffic: phone requests, failed logins, start and stop.

Every line is one message plus structured fields (`extra`), so the JSON format and the
readable terminal format (callhook/ops.py) carry the same facts. Levels:

- `info`: a phone request refused (unknown token, no token, unreadable URL) or carrying an
  event name callhook does not know: the operator has a misconfigured phone to fix;
- `debug`: every accepted phone request (a busy hub takes thousands a minute);
- `warning`: a failed API or WSI login (someone holds a wrong or stolen secret);
- `info`: the hub started (with every address it listens on) and stopped.

A phone with a wrong token repeats it on every call, and a scanner can send thousands of
bad requests a second, so refusals and failed logins are rate-limited: one line per kind,
source address and reason per `per_source` seconds, and at most `burst` lines per kind per
`window` seconds. What was held back is counted in the next line's `suppressed` field.
Secrets (ingest tokens, keys, passwords) are never logged; neither is the request path,
which holds the token.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from callhook.config import redact_url

if TYPE_CHECKING:
    from callhook.config import Settings

phone_log = logging.getLogger("callhook.ingest")
auth_log = logging.getLogger("callhook.auth")
hub_log = logging.getLogger("callhook")

_MAX_SOURCES = 4096  # remembered (kind, source, reason) triples; the oldest go first


class RateLimiter:
    """Decides which of many similar log lines to write; pure apart from its clock."""

    def __init__(
        self,
        *,
        burst: int = 20,
        window: float = 10.0,
        per_source: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.window, self.per_source, self.clock = burst, window, per_source, clock
        self._recent: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._window_start: dict[str, float] = {}
        self._in_window: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, kind: str, source: str, reason: str) -> int | None:
        """None to hold the line back; else how many lines of `kind` were held back before."""
        now = self.clock()
        key = (kind, source, reason)
        last = self._recent.get(key)
        if last is not None and now - last < self.per_source:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        if now - self._window_start.get(kind, -self.window) >= self.window:
            self._window_start[kind] = now
            self._in_window[kind] = 0
        if self._in_window[kind] >= self.burst:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        self._in_window[kind] += 1
        self._recent[key] = now
        self._recent.move_to_end(key)
        while len(self._recent) > _MAX_SOURCES:
            self._recent.popitem(last=False)
        return self._suppressed.pop(kind, 0)


class TrafficLog:
    """The hub's traffic log lines; one per hub (its rate limits are the hub's)."""

    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self.limiter = limiter or RateLimiter()

    def _limited(
        self, logger: logging.Logger, level: int, kind: str, msg: str, fields: dict[str, Any]
    ) -> None:
        if not logger.isEnabledFor(level):
            return
        held = self.limiter.allow(kind, str(fields.get("source_ip", "")), str(fields["reason"]))
        if held is None:
            return
        if held:
            fields["suppressed"] = held
        logger.log(level, msg, extra=fields)

    def phone_refused(self, source_ip: str, status: int, reason: str, **fields: Any) -> None:
        """A phone request answered 4xx: unknown token, no token, unreadable or too long."""
        fields.update(source_ip=source_ip, status=status, reason=reason)
        self._limited(phone_log, logging.INFO, "phone-refused", "phone request refused", fields)

    def phone_unknown_event(self, source_ip: str, tenant: str, event_name: str) -> None:
        """A phone request stored raw because its event name is unknown (answered 202)."""
        fields = {
            "source_ip": source_ip,
            "tenant": tenant,
            "event_name": event_name[:64],
            "reason": "unknown-event:" + event_name[:64],
        }
        self._limited(
            phone_log, logging.INFO, "phone-unknown-event", "unknown phone event name", fields
        )

    def phone_accepted(self, source_ip: str, tenant: str, event: str, **fields: Any) -> None:
        """Every accepted phone request, at debug (not rate-limited: debug is asked for)."""
        if phone_log.isEnabledFor(logging.DEBUG):
            fields.update(source_ip=source_ip, tenant=tenant, event=event)
            phone_log.debug("phone request accepted", extra=fields)

    def login_failed(self, via: str, source_ip: str, reason: str, **fields: Any) -> None:
        """A failed API key or WSI login (`via`: "api", "wsi"); never the secret tried."""
        fields.update(via=via, source_ip=source_ip, reason=reason)
        self._limited(auth_log, logging.WARNING, "login-failed", "login failed", fields)


def addresses(settings: Settings) -> dict[str, str]:
    """The addresses the start and stop lines name: listeners, public URL, database."""
    server = settings.server
    out = {"listen": server.listen, "wsi_listen": server.wsi_listen or "off"}
    if server.public_url:
        out["public_url"] = server.public_url
    out["database"] = str(redact_url(server.database))  # a PostgreSQL URL may hold a password
    return out


def started(addresses: dict[str, str], **fields: Any) -> None:
    """The start line: every address the hub listens on (`{"listen": "127.0.0.1:8080"}`)."""
    hub_log.info("callhook started", extra={**addresses, **fields})


def stopped(addresses: dict[str, str], **fields: Any) -> None:
    """The last line of a clean shutdown."""
    hub_log.info("callhook stopped", extra={**addresses, **fields})
