"""The first request line of a phone's connection, mended before HTTP's parser sees it."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import httptools
from hypothesis import given
from hypothesis import strategies as st

from callhook.http_protocol import mend_request_line
from callhook.ingest.action_url import mend_hashes


class _Url:
    def __init__(self) -> None:
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url


def _parsed_target(data: bytes) -> bytes:
    seen = _Url()
    httptools.HttpRequestParser(seen).feed_data(data)
    return seen.url


def _mend(data: bytes) -> bytes:
    return mend_request_line(data, data.find(b"\n"))


def test_a_raw_space_and_raw_utf8_are_percent_encoded() -> None:
    data = "GET /event=Incoming Call&name=张伟 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    mended = _mend(data)
    assert mended.startswith(b"GET /event=Incoming%20Call&name=%E5%BC%A0%E4%BC%9F HTTP/1.1\r\n")
    assert mended.endswith(b"\r\nHost: x\r\n\r\n")


def test_what_needs_no_mending_is_left_as_it_is() -> None:
    for data in (
        b"GET /event=Incoming%20Call HTTP/1.1\r\nHost: x\r\n\r\n",
        b"NOT HTTP\r\n\r\n",
        b"GET /a b HTTP/2.0\r\n\r\n",  # not a version we mend for
        b"get /a b HTTP/1.1\r\n\r\n",
    ):
        assert _mend(data) is data


@given(st.binary(max_size=300).filter(lambda b: b"\n" not in b and b"\r" not in b))
def test_a_mended_line_parses_and_means_what_the_phone_sent(target: bytes) -> None:
    data = b"GET /" + target + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    mended = _mend(data)
    url = _parsed_target(mended)  # never raises
    # A raw `#` is not a fragment: it separates a pair or is part of a value (mend_hashes).
    assert unquote_to_bytes(url) == unquote_to_bytes(b"/" + mend_hashes(target))
