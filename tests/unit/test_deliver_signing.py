"""Standard Webhooks signatures, checked with the independent `standardwebhooks` package."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from callhook.deliver import signing

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the sample configuration's example


def _verify(secret: str, headers: dict[str, str], body: bytes) -> object:
    return Webhook(secret).verify(body, headers)


def test_signature_verifies_with_the_reference_library() -> None:
    body = b'{"event_type":"call_start","seq":1}'
    ts = int(time.time())
    headers = signing.headers([signing.secret_key(SECRET)], "msg_1", ts, body)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(ts)
    assert headers["webhook-signature"].startswith("v1,")
    assert _verify(SECRET, headers, body) == {"event_type": "call_start", "seq": 1}


def test_known_vector() -> None:
    # The reference library's own signer, fed the same inputs, gives the same string.
    from datetime import UTC, datetime

    ts = 1_614_265_330
    body = b'{"test": 2432232314}'
    ours = signing.sign(signing.secret_key(SECRET), "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
    theirs = Webhook(SECRET).sign(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", datetime.fromtimestamp(ts, tz=UTC), body.decode()
    )
    assert ours == theirs


def test_several_secrets_give_several_signatures_each_valid() -> None:
    other = signing.new_secret()
    body = b"{}"
    ts = int(time.time())
    keys = [signing.secret_key(SECRET), signing.secret_key(other)]
    headers = signing.headers(keys, "id-7", ts, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    _verify(SECRET, headers, body)
    _verify(other, headers, body)
    with pytest.raises(WebhookVerificationError):
        _verify(signing.new_secret(), headers, body)


def test_tampered_body_fails() -> None:
    ts = int(time.time())
    headers = signing.headers([signing.secret_key(SECRET)], "id", ts, b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        _verify(SECRET, headers, b'{"a":2}')


def test_no_key_no_signature_header() -> None:
    assert "webhook-signature" not in signing.headers([], "id", 1, b"")


@pytest.mark.parametrize(
    "bad", ["", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!!", "whsec_c2hvcnQ="]
)
def test_bad_secrets(bad: str) -> None:
    with pytest.raises(signing.BadSecret):
        signing.secret_key(bad)


def test_mask_hides_the_secret() -> None:
    assert signing.mask(SECRET) == "whsec_MfKQ..."
    assert SECRET not in signing.mask(SECRET)


@given(
    body=st.binary(max_size=512), msg_id=st.text(min_size=1, max_size=40).filter(str.isprintable)
)
def test_any_body_and_id_verify(body: bytes, msg_id: str) -> None:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return  # the reference library verifies text bodies only
    ts = int(time.time())
    headers = signing.headers([signing.secret_key(SECRET)], msg_id, ts, body)
    Webhook(SECRET).verify(text, headers, json_parse=False)


@given(key=st.binary(min_size=1, max_size=200), msg=st.binary(max_size=300))
def test_prekeyed_hmac_equals_the_standard_one(key: bytes, msg: bytes) -> None:
    import hashlib
    import hmac

    assert signing.SigningKey(key).digest(msg) == hmac.new(key, msg, hashlib.sha256).digest()
