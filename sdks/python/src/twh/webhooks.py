"""Verifying webhook deliveries (the Standard Webhooks scheme).

A delivery carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``:
space-separated ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` entries (more than one
while a secret is being rotated). The secret is ``whsec_<base64 key>``. Verify the raw body bytes
exactly as received, before parsing them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from .errors import WebhookVerificationError

__all__ = ["Webhook", "WebhookVerificationError", "DEFAULT_TOLERANCE_SECONDS"]

DEFAULT_TOLERANCE_SECONDS = 5 * 60
_PREFIX = "whsec_"


class Webhook:
    """Verifies (and, for tests and senders, signs) deliveries for one endpoint secret."""

    def __init__(self, secret: str | bytes, *, tolerance: float = DEFAULT_TOLERANCE_SECONDS):
        if isinstance(secret, str):
            encoded = secret[len(_PREFIX) :] if secret.startswith(_PREFIX) else secret
            try:
                key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("the webhook secret is not whsec_<base64>") from exc
        else:
            key = secret
        if not key:
            raise ValueError("the webhook secret is empty")
        self._key = key
        self.tolerance = tolerance

    def sign(self, msg_id: str, timestamp: int, body: bytes | str) -> str:
        """The ``v1,<signature>`` entry for one delivery."""
        payload = body.encode() if isinstance(body, str) else body
        signed = f"{msg_id}.{timestamp}.".encode() + payload
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()

    def verify(
        self,
        body: bytes | str,
        headers: Mapping[str, str],
        *,
        now: float | None = None,
    ) -> Any:
        """Checks the headers and signature of a delivery and returns its JSON body.

        Raises ``WebhookVerificationError`` when a header is missing or malformed, the timestamp
        is more than ``tolerance`` seconds away from now, or no ``v1`` signature matches.
        """
        self.verify_signature(body, headers, now=now)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise WebhookVerificationError("the verified body is not JSON") from exc

    def verify_signature(
        self,
        body: bytes | str,
        headers: Mapping[str, str],
        *,
        now: float | None = None,
    ) -> None:
        """Like ``verify`` but returns nothing and leaves the body unparsed."""
        lowered = {k.lower(): v for k, v in headers.items()}
        msg_id = lowered.get("webhook-id")
        raw_timestamp = lowered.get("webhook-timestamp")
        signatures = lowered.get("webhook-signature")
        if not msg_id or not raw_timestamp or not signatures:
            raise WebhookVerificationError(
                "missing webhook-id, webhook-timestamp or webhook-signature header"
            )
        try:
            timestamp = int(raw_timestamp.strip())
        except ValueError as exc:
            raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
        current = time.time() if now is None else now
        if timestamp < current - self.tolerance:
            raise WebhookVerificationError("the delivery's timestamp is too old")
        if timestamp > current + self.tolerance:
            raise WebhookVerificationError("the delivery's timestamp is in the future")

        expected = base64.b64decode(self.sign(msg_id, timestamp, body).split(",", 1)[1])
        matched = False
        for entry in signatures.split():
            version, _, signature = entry.partition(",")
            if version != "v1" or not signature:
                continue
            try:
                candidate = base64.b64decode(signature, validate=True)
            except (binascii.Error, ValueError):
                continue
            # Every candidate is compared in constant time, with no early exit.
            if hmac.compare_digest(expected, candidate):
                matched = True
        if not matched:
            raise WebhookVerificationError("no signature matches")


def verify(
    secret: str | bytes,
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """Shorthand for ``Webhook(secret, tolerance=tolerance).verify(body, headers)``."""
    return Webhook(secret, tolerance=tolerance).verify(body, headers, now=now)
