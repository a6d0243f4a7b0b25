"""Every uvicorn name callhook relies on beyond uvicorn's documented settings.

callhook/http_protocol.py and callhook/ingest/fastpath.py subclass uvicorn's httptools
protocol; callhook/server.py overrides `Server.capture_signals`. None of this is uvicorn's
public API, so pyproject.toml pins the range this test passed on. Before raising the pin,
run this test and tests/e2e/test_ingest_http.py, test_attack_connections.py and the WSI
tests on the new version: a missing name fails here, by name, not in production.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http import flow_control, httptools_impl
from uvicorn.server import ServerState

# Methods overridden or called on HttpToolsProtocol.
PROTOCOL_METHODS = [
    "connection_made",
    "connection_lost",
    "data_received",
    "handle_websocket_upgrade",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
    "send_400_response",
    "timeout_keep_alive_handler",
    "_unset_keepalive_if_required",  # called on every read: our keep-alive timer's hook
    "_start_asgi_task",  # the fast path's hook: without it phones go through ASGI
]
# Attributes an instance has once constructed (some are None until connection_made).
PROTOCOL_ATTRIBUTES = [
    "app",
    "loop",
    "parser",
    "connections",
    "tasks",
    "server_state",
    "pipeline",
    "cycle",
    "transport",
    "flow",
    "client",
    "headers",
    "timeout_keep_alive",
    "timeout_keep_alive_task",
    # what the fast path's on_headers_complete reads to build uvicorn's scope and cycle
    # (and `url`, set per request: test_request_url_and_status_lines)
    "scope",
    "root_path",
    "limit_concurrency",
    "expect_100_continue",
    "logger",
    "access_logger",
    "access_log",
]
# What the fast path reads and sets on a request's cycle.
CYCLE_ATTRIBUTES = [
    "scope",
    "transport",
    "flow",
    "default_headers",
    "message_event",
    "keep_alive",
    "on_response",
    "response_started",
    "response_complete",
    "disconnected",
]
FLOW_METHODS = ["pause_reading", "resume_reading", "drain"]
FLOW_ATTRIBUTES = ["read_paused", "write_paused"]


async def _app(scope: object, receive: object, send: object) -> None:
    return None


@pytest.fixture
def protocol() -> httptools_impl.HttpToolsProtocol:
    config = Config(app=_app, http="httptools", lifespan="off", log_config=None)
    config.load()
    return httptools_impl.HttpToolsProtocol(
        config, ServerState(), {}, _loop=asyncio.new_event_loop()
    )


@pytest.mark.parametrize("name", PROTOCOL_METHODS)
def test_protocol_method(name: str) -> None:
    assert callable(getattr(httptools_impl.HttpToolsProtocol, name, None)), name


@pytest.mark.parametrize("name", PROTOCOL_ATTRIBUTES)
def test_protocol_attribute(protocol: httptools_impl.HttpToolsProtocol, name: str) -> None:
    assert hasattr(protocol, name), name
    protocol.loop.close()


def test_request_url_and_status_lines(protocol: httptools_impl.HttpToolsProtocol) -> None:
    protocol.on_message_begin()
    assert protocol.url == b""
    assert protocol.server_state.default_headers is not None
    assert httptools_impl.STATUS_LINE[431].startswith(b"HTTP/1.1 431")
    protocol.loop.close()


# The keywords the fast path builds a cycle with (ingest/fastpath.py on_headers_complete).
CYCLE_PARAMETERS = [
    "scope",
    "transport",
    "flow",
    "logger",
    "access_logger",
    "access_log",
    "default_headers",
    "message_event",
    "expect_100_continue",
    "keep_alive",
    "on_response",
]


def test_cycle_parameters() -> None:
    params = inspect.signature(httptools_impl.RequestResponseCycle).parameters
    assert sorted(params) == sorted(CYCLE_PARAMETERS)


def test_cycle_attributes() -> None:
    params = inspect.signature(httptools_impl.RequestResponseCycle).parameters
    cycle = httptools_impl.RequestResponseCycle(**{p: None for p in params})  # type: ignore[arg-type]
    missing = [a for a in CYCLE_ATTRIBUTES if not hasattr(cycle, a)]
    assert not missing, missing


def test_flow_control() -> None:
    flow = flow_control.FlowControl(None)  # type: ignore[arg-type]
    for name in FLOW_METHODS:
        assert callable(getattr(flow, name, None)), name
    for name in FLOW_ATTRIBUTES:
        assert hasattr(flow, name), name


def test_server_signal_hooks() -> None:
    # server.py replaces capture_signals so a SIGTERM is not re-raised before Hub.stop().
    assert callable(getattr(uvicorn.Server, "capture_signals", None))
    assert callable(getattr(uvicorn.Server, "handle_exit", None))
    assert inspect.iscoroutinefunction(uvicorn.Server.serve)
    assert "sockets" in inspect.signature(uvicorn.Server.serve).parameters
