"""Webhook verification, checked against the independent `standardwebhooks` package."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook as Reference

import twh
from twh import webhooks

SECRET = "whsec_" + base64.b64encode(b"a test secret of thirty-two byte").decode()
BODY = json.dumps({"type": "stock.changed", "data": {"sku": "MUG-12OZ", "available": 3}})


def signed(msg_id: str = "msg_1", at: int | None = None, body: str = BODY) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    signature = Reference(SECRET).sign(
        msg_id, datetime.fromtimestamp(timestamp, tz=timezone.utc), body
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_reference_signatures_verify() -> None:
    headers = signed()
    assert twh.Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    assert twh.Webhook(SECRET).verify(BODY.encode(), headers) == json.loads(BODY)
    # Header names are case-insensitive.
    upper = {k.upper(): v for k, v in headers.items()}
    assert webhooks.verify(SECRET, BODY, upper)["type"] == "stock.changed"


def test_our_signatures_verify_with_the_reference() -> None:
    now = int(time.time())
    sig = twh.Webhook(SECRET).sign("msg_2", now, BODY)
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(now), "webhook-signature": sig}
    assert Reference(SECRET).verify(BODY, headers) == json.loads(BODY)
    assert sig == signed("msg_2", now)["webhook-signature"]


def test_any_of_several_signatures() -> None:
    headers = signed()
    other = Reference("whsec_" + base64.b64encode(b"the old secret").decode())
    old = other.sign("msg_1", datetime.now(timezone.utc), BODY)
    headers["webhook-signature"] = f"v2,abc {old} {headers['webhook-signature']}"
    assert twh.Webhook(SECRET).verify(BODY, headers)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace("3", "4")),
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"][:-6] + "AAAAA="}, b),
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "soon"}, b),
    ],
    ids=["body", "id", "timestamp", "signature", "version", "missing", "garbled-time"],
)
def test_tampered_deliveries_fail(tamper) -> None:  # type: ignore[no-untyped-def]
    headers, body = tamper(signed(), BODY)
    with pytest.raises(twh.WebhookVerificationError):
        twh.Webhook(SECRET).verify(body, headers)


def test_timestamp_tolerance() -> None:
    now = int(time.time())
    hook = twh.Webhook(SECRET)
    assert hook.verify(BODY, signed(at=now - 290))
    for at in (now - 310, now + 310):
        with pytest.raises(twh.WebhookVerificationError):
            hook.verify(BODY, signed(at=at))
    # The reference agrees on what is too old.
    with pytest.raises(Exception):
        Reference(SECRET).verify(BODY, signed(at=now - 310))


def test_wrong_secret_fails() -> None:
    other = "whsec_" + base64.b64encode(b"another secret").decode()
    with pytest.raises(twh.WebhookVerificationError):
        twh.Webhook(other).verify(BODY, signed())
    with pytest.raises(ValueError):
        twh.Webhook("whsec_")
