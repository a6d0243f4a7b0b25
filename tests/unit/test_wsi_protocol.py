"""WSI command parsing and replies (pure): parameter tables plus a never-raises property."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from callhook.events import TOPICS
from callhook.wsi import protocol as p
from callhook.wsi.frames import PING, text_frame

EXT_KEYS = frozenset(TOPICS["extension_events"])


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {"command": "auth", "extension": "101", "domain": "test.com", "password": "111111"},
            p.Auth("111111", extension="101", domain="test.com"),
        ),
        ({"command": "auth", "name": "acme", "password": "x"}, p.Auth("x", tenant="acme")),
        (
            {"command": "auth", "extension_number": 101, "domain": "d", "password": "x"},
            p.Auth("x", extension="101", domain="d"),
        ),
        (
            {"command": "auth", "username": "101", "domain": "d", "password": "x"},
            p.Auth("x", extension="101", domain="d"),
        ),
        (
            {"command": "auth", "username": "101@d", "password": "x"},
            p.Auth("x", extension="101", domain="d"),
        ),
        ({"command": "auth", "username": "acme", "password": "x"}, p.Auth("x", tenant="acme")),
        ({"command": " PING "}, p.Ping()),
        (
            {"command": "subscribe", "topics": [{"topic": "extension_events"}]},
            p.Subscribe({"extension_events": EXT_KEYS}),
        ),
        (
            {
                "command": "subscribe",
                "topics": [
                    {"topic": "cdr_events", "keys": ["call_cdr"]},
                    {"topic": "extension_events", "keys": ["call_start"]},
                    {"topic": "extension_events", "keys": ["call_ended", "call_start"]},
                ],
                "extensions": ["102", 103, "102"],
                "queues": [],
                "since_seq": 0,
                "snapshot": True,
            },
            p.Subscribe(
                {
                    "cdr_events": frozenset({"call_cdr"}),
                    "extension_events": frozenset({"call_start", "call_ended"}),
                },
                extensions=("102", "103"),
                queues=(),
                since_seq=0,
                snapshot=True,
            ),
        ),
        ({"command": "unsubscribe"}, p.Unsubscribe(None)),
        (
            {"command": "unsubscribe", "topics": [{"topic": "cdr_events", "keys": []}]},
            p.Unsubscribe({"cdr_events": frozenset({"call_cdr"})}),
        ),
    ],
)
def test_valid_commands(message: dict[str, Any], expected: p.Command) -> None:
    assert p.parse(json.dumps(message)) == expected
    assert p.parse(json.dumps(message).encode()) == expected


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("", "malformed JSON"),
        ("{]", "malformed JSON"),
        (b"\xff", "malformed JSON"),
        ("null", "expected a JSON object"),
        ("{}", "missing command"),
        ('{"command": null}', "missing command"),
        ('{"command": "nope"}', "unknown command: nope"),
        ('{"command": "auth"}', "password is required"),
        ('{"command": "auth", "password": ["x"]}', "password must be a string"),
        ('{"command": "auth", "password": "x"}', "auth needs extension and domain, or name"),
        ('{"command": "auth", "password": "x", "name": ["a"]}', "name must be a string"),
        ('{"command": "auth", "password": "x", "name": "' + "a" * 200 + '"}', "name too long"),
        ('{"command": "subscribe", "topics": [5]}', "topics must be"),
        ('{"command": "subscribe", "topics": [{"keys": []}]}', "topics must be"),
        ('{"command": "subscribe", "topics": [{"topic": "x"}]}', "unknown topic: x"),
        ('{"command": "subscribe", "topics": [{"topic": "cdr_events", "keys": [1]}]}', "keys of"),
        (
            '{"command": "subscribe", "topics": [{"topic": "cdr_events"}], "since_seq": true}',
            "since",
        ),
        (
            '{"command": "subscribe", "topics": [{"topic": "cdr_events"}], "since_seq": 1.5}',
            "since",
        ),
        (
            '{"command": "subscribe", "topics": [{"topic": "cdr_events"}], "extensions": [""]}',
            "ext",
        ),
        ('{"command": "unsubscribe", "topics": {}}', "topics must be"),
        ('{"command": "ping", "pad": "' + "x" * p.MAX_COMMAND_BYTES + '"}', "frame too large"),
    ],
)
def test_invalid_commands(raw: str | bytes, error: str) -> None:
    result = p.parse(raw)
    assert isinstance(result, p.ProtocolError)
    assert result.message.startswith(error)


def test_replies_are_the_seed_bytes() -> None:
    assert p.OK == b'{"status":0}'
    assert p.AUTH_FAILED == b'{"error":"name or password error","status":-1}'
    assert p.PONG == b'{"status":0,"pong":true}'
    assert p.error_reply('a "quote"') == b'{"error":"a \\"quote\\"","status":-1}'


def test_auth_account_labels() -> None:
    assert p.Auth("x", extension="101", domain="d").account() == "ext:101@d"
    assert p.Auth("x", tenant="acme").account() == "tenant:acme"


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_parse_never_raises_on_anything(data: str | bytes) -> None:
    result = p.parse(data)
    assert isinstance(result, p.ProtocolError | p.Auth | p.Subscribe | p.Unsubscribe | p.Ping)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        *("command", "topics", "topic", "keys", "extensions", "queues", "since_seq", "snapshot"),
        *("name", "password", "extension", "domain", "username", "extension_number"),
    ]
)


@given(
    st.sampled_from(["auth", "subscribe", "unsubscribe", "ping"]),
    st.dictionaries(field_names, json_values, max_size=6),
)
def test_parse_never_raises_on_command_shaped_json(command: str, fields: dict[str, Any]) -> None:
    result = p.parse(json.dumps({**fields, "command": command}))
    assert isinstance(result, p.ProtocolError | p.Auth | p.Subscribe | p.Unsubscribe | p.Ping)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frames_parse_as_websockets_reads_them(size: int) -> None:
    payload = b"x" * size
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
        raise AssertionError("frame incomplete")
    except StopIteration as done:
        frame = done.value
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload
    assert Frame(Opcode.PING, b"").serialize(mask=False) == PING
