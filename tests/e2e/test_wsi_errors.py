"""Bad input on a real connection: every frame gets a reply; only persistent garbage is dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import wsi
from tests.support.hub import Hub

TENANT = {"name": "acme", "password": "tenant-secret"}
EXT_SUB = '{"command":"subscribe","topics":[{"topic":"extension_events"}]'

BAD_FRAMES = [
    ("not json", "malformed JSON"),
    ("{", "malformed JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('"auth"', "expected a JSON object"),
    ('{"cmd": "auth"}', "missing command"),
    ('{"command": 7}', "missing command"),
    ('{"command": "dance"}', "unknown command: dance"),
    ('{"command": "subscribe"}', "topics is required"),
    ('{"command": "subscribe", "topics": "extension_events"}', "topics must be"),
    ('{"command": "subscribe", "topics": []}', "topics must be"),
    ('{"command": "subscribe", "topics": [{"topic": "nope"}]}', "unknown topic: nope"),
    (
        '{"command": "subscribe", "topics": [{"topic": "extension_events", "keys": ["call_cdr"]}]}',
        "unknown key for extension_events: call_cdr",
    ),
    (
        '{"command": "subscribe", "topics": [{"topic": "cdr_events", "keys": "call_cdr"}]}',
        "keys of cdr_events must be a list of strings",
    ),
    (EXT_SUB + ', "extensions": "102"}', "extensions must be a list of strings"),
    (EXT_SUB + ', "extensions": [{"n": 1}]}', "extensions must be a list of strings"),
    (EXT_SUB + ', "queues": [true]}', "queues must be a list of strings"),
    (EXT_SUB + ', "since_seq": -1}', "since_seq must be a non-negative integer"),
    (EXT_SUB + ', "since_seq": "5"}', "since_seq must be a non-negative integer"),
    (EXT_SUB + ', "snapshot": "yes"}', "snapshot must be true or false"),
    ('{"command": "auth", "name": "acme", "password": "tenant-secret"}', "already authenticated"),
]


@pytest.fixture
def wsi_hub(request: pytest.FixtureRequest) -> Hub:
    return wsi.session_hub(request)  # one hub for all WSI modules


@pytest.mark.parametrize(("frame", "error"), BAD_FRAMES)
async def test_bad_frames_get_an_error_reply_and_the_connection_stays(
    wsi_hub: Hub, frame: str, error: str
) -> None:
    async with await wsi.login(wsi_hub.wsi_port, **TENANT) as ws:
        reply = json.loads(await wsi.send_raw(ws, frame))
        assert reply["status"] == -1
        assert reply["error"].startswith(error), reply
        assert list(reply) == ["error", "status"]  # PortSIP's key order
        assert await wsi.call(ws, {"command": "ping"}) == {"status": 0, "pong": True}


async def test_binary_and_invalid_utf8_frames(wsi_hub: Hub) -> None:
    async with await wsi.login(wsi_hub.wsi_port, **TENANT) as ws:
        assert json.loads(await wsi.send_raw(ws, b'{"command":"ping"}')) == {
            "status": 0,
            "pong": True,
        }
        reply = json.loads(await wsi.send_raw(ws, b"\xff\xfe{}"))
        assert reply == {"error": "malformed JSON", "status": -1}


async def test_fragmented_message_is_assembled(wsi_hub: Hub) -> None:
    async with await wsi.login(wsi_hub.wsi_port, **TENANT) as ws:
        await ws.send(iter(['{"comm', 'and":"pi', 'ng"}']))
        assert await wsi.recv_json(ws) == {"status": 0, "pong": True}


async def test_frame_over_64_kib_gets_an_error_and_the_connection_stays(wsi_hub: Hub) -> None:
    big = json.dumps({"command": "ping", "pad": "x" * (64 * 1024)})
    async with await wsi.login(wsi_hub.wsi_port, **TENANT) as ws:
        reply = json.loads(await wsi.send_raw(ws, big))
        assert reply == {"error": "frame too large (limit 65536 bytes)", "status": -1}
        assert await wsi.call(ws, {"command": "ping"}) == {"status": 0, "pong": True}


async def test_frame_over_1_mib_closes_with_1009(wsi_hub: Hub) -> None:
    async with await wsi.login(wsi_hub.wsi_port, **TENANT) as ws:
        await ws.send("x" * (1024 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as exc:
            await wsi.recv_json(ws)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1009


async def test_only_garbage_is_disconnected(wsi_hub: Hub) -> None:
    async with await wsi.open_ws(wsi_hub.wsi_port) as ws:
        replies: list[Any] = []
        with pytest.raises(ConnectionClosed) as exc:
            for _ in range(20):
                replies.append(json.loads(await wsi.send_raw(ws, "garbage")))
        assert len(replies) == 10
        assert exc.value.rcvd is not None
        assert (exc.value.rcvd.code, exc.value.rcvd.reason) == (1008, "too many invalid commands")


async def test_a_good_command_resets_the_garbage_count(wsi_hub: Hub) -> None:
    async with await wsi.login(wsi_hub.wsi_port, **TENANT) as ws:
        for _ in range(3):
            for _ in range(9):
                assert json.loads(await wsi.send_raw(ws, "garbage"))["status"] == -1
            assert await wsi.call(ws, {"command": "ping"}) == {"status": 0, "pong": True}


async def test_plain_http_to_the_wsi_port_is_refused(wsi_hub: Hub) -> None:
    from tests.support.phone import get

    assert get(wsi_hub.wsi_port, "/").status == 426
