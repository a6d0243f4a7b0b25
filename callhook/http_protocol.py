"""The main port's HTTP protocol: uvicorn's httptools protocol, bounded and tolerant.

Whatever then serves a request (the phone fast path of ingest/fastpath.py or plain ASGI),
every connection on the main port goes through this class first, so both answer alike:

- limits ([connections] in the config): request line + headers of one request are read up
  to `max_header_bytes` (over it: `431`, or `414` when the URL takes over 8 KiB or half of
  it) and within `header_timeout` of their first byte (or of the connection's start); a
  body within `body_timeout` of its headers (`408`). Those timers count only time the hub
  reads: one due while the hub has stopped reading from a client that does not read its
  answers runs once more. A client that leaves its answers unread for `send_timeout` (the
  send buffer full all that time) is disconnected. Open connections per source and in
  total are capped (`503` at once). Each answer closes the connection and is counted and
  logged.
- tolerance: a phone's request line with a raw space or non-ASCII byte (`event=Incoming
  Call`, `display_remote=张伟`) is percent-encoded before the parser sees it, and a raw `#`
  in a value (`remote=*72#`) is not taken for a fragment (every request
  that starts a read; pipelined ones within a read are parsed as they are); a request the
  parser refuses gets a JSON `400`; a long URL is kept only as far as its `414` needs.

Every uvicorn name this relies on is listed in tests/unit/test_uvicorn_contract.py, which
fails when an upgrade removes one; pyproject.toml pins the range that test passed on.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from callhook.connections import ConnectionLimits
from callhook.errors import error_json
from callhook.ingest.action_url import MAX_URL_BYTES, mend_hashes

_IDLE, _HEAD, _BODY = 0, 1, 2  # where a connection's parser is
_URL_KEEP = 2 * MAX_URL_BYTES  # over MAX_URL_BYTES is all a 414 needs to know
_UNREADABLE = error_json("bad-request", "not a readable HTTP/1.1 request")
# What a request-target may not hold raw and HTTP's parser refuses: space, controls, DEL
# and non-ASCII bytes. Percent-encoded, they decode to what the phone meant.
_UNSAFE_IN_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff]")
_REQUEST_LINE = re.compile(rb"^([A-Z]+) (.*) (HTTP/1\.[01])\r?$", re.DOTALL)
# A line with two spaces and none of these needs nothing (the usual case: checked cheaply).
_SUSPECT = re.compile(rb"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\xff#]")


def mend_request_line(data: bytes, end: int) -> bytes:
    """`GET /a=Incoming Call HTTP/1.1`: percent-encode what the target may not hold raw.

    `end` is the index of the line's `\\n`. Anything else is returned as it is, for the
    HTTP parser to take or refuse.
    """
    if data.count(b" ", 0, end) == 2 and not _SUSPECT.search(data, 0, end):
        return data
    line = _REQUEST_LINE.match(data, 0, end)
    if line is None:
        return data
    target = line.group(2)
    if _UNSAFE_IN_TARGET.search(target):
        target = _UNSAFE_IN_TARGET.sub(lambda m: b"%%%02X" % m.group()[0], target)
    elif b"#" not in target:
        return data
    target = mend_hashes(target)  # `remote=*72#`: not a fragment (the parser's rule)
    return b"%s %s %s\r%s" % (line.group(1), target, line.group(3), data[end:])


class Guard:
    """The limits one listener applies, shared by all its connections."""

    def __init__(
        self,
        limits: ConnectionLimits,
        max_header_bytes: int,
        header_timeout: float,
        body_timeout: float,
        send_timeout: float,
        websocket: Callable[[], asyncio.Protocol] | None = None,
    ) -> None:
        """`websocket`: makes the protocol that takes over an upgrade to `/ws`."""
        self.limits = limits
        self.websocket = websocket
        self.max_header_bytes = max_header_bytes
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.send_timeout = send_timeout


class HubHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the main port's limits and tolerance (module text)."""

    guard: Guard  # set on the subclass protocol_class() makes
    _done = False  # refused, or handed over to the WebSocket protocol: read nothing more
    _line: bytes | None = b""  # a request line being collected for mending, until whole
    _at_start = False  # the last request read is complete and no next one has begun
    _head_left: int | None = None  # head bytes still allowed; None while reading a body
    _timer: asyncio.TimerHandle | None = None
    _send_timer: asyncio.TimerHandle | None = None  # armed while the send buffer is full
    _reading = _IDLE  # what the parser is in: _IDLE between requests, _HEAD, _BODY

    # connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self.guard
        source = self.client[0] if self.client else ""
        if guard.limits.admit(transport, source) is not None:
            self._done = True
            self._answer(503, "unavailable", "too many connections; try again later")
            return
        self._head_left = guard.max_header_bytes
        self._arm(guard.header_timeout, "header_timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_send()
        self.guard.limits.release(self.transport)
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    # a client that does not read ---------------------------------------------------------
    # The transport says when its buffer of unsent answers is over its high-water mark
    # and when it drains again. Full for `send_timeout` without draining: the client reads
    # nothing (it may keep sending requests, which the hub then stops reading), and the
    # connection is aborted: the unsent answers could not be delivered anyway.
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None and not self.transport.is_closing():
            self._send_timer = self.loop.call_later(self.guard.send_timeout, self._unread)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm_send()

    def _disarm_send(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _unread(self) -> None:
        self._send_timer = None
        if self.transport.is_closing():
            return
        self.guard.limits.shed("send_timeout", self.client[0] if self.client else "")
        self.transport.abort()

    # keep-alive --------------------------------------------------------------------------
    # uvicorn arms a new keep-alive timer after every answer and cancels it on every read:
    # a timer made and cancelled per request (~3 µs). Here one timer stays armed while the
    # connection is used and, when due, closes it only if it has been idle that long since
    # its last answer; otherwise it is armed again for the rest (or by the next answer).
    _idle_since: float | None = None  # loop time of the last answer; None: a request since

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # data arrived: not idle (the timer looks when it is due)

    def on_response_complete(self) -> None:
        # uvicorn's, but for the keep-alive timer (see above).
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._keep_alive_due
            )

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return  # in use: the next answer arms the timer again
        left = since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_due)
            return
        self.timeout_keep_alive_handler()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket's own timers take over (auth and ping timeouts)
        self._disarm_send()  # and its own limit on what a client leaves unread
        self._done = True
        take = self.guard.websocket
        if take is None or httptools.parse_url(self.url).path != b"/ws":
            super().handle_websocket_upgrade()
            return
        # WSI at `/ws`: the same protocol as the WSI listener gets the connection, and the
        # request again for its handshake. It keeps this connection's place in the limits.
        self.connections.discard(self)
        request = [self.parser.get_method(), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.headers:
            request += [name, b": ", value, b"\r\n"]
        request.append(b"\r\n")
        protocol = take()
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.data_received(b"".join(request))

    # reading ---------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._done or self.transport.is_closing():
            return
        # A phone sends its variables substituted as they are: `event=Incoming Call`,
        # `display_remote=张伟`. HTTP's parser refuses a raw space or non-ASCII byte in the
        # target, so a request line at the start of a read is mended before it.
        if self._at_start:
            self._at_start = False
            self._line = b""
        if self._line is not None:
            data = self._line + data
            end = data.find(b"\n")
            if end < 0 and len(data) <= _URL_KEEP and len(data) <= self.guard.max_header_bytes:
                self._line = data
                if self._timer is None:  # a request has begun
                    self._arm(self.guard.header_timeout, "header_timeout")
                return
            self._line = None
            if end >= 0:
                data = mend_request_line(data, end)
        # Feed no more of a head than the limit allows: httptools itself would hold an
        # unbounded header (and copy it over and over as it grows).
        while data:
            left = self._head_left
            if left is None or len(data) <= left:
                if left is not None:
                    self._head_left = left - len(data)
                super().data_received(data)
                break
            part, data = data[:left], data[left:]
            self._head_left = 0
            super().data_received(part)
            if self._head_left == 0 and not self.transport.is_closing():
                self._head_too_large()
                return
            if self._done or self.transport.is_closing():
                return
        # A request left half read by this read must arrive within its time. (Timers are
        # armed only here: a request read whole in one read, the usual case, costs none.)
        if self._timer is None and self._reading and not self._done:
            if self._reading == _HEAD:
                self._arm(self.guard.header_timeout, "header_timeout")
            else:
                self._arm(self.guard.body_timeout, "body_timeout")

    def _head_too_large(self) -> None:
        source = self.client[0] if self.client else ""
        limit = min(MAX_URL_BYTES, self.guard.max_header_bytes // 2)
        if not self.headers and len(getattr(self, "url", b"")) > limit:  # no header: the URL
            self.guard.limits.shed("uri_too_long", source)
            self._answer(414, "uri-too-long", f"the URL is over {limit} bytes")
            return
        self.guard.limits.shed("header_too_large", source)
        limit = self.guard.max_header_bytes
        self._answer(431, "headers-too-large", f"request line and headers over {limit} bytes")

    # parser callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._at_start = False
        self._reading = _HEAD

    def on_url(self, url: bytes) -> None:
        # Keep enough of an over-long target to refuse it (414): uvicorn would keep all of
        # it, and httptools' URL parser fails past 64 KiB (a plain-text 400).
        room = _URL_KEEP - len(self.url)
        if room > 0:
            self.url += url[:room]

    def on_headers_complete(self) -> None:
        self._head_read()
        super().on_headers_complete()

    def _head_read(self) -> None:
        """A request's head is read: its timer and head limit end, its body may follow."""
        if self._timer is not None:
            self._disarm()
        self._head_left = None
        self._reading = _BODY

    def on_message_complete(self) -> None:
        if self._timer is not None:
            self._disarm()
        self._reading = _IDLE
        self._head_left = self.guard.max_header_bytes
        self._at_start = True  # the next read starts a request: mend its line too
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """An unreadable request: the ingest's JSON error, then close (as uvicorn does)."""
        self._write_close(400, _UNREADABLE)

    # timeouts --------------------------------------------------------------------------
    def _arm(self, delay: float, reason: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, self._expired, delay, reason)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, delay: float, reason: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            # The hub itself stopped reading (answers queued for this client, which is not
            # reading them): the rest of the request may be waiting unread in the socket.
            # Time it again; once reading resumes it has at most one more period.
            self._arm(delay, reason)
            return
        self.guard.limits.shed(reason, self.client[0] if self.client else "")
        cycle = self.cycle
        if reason == "header_timeout":
            owed = cycle is not None and not cycle.response_complete
        else:
            owed = bool(self.pipeline) or (cycle is not None and cycle.response_started)
        if owed:  # an answer to an earlier request is still being written: just close
            self.transport.close()
            return
        what = "headers" if reason == "header_timeout" else "body"
        self._answer(408, "request-timeout", f"the request's {what} did not arrive in time")

    # answers ---------------------------------------------------------------------------
    def _answer(self, status: int, code: str, message: str) -> None:
        self._write_close(status, error_json(code, message))

    def _write_close(self, status: int, body: bytes) -> None:
        self._disarm()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def protocol_class(base: type[HubHttpProtocol], guard: Guard) -> type[HubHttpProtocol]:
    """A protocol class for uvicorn's `http` setting, bound to one listener's guard."""
    return type(base.__name__, (base,), {"guard": guard})
